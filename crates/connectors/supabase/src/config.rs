//! The connector's `config:` block ([`Config`], the file's shape and a contract) and its
//! validation into [`Settings`], reporting every problem with its key.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// The connector's `config:` block. Key names are a contract: extend them, never rename them.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The project URL, `https://<ref>.supabase.co` (Supabase Auth lives at `{url}/auth/v1`).
    pub url: String,
    /// The project's public anon (or `sb_publishable_…`) key, inline.
    #[serde(default)]
    pub anon_key: Option<String>,
    /// The name of an environment variable holding the anon key.
    #[serde(default)]
    pub anon_key_env: Option<String>,
    /// Social providers enabled in the Supabase project, one button each (`google`, `github`).
    #[serde(default)]
    pub providers: Vec<String>,
    /// An email-and-password form on Keybridge's page, checked by Supabase.
    #[serde(default)]
    pub password: bool,
    /// A hand-off page where supabase-js signs the person in.
    #[serde(default)]
    pub handoff: Option<HandoffConfig>,
    /// The name of an environment variable holding the legacy HS256 JWT secret.
    #[serde(default)]
    pub jwt_secret_env: Option<String>,
    /// The legacy HS256 JWT secret, inline (development only).
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// Where `groups` come from: one path or a list of paths under `app_metadata`.
    #[serde(default)]
    pub groups_claim: Option<OneOrMany>,
    /// Re-check the user with Supabase at each Keybridge refresh.
    #[serde(default)]
    pub refresh_upstream: bool,
    /// Timeout of each call to Supabase (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The `iss` of Supabase's access tokens (default `{url}/auth/v1`).
    #[serde(default)]
    pub issuer: Option<String>,
}

/// `handoff:`.
#[derive(Debug, Clone, Deserialize)]
pub struct HandoffConfig {
    /// The supabase-js browser build (UMD) the hand-off page loads.
    pub script_url: String,
}

/// A string, or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// The default `groups_claim`: roles and groups that the project's backend set in `app_metadata`.
pub const DEFAULT_GROUPS_CLAIM: &[&str] = &["app_metadata.roles", "app_metadata.groups"];

/// The validated settings.
pub(crate) struct Settings {
    /// `{url}/auth/v1`, no trailing slash.
    pub auth_url: String,
    /// The project's origin (CSP of the hand-off page).
    pub origin: String,
    pub anon_key: String,
    pub providers: Vec<String>,
    pub password: bool,
    pub script_url: Option<String>,
    pub jwt_secret: Option<Vec<u8>>,
    pub groups_claim: Vec<String>,
    pub refresh_upstream: bool,
    pub timeout: Duration,
    pub issuer: String,
}

fn check_url(key: &str, value: &str, problems: &mut Vec<String>) -> Option<Url> {
    match Url::parse(value) {
        Err(e) => {
            problems.push(format!("{key}: {value:?} is not an absolute URL ({e})"));
            None
        }
        Ok(u) => {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
                problems.push(format!("{key}: {value:?} must use https (http is allowed only on loopback)"));
                return None;
            }
            if u.query().is_some() || u.fragment().is_some() {
                problems.push(format!("{key}: {value:?} must not have a query or fragment"));
                return None;
            }
            Some(u)
        }
    }
}

fn secret(
    key: &str,
    inline: Option<String>,
    env: Option<&str>,
    problems: &mut Vec<String>,
) -> Result<Option<String>, ()> {
    match (inline, env) {
        (Some(_), Some(_)) => {
            problems.push(format!("{key}: set either {key} or {key}_env, not both"));
            Err(())
        }
        (Some(s), None) if s.trim().is_empty() => {
            problems.push(format!("{key}: must not be empty"));
            Err(())
        }
        (Some(s), None) => Ok(Some(s.trim().to_owned())),
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            _ => {
                problems.push(format!("{key}_env: environment variable {var} is not set or empty"));
                Err(())
            }
        },
        (None, None) => Ok(None),
    }
}

/// The role claim of a legacy JWT-shaped API key, if it is one.
fn jwt_role(key: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = key.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("role").and_then(|r| r.as_str()).map(str::to_owned)
}

