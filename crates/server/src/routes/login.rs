//! The login steps between `/authorize` and the code: the connector chooser, each connector's
//! page (password form, upstream buttons, token hand-off), the upstream redirect and its
//! callback. Every step checks the browser's CSRF cookie against the authorization request.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use keybridge_core::OAuthError;
use keybridge_core::connector::{CallbackParams, Connector, ConnectorError, LoginOptions};
use keybridge_core::params::Params;
use keybridge_core::provider::LoginError;
use keybridge_core::store::AuthRequest;
use keybridge_core::types::{AuthRequestId, ConnectorId, Password};
use keybridge_core::upstream::UpstreamError;

use super::authorize::{csrf_cookie_name, see_other};
use crate::app::AppState;
use crate::errors::PageError;
use crate::pages::{self, ConnectorPage, HandoffView};

/// Generic on purpose: no user enumeration.
pub const WRONG_CREDENTIALS: &str = "Wrong email or password.";

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(chooser));
    cfg.route("/login/{connector}", web::get().to(login_page));
    cfg.route("/login/{connector}", web::post().to(login_submit));
    cfg.route("/login/{connector}/upstream", web::get().to(upstream));
    cfg.route("/login/{connector}/handoff", web::get().to(handoff_page));
    cfg.route("/login/{connector}/handoff", web::post().to(handoff_submit));
    cfg.route("/callback/{connector}", web::get().to(callback));
    cfg.route("/assets/handoff/{connector}.js", web::get().to(handoff_glue));
}

fn query(req: &HttpRequest) -> Params {
    Params::parse(req.query_string())
}

fn req_param(req: &HttpRequest) -> Result<String, PageError> {
    query(req).get("req").ok().flatten().map(str::to_owned).ok_or_else(|| PageError::from(LoginError::RequestExpired))
}

fn cookie_value(req: &HttpRequest, req_id: &str) -> Option<String> {
    req.cookie(&csrf_cookie_name(req_id)).map(|c| c.value().to_owned())
}

/// The answer to a finished login: the client's redirect, with the CSRF cookie removed.
fn finished(st: &AppState, req_id: &str, location: &str) -> HttpResponse {
    forget_request(st, req_id, see_other(location))
}

/// Removes the browser's CSRF cookie for a request that has ended, either way.
fn forget_request(st: &AppState, req_id: &str, mut res: HttpResponse) -> HttpResponse {
    let mut gone = Cookie::new(csrf_cookie_name(req_id), "");
    gone.set_path(format!("{}/", st.base_path));
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    res
}

fn upstream_error(st: &AppState, req_id: &str, e: UpstreamError) -> Result<HttpResponse, PageError> {
    match e {
        UpstreamError::Login(e) => Err(e.into()),
        UpstreamError::Failed(f) => {
            let page = pages::upstream_failure(StatusCode::BAD_GATEWAY, &f.message, &f.client_name, &f.client_redirect);
            Ok(forget_request(st, req_id, page))
        }
    }
}

async fn chooser(req: HttpRequest, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let req_id = req_param(&req)?;
    let areq = st.provider.login_request(&req_id, cookie_value(&req, &req_id).as_deref()).await?;
    let client = st.provider.client_of(&areq)?;
    let list: Vec<(String, String)> =
        st.provider.connectors.iter().map(|c| (c.id.to_string(), c.name.clone())).collect();
    Ok(pages::chooser(&st.base_path, &client.name, &req_id, &list))
}

/// Loads the request and checks that `connector` may serve it; returns both.
async fn request_for(
    st: &AppState,
    req_id: &str,
    csrf: Option<&str>,
    connector: &str,
) -> Result<(AuthRequest, Connector), PageError> {
    let Some(found) = st.provider.connector(connector).cloned() else {
        return Err(LoginError::UnknownConnector(connector.to_owned()).into());
    };
    let areq = st.provider.login_request(req_id, csrf).await?;
    if let Some(chosen) = &areq.connector_id
        && chosen.as_str() != connector
    {
        return Err(PageError::bad_request(
            "Sign-in failed",
            format!("This sign-in request is for {:?}, not {connector:?}.", chosen.as_str()),
        ));
    }
    Ok((areq, found))
}

struct PageArgs<'a> {
    connector_id: &'a str,
    req_id: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

