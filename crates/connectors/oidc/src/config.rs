//! The `type: oidc` config block, and the checks the `auth0` and `clerk` types share.

use std::collections::BTreeMap;
use std::time::Duration;

use keybridge_core::types::ClientSecret;
use serde::Deserialize;
use url::Url;

use crate::{ClaimMap, ClaimsConfig, Settings};

/// Scopes requested when `scopes` is not set (plus `offline_access` with `refresh_upstream`).
pub const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile"];
/// The longest allowed `timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Authorize parameters the connector sets itself, so `extra_auth_params` may not.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
];

/// The `config:` block of a `type: oidc` connector. Key names are a contract.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// The upstream's issuer, exactly as in its tokens' `iss` (discovery is at
    /// `{issuer}/.well-known/openid-configuration`). https, or http on loopback for development.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Keybridge's client id at the upstream.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client secret, inline (development only).
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    /// The environment variable holding the client secret. Without either, Keybridge is a
    /// public client (PKCE only).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes to request (default `openid email profile`, plus `offline_access` with
    /// `refresh_upstream`). `openid` is always sent.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Extra authorize parameters (`access_type: offline`, `prompt: consent`, `hd: example.com`).
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Claim mapping.
    #[serde(default)]
    pub claims: ClaimsConfig,
    /// Treat every upstream email as verified, whatever `email_verified` says. Off by default.
    #[serde(default)]
    pub insecure_skip_email_verified: bool,
    /// Keep the upstream refresh token and re-check the user upstream at every Keybridge refresh.
    #[serde(default)]
    pub refresh_upstream: bool,
    /// Ask the userinfo endpoint after the ID token (default true).
    #[serde(default)]
    pub userinfo: Option<bool>,
    /// Timeout of each upstream call (default 10s, at most 60s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl Config {
    /// Validates into [`Settings`], or every problem found.
    pub fn validate(self) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let issuer = check_issuer("issuer", self.issuer.as_deref(), &mut problems);
        let client_id = check_client_id(self.client_id.as_deref(), &mut problems);
        let client_secret = resolve_client_secret(self.client_secret, self.client_secret_env.as_deref(), &mut problems);
        let scopes = check_scopes(self.scopes, self.refresh_upstream, &mut problems);
        let extra_auth_params = check_extra_auth_params(self.extra_auth_params, &mut problems);
        let claims = ClaimMap::new(&self.claims, ClaimMap::default(), &mut problems);
        let timeout = check_timeout(self.timeout, &mut problems);
        match (issuer, client_id) {
            (Some(issuer), Some(client_id)) if problems.is_empty() => Ok(Settings {
                issuer,
                client_id,
                client_secret,
                scopes,
                extra_auth_params,
                claims,
                insecure_skip_email_verified: self.insecure_skip_email_verified,
                refresh_upstream: self.refresh_upstream,
                userinfo: self.userinfo.unwrap_or(true),
                timeout,
                label: "OpenID Connect".into(),
                pass_prompt: true,
                pass_login_hint: true,
            }),
            _ => Err(problems),
        }
    }
}

/// Checks an issuer-like URL: absolute, https (http only on loopback), no query or fragment.
/// Kept exactly as written: `iss` is compared byte for byte.
pub fn check_issuer(key: &str, value: Option<&str>, problems: &mut Vec<String>) -> Option<String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        problems.push(format!("{key}: required (the upstream's issuer URL, for example https://login.example.com)"));
        return None;
    };
    let url = match Url::parse(value) {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("{key}: {value:?} is not an absolute URL ({e})"));
            return None;
        }
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            problems
                .push(format!("{key}: {value:?} must use https (http is allowed only on loopback, for development)"));
            return None;
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        problems.push(format!("{key}: {value:?} must not have a query or fragment"));
        return None;
    }
    Some(value.to_owned())
}

fn check_client_id(value: Option<&str>, problems: &mut Vec<String>) -> Option<String> {
    match value.map(str::trim) {
        Some(id) if !id.is_empty() => Some(id.to_owned()),
        _ => {
            problems.push("client_id: required (Keybridge's client id at the upstream)".into());
            None
        }
    }
}

/// The client secret from `client_secret` or `client_secret_env` (not both); `None` for a public
/// client.
pub fn resolve_client_secret(
    inline: Option<ClientSecret>,
    env: Option<&str>,
    problems: &mut Vec<String>,
) -> Option<ClientSecret> {
    match (inline, env) {
        (Some(_), Some(_)) => {
            problems.push("client_secret: set either client_secret or client_secret_env, not both".into());
            None
        }
        (Some(s), None) if s.secret().is_empty() => {
            problems.push("client_secret: is empty (leave it out for a public client)".into());
            None
        }
        (Some(s), None) => Some(s),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(ClientSecret::new(v)),
            _ => {
                problems.push(format!("client_secret_env: environment variable {var} is not set or empty"));
                None
            }
        },
        (None, None) => None,
    }
}

