//! The connector's `config:` block ([`Config`], the file's shape and a contract) and its
//! validation into [`Settings`], reporting every problem with its key.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// Google's production Identity Toolkit (`/v1/accounts:…` is appended).
pub const DEFAULT_IDENTITY_TOOLKIT_URL: &str = "https://identitytoolkit.googleapis.com";
/// Google's production Secure Token API (`/v1/token` is appended).
pub const DEFAULT_SECURETOKEN_URL: &str = "https://securetoken.googleapis.com";
/// Google's x509 certificates for Firebase ID tokens (a JSON map of `kid` to PEM).
pub const DEFAULT_CERTS_URL: &str =
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com";
/// Where the hand-off page loads the Firebase JS SDK's compat builds from.
pub const DEFAULT_SDK_URL: &str = "https://www.gstatic.com/firebasejs/13.2.0";
/// The Google API loader the SDK uses for its sign-in popup (loaded from the page, allowed by CSP).
pub const GAPI_SCRIPT_URL: &str = "https://apis.google.com/js/api.js";

/// The connector's `config:` block. Key names are a contract: extend them, never rename them.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The Firebase project id: the ID tokens' `aud`, and part of their `iss`.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The project's Web API key, inline (it is public: the hand-off page sends it to browsers).
    #[serde(default)]
    pub api_key: Option<ApiKey>,
    /// The name of an environment variable holding the Web API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// An email-and-password form on Keybridge's page, checked by Firebase.
    #[serde(default)]
    pub password: bool,
    /// A hand-off page where the Firebase JS SDK signs the person in with a social provider.
    #[serde(default)]
    pub handoff: Option<HandoffConfig>,
    /// Only ID tokens whose `firebase.sign_in_provider` is listed are accepted. Default: the ways in
    /// this connector offers (`password` with `password: true`, and `handoff.providers`).
    #[serde(default)]
    pub allowed_sign_in_providers: Vec<String>,
    /// Re-check the user with Firebase (the Secure Token refresh) at each Keybridge refresh.
    #[serde(default)]
    pub refresh_upstream: bool,
    /// Development against the Firebase Auth Emulator: accepts its unsigned tokens. Only allowed
    /// when `identity_toolkit_url` and `securetoken_url` are loopback addresses.
    #[serde(default)]
    pub emulator: bool,
    /// The Identity Toolkit base URL, without `/v1` (default Google's).
    #[serde(default)]
    pub identity_toolkit_url: Option<String>,
    /// The Secure Token API base URL, without `/v1` (default Google's).
    #[serde(default)]
    pub securetoken_url: Option<String>,
    /// Google's x509 certificate map for ID tokens (default Google's).
    #[serde(default)]
    pub certs_url: Option<String>,
    /// Timeout of each call to Firebase (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// `handoff:`.
#[derive(Debug, Clone, Deserialize)]
pub struct HandoffConfig {
    /// The folder holding the SDK's `firebase-app-compat.js` and `firebase-auth-compat.js`.
    #[serde(default)]
    pub sdk_url: Option<String>,
    /// The project's auth domain (default `<project_id>.firebaseapp.com`).
    #[serde(default)]
    pub auth_domain: Option<String>,
    /// The sign-in providers enabled in the Firebase project, one button each (`google.com`).
    #[serde(default)]
    pub providers: Vec<String>,
}

/// The Web API key. Public by Firebase's design, yet kept out of logs.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }
    /// The key. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// The validated hand-off settings.
#[derive(Debug, Clone)]
pub(crate) struct Handoff {
    pub sdk_url: String,
    pub auth_domain: String,
    pub providers: Vec<String>,
}

/// The validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub project_id: String,
    pub api_key: ApiKey,
    pub password: bool,
    pub handoff: Option<Handoff>,
    pub allowed_sign_in_providers: Vec<String>,
    pub refresh_upstream: bool,
    pub emulator: bool,
    /// No trailing slash.
    pub identity_toolkit_url: String,
    /// No trailing slash.
    pub securetoken_url: String,
    pub certs_url: String,
    pub timeout: Duration,
}

