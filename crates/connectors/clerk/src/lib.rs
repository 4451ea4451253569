//! The `clerk` connector: people who sign in with Clerk sign in to Keybridge, two ways, each
//! switched on by config (upstreams.md §3):
//!
//! - **OAuth application** (`client_id`): Clerk as an OpenID provider, through the generic
//!   [`keybridge_connector_oidc`] connector with the Frontend API URL as the issuer (no trailing
//!   slash), S256 PKCE, and Clerk's userinfo shape (`username`, `public_metadata`, ...) mapped
//!   into Keybridge's claims. `refresh_upstream` keeps Clerk's refresh token and re-checks the
//!   user at every Keybridge refresh.
//! - **Session-token hand-off** (`publishable_key`): Keybridge's hand-off page loads Clerk's
//!   browser SDK, the person signs in, and the page posts Clerk's session token (bound by CSRF to
//!   the authorization request). The token is verified against the instance's JWKS: RS256, `typ`
//!   JWT, `iss` pinned to `frontend_api`, `azp` (when present) among `authorized_parties`,
//!   `exp`/`nbf`/`iat` with 5 s of skew, a session id, and pending sessions (`sts: pending`)
//!   refused. A session token carries only what "Customize session token" adds (`email`, `name`,
//!   ...), mapped through `claims`. Hand-off logins have no refresh token, so they are not
//!   re-checked at refresh.
//!
//! ```yaml
//! connectors:
//!   - id: clerk
//!     type: clerk
//!     name: Acme account
//!     config:
//!       frontend_api: https://clerk.acme.com
//!       client_id: Xyz123            # the OAuth application
//!       client_secret_env: CLERK_OAUTH_SECRET
//!       publishable_key: pk_live_Y2xlcmsuYWNtZS5jb20k
//!       authorized_parties: [https://auth.acme.com]
//! ```
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use keybridge_connector_common::{Expectations, KeyFormat, RemoteKeys, check_claims, decode, verify_jwt};
use keybridge_connector_oidc::{
    ClaimMap, ClaimsConfig, OidcConnector, Settings, check_extra_auth_params, check_issuer, check_scopes,
    check_timeout, resolve_client_secret,
};
use keybridge_core::connector::{Connector, ConnectorError, HandoffConnector, HandoffPage, RefreshConnector};
use keybridge_core::identity::Identity;
use keybridge_core::scope::Scopes;
use keybridge_core::types::ClientSecret;
use serde::Deserialize;
use serde_json::{Value, json};

/// The hand-off page's glue script: loads Clerk's SDK with the publishable key, lets the person
/// sign in, and posts the session token to Keybridge.
pub const GLUE_JS: &str = include_str!("handoff.js");

/// Clock skew allowed on session tokens (Clerk's SDK default).
const SESSION_LEEWAY: i64 = 5;

/// The `config:` block of a `type: clerk` connector. Key names are a contract.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// The instance's Frontend API URL (`https://clerk.example.com`, or
    /// `https://<slug>.clerk.accounts.dev` in development): the issuer of its tokens.
    #[serde(default)]
    pub frontend_api: Option<String>,
    /// The OAuth application's client id: enables the redirect flow.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret, inline (development only).
    #[serde(default)]
    pub client_secret: Option<ClientSecret>,
    /// The environment variable holding its secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// OAuth scopes (default `openid email profile`, plus `offline_access` with
    /// `refresh_upstream`; add `public_metadata` to map metadata).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Extra authorize parameters.
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Claim mapping, for both ways in (`groups: public_metadata.roles`, or `o.rol` for the
    /// active organization's role in a session token).
    #[serde(default)]
    pub claims: ClaimsConfig,
    /// Treat every email as verified, whatever `email_verified` says. Off by default.
    #[serde(default)]
    pub insecure_skip_email_verified: bool,
    /// Keep Clerk's OAuth refresh token and re-check the user at every Keybridge refresh.
    #[serde(default)]
    pub refresh_upstream: bool,
    /// Ask `/oauth/userinfo` after the ID token (default true).
    #[serde(default)]
    pub userinfo: Option<bool>,
    /// Timeout of each call to Clerk (default 10s, at most 60s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The instance's publishable key (`pk_live_...`): enables the hand-off page.
    #[serde(default)]
    pub publishable_key: Option<String>,
    /// Where Clerk's browser SDK is loaded from (default
    /// `{frontend_api}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`).
    #[serde(default)]
    pub clerk_js_url: Option<String>,
    /// Origins allowed as a session token's `azp`: where the hand-off page runs, Keybridge's
    /// own origin (`https://auth.example.com`). Required with `publishable_key`.
    #[serde(default)]
    pub authorized_parties: Vec<String>,
}

