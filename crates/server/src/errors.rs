//! The one place errors become HTTP responses (kanidm's `https/errors.rs`).
//!
//! - OAuth endpoints answer RFC 6749 §5.2 JSON; `invalid_client` is 401 with `WWW-Authenticate`,
//!   `invalid_token` is 401 with a Bearer challenge (RFC 6750 §3), `temporarily_unavailable` is 503.
//!   Server errors are logged and sent without detail.
//! - The browser flow answers readable HTML pages ([`crate::pages`]), never a redirect to an
//!   unvalidated URI.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use keybridge_core::OAuthError;
use keybridge_core::provider::LoginError;
use serde::Serialize;

use crate::pages;

/// An error at an OAuth JSON endpoint.
#[derive(Debug)]
pub struct ApiError {
    err: OAuthError,
}

impl ApiError {
    /// The error.
    pub fn inner(&self) -> &OAuthError {
        &self.err
    }
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> Self {
        Self { err }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.err.fmt(f)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

/// The HTTP status of an OAuth error.
pub fn status_of(err: &OAuthError) -> StatusCode {
    match err {
        OAuthError::InvalidClient(_) | OAuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        OAuthError::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.err)
    }

    fn error_response(&self) -> HttpResponse {
        if let OAuthError::ServerError(detail) = &self.err {
            tracing::error!(error = %detail, "server error");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
        match &self.err {
            // RFC 6749 §5.2: a Basic challenge when the client tried Basic; sent always, so
            // clients learn which scheme to use.
            OAuthError::InvalidClient(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"keybridge\""));
            }
            OAuthError::InvalidToken(d) => {
                let challenge =
                    format!("Bearer error=\"invalid_token\", error_description=\"{}\"", d.replace('"', "'"));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    res.insert_header((header::WWW_AUTHENTICATE, v));
                }
            }
            _ => {}
        }
        res.json(ErrorBody { error: self.err.code(), error_description: self.err.description() })
    }
}

/// An error in the browser flow: an HTML page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    /// A 400 page.
    pub fn bad_request(title: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, title, message: message.into() }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.message)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        pages::error_page(self.status, self.title, &self.message)
    }
}

impl From<LoginError> for PageError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::OAuth(err) => err.into(),
            other => Self::bad_request("Sign-in failed", other.to_string()),
        }
    }
}

impl From<OAuthError> for PageError {
    fn from(err: OAuthError) -> Self {
        match &err {
            OAuthError::TemporarilyUnavailable(d) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Temporarily unavailable",
                message: format!("{d}. Please try again in a moment."),
            },
            OAuthError::ServerError(detail) => {
                tracing::error!(error = %detail, "server error in the browser flow");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    title: "Something went wrong",
                    message: "An unexpected error occurred. Please try again.".into(),
                }
            }
            other => Self::bad_request("Sign-in failed", other.description().unwrap_or(other.code()).to_owned()),
        }
    }
}
