//! The `/authorize` pipeline ([RFC 6749 §4.1.1](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1)).
//!
//! Two stages, in the manner of node-oidc-provider's `check_*` actions:
//! 1. [`resolve_target`]: the client and its redirect URI. Until both are trusted, every failure is an
//!    [`UntrustedRedirect`], shown as an HTML page and never redirected ([RFC 9700 §4.11.2](https://www.rfc-editor.org/rfc/rfc9700#section-4.11.2)).
//! 2. [`validate`]: the named checks in [`CHECKS`] order; each failure is an [`OAuthError`] sent back
//!    to the (now trusted) redirect URI with `state` and `iss`.

use std::sync::Arc;

use url::Url;

use crate::OAuthError;
use crate::client::{Client, ClientRegistry};
use crate::params::Params;
use crate::scope::Scopes;
use crate::types::ConnectorId;

/// The longest `state` accepted. GPTs send long ones; RFC 6749 sets no limit.
pub const MAX_STATE_LEN: usize = 4096;
/// The longest `nonce` accepted.
pub const MAX_NONCE_LEN: usize = 512;

/// The query of an authorization request.
pub type AuthorizeQuery = Params;

/// A failure before the redirect URI is trusted: the person sees a page, the client gets nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UntrustedRedirect {
    /// No `client_id`.
    #[error("The request has no client_id.")]
    MissingClientId,
    /// `client_id` or `redirect_uri` repeated.
    #[error("The parameter {0} is included more than once.")]
    Repeated(&'static str),
    /// No such client.
    #[error("The application that sent you here (client_id {0:?}) is not registered with this server.")]
    UnknownClient(String),
    /// No `redirect_uri`, and the client has more than one registered.
    #[error("The request has no redirect_uri, and the application has more than one registered.")]
    MissingRedirectUri,
    /// `redirect_uri` is not one of the client's, compared exactly.
    #[error("The redirect_uri {0:?} is not registered for this application. Redirect URIs must match exactly.")]
    RedirectUriMismatch(String),
}

