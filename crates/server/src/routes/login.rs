//! The login steps between `/authorize` and the code: the connector chooser and the password form.
//! Every step checks the browser's CSRF cookie against the authorization request.

use actix_web::cookie::Cookie;
use actix_web::{HttpRequest, HttpResponse, web};
use keybridge_core::connector::{ConnectorError, LoginMethod};
use keybridge_core::params::Params;
use keybridge_core::provider::LoginError;
use keybridge_core::store::AuthRequest;
use keybridge_core::types::{AuthRequestId, Password};

use super::authorize::{csrf_cookie_name, see_other};
use crate::app::AppState;
use crate::errors::PageError;
use crate::pages::{self, PasswordForm};

/// Generic on purpose: no user enumeration.
pub const WRONG_CREDENTIALS: &str = "Wrong email or password.";

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(chooser));
    cfg.route("/login/{connector}", web::get().to(login_page));
    cfg.route("/login/{connector}", web::post().to(login_submit));
}

fn req_param(req: &HttpRequest) -> Result<String, PageError> {
    Params::parse(req.query_string())
        .get("req")
        .ok()
        .flatten()
        .map(str::to_owned)
        .ok_or_else(|| PageError::from(LoginError::RequestExpired))
}

fn cookie_value(req: &HttpRequest, req_id: &str) -> Option<String> {
    req.cookie(&csrf_cookie_name(req_id)).map(|c| c.value().to_owned())
}

async fn chooser(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let req_id = req_param(&req)?;
    let areq = st.provider.login_request(&req_id, cookie_value(&req, &req_id).as_deref()).await?;
    let client = st.provider.client_of(&areq)?;
    let list: Vec<(String, String)> =
        st.provider.connectors.iter().map(|c| (c.id.to_string(), c.name.clone())).collect();
    Ok(pages::chooser(&st.base_path, &client.name, &req_id, &list))
}

/// Loads the request and checks that `connector` may serve it.
async fn request_for(
    st: &AppState,
    req_id: &str,
    csrf: Option<&str>,
    connector: &str,
) -> Result<AuthRequest, PageError> {
    if st.provider.connector(connector).is_none() {
        return Err(LoginError::UnknownConnector(connector.to_owned()).into());
    }
    let areq = st.provider.login_request(req_id, csrf).await?;
    if let Some(chosen) = &areq.connector_id
        && chosen.as_str() != connector
    {
        return Err(PageError::bad_request(
            "Sign-in failed",
            format!("This sign-in request is for {:?}, not {connector:?}.", chosen.as_str()),
        ));
    }
    Ok(areq)
}

async fn login_page(
    req: HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    let req_id = req_param(&req)?;
    let csrf = cookie_value(&req, &req_id);
    let areq = request_for(&st, &req_id, csrf.as_deref(), &connector_id).await?;
    let client = st.provider.client_of(&areq)?;
    let Some(connector) = st.provider.connector(&connector_id) else {
        return Err(LoginError::UnknownConnector(connector_id).into());
    };
    match &connector.login {
        LoginMethod::Password(pc) => Ok(pages::password_form(&PasswordForm {
            base: &st.base_path,
            connector_id: &connector_id,
            connector_name: &connector.name,
            client_name: &client.name,
            req_id: &req_id,
            csrf: csrf.as_deref().unwrap_or_default(),
            username_label: pc.username_label(),
            username: "",
            error: None,
        })),
        LoginMethod::Callback(_) => Err(PageError::bad_request(
            "Sign-in failed",
            "This sign-in method redirects to its provider and has no form here.",
        )),
    }
}

async fn login_submit(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    let form = super::read_form(&req, payload)
        .await
        .map_err(|e| PageError::bad_request("Sign-in failed", e.description().unwrap_or_default()))?;
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let req_id = field("req");
    let cookie = cookie_value(&req, &req_id);
    // Double submit: the form's token must equal this browser's cookie, and both the request's.
    let form_csrf = field("csrf");
    if cookie.as_deref() != Some(form_csrf.as_str()) {
        return Err(LoginError::CsrfMismatch.into());
    }
    let areq = request_for(&st, &req_id, cookie.as_deref(), &connector_id).await?;
    let client = st.provider.client_of(&areq)?;
    let Some(connector) = st.provider.connector(&connector_id) else {
        return Err(LoginError::UnknownConnector(connector_id).into());
    };
    let LoginMethod::Password(pc) = &connector.login else {
        return Err(PageError::bad_request("Sign-in failed", "This sign-in method has no password form."));
    };
    let username = field("login");
    let retry = |error: &str| {
        pages::password_form(&PasswordForm {
            base: &st.base_path,
            connector_id: &connector_id,
            connector_name: &connector.name,
            client_name: &client.name,
            req_id: &req_id,
            csrf: &form_csrf,
            username_label: pc.username_label(),
            username: &username,
            error: Some(error),
        })
    };
    let password = Password::new(field("password"));
    let identity = match pc.login(&areq.scopes, &username, &password).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            tracing::info!(connector_id = %connector_id, "login failed: wrong credentials");
            return Ok(retry(WRONG_CREDENTIALS));
        }
        Err(ConnectorError::Denied(msg)) => return Ok(retry(&msg)),
        Err(e) => {
            tracing::warn!(connector_id = %connector_id, error = %e, "login failed upstream");
            return Err(keybridge_core::OAuthError::TemporarilyUnavailable(
                "the sign-in provider could not be reached".into(),
            )
            .into());
        }
    };
    tracing::info!(connector_id = %connector_id, client_id = %client.id, "login succeeded");
    let location = st.provider.complete_login(&AuthRequestId::new(req_id.clone()), &connector.id, identity).await?;
    let mut res = see_other(&location);
    let mut gone = Cookie::new(csrf_cookie_name(&req_id), "");
    gone.set_path(format!("{}/login", st.base_path));
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    Ok(res)
}
