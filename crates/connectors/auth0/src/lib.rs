//! The `auth0` connector: Auth0 as an OpenID provider upstream of Keybridge, built on the generic
//! [`keybridge_connector_oidc`] connector with Auth0's specifics (upstreams.md §4):
//!
//! - `domain` (the tenant, `example.us.auth0.com`, or a custom domain) gives the issuer
//!   `https://{domain}/`, **with** the trailing slash Auth0 writes in every `iss`;
//! - `audience` asks for a JWT access token for that API instead of an opaque one (Keybridge
//!   itself needs only the ID token and `/userinfo`, so it is optional);
//! - `connection` preselects an Auth0 connection (`google-oauth2`, `github`, an enterprise one);
//! - the authorization request's `prompt` and `login_hint` pass through;
//! - `updated_at` arrives as an ISO-8601 string (accepted);
//! - namespaced custom claims map into Keybridge's claims (`claims: {groups: https://example.com/roles}`);
//! - `refresh_upstream` asks for `offline_access` ("Allow Offline Access" must be on for the API).
//!
//! ```yaml
//! connectors:
//!   - id: auth0
//!     type: auth0
//!     name: Company login
//!     config:
//!       domain: example.us.auth0.com
//!       client_id: AbC123
//!       client_secret_env: AUTH0_CLIENT_SECRET
//!       connection: google-oauth2
//!       claims: {groups: "https://example.com/roles"}
//!       refresh_upstream: true
//! ```
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::time::Duration;

use keybridge_connector_oidc::{
    ClaimMap, ClaimsConfig, OidcConnector, Settings, check_extra_auth_params, check_issuer, check_scopes,
    check_timeout, resolve_client_secret,
};
use keybridge_core::types::ClientSecret;
use serde::Deserialize;

/// The `config:` block of a `type: auth0` connector. Key names are a contract.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// The tenant or custom domain (`example.us.auth0.com`). A full URL is accepted too; http
    /// only on loopback, for tests.
    #[serde(default)]
    pub domain: Option<String>,
    /// The application's client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client secret, inline (development only).
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// An API identifier: Auth0 then issues a JWT access token for it.
    #[serde(default)]
    pub audience: Option<String>,
    /// An Auth0 connection to go straight to, skipping Universal Login's chooser.
    #[serde(default)]
    pub connection: Option<String>,
    /// Scopes (default `openid email profile`, plus `offline_access` with `refresh_upstream`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Extra authorize parameters (`organization`, `screen_hint`, ...).
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Claim mapping; namespaced claims are whole keys (`https://example.com/roles`).
    #[serde(default)]
    pub claims: ClaimsConfig,
    /// Treat every email as verified, whatever `email_verified` says. Off by default.
    #[serde(default)]
    pub insecure_skip_email_verified: bool,
    /// Keep Auth0's refresh token and re-check the user at every Keybridge refresh.
    #[serde(default)]
    pub refresh_upstream: bool,
    /// Ask `/userinfo` after the ID token (default true).
    #[serde(default)]
    pub userinfo: Option<bool>,
    /// Timeout of each call to Auth0 (default 10s, at most 60s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// The issuer for a `domain`: `https://{domain}/`, trailing slash included.
pub fn issuer_for(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('/');
    if d.contains("://") { format!("{d}/") } else { format!("https://{d}/") }
}

/// Validates the config and builds the connector (no network until the first login).
pub fn open(config: Config) -> Result<OidcConnector, Vec<String>> {
    let mut problems = Vec::new();
    let issuer = match config.domain.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => {
            problems
                .push("domain: required (your Auth0 tenant or custom domain, for example example.us.auth0.com)".into());
            None
        }
        Some(d) => {
            let issuer = issuer_for(d);
            match url::Url::parse(&issuer) {
                Ok(u) if u.path() != "/" => {
                    problems.push(format!("domain: {d:?} must be a host name, without a path"));
                    None
                }
                _ => check_issuer("domain", Some(&issuer), &mut problems),
            }
        }
    };
    let client_id = match config.client_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => Some(id.to_owned()),
        _ => {
            problems.push("client_id: required (the Auth0 application's Client ID)".into());
            None
        }
    };
    let client_secret = resolve_client_secret(config.client_secret, config.client_secret_env.as_deref(), &mut problems);
    let scopes = check_scopes(config.scopes, config.refresh_upstream, &mut problems);
    let mut extra_auth_params = check_extra_auth_params(config.extra_auth_params, &mut problems);
    for (key, value) in [("audience", config.audience), ("connection", config.connection)] {
        let Some(value) = value.map(|v| v.trim().to_owned()) else { continue };
        if value.is_empty() {
            problems.push(format!("{key}: is empty (leave it out instead)"));
        } else if extra_auth_params.iter().any(|(k, _)| k == key) {
            problems.push(format!("extra_auth_params.{key}: set it as {key} instead"));
        } else {
            extra_auth_params.push((key.to_owned(), value));
        }
    }
    let claims = ClaimMap::new(&config.claims, ClaimMap::default(), &mut problems);
    let timeout = check_timeout(config.timeout, &mut problems);
    let (Some(issuer), Some(client_id)) = (issuer, client_id) else { return Err(problems) };
    if !problems.is_empty() {
        return Err(problems);
    }
    OidcConnector::new(Settings {
        issuer,
        client_id,
        client_secret,
        scopes,
        extra_auth_params,
        claims,
        insecure_skip_email_verified: config.insecure_skip_email_verified,
        refresh_upstream: config.refresh_upstream,
        userinfo: config.userinfo.unwrap_or(true),
        timeout,
        label: "Auth0".into(),
        pass_prompt: true,
        pass_login_hint: true,
    })
    .map_err(|e| vec![e])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config { domain: Some("example.us.auth0.com".into()), client_id: Some("abc".into()), ..Default::default() }
    }

    #[test]
    fn the_issuer_keeps_auth0s_trailing_slash() {
        assert_eq!(issuer_for("example.us.auth0.com"), "https://example.us.auth0.com/");
        assert_eq!(issuer_for("https://login.example.com/"), "https://login.example.com/");
        assert_eq!(issuer_for("http://127.0.0.1:4000"), "http://127.0.0.1:4000/");
        let c = open(Config {
            audience: Some("https://api.example.com".into()),
            connection: Some("github".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(c.settings().issuer, "https://example.us.auth0.com/");
        assert_eq!(
            c.settings().extra_auth_params,
            vec![
                ("audience".to_string(), "https://api.example.com".to_string()),
                ("connection".into(), "github".into())
            ]
        );
    }

    #[test]
    fn bad_configs_are_explained() {
        let p = open(Config { domain: None, client_id: None, ..Default::default() }).unwrap_err();
        assert!(p[0].starts_with("domain: required"), "{p:?}");
        assert!(p[1].starts_with("client_id: required"), "{p:?}");
        let p = open(Config { domain: Some("http://example.auth0.com".into()), ..base() }).unwrap_err();
        assert!(p[0].contains("must use https"), "{p:?}");
        let p = open(Config { domain: Some("example.auth0.com/tenant".into()), ..base() }).unwrap_err();
        assert!(p[0].contains("without a path"), "{p:?}");
        let p = open(Config {
            connection: Some("github".into()),
            extra_auth_params: [("connection".to_string(), "x".to_string())].into_iter().collect(),
            ..base()
        })
        .unwrap_err();
        assert_eq!(p, vec!["extra_auth_params.connection: set it as connection instead".to_string()]);
    }
}
