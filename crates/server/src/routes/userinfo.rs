//! `/userinfo` ([OIDC Core §5.3](https://openid.net/specs/openid-connect-core-1_0.html#UserInfo)):
//! GET or POST with a Bearer token in the `Authorization` header only (never the query).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use keybridge_core::OAuthError;

use crate::app::AppState;
use crate::errors::ApiError;

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/userinfo", web::get().to(userinfo));
    cfg.route("/userinfo", web::post().to(userinfo));
    cfg.route("/userinfo", web::method(actix_web::http::Method::OPTIONS).to(preflight));
}

async fn userinfo(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            OAuthError::InvalidToken("a Bearer access token is required in the Authorization header".into())
        })?;
    let claims = st.provider.userinfo(bearer).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(claims))
}

/// CORS preflight for the token and userinfo endpoints (never `/authorize`, RFC 9700 §2.6).
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Access-Control-Allow-Methods", "GET, POST"))
        .insert_header(("Access-Control-Allow-Headers", "Authorization, Content-Type"))
        .insert_header(("Access-Control-Max-Age", "86400"))
        .finish()
}
