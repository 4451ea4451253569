//! `/authorize` ([RFC 6749 §4.1.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1); OIDC Core
//! §3.1.2.1 asks for both GET and POST).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use keybridge_core::authorize::{self, AuthorizeQuery};
use keybridge_core::params::Params;

use crate::app::AppState;
use crate::errors::PageError;

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/authorize", web::get().to(get));
    cfg.route("/authorize", web::post().to(post));
}

async fn get(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    authorize(&st, &Params::parse(req.query_string())).await
}

async fn post(req: HttpRequest, payload: web::Payload, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let params = super::read_form(&req, payload)
        .await
        .map_err(|e| PageError::bad_request("Invalid sign-in request", e.description().unwrap_or_default()))?;
    authorize(&st, &params).await
}

/// The name of the cookie carrying a request's CSRF token.
pub fn csrf_cookie_name(req_id: &str) -> String {
    format!("kbr_{req_id}")
}

/// A 303 redirect (RFC 9700 §4.12: never 307 after a credential POST).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn authorize(st: &AppState, q: &AuthorizeQuery) -> Result<HttpResponse, PageError> {
    let p = &st.provider;
    let target = authorize::resolve_target(q, &p.clients)
        .map_err(|e| PageError::bad_request("Invalid sign-in request", e.to_string()))?;
    let issuer = &p.settings.issuer;
    let validated = match authorize::validate(q, target, p.as_ref()) {
        Ok(v) => v,
        Err((target, err)) => {
            tracing::info!(client_id = %target.client.id, error = %err, "authorization request refused");
            return Ok(see_other(&authorize::error_response_url(&target, &err, issuer)?));
        }
    };
    let target = validated.target.clone();
    let (areq, csrf) = match p.start_authorization(validated).await {
        Ok(r) => r,
        // Storage is down: tell the person on a page (it will pass) rather than bounce the client.
        Err(err @ keybridge_core::OAuthError::TemporarilyUnavailable(_)) => return Err(err.into()),
        Err(err) => return Ok(see_other(&authorize::error_response_url(&target, &err, issuer)?)),
    };
    let base = &st.base_path;
    let location = match &areq.connector_id {
        Some(c) => format!("{issuer}/login/{c}?req={}", areq.id),
        None => format!("{issuer}/login?req={}", areq.id),
    };
    let cookie = Cookie::build(csrf_cookie_name(areq.id.as_str()), csrf.secret().to_owned())
        .path(format!("{base}/"))
        .http_only(true)
        .secure(st.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(p.settings.auth_request_ttl))
        .finish();
    let mut res = see_other(&location);
    res.add_cookie(&cookie).map_err(|e| PageError::from(keybridge_core::OAuthError::ServerError(e.to_string())))?;
    Ok(res)
}