fn render_connector_page(st: &AppState, areq: &AuthRequest, a: &PageArgs<'_>) -> Result<HttpResponse, PageError> {
    let client = st.provider.client_of(areq)?;
    let connector =
        st.provider.connector(a.connector_id).ok_or_else(|| LoginError::UnknownConnector(a.connector_id.to_owned()))?;
    let choices = connector.callback.as_ref().map(|c| c.choices()).unwrap_or_default();
    Ok(pages::connector_page(&ConnectorPage {
        base: &st.base_path,
        connector_id: a.connector_id,
        connector_name: &connector.name,
        client_name: &client.name,
        req_id: a.req_id,
        csrf: a.csrf,
        password_label: connector.password.as_ref().map(|p| p.username_label()),
        username: a.username,
        choices: choices.into_iter().map(|c| (c.provider, c.label)).collect(),
        handoff: connector.handoff.is_some(),
        error: a.error,
    }))
}

async fn login_page(
    req: HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    crate::observe::record_connector(&req, &connector_id);
    let req_id = req_param(&req)?;
    let csrf = cookie_value(&req, &req_id);
    let (areq, connector) = request_for(&st, &req_id, csrf.as_deref(), &connector_id).await?;
    // A connector that only redirects upstream, to one place, needs no page of its own.
    if connector.password.is_none()
        && connector.handoff.is_none()
        && let Some(cb) = &connector.callback
        && let [only] = cb.choices().as_slice()
    {
        return start_upstream(&st, areq, &connector_id, only.provider.clone()).await;
    }
    render_connector_page(
        &st,
        &areq,
        &PageArgs {
            connector_id: &connector_id,
            req_id: &req_id,
            csrf: csrf.as_deref().unwrap_or_default(),
            username: "",
            error: None,
        },
    )
}

/// Reads a form posted from a login page and checks it was posted from the browser that started
/// the request (double submit: the form's `csrf` must equal this browser's cookie for `req`).
/// Returns the form, the request id and the cookie's value.
async fn read_login_post(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Params, String, Option<String>), PageError> {
    let form = super::read_form(req, payload)
        .await
        .map_err(|e| PageError::bad_request("Sign-in failed", e.description().unwrap_or_default()))?;
    let req_id = form.get("req").ok().flatten().unwrap_or_default().to_owned();
    let cookie = cookie_value(req, &req_id);
    if cookie.is_none() || cookie.as_deref() != form.get("csrf").ok().flatten() {
        return Err(LoginError::CsrfMismatch.into());
    }
    Ok((form, req_id, cookie))
}

async fn login_submit(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    crate::observe::record_connector(&req, &connector_id);
    let (form, req_id, cookie) = read_login_post(&req, payload).await?;
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let form_csrf = field("csrf");
    let (areq, connector) = request_for(&st, &req_id, cookie.as_deref(), &connector_id).await?;
    let Some(pc) = connector.password.clone() else {
        return Err(PageError::bad_request("Sign-in failed", "This sign-in method has no password form."));
    };
    let username = field("login");
    let retry = |error: &str| {
        render_connector_page(
            &st,
            &areq,
            &PageArgs {
                connector_id: &connector_id,
                req_id: &req_id,
                csrf: &form_csrf,
                username: &username,
                error: Some(error),
            },
        )
    };
    let password = Password::new(field("password"));
    let identity = match pc.login(&areq.scopes, &username, &password).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            tracing::info!(connector_id = %connector_id, "login failed: wrong credentials");
            st.metrics.login(&connector_id, "wrong_credentials");
            return retry(WRONG_CREDENTIALS);
        }
        Err(ConnectorError::Denied(msg)) => {
            st.metrics.login(&connector_id, "denied");
            return retry(&msg);
        }
        Err(e) => {
            tracing::warn!(connector_id = %connector_id, error = %e, "login failed upstream");
            st.metrics.login(&connector_id, "upstream_error");
            return Err(OAuthError::TemporarilyUnavailable("the sign-in provider could not be reached".into()).into());
        }
    };
    tracing::info!(connector_id = %connector_id, client_id = %areq.client_id, "login succeeded");
    st.metrics.login(&connector_id, "success");
    let location = st.provider.complete_login(&AuthRequestId::new(req_id.clone()), &connector.id, identity).await?;
    Ok(finished(&st, &req_id, &location))
}

