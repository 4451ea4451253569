//! The one OAuth error type. `keybridge-server` maps it to HTTP in one place.

use std::borrow::Cow;

/// A human-readable `error_description`.
pub type Description = Cow<'static, str>;

/// An OAuth 2.0 error ([RFC 6749 §4.1.2.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1),
/// [§5.2](https://www.rfc-editor.org/rfc/rfc6749#section-5.2),
/// [RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// `invalid_request`: a missing, repeated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(Description),
    /// `invalid_client`: client authentication failed.
    #[error("invalid_client: {0}")]
    InvalidClient(Description),
    /// `invalid_grant`: the code or refresh token is invalid, expired, revoked, or another client's.
    #[error("invalid_grant: {0}")]
    InvalidGrant(Description),
    /// `unauthorized_client`: this client may not use this grant or response type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Description),
    /// `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(Description),
    /// `unsupported_response_type`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(Description),
    /// `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(Description),
    /// `access_denied`.
    #[error("access_denied: {0}")]
    AccessDenied(Description),
    /// `login_required` ([OIDC Core §3.1.2.6](https://openid.net/specs/openid-connect-core-1_0.html#AuthError)).
    #[error("login_required: {0}")]
    LoginRequired(Description),
    /// `request_not_supported` (OIDC Core §3.1.2.6).
    #[error("request_not_supported: {0}")]
    RequestNotSupported(Description),
    /// `request_uri_not_supported` (OIDC Core §3.1.2.6).
    #[error("request_uri_not_supported: {0}")]
    RequestUriNotSupported(Description),
    /// `invalid_token` at a protected resource ([RFC 6750 §3.1](https://www.rfc-editor.org/rfc/rfc6750#section-3.1)).
    #[error("invalid_token: {0}")]
    InvalidToken(Description),
    /// `temporarily_unavailable`: storage or an upstream is down.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(Description),
    /// `server_error`: a fault of ours. The detail is logged, never sent.
    #[error("server_error: {0}")]
    ServerError(String),
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnsupportedResponseType(_) => "unsupported_response_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::AccessDenied(_) => "access_denied",
            Self::LoginRequired(_) => "login_required",
            Self::RequestNotSupported(_) => "request_not_supported",
            Self::RequestUriNotSupported(_) => "request_uri_not_supported",
            Self::InvalidToken(_) => "invalid_token",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Self::ServerError(_) => "server_error",
        }
    }

    /// The `error_description` safe to send; `None` for server errors, whose detail is only logged.
    pub fn description(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidClient(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::UnsupportedGrantType(d)
            | Self::UnsupportedResponseType(d)
            | Self::InvalidScope(d)
            | Self::AccessDenied(d)
            | Self::LoginRequired(d)
            | Self::RequestNotSupported(d)
            | Self::RequestUriNotSupported(d)
            | Self::InvalidToken(d)
            | Self::TemporarilyUnavailable(d) => Some(d),
            Self::ServerError(_) => None,
        }
    }
}

impl From<crate::store::StorageError> for OAuthError {
    fn from(e: crate::store::StorageError) -> Self {
        match e {
            crate::store::StorageError::Unavailable(d) => {
                tracing::warn!(error = %d, "storage unavailable");
                Self::TemporarilyUnavailable("storage is temporarily unavailable, try again shortly".into())
            }
            other => Self::ServerError(other.to_string()),
        }
    }
}

impl From<crate::signer::SignError> for OAuthError {
    fn from(e: crate::signer::SignError) -> Self {
        Self::ServerError(e.to_string())
    }
}
