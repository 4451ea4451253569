//! A thin client for the parts of Supabase Auth (GoTrue) Keybridge calls, and its error shapes.

use keybridge_connector_common::upstream_error;
use keybridge_core::connector::ConnectorError;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The API version Keybridge asks for (as supabase-js does); it selects the newer error shape.
pub const API_VERSION: &str = "2024-01-01";
const API_VERSION_HEADER: &str = "x-supabase-api-version";

/// An error answer from Supabase Auth, in any of its shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The machine-readable code (`invalid_credentials`), when there is one.
    pub code: Option<String>,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// Reads an error body. Supabase Auth answers in three shapes (upstreams.md §1.9):
    /// with `X-Supabase-Api-Version` echoed, `{"code":"<error code>","message":…}`; without it
    /// (older servers, or no version asked), `{"code":<status>,"error_code":…,"msg":…}`; and
    /// RFC 6749 `{"error":…,"error_description":…}`. The gateway adds `{"message":…,"hint":…}`.
    pub fn parse(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let versioned = headers.contains_key(API_VERSION_HEADER);
        let code = if versioned {
            s("code").or_else(|| s("error_code"))
        } else {
            s("error_code").or_else(|| s("error")).or_else(|| s("code"))
        }
        .or_else(|| headers.get("x-sb-error-code").and_then(|h| h.to_str().ok()).map(str::to_owned));
        let message = if versioned {
            s("message").or_else(|| s("msg"))
        } else {
            s("msg").or_else(|| s("error_description")).or_else(|| s("message"))
        }
        .unwrap_or_else(|| format!("HTTP {status}"));
        Self { status, code, message }
    }

    /// Whether the error has this code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.code.as_deref().unwrap_or("-"), self.message)
    }
}

/// The answer to a call: the JSON body, or Supabase's error.
pub type ApiResult = Result<Result<Value, ApiError>, ConnectorError>;

/// Supabase Auth at `{project}/auth/v1`.
pub struct AuthApi {
    pub(crate) base: String,
    anon_key: String,
    pub(crate) http: reqwest::Client,
}

impl AuthApi {
    pub(crate) fn new(base: String, anon_key: String, http: reqwest::Client) -> Self {
        Self { base, anon_key, http }
    }

    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path_and_query}", self.base))
            .header("apikey", &self.anon_key)
            .header(API_VERSION_HEADER, API_VERSION)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    async fn answer(what: &str, res: Result<reqwest::Response, reqwest::Error>) -> ApiResult {
        let res = res.map_err(|e| upstream_error(what, &e))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.map_err(|e| upstream_error(what, &e))?;
        if status.is_success() {
            let v = serde_json::from_slice(&body)
                .map_err(|e| ConnectorError::Upstream(format!("{what}: the answer is not JSON: {e}")))?;
            return Ok(Ok(v));
        }
        let err = ApiError::parse(status.as_u16(), &headers, &body);
        if status.as_u16() == 401 && err.code.is_none() {
            // The gateway's answer: a missing or wrong `apikey`.
            return Err(ConnectorError::Config(format!("{what}: Supabase refused the anon key: {}", err.message)));
        }
        if status.is_server_error() {
            return Err(ConnectorError::Upstream(format!("{what}: {err}")));
        }
        Ok(Err(err))
    }

    /// `POST /token?grant_type=…` with a JSON body.
    pub async fn token(&self, grant_type: &str, body: &Value) -> ApiResult {
        let what = format!("Supabase {grant_type} grant");
        let res = self
            .request(reqwest::Method::POST, &format!("/token?grant_type={grant_type}"))
            .bearer_auth(&self.anon_key)
            .json(body)
            .send()
            .await;
        Self::answer(&what, res).await
    }

    /// `GET /user` with the user's access token.
    pub async fn user(&self, access_token: &str) -> ApiResult {
        let res = self.request(reqwest::Method::GET, "/user").bearer_auth(access_token).send().await;
        Self::answer("Supabase user lookup", res).await
    }

    /// A `GET` whose redirect is the answer (redirects are never followed): the `Location`, or
    /// Supabase's error.
    pub async fn redirect(&self, path_and_query: &str) -> Result<Result<String, ApiError>, ConnectorError> {
        let what = "Supabase redirect check";
        let res =
            self.request(reqwest::Method::GET, path_and_query).send().await.map_err(|e| upstream_error(what, &e))?;
        let status = res.status();
        if status.is_redirection() {
            return res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(|l| Ok(l.to_owned()))
                .ok_or_else(|| ConnectorError::Upstream(format!("{what}: a redirect without a Location")));
        }
        let headers = res.headers().clone();
        let body = res.bytes().await.map_err(|e| upstream_error(what, &e))?;
        Ok(Err(ApiError::parse(status.as_u16(), &headers, &body)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn all_error_shapes_are_read() {
        let mut versioned = HeaderMap::new();
        versioned.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
        let e = ApiError::parse(
            400,
            &versioned,
            br#"{"code":"invalid_credentials","message":"Invalid login credentials"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("invalid_credentials"));
        assert_eq!(e.message, "Invalid login credentials");

        let legacy = ApiError::parse(
            400,
            &HeaderMap::new(),
            br#"{"code":400,"error_code":"email_not_confirmed","msg":"Email not confirmed"}"#,
        );
        assert_eq!(legacy.code.as_deref(), Some("email_not_confirmed"));
        assert_eq!(legacy.message, "Email not confirmed");

        let oauth = ApiError::parse(
            400,
            &HeaderMap::new(),
            br#"{"error":"invalid_grant","error_description":"Invalid login credentials"}"#,
        );
        assert_eq!(oauth.code.as_deref(), Some("invalid_grant"));
        assert_eq!(oauth.message, "Invalid login credentials");

        let gateway =
            ApiError::parse(401, &HeaderMap::new(), br#"{"message":"No API key found in request","hint":"none"}"#);
        assert_eq!(gateway.code, None);
        assert_eq!(gateway.message, "No API key found in request");

        let mut only_header = HeaderMap::new();
        only_header.insert("x-sb-error-code", HeaderValue::from_static("over_request_rate_limit"));
        let e = ApiError::parse(429, &only_header, b"not json");
        assert!(e.is("over_request_rate_limit"));
        assert_eq!(e.message, "HTTP 429");
    }
}
