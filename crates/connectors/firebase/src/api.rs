//! The Identity Toolkit and Secure Token REST calls (upstreams.md §2.2), and how Firebase's
//! errors become [`ConnectorError`]s.
//!
//! The Web API key travels in `?key=`, as the Firebase SDKs send it. reqwest's errors name the
//! URL, so every error is stripped of it before it is formatted: the key never reaches a log.

use keybridge_core::connector::ConnectorError;
use serde::Deserialize;
use serde_json::Value;

use crate::config::ApiKey;

/// A Google API error: `{"error":{"code":400,"message":"INVALID_PASSWORD : detail"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleError {
    /// The HTTP status.
    pub status: u16,
    /// The message up to ` : ` (`INVALID_PASSWORD`), or the whole message.
    pub code: String,
}

impl GoogleError {
    fn from_body(status: u16, body: &str) -> Self {
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let code = message.split(" : ").next().unwrap_or_default().trim().to_owned();
        Self { status, code }
    }

    /// A refused API key, or an API the project has not enabled.
    fn is_key_problem(&self) -> bool {
        self.status == 403
            || self.code.starts_with("API key not valid")
            || self.code.starts_with("API_KEY_")
            || self.code == "CONFIGURATION_NOT_FOUND"
            || self.code == "PROJECT_NOT_FOUND"
    }
}

/// `accounts:signInWithPassword`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSignIn {
    /// The ID token.
    pub id_token: String,
    /// The Firebase refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// The Secure Token API's answer (snake_case, unlike the rest).
#[derive(Debug, Deserialize)]
pub struct TokenRefresh {
    /// The fresh ID token.
    pub id_token: String,
    /// The refresh token to use next time (usually the same).
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The uid.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// How a password sign-in failed.
#[derive(Debug)]
pub enum SignInFailure {
    /// Wrong email or password, an unknown email, or a disabled account: one answer for all,
    /// since Firebase reports a disabled account before it checks the password.
    WrongCredentials(String),
    /// Anything else.
    Error(ConnectorError),
}

fn reqwest_error(what: &str, e: reqwest::Error) -> ConnectorError {
    keybridge_connector_common::upstream_error(what, &e.without_url())
}

async fn post<T: serde::de::DeserializeOwned>(
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<Result<T, GoogleError>, ConnectorError> {
    let res = req.send().await.map_err(|e| reqwest_error(what, e))?;
    let status = res.status();
    let body = res.text().await.map_err(|e| reqwest_error(what, e))?;
    if status.is_success() {
        serde_json::from_str::<T>(&body)
            .map(Ok)
            .map_err(|e| ConnectorError::Upstream(format!("{what}: unexpected answer ({e})")))
    } else {
        Ok(Err(GoogleError::from_body(status.as_u16(), &body)))
    }
}

fn key_problem(what: &str, e: &GoogleError) -> ConnectorError {
    tracing::warn!(status = e.status, error = %e.code, "{what}: Firebase refused the API key or project");
    ConnectorError::Config(format!("{what}: Firebase refused the API key or project ({})", e.code))
}

/// Signs in with an email and a password.
pub async fn sign_in_with_password(
    http: &reqwest::Client,
    base: &str,
    key: &ApiKey,
    email: &str,
    password: &str,
) -> Result<PasswordSignIn, SignInFailure> {
    const WHAT: &str = "signing in with a password";
    let req = http
        .post(format!("{base}/v1/accounts:signInWithPassword"))
        .query(&[("key", key.secret())])
        .json(&serde_json::json!({"email": email, "password": password, "returnSecureToken": true}));
    let e = match post::<PasswordSignIn>(WHAT, req).await {
        Ok(Ok(ok)) => return Ok(ok),
        Ok(Err(e)) => e,
        Err(e) => return Err(SignInFailure::Error(e)),
    };
    Err(match e.code.as_str() {
        "EMAIL_NOT_FOUND"
        | "INVALID_PASSWORD"
        | "INVALID_LOGIN_CREDENTIALS"
        | "INVALID_EMAIL"
        | "MISSING_PASSWORD"
        | "MISSING_EMAIL"
        | "USER_DISABLED" => SignInFailure::WrongCredentials(e.code),
        "TOO_MANY_ATTEMPTS_TRY_LATER" => SignInFailure::Error(ConnectorError::Denied(
            "Too many unsuccessful sign-in attempts. Please wait a few minutes and try again.".into(),
        )),
        "OPERATION_NOT_ALLOWED" | "PASSWORD_LOGIN_DISABLED" => SignInFailure::Error(ConnectorError::Denied(
            "Email and password sign-in is turned off for this Firebase project. Please tell the site's operators."
                .into(),
        )),
        _ if e.is_key_problem() => SignInFailure::Error(key_problem(WHAT, &e)),
        _ => SignInFailure::Error(ConnectorError::Upstream(format!("{WHAT}: HTTP {} {}", e.status, e.code))),
    })
}

/// Exchanges a Firebase refresh token for a fresh ID token: fails with
/// [`ConnectorError::UserInvalid`] when the user is disabled or deleted, or the session revoked.
pub async fn refresh(
    http: &reqwest::Client,
    base: &str,
    key: &ApiKey,
    refresh_token: &str,
) -> Result<TokenRefresh, ConnectorError> {
    const WHAT: &str = "refreshing the Firebase session";
    let req = http
        .post(format!("{base}/v1/token"))
        .query(&[("key", key.secret())])
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]);
    let e = match post::<TokenRefresh>(WHAT, req).await? {
        Ok(ok) => return Ok(ok),
        Err(e) => e,
    };
    Err(match e.code.as_str() {
        "USER_DISABLED" => ConnectorError::UserInvalid("the Firebase user is disabled".into()),
        "USER_NOT_FOUND" => ConnectorError::UserInvalid("the Firebase user no longer exists".into()),
        // The emulator answers a deleted user's refresh with INVALID_REFRESH_TOKEN; production
        // uses it, and TOKEN_EXPIRED, for sessions revoked by a password change or an admin.
        "INVALID_REFRESH_TOKEN" | "TOKEN_EXPIRED" | "PROJECT_NUMBER_MISMATCH" => {
            ConnectorError::UserInvalid(format!("the Firebase session is no longer valid ({})", e.code))
        }
        _ if e.is_key_problem() => key_problem(WHAT, &e),
        _ if e.status >= 500 || e.status == 429 => {
            ConnectorError::Upstream(format!("{WHAT}: HTTP {} {}", e.status, e.code))
        }
        _ => ConnectorError::Config(format!("{WHAT}: HTTP {} {}", e.status, e.code)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn google_errors_are_read_up_to_the_detail() {
        let e = GoogleError::from_body(
            400,
            r#"{"error":{"code":400,"message":"WEAK_PASSWORD : Password should be at least 6 characters","errors":[]}}"#,
        );
        assert_eq!(e.code, "WEAK_PASSWORD");
        let e = GoogleError::from_body(
            403,
            r#"{"error":{"code":403,"message":"The request is missing a valid API key.","status":"PERMISSION_DENIED"}}"#,
        );
        assert!(e.is_key_problem());
        let e = GoogleError::from_body(502, "<html>bad gateway</html>");
        assert_eq!(e.code, "");
        assert!(!e.is_key_problem());
    }
}