/// Where an authorization response goes: a trusted client and redirect URI, plus `state`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The client.
    pub client: Arc<Client>,
    /// An exactly registered redirect URI.
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri`.
    pub redirect_uri_sent: bool,
    /// `state`, echoed byte for byte (`None` if absent, or if repeated or too long: it is then untrusted).
    pub state: Option<String>,
}

/// Stage 1: the client and its redirect URI.
pub fn resolve_target(q: &AuthorizeQuery, clients: &ClientRegistry) -> Result<Target, UntrustedRedirect> {
    let client_id = q.get("client_id").map_err(|_| UntrustedRedirect::Repeated("client_id"))?;
    let client_id = client_id.ok_or(UntrustedRedirect::MissingClientId)?;
    let client = clients.get(client_id).ok_or_else(|| UntrustedRedirect::UnknownClient(client_id.to_owned()))?;
    let sent = q.get("redirect_uri").map_err(|_| UntrustedRedirect::Repeated("redirect_uri"))?;
    let redirect_uri = match sent {
        Some(uri) if client.has_redirect_uri(uri) => uri.to_owned(),
        Some(uri) => return Err(UntrustedRedirect::RedirectUriMismatch(uri.to_owned())),
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => return Err(UntrustedRedirect::MissingRedirectUri),
        },
    };
    let state = q.get("state").ok().flatten().filter(|s| s.len() <= MAX_STATE_LEN).map(str::to_owned);
    Ok(Target { client, redirect_uri, redirect_uri_sent: sent.is_some(), state })
}

/// What a connector choice check needs to know.
pub trait ConnectorDirectory {
    /// Whether a connector with this id is configured.
    fn has_connector(&self, id: &str) -> bool;
}

/// An authorization request that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedAuthorize {
    /// Where the response goes.
    pub target: Target,
    /// Granted scopes.
    pub scopes: Scopes,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// A preselected connector (`connector_id`, as Dex).
    pub connector_id: Option<ConnectorId>,
    /// OIDC `login_hint`, passed upstream.
    pub login_hint: Option<String>,
    /// OIDC `prompt`, passed upstream.
    pub prompt: Option<String>,
}

/// The checks of stage 2, in order. Each is a named function with its own tests.
pub const CHECKS: &[&str] = &[
    "check_state",
    "check_request_object",
    "check_response_type",
    "check_response_mode",
    "check_scope",
    "check_pkce",
    "check_nonce",
    "check_prompt",
    "check_connector",
];

/// Stage 2: every check, in [`CHECKS`] order.
pub fn validate(
    q: &AuthorizeQuery,
    target: Target,
    connectors: &dyn ConnectorDirectory,
) -> Result<ValidatedAuthorize, (Target, OAuthError)> {
    let run = || -> Result<ValidatedAuthorize, OAuthError> {
        check_state(q)?;
        check_request_object(q)?;
        check_response_type(q)?;
        check_response_mode(q)?;
        let scopes = check_scope(q, &target.client)?;
        let code_challenge = check_pkce(q, &target.client)?;
        let nonce = check_nonce(q)?;
        check_prompt(q)?;
        let connector_id = check_connector(q, connectors)?;
        let login_hint = q.get("login_hint")?.filter(|h| h.len() <= MAX_NONCE_LEN).map(str::to_owned);
        let prompt = q.get("prompt")?.map(str::to_owned);
        Ok(ValidatedAuthorize {
            target: target.clone(),
            scopes,
            nonce,
            code_challenge,
            connector_id,
            login_hint,
            prompt,
        })
    };
    run().map_err(|e| (target.clone(), e))
}

/// `state` may be long, but not unbounded, and not repeated.
pub fn check_state(q: &AuthorizeQuery) -> Result<(), OAuthError> {
    match q.get("state")? {
        Some(s) if s.len() > MAX_STATE_LEN => {
            Err(OAuthError::InvalidRequest(format!("state is longer than {MAX_STATE_LEN} bytes").into()))
        }
        _ => Ok(()),
    }
}

/// Request objects are not supported (OIDC Core §6).
pub fn check_request_object(q: &AuthorizeQuery) -> Result<(), OAuthError> {
    if q.get("request")?.is_some() {
        return Err(OAuthError::RequestNotSupported("request objects are not supported".into()));
    }
    if q.get("request_uri")?.is_some() {
        return Err(OAuthError::RequestUriNotSupported("request_uri is not supported".into()));
    }
    Ok(())
}

/// Only `response_type=code` ([RFC 9700 §2.1.2](https://www.rfc-editor.org/rfc/rfc9700#section-2.1.2): no implicit flow).
pub fn check_response_type(q: &AuthorizeQuery) -> Result<(), OAuthError> {
    match q.get("response_type")? {
        None => Err(OAuthError::InvalidRequest("response_type is required".into())),
        Some("code") => Ok(()),
        Some(other) => Err(OAuthError::UnsupportedResponseType(
            format!("response_type {other:?} is not supported; use \"code\"").into(),
        )),
    }
}

/// Responses go in the query only.
pub fn check_response_mode(q: &AuthorizeQuery) -> Result<(), OAuthError> {
    match q.get("response_mode")? {
        None | Some("query") => Ok(()),
        Some(other) => {
            Err(OAuthError::InvalidRequest(format!("response_mode {other:?} is not supported; use \"query\"").into()))
        }
    }
}

/// `scope` may be empty or absent (ChatGPT sends either): then the client's defaults apply.
/// Every requested scope must be allowed for the client.
pub fn check_scope(q: &AuthorizeQuery, client: &Client) -> Result<Scopes, OAuthError> {
    let requested = match q.get("scope")? {
        None => return Ok(client.default_scopes.clone()),
        Some(raw) => {
            Scopes::parse(raw).map_err(|t| OAuthError::InvalidScope(format!("malformed scope {t:?}").into()))?
        }
    };
    if requested.is_empty() {
        return Ok(client.default_scopes.clone());
    }
    let unknown = requested.not_in(&client.allowed_scopes);
    if !unknown.is_empty() {
        return Err(OAuthError::InvalidScope(
            format!("scope not allowed for this client: {}", unknown.join(" ")).into(),
        ));
    }
    Ok(requested)
}

/// PKCE ([RFC 7636](https://www.rfc-editor.org/rfc/rfc7636)): S256 only; required of public clients,
/// optional for confidential ones (GPT Actions send none).
pub fn check_pkce(q: &AuthorizeQuery, client: &Client) -> Result<Option<String>, OAuthError> {
    let challenge = q.get("code_challenge")?;
    let method = q.get("code_challenge_method")?;
    match (challenge, method) {
        (None, None) if client.is_public() => Err(OAuthError::InvalidRequest(
            "PKCE is required for public clients: send code_challenge with method S256".into(),
        )),
        (None, None) => Ok(None),
        (None, Some(_)) => {
            Err(OAuthError::InvalidRequest("code_challenge_method was sent without code_challenge".into()))
        }
        (Some(_), None) => Err(OAuthError::InvalidRequest(
            "code_challenge_method is required and must be S256 (plain is not supported)".into(),
        )),
        (Some(_), Some(m)) if m != "S256" => {
            Err(OAuthError::InvalidRequest(format!("code_challenge_method {m:?} is not supported; use S256").into()))
        }
        (Some(c), Some(_)) => {
            let well_formed = c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if well_formed {
                Ok(Some(c.to_owned()))
            } else {
                Err(OAuthError::InvalidRequest(
                    "code_challenge must be a base64url SHA-256 digest (43 characters)".into(),
                ))
            }
        }
    }
}

/// `nonce` is optional and bounded.
pub fn check_nonce(q: &AuthorizeQuery) -> Result<Option<String>, OAuthError> {
    match q.get("nonce")? {
        Some(n) if n.len() > MAX_NONCE_LEN => {
            Err(OAuthError::InvalidRequest(format!("nonce is longer than {MAX_NONCE_LEN} bytes").into()))
        }
        n => Ok(n.map(str::to_owned)),
    }
}

/// Keybridge keeps no browser session, so `prompt=none` cannot succeed (OIDC Core §3.1.2.6).
pub fn check_prompt(q: &AuthorizeQuery) -> Result<(), OAuthError> {
    match q.get("prompt")? {
        Some(p) if p.split(' ').any(|v| v == "none") => {
            Err(OAuthError::LoginRequired("the user must log in; prompt=none cannot be satisfied".into()))
        }
        _ => Ok(()),
    }
}

/// `connector_id` preselects a connector (as Dex does); it must be configured.
pub fn check_connector(
    q: &AuthorizeQuery,
    connectors: &dyn ConnectorDirectory,
) -> Result<Option<ConnectorId>, OAuthError> {
    match q.get("connector_id")? {
        None => Ok(None),
        Some(id) if connectors.has_connector(id) => Ok(Some(ConnectorId::new(id))),
        Some(id) => Err(OAuthError::InvalidRequest(format!("unknown connector_id {id:?}").into())),
    }
}

/// Builds an authorization response: `redirect_uri` plus `params` and `iss` (RFC 9207), keeping any
/// query the registered URI already has.
pub fn response_url(redirect_uri: &str, params: &[(&str, &str)], issuer: &str) -> Result<String, OAuthError> {
    let mut url = Url::parse(redirect_uri)
        .map_err(|e| OAuthError::ServerError(format!("registered redirect_uri does not parse: {e}")))?;
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            pairs.append_pair(k, v);
        }
        pairs.append_pair("iss", issuer);
    }
    Ok(url.into())
}

/// Builds an error response for a trusted target.
pub fn error_response_url(target: &Target, err: &OAuthError, issuer: &str) -> Result<String, OAuthError> {
    let mut params: Vec<(&str, &str)> = vec![("error", err.code())];
    if let Some(d) = err.description() {
        params.push(("error_description", d));
    }
    if let Some(s) = &target.state {
        params.push(("state", s));
    }
    response_url(&target.redirect_uri, &params, issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{DEFAULT_SCOPES, STANDARD_SCOPES};
    use crate::types::{ClientId, ClientSecret};

    const CB: &str = "https://chatgpt.com/aip/g-0123/oauth/callback";

    fn client(public: bool) -> Client {
        Client {
            id: ClientId::new("gpt"),
            name: "GPT".into(),
            secrets: if public { vec![] } else { vec![ClientSecret::new("s")] },
            redirect_uris: vec![CB.into(), "https://chat.openai.com/aip/g-0123/oauth/callback".into()],
            audience: None,
            allowed_scopes: Scopes::from_list(STANDARD_SCOPES),
            default_scopes: Scopes::from_list(DEFAULT_SCOPES),
            upstream_claims: false,
        }
    }

    fn registry() -> ClientRegistry {
        ClientRegistry::new([client(false)])
    }

    struct Dir;
    impl ConnectorDirectory for Dir {
        fn has_connector(&self, id: &str) -> bool {
            id == "local"
        }
    }

    fn q(s: &str) -> AuthorizeQuery {
        AuthorizeQuery::parse(s)
    }

    fn err<T: std::fmt::Debug>(r: Result<T, OAuthError>) -> (String, String) {
        let e = r.unwrap_err();
        (e.code().to_owned(), e.description().unwrap_or_default().to_owned())
    }

    #[test]
    fn resolve_target_accepts_an_exact_redirect_uri() {
        let t = resolve_target(&q(&format!("client_id=gpt&redirect_uri={CB}&state=abc")), &registry()).unwrap();
        assert_eq!(t.redirect_uri, CB);
        assert!(t.redirect_uri_sent);
        assert_eq!(t.state.as_deref(), Some("abc"));
    }

    #[test]
    fn resolve_target_rejects_near_misses_without_redirecting() {
        for bad in [
            format!("{CB}/"),
            CB.replace("g-0123", "g-0124"),
            CB.replace("https", "http"),
            CB.replace("chatgpt.com", "CHATGPT.com"),
            format!("{CB}?x=1"),
            CB.replace("/oauth/", "/oauth%2F"),
            "https://chatgpt.com.evil.example/aip/g-0123/oauth/callback".into(),
        ] {
            let query = format!(
                "client_id=gpt&redirect_uri={}",
                url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
            );
            assert_eq!(
                resolve_target(&q(&query), &registry()).unwrap_err(),
                UntrustedRedirect::RedirectUriMismatch(bad.clone()),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolve_target_failures_are_named() {
        assert_eq!(resolve_target(&q(""), &registry()).unwrap_err(), UntrustedRedirect::MissingClientId);
        assert_eq!(
            resolve_target(&q("client_id=x"), &registry()).unwrap_err(),
            UntrustedRedirect::UnknownClient("x".into())
        );
        assert_eq!(
            resolve_target(&q("client_id=gpt"), &registry()).unwrap_err(),
            UntrustedRedirect::MissingRedirectUri
        );
        assert_eq!(
            resolve_target(&q("client_id=gpt&client_id=gpt"), &registry()).unwrap_err(),
            UntrustedRedirect::Repeated("client_id")
        );
        assert_eq!(
            resolve_target(&q(&format!("client_id=gpt&redirect_uri={CB}&redirect_uri={CB}")), &registry()).unwrap_err(),
            UntrustedRedirect::Repeated("redirect_uri")
        );
    }

    #[test]
    fn check_response_type_only_allows_code() {
        assert!(check_response_type(&q("response_type=code")).is_ok());
        assert_eq!(err(check_response_type(&q(""))), ("invalid_request".into(), "response_type is required".into()));
        assert_eq!(
            err(check_response_type(&q("response_type=token"))),
            ("unsupported_response_type".into(), "response_type \"token\" is not supported; use \"code\"".into())
        );
    }

    #[test]
    fn check_response_mode_only_allows_query() {
        assert!(check_response_mode(&q("response_mode=query")).is_ok());
        assert_eq!(err(check_response_mode(&q("response_mode=fragment"))).0, "invalid_request");
    }

    #[test]
    fn check_scope_defaults_when_empty_or_absent() {
        let c = client(false);
        assert_eq!(check_scope(&q(""), &c).unwrap().to_string(), "openid email profile");
        assert_eq!(check_scope(&q("scope="), &c).unwrap().to_string(), "openid email profile");
        assert_eq!(check_scope(&q("scope=email"), &c).unwrap().to_string(), "email");
        assert_eq!(
            err(check_scope(&q("scope=openid%20admin"), &c)),
            ("invalid_scope".into(), "scope not allowed for this client: admin".into())
        );
    }

    #[test]
    fn check_pkce_is_s256_only_and_optional_for_confidential_clients() {
        let c = client(false);
        let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_pkce(&q(""), &c).unwrap(), None);
        assert_eq!(
            check_pkce(&q(&format!("code_challenge={ch}&code_challenge_method=S256")), &c).unwrap().as_deref(),
            Some(ch)
        );
        assert_eq!(
            err(check_pkce(&q(&format!("code_challenge={ch}&code_challenge_method=plain")), &c)),
            ("invalid_request".into(), "code_challenge_method \"plain\" is not supported; use S256".into())
        );
        assert_eq!(
            err(check_pkce(&q(&format!("code_challenge={ch}")), &c)),
            (
                "invalid_request".into(),
                "code_challenge_method is required and must be S256 (plain is not supported)".into()
            )
        );
        assert_eq!(err(check_pkce(&q("code_challenge_method=S256"), &c)).0, "invalid_request");
        assert_eq!(err(check_pkce(&q("code_challenge=short&code_challenge_method=S256"), &c)).0, "invalid_request");
    }

    #[test]
    fn check_pkce_is_required_of_public_clients() {
        assert_eq!(
            err(check_pkce(&q(""), &client(true))),
            (
                "invalid_request".into(),
                "PKCE is required for public clients: send code_challenge with method S256".into()
            )
        );
    }

    #[test]
    fn check_state_bounds_length() {
        assert!(check_state(&q(&format!("state={}", "a".repeat(2000)))).is_ok());
        assert_eq!(err(check_state(&q(&format!("state={}", "a".repeat(MAX_STATE_LEN + 1))))).0, "invalid_request");
        assert_eq!(
            err(check_state(&q("state=a&state=b"))),
            ("invalid_request".into(), "parameter state is included more than once".into())
        );
    }

    #[test]
    fn check_nonce_bounds_length() {
        assert_eq!(check_nonce(&q("nonce=n-0S6")).unwrap().as_deref(), Some("n-0S6"));
        assert_eq!(err(check_nonce(&q(&format!("nonce={}", "n".repeat(MAX_NONCE_LEN + 1))))).0, "invalid_request");
    }

    #[test]
    fn check_request_object_is_unsupported() {
        assert_eq!(err(check_request_object(&q("request=eyJ"))).0, "request_not_supported");
        assert_eq!(err(check_request_object(&q("request_uri=urn:x"))).0, "request_uri_not_supported");
    }

    #[test]
    fn check_prompt_none_needs_a_login() {
        assert!(check_prompt(&q("prompt=login")).is_ok());
        assert_eq!(err(check_prompt(&q("prompt=none"))).0, "login_required");
    }

    #[test]
    fn check_connector_must_be_configured() {
        assert_eq!(check_connector(&q("connector_id=local"), &Dir).unwrap().unwrap().as_str(), "local");
        assert_eq!(check_connector(&q(""), &Dir).unwrap(), None);
        assert_eq!(
            err(check_connector(&q("connector_id=github"), &Dir)),
            ("invalid_request".into(), "unknown connector_id \"github\"".into())
        );
    }

    #[test]
    fn validate_runs_every_check_and_keeps_the_target_on_failure() {
        let query = q(&format!("client_id=gpt&redirect_uri={CB}&state=s1&response_type=token"));
        let target = resolve_target(&query, &registry()).unwrap();
        let (t, e) = validate(&query, target, &Dir).unwrap_err();
        assert_eq!(e.code(), "unsupported_response_type");
        assert_eq!(t.state.as_deref(), Some("s1"));
    }

    #[test]
    fn error_response_url_carries_error_state_and_iss() {
        let query = q(&format!("client_id=gpt&redirect_uri={CB}&state=a%20b%26c"));
        let target = resolve_target(&query, &registry()).unwrap();
        let url =
            error_response_url(&target, &OAuthError::AccessDenied("no".into()), "https://auth.example.com").unwrap();
        assert_eq!(
            url,
            format!("{CB}?error=access_denied&error_description=no&state=a+b%26c&iss=https%3A%2F%2Fauth.example.com")
        );
    }
}
