//! One module per endpoint. Each exposes `configure`, extracts, calls core, and maps the result.

pub mod authorize;
pub mod discovery;
pub mod health;
pub mod login;
pub mod token;
pub mod userinfo;

use actix_web::HttpRequest;
use keybridge_core::OAuthError;
use keybridge_core::params::Params;

/// The largest form body accepted at OAuth endpoints.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
pub async fn read_form(req: &HttpRequest, payload: actix_web::web::Payload) -> Result<Params, OAuthError> {
    let ct = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            format!(
                "the body must be application/x-www-form-urlencoded (got {:?})",
                if mime.is_empty() { "nothing" } else { mime }
            )
            .into(),
        ));
    }
    let body = match payload.to_bytes_limited(MAX_FORM_BYTES).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(OAuthError::InvalidRequest(format!("the body could not be read: {e}").into()));
        }
        Err(_) => {
            return Err(OAuthError::InvalidRequest(format!("the body is larger than {MAX_FORM_BYTES} bytes").into()));
        }
    };
    Ok(Params::parse_bytes(&body))
}