/// What the hand-off needs.
struct Session {
    frontend_api: String,
    keys: RemoteKeys,
    publishable_key: String,
    clerk_js_url: String,
    authorized_parties: Vec<String>,
}

/// The connector.
pub struct ClerkConnector {
    oauth: Option<Arc<OidcConnector>>,
    session: Option<Session>,
    claims: ClaimMap,
    insecure_skip_email_verified: bool,
    refresh_upstream: bool,
}

impl std::fmt::Debug for ClerkConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkConnector")
            .field("oauth", &self.oauth)
            .field("handoff", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

/// The Frontend API host a publishable key encodes (`pk_test_` + base64(`host$`)).
pub fn publishable_key_host(key: &str) -> Option<String> {
    let b64 = key.strip_prefix("pk_test_").or_else(|| key.strip_prefix("pk_live_"))?;
    let b64 = b64.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()?.strip_suffix('$').map(str::to_owned)
}

fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

impl ClerkConnector {
    /// Validates the config and builds the connector (no network until the first login).
    pub fn open(config: Config) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let frontend_api = check_issuer("frontend_api", config.frontend_api.as_deref(), &mut problems)
            .map(|f| f.trim_end_matches('/').to_owned());
        let claims = ClaimMap::new(&config.claims, ClaimMap::default(), &mut problems);
        let timeout = check_timeout(config.timeout, &mut problems);
        let client_secret =
            resolve_client_secret(config.client_secret, config.client_secret_env.as_deref(), &mut problems);
        let scopes = check_scopes(config.scopes, config.refresh_upstream, &mut problems);
        let extra_auth_params = check_extra_auth_params(config.extra_auth_params, &mut problems);
        let client_id = config.client_id.map(|c| c.trim().to_owned());
        if client_id.as_deref() == Some("") {
            problems.push("client_id: is empty (leave it out to use only the hand-off)".into());
        }
        if client_id.is_none() && client_secret.is_some() {
            problems.push("client_secret: set client_id too (the OAuth application's)".into());
        }
        if client_id.is_none() && config.refresh_upstream {
            problems.push("refresh_upstream: needs client_id (only OAuth logins have a refresh token)".into());
        }
        let publishable_key = config.publishable_key.map(|k| k.trim().to_owned());
        if client_id.is_none() && publishable_key.is_none() {
            problems.push(
                "client_id or publishable_key: set at least one (client_id for Clerk's OAuth application, \
                 publishable_key for the hand-off page)"
                    .into(),
            );
        }
        let mut session_parts = None;
        if let Some(pk) = &publishable_key {
            match (publishable_key_host(pk), &frontend_api) {
                (None, _) => {
                    problems.push("publishable_key: not a Clerk publishable key (pk_test_... or pk_live_...)".into())
                }
                (Some(host), Some(fapi))
                    if url::Url::parse(fapi)
                        .ok()
                        .and_then(|u| {
                            u.host_str().map(|h| match u.port() {
                                Some(p) => format!("{h}:{p}"),
                                None => h.to_owned(),
                            })
                        })
                        .as_deref()
                        != Some(host.as_str()) =>
                {
                    problems.push(format!("publishable_key: is for {host}, but frontend_api is {fapi}"));
                }
                _ => {}
            }
            let js = match &config.clerk_js_url {
                Some(u) => check_issuer("clerk_js_url", Some(u), &mut problems),
                None => frontend_api.as_ref().map(|f| format!("{f}/npm/@clerk/clerk-js@5/dist/clerk.browser.js")),
            };
            if config.authorized_parties.is_empty() {
                problems.push(
                    "authorized_parties: required with publishable_key: the origins the hand-off page runs on \
                     (Keybridge's own, for example https://auth.example.com)"
                        .into(),
                );
            }
            let mut parties = Vec::new();
            for (i, p) in config.authorized_parties.iter().enumerate() {
                let key = format!("authorized_parties[{i}]");
                if let Some(u) = check_issuer(&key, Some(p), &mut problems) {
                    match origin_of(&u) {
                        Some(o) if o == u.trim_end_matches('/') => parties.push(o),
                        _ => problems.push(format!("{key}: {p:?} must be an origin (scheme, host and port only)")),
                    }
                }
            }
            session_parts = js.map(|js| (pk.clone(), js, parties));
        } else if !config.authorized_parties.is_empty() || config.clerk_js_url.is_some() {
            problems
                .push("publishable_key: required for the hand-off settings (authorized_parties, clerk_js_url)".into());
        }
        let Some(frontend_api) = frontend_api else { return Err(problems) };
        if !problems.is_empty() {
            return Err(problems);
        }
        let oauth = match client_id {
            Some(client_id) => Some(Arc::new(
                OidcConnector::new(Settings {
                    issuer: frontend_api.clone(),
                    client_id,
                    client_secret,
                    scopes,
                    extra_auth_params,
                    claims: claims.clone(),
                    insecure_skip_email_verified: config.insecure_skip_email_verified,
                    refresh_upstream: config.refresh_upstream,
                    userinfo: config.userinfo.unwrap_or(true),
                    timeout,
                    label: "Clerk".into(),
                    pass_prompt: true,
                    pass_login_hint: false,
                })
                .map_err(|e| vec![e])?,
            )),
            None => None,
        };
        let session = match session_parts {
            Some((publishable_key, clerk_js_url, authorized_parties)) => {
                let http = keybridge_connector_common::http_client(timeout).map_err(|e| vec![e.to_string()])?;
                Some(Session {
                    keys: RemoteKeys::new(
                        format!("{frontend_api}/.well-known/jwks.json"),
                        KeyFormat::Jwks,
                        http,
                        &["RS256"],
                    ),
                    frontend_api,
                    publishable_key,
                    clerk_js_url,
                    authorized_parties,
                })
            }
            None => None,
        };
        Ok(Self {
            oauth,
            session,
            claims,
            insecure_skip_email_verified: config.insecure_skip_email_verified,
            refresh_upstream: config.refresh_upstream,
        })
    }

    /// The core connector with the capabilities configured.
    pub fn connector(self: &Arc<Self>, id: &str, name: &str) -> Connector {
        let mut c = Connector::new(id, name);
        if let Some(o) = &self.oauth {
            c.callback = Some(o.clone());
            if self.refresh_upstream {
                c.refresher = Some(self.clone());
            }
        }
        if self.session.is_some() {
            c.handoff = Some(self.clone());
        }
        c
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

#[async_trait]
impl HandoffConnector for ClerkConnector {
    fn page(&self) -> HandoffPage {
        let Some(s) = &self.session else {
            return HandoffPage { glue_js: GLUE_JS, scripts: Vec::new(), origins: Vec::new(), config: json!({}) };
        };
        let mut origins: Vec<String> = [origin_of(&s.frontend_api), origin_of(&s.clerk_js_url)]
            .into_iter()
            .flatten()
            .chain(["https://img.clerk.com".to_owned()])
            .collect();
        origins.dedup();
        HandoffPage {
            glue_js: GLUE_JS,
            scripts: vec![s.clerk_js_url.clone()],
            origins,
            config: json!({"publishableKey": s.publishable_key, "clerkJsUrl": s.clerk_js_url}),
        }
    }

    async fn verify(&self, _scopes: &Scopes, token: &str) -> Result<Identity, ConnectorError> {
        let s = self.session.as_ref().ok_or_else(|| ConnectorError::Config("hand-off is not configured".into()))?;
        let header = decode(token)?.header;
        if header.typ.as_deref() != Some("JWT") {
            return Err(ConnectorError::InvalidResponse("session token typ is not JWT".into()));
        }
        let claims = verify_jwt(token, &s.keys).await?;
        let e = Expectations { issuer: &s.frontend_api, audience: None, now: now(), leeway: SESSION_LEEWAY };
        check_claims(&claims, &e)?;
        if claims.get("nbf").and_then(Value::as_i64).is_none() {
            return Err(ConnectorError::InvalidResponse("session token has no nbf".into()));
        }
        if let Some(azp) = claims.get("azp").and_then(Value::as_str)
            && !s.authorized_parties.iter().any(|p| p == azp)
        {
            return Err(ConnectorError::InvalidResponse(format!("session token was made for {azp:?}")));
        }
        if claims.get("sid").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ConnectorError::InvalidResponse("session token has no session id".into()));
        }
        if claims.get("sts").and_then(Value::as_str) == Some("pending") {
            return Err(ConnectorError::Denied(
                "Your Clerk session is not complete yet (for example, an organization must be chosen). \
                 Finish signing in and try again."
                    .into(),
            ));
        }
        let (upstream_id, mapped) = self.claims.map(&Value::Object(claims), self.insecure_skip_email_verified)?;
        Ok(Identity { upstream_id, claims: mapped, connector_data: None })
    }
}