async fn start_upstream(
    st: &AppState,
    areq: AuthRequest,
    connector_id: &str,
    provider: String,
) -> Result<HttpResponse, PageError> {
    let req_id = areq.id.to_string();
    let callback_url = format!("{}/callback/{connector_id}", st.provider.settings.issuer);
    let options = LoginOptions {
        provider: Some(provider).filter(|p| !p.is_empty()),
        login_hint: areq.login_hint.clone(),
        prompt: areq.prompt.clone(),
    };
    match st.provider.begin_upstream(areq, &ConnectorId::new(connector_id), &callback_url, &options).await {
        Ok(url) => Ok(see_other(&url)),
        Err(e) => upstream_error(st, &req_id, e),
    }
}

async fn upstream(
    req: HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    crate::observe::record_connector(&req, &connector_id);
    let req_id = req_param(&req)?;
    let csrf = cookie_value(&req, &req_id);
    let (areq, connector) = request_for(&st, &req_id, csrf.as_deref(), &connector_id).await?;
    let cb = connector.callback.as_ref().ok_or_else(|| LoginError::UnknownConnector(connector_id.clone()))?;
    let provider = query(&req).get("provider").ok().flatten().unwrap_or_default().to_owned();
    if !cb.choices().iter().any(|c| c.provider == provider) {
        return Err(PageError::bad_request("Sign-in failed", format!("Unknown sign-in provider {provider:?}.")));
    }
    start_upstream(&st, areq, &connector_id, provider).await
}

async fn callback(
    req: HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    crate::observe::record_connector(&req, &connector_id);
    let params =
        CallbackParams { query: url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect() };
    let Some(req_id) = params.get("state").map(str::to_owned) else {
        return Err(LoginError::CallbackMismatch.into());
    };
    let csrf = cookie_value(&req, &req_id);
    match st.provider.finish_upstream(&req_id, csrf.as_deref(), &ConnectorId::new(&connector_id), &params).await {
        Ok(location) => {
            tracing::info!(connector_id = %connector_id, "upstream login succeeded");
            st.metrics.login(&connector_id, "success");
            Ok(finished(&st, &req_id, &location))
        }
        Err(e) => {
            st.metrics.login(&connector_id, "failed");
            upstream_error(&st, &req_id, e)
        }
    }
}

async fn handoff_page(
    req: HttpRequest,
    path: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    crate::observe::record_connector(&req, &connector_id);
    let req_id = req_param(&req)?;
    let csrf = cookie_value(&req, &req_id);
    let (areq, connector) = request_for(&st, &req_id, csrf.as_deref(), &connector_id).await?;
    let client = st.provider.client_of(&areq)?;
    let handoff = connector.handoff.as_ref().ok_or_else(|| LoginError::UnknownConnector(connector_id.clone()))?;
    let page = handoff.page();
    Ok(pages::handoff_page(&HandoffView {
        base: &st.base_path,
        connector_id: &connector_id,
        connector_name: &connector.name,
        client_name: &client.name,
        req_id: &req_id,
        csrf: csrf.as_deref().unwrap_or_default(),
        page: &page,
    }))
}

async fn handoff_submit(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    crate::observe::record_connector(&req, &connector_id);
    let (form, req_id, cookie) = read_login_post(&req, payload).await?;
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let token = field("token");
    if token.is_empty() {
        return Err(PageError::bad_request("Sign-in failed", "No sign-in token was received from the provider."));
    }
    match st.provider.finish_handoff(&req_id, cookie.as_deref(), &ConnectorId::new(&connector_id), &token).await {
        Ok(location) => {
            st.metrics.login(&connector_id, "success");
            Ok(finished(&st, &req_id, &location))
        }
        Err(e) => {
            st.metrics.login(&connector_id, "failed");
            upstream_error(&st, &req_id, e)
        }
    }
}

async fn handoff_glue(path: web::Path<String>, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let connector_id = path.into_inner();
    let handoff = st
        .provider
        .connector(&connector_id)
        .and_then(|c| c.handoff.clone())
        .ok_or_else(|| LoginError::UnknownConnector(connector_id.clone()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(handoff.page().glue_js))
}
