//! `/token` ([RFC 6749 §3.2](https://www.rfc-editor.org/rfc/rfc6749#section-3.2)).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use keybridge_core::client::ClientCredentials;

use crate::app::AppState;
use crate::errors::ApiError;

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/token", web::post().to(token));
    cfg.route("/token", web::method(actix_web::http::Method::OPTIONS).to(super::userinfo::preflight));
}

#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty, grant_type = tracing::field::Empty))]
async fn token(req: HttpRequest, payload: web::Payload, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let params = super::read_form(&req, payload).await?;
    let span = tracing::Span::current();
    if let Ok(Some(gt)) = params.get("grant_type") {
        span.record("grant_type", gt);
    }
    let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
    let creds = ClientCredentials::extract(authorization, params.get("client_id")?, params.get("client_secret")?);
    let client_id = creds.as_ref().map(|c| c.client_id().to_string()).unwrap_or_default();
    span.record("client_id", client_id.as_str());
    crate::observe::record_client(&req, &client_id);
    let res =
        st.provider.token(creds, &params).await.inspect_err(|e| tracing::info!(error = %e, "token request refused"))?;
    let grant_type = params.get("grant_type").ok().flatten().unwrap_or_default();
    st.metrics.tokens.with_label_values(&[grant_type, client_id.as_str()]).inc();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(res))
}