/// The scopes to request.
pub fn check_scopes(scopes: Option<Vec<String>>, refresh_upstream: bool, problems: &mut Vec<String>) -> Vec<String> {
    match scopes {
        None => {
            let mut s: Vec<String> = DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect();
            if refresh_upstream {
                s.push("offline_access".into());
            }
            s
        }
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for (i, s) in list.into_iter().enumerate() {
                let s = s.trim().to_owned();
                if s.is_empty() || s.contains(char::is_whitespace) {
                    problems.push(format!("scopes[{i}]: {s:?} is not one scope"));
                } else if !out.contains(&s) {
                    out.push(s);
                }
            }
            if !out.iter().any(|s| s == "openid") {
                out.insert(0, "openid".into());
            }
            out
        }
    }
}

/// Extra authorize parameters, refusing the ones the connector sets itself.
pub fn check_extra_auth_params(params: BTreeMap<String, String>, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in params {
        if RESERVED_PARAMS.contains(&k.as_str()) {
            problems.push(format!("extra_auth_params.{k}: is set by Keybridge itself and cannot be configured"));
        } else {
            out.push((k, v));
        }
    }
    out
}

/// The timeout of each upstream call, bounded.
pub fn check_timeout(timeout: Option<Duration>, problems: &mut Vec<String>) -> Duration {
    match timeout {
        None => keybridge_connector_common::DEFAULT_TIMEOUT,
        Some(t) if t < MIN_TIMEOUT || t > MAX_TIMEOUT => {
            problems.push(format!(
                "timeout: {} is out of range (between 100ms and {}s)",
                humantime_serde::re::humantime::format_duration(t),
                MAX_TIMEOUT.as_secs()
            ));
            keybridge_connector_common::DEFAULT_TIMEOUT
        }
        Some(t) => t,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config {
            issuer: Some("https://login.example.com".into()),
            client_id: Some("kb".into()),
            client_secret: Some(ClientSecret::new("s3cret")),
            ..Default::default()
        }
    }

    #[test]
    fn a_minimal_config_gets_safe_defaults() {
        let s = base().validate().unwrap();
        assert_eq!(s.issuer, "https://login.example.com");
        assert_eq!(s.scopes, vec!["openid", "email", "profile"]);
        assert!(!s.insecure_skip_email_verified);
        assert!(!s.refresh_upstream);
        assert!(s.userinfo);
        assert_eq!(s.timeout, keybridge_connector_common::DEFAULT_TIMEOUT);
        let s = Config { refresh_upstream: true, ..base() }.validate().unwrap();
        assert_eq!(s.scopes, vec!["openid", "email", "profile", "offline_access"]);
        assert!(!format!("{s:?}").contains("s3cret"), "secrets never reach logs");
    }

    #[test]
    fn issuer_rules() {
        let mut p = Vec::new();
        assert_eq!(
            check_issuer("issuer", Some("http://127.0.0.1:8080"), &mut p).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            check_issuer("issuer", Some("https://t.auth0.com/"), &mut p).as_deref(),
            Some("https://t.auth0.com/")
        );
        assert!(p.is_empty());
        assert!(check_issuer("issuer", None, &mut p).is_none());
        assert!(check_issuer("issuer", Some("http://login.example.com"), &mut p).is_none());
        assert!(check_issuer("issuer", Some("login.example.com"), &mut p).is_none());
        assert!(check_issuer("issuer", Some("https://x.example/?a=b"), &mut p).is_none());
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("issuer: required"));
        assert!(p[1].contains("must use https (http is allowed only on loopback"));
    }

    #[test]
    fn every_problem_is_reported() {
        let cfg = Config {
            issuer: None,
            client_id: None,
            client_secret: Some(ClientSecret::new("x")),
            client_secret_env: Some("KEYBRIDGE_TEST_SURELY_UNSET".into()),
            scopes: Some(vec!["openid email".into()]),
            extra_auth_params: [("state".to_string(), "x".to_string())].into_iter().collect(),
            timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        let p = cfg.validate().unwrap_err();
        let text = p.join("\n");
        for needle in [
            "issuer: required",
            "client_id: required",
            "client_secret: set either client_secret or client_secret_env, not both",
            "scopes[0]: \"openid email\" is not one scope",
            "extra_auth_params.state: is set by Keybridge itself",
            "timeout: 10m is out of range",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
    }

    #[test]
    fn a_missing_secret_variable_is_named() {
        let p = resolve_client_secret(None, Some("KEYBRIDGE_TEST_SURELY_UNSET"), &mut Vec::new());
        assert!(p.is_none());
        let mut problems = Vec::new();
        resolve_client_secret(None, Some("KEYBRIDGE_TEST_SURELY_UNSET"), &mut problems);
        assert_eq!(
            problems,
            vec!["client_secret_env: environment variable KEYBRIDGE_TEST_SURELY_UNSET is not set or empty"]
        );
    }
}