impl Config {
    /// Validates the config; every problem is reported, prefixed with its key.
    pub(crate) fn validate(self) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let url = self.url.trim().trim_end_matches('/').to_owned();
        let parsed = check_url("url", &url, &mut problems);
        if let Some(u) = &parsed
            && u.path().trim_end_matches('/').ends_with("/auth/v1")
        {
            problems.push(format!(
                "url: {url:?} is the Auth URL; write the project URL without /auth/v1 (for example https://<ref>.supabase.co)"
            ));
        }
        let origin = parsed.as_ref().map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        let auth_url = format!("{url}/auth/v1");

        let anon_key = match secret("anon_key", self.anon_key, self.anon_key_env.as_deref(), &mut problems) {
            Ok(Some(k)) => {
                if k.starts_with("sb_secret_") || jwt_role(&k).as_deref() == Some("service_role") {
                    problems.push(
                        "anon_key: this is a secret (service_role) key; use the project's public anon or publishable key \
                         (it is sent to browsers on the hand-off page)"
                            .into(),
                    );
                }
                k
            }
            Ok(None) => {
                problems.push(
                    "anon_key: required (set anon_key or anon_key_env to the project's public anon or publishable key; \
                     Supabase's gateway refuses requests without it)"
                        .into(),
                );
                String::new()
            }
            Err(()) => String::new(),
        };

        let mut providers: Vec<String> = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            let p = p.trim().to_owned();
            if p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b':')
            {
                problems.push(format!(
                    "providers[{i}]: {p:?} is not a Supabase provider name (lower case, as in Supabase: google, github, azure, ...)"
                ));
            } else if providers.contains(&p) {
                problems.push(format!("providers[{i}]: {p:?} is listed twice"));
            } else {
                providers.push(p);
            }
        }

        let script_url = self.handoff.map(|h| {
            let s = h.script_url.trim().to_owned();
            check_url("handoff.script_url", &s, &mut problems);
            s
        });

        let jwt_secret = match secret("jwt_secret", self.jwt_secret, self.jwt_secret_env.as_deref(), &mut problems) {
            Ok(Some(s)) => {
                if script_url.is_none() {
                    problems.push("jwt_secret: only verifies handed-off tokens; configure handoff or remove it".into());
                }
                if s.len() < 32 {
                    problems.push(
                        "jwt_secret: too short for an HS256 secret (Supabase's have at least 32 characters)".into(),
                    );
                }
                Some(s.into_bytes())
            }
            _ => None,
        };

        let single = matches!(self.groups_claim, Some(OneOrMany::One(_)));
        let groups_claim = match self.groups_claim {
            None => DEFAULT_GROUPS_CLAIM.iter().map(|s| (*s).to_owned()).collect(),
            Some(g) => g.into_vec(),
        };
        for (i, path) in groups_claim.iter().enumerate() {
            if !path.starts_with("app_metadata.") || path.len() <= "app_metadata.".len() {
                let key = if single { "groups_claim".to_owned() } else { format!("groups_claim[{i}]") };
                problems.push(format!(
                    "{key}: {path:?} must be a path under app_metadata (for example app_metadata.roles); \
                     user_metadata is editable by the user, so it cannot grant groups"
                ));
            }
        }

        let timeout = self.timeout.unwrap_or(keybridge_connector_common::DEFAULT_TIMEOUT);
        if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(60) {
            problems.push("timeout: must be between 1s and 60s".into());
        }

        let issuer = match self.issuer {
            Some(i) => {
                check_url("issuer", i.trim(), &mut problems);
                i.trim().to_owned()
            }
            None => auth_url.clone(),
        };

        if providers.is_empty() && !self.password && script_url.is_none() {
            problems.push(
                "providers: no sign-in method is on; list providers (social login), set password: true, or configure handoff"
                    .into(),
            );
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Settings {
            auth_url,
            origin,
            anon_key,
            providers,
            password: self.password,
            script_url,
            jwt_secret,
            groups_claim,
            refresh_upstream: self.refresh_upstream,
            timeout,
            issuer,
        })
    }
}