/// Whether a URL's host is a loopback address.
pub fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_url(key: &str, value: &str, problems: &mut Vec<String>) -> Option<Url> {
    match Url::parse(value) {
        Err(e) => {
            problems.push(format!("{key}: {value:?} is not an absolute URL ({e})"));
            None
        }
        Ok(u) => {
            if u.scheme() != "https" && !(u.scheme() == "http" && is_loopback(&u)) {
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

/// Sign-in provider ids Firebase issues (`firebase.sign_in_provider`).
const KNOWN_PROVIDERS: &[&str] = &[
    "password",
    "phone",
    "anonymous",
    "custom",
    "google.com",
    "facebook.com",
    "github.com",
    "twitter.com",
    "apple.com",
    "microsoft.com",
    "yahoo.com",
    "playgames.google.com",
    "gc.apple.com",
];

fn known_provider(p: &str) -> bool {
    KNOWN_PROVIDERS.contains(&p)
        || ((p.starts_with("oidc.") || p.starts_with("saml.")) && p.len() > 5 && !p.contains(char::is_whitespace))
}

/// Providers the hand-off page can show a button for (the SDK signs in with a popup).
fn popup_provider(p: &str) -> bool {
    matches!(
        p,
        "google.com" | "facebook.com" | "github.com" | "twitter.com" | "apple.com" | "microsoft.com" | "yahoo.com"
    ) || ((p.starts_with("oidc.") || p.starts_with("saml.")) && p.len() > 5)
}

fn api_key(inline: Option<ApiKey>, env: Option<&str>, problems: &mut Vec<String>) -> ApiKey {
    match (inline, env) {
        (Some(_), Some(_)) => {
            problems.push("api_key: set either api_key or api_key_env, not both".into());
            ApiKey::new("")
        }
        (Some(k), None) if k.secret().trim().is_empty() => {
            problems.push("api_key: must not be empty".into());
            k
        }
        (Some(k), None) => ApiKey::new(k.secret().trim()),
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) if !s.trim().is_empty() => ApiKey::new(s.trim()),
            _ => {
                problems.push(format!("api_key_env: environment variable {var} is not set or empty"));
                ApiKey::new("")
            }
        },
        (None, None) => {
            problems.push(
                "api_key: required (set api_key or api_key_env to the project's Web API key, from the Firebase \
                 console's project settings)"
                    .into(),
            );
            ApiKey::new("")
        }
    }
}

fn base_url(key: &str, value: Option<String>, default: &str, problems: &mut Vec<String>) -> (String, Option<Url>) {
    let s = value.as_deref().unwrap_or(default).trim().trim_end_matches('/').to_owned();
    let u = check_url(key, &s, problems);
    (s, u)
}

impl Config {
    /// Validates the config; every problem is reported, prefixed with its key.
    pub(crate) fn validate(self) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let project_id = self.project_id.as_deref().map(str::trim).unwrap_or_default().to_owned();
        if project_id.is_empty() {
            problems.push("project_id: required (the Firebase project id, the `aud` of its ID tokens)".into());
        } else if !project_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            problems.push(format!(
                "project_id: {project_id:?} is not a Firebase project id (lower-case letters, digits and -)"
            ));
        }
        let api_key = api_key(self.api_key, self.api_key_env.as_deref(), &mut problems);

        let (identity_toolkit_url, itk) =
            base_url("identity_toolkit_url", self.identity_toolkit_url, DEFAULT_IDENTITY_TOOLKIT_URL, &mut problems);
        if identity_toolkit_url.ends_with("/v1") {
            problems.push(format!(
                "identity_toolkit_url: {identity_toolkit_url:?} ends with /v1; write the base URL without it"
            ));
        }
        let (securetoken_url, st) =
            base_url("securetoken_url", self.securetoken_url, DEFAULT_SECURETOKEN_URL, &mut problems);
        if securetoken_url.ends_with("/v1") {
            problems.push(format!("securetoken_url: {securetoken_url:?} ends with /v1; write the base URL without it"));
        }
        let certs_url = self.certs_url.as_deref().unwrap_or(DEFAULT_CERTS_URL).trim().to_owned();
        check_url("certs_url", &certs_url, &mut problems);

        if self.emulator {
            for (key, value, parsed) in
                [("identity_toolkit_url", &identity_toolkit_url, &itk), ("securetoken_url", &securetoken_url, &st)]
            {
                if parsed.as_ref().is_some_and(|u| !is_loopback(u)) {
                    problems.push(format!(
                        "emulator: emulator mode accepts unsigned tokens, so {key} must be a loopback address \
                         (for example http://127.0.0.1:9099/{}), not {value:?}",
                        if key == "securetoken_url" {
                            "securetoken.googleapis.com"
                        } else {
                            "identitytoolkit.googleapis.com"
                        }
                    ));
                }
            }
        }

        let mut allowed = Vec::new();
        for (i, p) in self.allowed_sign_in_providers.iter().enumerate() {
            let p = p.trim().to_owned();
            if !known_provider(&p) {
                problems.push(format!(
                    "allowed_sign_in_providers[{i}]: {p:?} is not a Firebase sign-in provider id \
                     (password, google.com, github.com, oidc.<id>, ...)"
                ));
            } else if allowed.contains(&p) {
                problems.push(format!("allowed_sign_in_providers[{i}]: {p:?} is listed twice"));
            } else {
                allowed.push(p);
            }
        }
        if self.password && !allowed.is_empty() && !allowed.iter().any(|p| p == "password") {
            problems.push(
                "allowed_sign_in_providers: password: true needs \"password\" in this list, or its logins are refused"
                    .into(),
            );
        }

        let handoff = self.handoff.map(|h| {
            let sdk_url = h.sdk_url.as_deref().unwrap_or(DEFAULT_SDK_URL).trim().trim_end_matches('/').to_owned();
            if let Some(u) = check_url("handoff.sdk_url", &sdk_url, &mut problems)
                && u.path().ends_with(".js")
            {
                problems.push(format!(
                    "handoff.sdk_url: {sdk_url:?} is a script; give the folder that holds firebase-app-compat.js and \
                     firebase-auth-compat.js (for example {DEFAULT_SDK_URL})"
                ));
            }
            let auth_domain = h
                .auth_domain
                .map(|d| d.trim().to_owned())
                .unwrap_or_else(|| format!("{project_id}.firebaseapp.com"));
            if auth_domain.is_empty()
                || auth_domain.contains("://")
                || auth_domain.contains('/')
                || Url::parse(&format!("https://{auth_domain}")).is_err()
            {
                problems.push(format!(
                    "handoff.auth_domain: {auth_domain:?} is not a host name (for example my-project.firebaseapp.com)"
                ));
            }
            let mut providers: Vec<String> = Vec::new();
            for (i, p) in h.providers.iter().enumerate() {
                let p = p.trim().to_owned();
                if !popup_provider(&p) {
                    problems.push(format!(
                        "handoff.providers[{i}]: {p:?} is not a provider the hand-off page can sign in with \
                         (google.com, github.com, facebook.com, twitter.com, apple.com, microsoft.com, yahoo.com, \
                         oidc.<id>, saml.<id>)"
                    ));
                } else if providers.contains(&p) {
                    problems.push(format!("handoff.providers[{i}]: {p:?} is listed twice"));
                } else if !allowed.is_empty() && !allowed.contains(&p) {
                    problems.push(format!(
                        "handoff.providers[{i}]: {p:?} is not in allowed_sign_in_providers, so its logins would be refused"
                    ));
                } else {
                    providers.push(p);
                }
            }
            if h.providers.is_empty() {
                problems.push(
                    "handoff.providers: list the sign-in providers enabled in the Firebase project (google.com, ...)"
                        .into(),
                );
            }
            Handoff { sdk_url, auth_domain, providers }
        });

        // By default, accept only the ways in this connector offers: not anonymous, phone or custom
        // token sign-ins the Firebase project may also have turned on.
        if allowed.is_empty() {
            if self.password {
                allowed.push("password".to_owned());
            }
            if let Some(h) = &handoff {
                allowed.extend(h.providers.iter().cloned());
            }
        }

        if !self.password && handoff.is_none() {
            problems.push("password: no sign-in method is on; set password: true, configure handoff, or both".into());
        }

        let timeout = self.timeout.unwrap_or(keybridge_connector_common::DEFAULT_TIMEOUT);
        if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(60) {
            problems.push("timeout: must be between 1s and 60s".into());
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Settings {
            project_id,
            api_key,
            password: self.password,
            handoff,
            allowed_sign_in_providers: allowed,
            refresh_upstream: self.refresh_upstream,
            emulator: self.emulator,
            identity_toolkit_url,
            securetoken_url,
            certs_url,
            timeout,
        })
    }
}