#[async_trait]
impl RefreshConnector for ClerkConnector {
    async fn refresh(&self, scopes: &Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        match (&self.oauth, &identity.connector_data) {
            (Some(oauth), Some(_)) => oauth.refresh(scopes, identity).await,
            // A hand-off login: a 60-second session token and no refresh token, nothing to re-check.
            _ => Ok(identity),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn handoff() -> Config {
        Config {
            frontend_api: Some("https://clerk.acme.com".into()),
            publishable_key: Some("pk_live_Y2xlcmsuYWNtZS5jb20k".into()),
            authorized_parties: vec!["https://auth.acme.com".into()],
            ..Default::default()
        }
    }

    #[test]
    fn publishable_keys_encode_the_frontend_api() {
        assert_eq!(publishable_key_host("pk_live_Y2xlcmsuYWNtZS5jb20k").as_deref(), Some("clerk.acme.com"));
        assert_eq!(
            publishable_key_host("pk_test_ZXhhbXBsZS5hY2NvdW50cy5kZXYk").as_deref(),
            Some("example.accounts.dev")
        );
        assert!(publishable_key_host("sk_live_xxx").is_none());
    }

    #[test]
    fn a_handoff_only_config_builds_a_page_with_the_sdk() {
        let c = Arc::new(ClerkConnector::open(handoff()).unwrap());
        let core = c.connector("clerk", "Acme");
        assert!(core.callback.is_none() && core.handoff.is_some() && core.refresher.is_none());
        let page = c.page();
        assert_eq!(page.scripts, vec!["https://clerk.acme.com/npm/@clerk/clerk-js@5/dist/clerk.browser.js"]);
        assert!(page.origins.contains(&"https://clerk.acme.com".to_string()));
        assert_eq!(page.config["publishableKey"], "pk_live_Y2xlcmsuYWNtZS5jb20k");
        assert!(!page.glue_js.contains("innerHTML"));
    }

    #[test]
    fn bad_configs_are_explained() {
        let p = ClerkConnector::open(Config::default()).unwrap_err().join("\n");
        assert!(p.contains("frontend_api: required"), "{p}");
        assert!(p.contains("client_id or publishable_key: set at least one"), "{p}");
        let p = ClerkConnector::open(Config { authorized_parties: vec![], ..handoff() }).unwrap_err().join("\n");
        assert!(p.contains("authorized_parties: required with publishable_key"), "{p}");
        let p = ClerkConnector::open(Config {
            authorized_parties: vec!["https://auth.acme.com/login".into()],
            ..handoff()
        })
        .unwrap_err()
        .join("\n");
        assert!(p.contains("must be an origin"), "{p}");
        let p = ClerkConnector::open(Config { frontend_api: Some("https://clerk.other.com".into()), ..handoff() })
            .unwrap_err()
            .join("\n");
        assert!(
            p.contains("publishable_key: is for clerk.acme.com, but frontend_api is https://clerk.other.com"),
            "{p}"
        );
        let p = ClerkConnector::open(Config { frontend_api: Some("http://clerk.acme.com".into()), ..handoff() })
            .unwrap_err()
            .join("\n");
        assert!(p.contains("frontend_api: \"http://clerk.acme.com\" must use https"), "{p}");
        let p = ClerkConnector::open(Config { refresh_upstream: true, ..handoff() }).unwrap_err().join("\n");
        assert!(p.contains("refresh_upstream: needs client_id"), "{p}");
    }
}
