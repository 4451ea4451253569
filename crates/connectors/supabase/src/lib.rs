//! The `supabase` connector: people who keep their accounts in Supabase Auth sign in to Keybridge,
//! which issues its own tokens. One connector, three ways in, each switched on by config:
//!
//! - **Social login through Supabase** (`providers:`): the server-side PKCE flow
//!   (`/auth/v1/authorize` → Keybridge's callback with `?code=` → `POST /auth/v1/token?grant_type=pkce`).
//!   Supabase returns no `state`, so Keybridge's own correlation travels inside `redirect_to`.
//!   Supabase silently sends the browser to its Site URL when `redirect_to` is not on its
//!   allow-list; Keybridge checks for that before it sends anyone there ([`redirect check`](#the-redirect-check)).
//! - **Email and password** (`password: true`) on Keybridge's own form: `grant_type=password`.
//! - **Token hand-off** (`handoff:`): supabase-js signs the person in on Keybridge's hand-off page
//!   and posts the session; the access token is verified (ES256/RS256 against the project's JWKS,
//!   or the legacy HS256 secret; `iss`, `aud`, `exp`, `role`) and the user is looked up.
//!
//! Identity: `sub` is the Supabase user id; `email_verified` comes from `email_confirmed_at`; the
//! name from `user_metadata`; groups from `app_metadata` paths. Banned, deleted and anonymous
//! users cannot sign in. With `refresh_upstream: true` Supabase's rotating refresh token is kept in
//! the grant's connector data, and every Keybridge refresh re-checks the user with it.
//!
//! ```yaml
//! connectors:
//!   - id: supabase
//!     type: supabase
//!     name: Acme account
//!     config:
//!       url: https://abcdefghijklmnop.supabase.co
//!       anon_key_env: SUPABASE_ANON_KEY
//!       providers: [google, github]
//!       password: true
//!       handoff: {script_url: "https://cdn.jsdelivr.net/npm/@supabase/supabase-js@2.58.0/dist/umd/supabase.js"}
//!       groups_claim: app_metadata.roles
//!       refresh_upstream: true
//! ```
//!
//! # The redirect check
//!
//! Before the first social login through a provider (and again every ten minutes), Keybridge asks
//! Supabase where it would send the browser back: it starts a flow with the real `redirect_to`
//! shape and ends it at Supabase's callback with `error=access_denied`, and reads the `Location`
//! Supabase answers (upstreams.md §1.2: errors go back to the validated `redirect_to`). If that is
//! not Keybridge's callback, the allow-list is missing it, and the person gets a page that says
//! exactly what to add, instead of being dropped on the project's Site URL.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod api;
mod config;
mod user;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_connector_common::{
    Expectations, KeyFormat, RemoteKeys, check_claims, http_client, verify_hs256, verify_jwt,
};
use keybridge_core::connector::{
    CallbackConnector, CallbackParams, Connector, ConnectorError, HandoffConnector, HandoffPage, LoginOptions,
    PasswordConnector, RefreshConnector, UpstreamChoice,
};
use keybridge_core::identity::Identity;
use keybridge_core::scope::Scopes;
use keybridge_core::types::{ConnectorData, Password};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;
use url::Url;

pub use api::{API_VERSION, ApiError};
pub use config::{Config, DEFAULT_GROUPS_CLAIM, HandoffConfig, OneOrMany};

use api::AuthApi;
use config::Settings;

/// The hand-off page's glue script.
pub const GLUE_JS: &str = include_str!("glue.js");

/// The `aud` and `role` of a Supabase user's access token.
const AUTHENTICATED: &str = "authenticated";
/// Clock skew allowed on handed-off tokens, seconds.
const LEEWAY: i64 = 30;
/// How long a passed redirect check is trusted.
const REDIRECT_CHECK_TTL: Duration = Duration::from_secs(600);

/// The connector.
pub struct SupabaseConnector {
    s: Settings,
    api: AuthApi,
    keys: RemoteKeys,
    /// Provider → until when its redirect check holds.
    checked: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for SupabaseConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseConnector")
            .field("auth_url", &self.s.auth_url)
            .field("providers", &self.s.providers)
            .field("password", &self.s.password)
            .field("handoff", &self.s.script_url.is_some())
            .field("legacy_hs256", &self.s.jwt_secret.is_some())
            .field("refresh_upstream", &self.s.refresh_upstream)
            .finish_non_exhaustive()
    }
}

/// A provider's button label.
pub fn provider_label(provider: &str) -> String {
    let known = match provider {
        "apple" => "Apple",
        "azure" => "Microsoft",
        "bitbucket" => "Bitbucket",
        "discord" => "Discord",
        "facebook" => "Facebook",
        "figma" => "Figma",
        "github" => "GitHub",
        "gitlab" => "GitLab",
        "google" => "Google",
        "kakao" => "Kakao",
        "keycloak" => "Keycloak",
        "linkedin" | "linkedin_oidc" => "LinkedIn",
        "notion" => "Notion",
        "slack" | "slack_oidc" => "Slack",
        "spotify" => "Spotify",
        "twitch" => "Twitch",
        "twitter" => "Twitter",
        "x" => "X",
        "workos" => "WorkOS",
        "zoom" => "Zoom",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let mut chars = provider.trim_start_matches("custom:").chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// `redirect_to` for a login: Keybridge's callback carrying its own correlation, since Supabase
/// returns no `state` (it appends `code`, keeping this query).
pub fn redirect_to(callback_url: &str, state: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("state", state).finish();
    format!("{callback_url}?{q}")
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Whether `location` is `callback_url` carrying `state`.
fn is_callback(location: &str, callback_url: &str, state: &str) -> bool {
    let (Ok(loc), Ok(cb)) = (Url::parse(location), Url::parse(callback_url)) else { return false };
    loc.origin() == cb.origin() && loc.path() == cb.path() && loc.query_pairs().any(|(k, v)| k == "state" && v == state)
}

impl SupabaseConnector {
    /// Validates the config and builds the connector. Returns every problem found, each prefixed
    /// with its key below the connector's `config`.
    pub fn open(config: Config) -> Result<Self, Vec<String>> {
        let s = config.validate()?;
        let http = http_client(s.timeout).map_err(|e| vec![e.to_string()])?;
        let keys = RemoteKeys::new(
            format!("{}/.well-known/jwks.json", s.auth_url),
            KeyFormat::Jwks,
            http.clone(),
            &["ES256", "RS256"],
        );
        let api = AuthApi::new(s.auth_url.clone(), s.anon_key.clone(), http);
        Ok(Self { s, api, keys, checked: Mutex::new(HashMap::new()) })
    }

    /// Sets how often an unknown `kid` may refetch the JWKS (tests shorten it; default 5 s).
    pub fn with_jwks_min_refetch(mut self, d: Duration) -> Self {
        self.keys = self.keys.with_min_refetch(d);
        self
    }

    /// The core connector with the capabilities the config switched on.
    pub fn connector(self: &Arc<Self>, id: &str, name: &str) -> Connector {
        let mut c = Connector::new(id, name);
        if self.s.password {
            c.password = Some(self.clone());
        }
        if !self.s.providers.is_empty() {
            c.callback = Some(self.clone());
        }
        if self.s.script_url.is_some() {
            c.handoff = Some(self.clone());
        }
        if self.s.refresh_upstream {
            c.refresher = Some(self.clone());
        }
        c
    }

    /// Supabase Auth's base URL, `{url}/auth/v1`.
    pub fn auth_url(&self) -> &str {
        &self.s.auth_url
    }

    /// What the startup banner says about this connector.
    pub fn summary(&self) -> String {
        let mut modes = Vec::new();
        if !self.s.providers.is_empty() {
            modes.push(format!("social login ({})", self.s.providers.join(", ")));
        }
        if self.s.password {
            modes.push("email and password".into());
        }
        if self.s.script_url.is_some() {
            modes.push("token hand-off".into());
        }
        format!("{} via {}", modes.join(", "), self.s.auth_url)
    }

    fn kept(&self, session: &Value) -> Result<Option<ConnectorData>, ConnectorError> {
        if !self.s.refresh_upstream {
            return Ok(None);
        }
        match session.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            Some(t) => Ok(Some(ConnectorData::new(t))),
            None => Err(ConnectorError::InvalidResponse("Supabase's session has no refresh token".into())),
        }
    }

    /// The identity of a session answer (`{access_token, refresh_token, user}`).
    fn session_identity(&self, session: &Value) -> Result<Identity, ConnectorError> {
        let user = session
            .get("user")
            .ok_or_else(|| ConnectorError::InvalidResponse("Supabase's session has no user".into()))?;
        user::identity(user, &self.s.groups_claim, self.kept(session)?, SystemTime::now())
    }

    /// Checks that Supabase will send the browser back to `callback_url` (see the crate docs).
    /// Fails only when Supabase answers that it will not; an inconclusive check lets the login go on.
    async fn check_redirect(&self, provider: &str, callback_url: &str) -> Result<(), ConnectorError> {
        if self.checked.lock().await.get(provider).is_some_and(|until| *until > Instant::now()) {
            return Ok(());
        }
        let probe = ConnectorData::generate();
        let verifier = ConnectorData::generate();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("provider", provider)
            .append_pair("redirect_to", &redirect_to(callback_url, probe.secret()))
            .append_pair("code_challenge", &s256(verifier.secret()))
            .append_pair("code_challenge_method", "s256")
            .finish();
        let inconclusive = |why: String| {
            tracing::warn!(provider, reason = %why, "could not check Supabase's redirect allow-list; continuing");
            Ok(())
        };
        let upstream = match self.api.redirect(&format!("/authorize?{query}")).await {
            Err(e) => return inconclusive(e.to_string()),
            Ok(Err(e)) if e.status == 400 && (e.is("provider_disabled") || e.message.contains("provider")) => {
                tracing::error!(provider, error = %e, "the Supabase project does not offer this provider");
                return Err(ConnectorError::Denied(format!(
                    "Sign-in with {} is not enabled in this Supabase project. Please tell the site's operators.",
                    provider_label(provider)
                )));
            }
            Ok(Err(e)) => return inconclusive(e.to_string()),
            Ok(Ok(location)) => location,
        };
        let flow = Url::parse(&upstream)
            .ok()
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()));
        let back = if is_callback(&upstream, callback_url, probe.secret()) {
            upstream
        } else {
            let Some(flow) = flow else { return inconclusive("the provider URL carries no state".into()) };
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("error", "access_denied")
                .append_pair("error_description", "Keybridge redirect check")
                .append_pair("state", &flow)
                .finish();
            match self.api.redirect(&format!("/callback?{q}")).await {
                Ok(Ok(location)) => location,
                Ok(Err(e)) => return inconclusive(e.to_string()),
                Err(e) => return inconclusive(e.to_string()),
            }
        };
        if is_callback(&back, callback_url, probe.secret()) {
            self.checked.lock().await.insert(provider.to_owned(), Instant::now() + REDIRECT_CHECK_TTL);
            return Ok(());
        }
        let lands = Url::parse(&back)
            .map(|mut u| {
                u.set_query(None);
                u.set_fragment(None);
                u.to_string()
            })
            .unwrap_or_else(|_| "its Site URL".into());
        let pattern = format!("{callback_url}?state=*");
        tracing::error!(
            provider,
            redirect_to = %pattern,
            supabase_sends_to = %lands,
            "Supabase's Redirect URLs allow-list does not include Keybridge's callback; add it in the Supabase dashboard \
             (Authentication > URL Configuration > Redirect URLs)"
        );
        Err(ConnectorError::Denied(format!(
            "Supabase is not set up to send you back to this sign-in service: its Redirect URLs list does not include \
             {pattern}, so it would silently send you to {lands} instead. The site's operators need to add {pattern} \
             to Authentication > URL Configuration > Redirect URLs in the Supabase dashboard."
        )))
    }

    async fn verify_token(&self, access_token: &str) -> Result<serde_json::Map<String, Value>, ConnectorError> {
        let header = keybridge_connector_common::decode(access_token)?.header;
        let claims = if header.alg == "HS256" {
            let secret = self.s.jwt_secret.as_deref().ok_or_else(|| {
                ConnectorError::InvalidResponse(
                    "an HS256 token, but no legacy JWT secret is configured (jwt_secret_env)".into(),
                )
            })?;
            verify_hs256(access_token, secret)?
        } else {
            verify_jwt(access_token, &self.keys).await?
        };
        check_claims(
            &claims,
            &Expectations { issuer: &self.s.issuer, audience: Some(AUTHENTICATED), now: now_secs(), leeway: LEEWAY },
        )?;
        match claims.get("role").and_then(Value::as_str) {
            Some(AUTHENTICATED) => Ok(claims),
            other => Err(ConnectorError::InvalidResponse(format!("not a user's access token (role {other:?})"))),
        }
    }
}

#[async_trait]
impl PasswordConnector for SupabaseConnector {
    async fn login(
        &self,
        _scopes: &Scopes,
        username: &str,
        password: &Password,
    ) -> Result<Option<Identity>, ConnectorError> {
        let body = json!({
            "email": username.trim(),
            "password": password.secret(),
            "gotrue_meta_security": {"captcha_token": null},
        });
        match self.api.token("password", &body).await? {
            Ok(session) => match self.session_identity(&session) {
                Ok(identity) => Ok(Some(identity)),
                // The password was right, so saying why is no enumeration.
                Err(ConnectorError::UserInvalid(_)) => {
                    Err(ConnectorError::Denied("This account is disabled. Please contact the site's operators.".into()))
                }
                Err(e) => Err(e),
            },
            Err(e) => password_error(e),
        }
    }
}

/// Supabase's answer to a failed password login, without telling who has an account.
fn password_error(e: ApiError) -> Result<Option<Identity>, ConnectorError> {
    let code = e.code.as_deref().unwrap_or_default();
    let msg = e.message.to_ascii_lowercase();
    tracing::info!(status = e.status, code, "Supabase refused the password login");
    match code {
        // `user_banned` comes before the password check: it would reveal that the email exists.
        "invalid_credentials" | "invalid_grant" | "user_banned" | "user_not_found" | "validation_failed"
            if !msg.contains("email not confirmed") =>
        {
            Ok(None)
        }
        // After the password check: safe to say.
        _ if code == "email_not_confirmed" || msg.contains("email not confirmed") => Err(ConnectorError::Denied(
            "Please confirm your email address first: follow the link in the email you were sent, then sign in again."
                .into(),
        )),
        "email_provider_disabled" | "provider_disabled" => Err(ConnectorError::Denied(
            "Signing in with email and password is turned off for this account service.".into(),
        )),
        "over_request_rate_limit" => {
            Err(ConnectorError::Denied("Too many sign-in attempts. Please wait a minute and try again.".into()))
        }
        _ if e.status == 429 => {
            Err(ConnectorError::Denied("Too many sign-in attempts. Please wait a minute and try again.".into()))
        }
        _ if msg.contains("invalid login credentials") => Ok(None),
        _ => Err(ConnectorError::Upstream(format!("Supabase password grant: {e}"))),
    }
}

#[async_trait]
impl CallbackConnector for SupabaseConnector {
    fn choices(&self) -> Vec<UpstreamChoice> {
        self.s.providers.iter().map(|p| UpstreamChoice { provider: p.clone(), label: provider_label(p) }).collect()
    }

    async fn login_url(
        &self,
        _scopes: &Scopes,
        callback_url: &str,
        state: &str,
        options: &LoginOptions,
    ) -> Result<(String, ConnectorData), ConnectorError> {
        let provider = options
            .provider
            .as_deref()
            .filter(|p| self.s.providers.iter().any(|x| x == p))
            .ok_or_else(|| ConnectorError::Config("no configured Supabase provider was chosen".into()))?;
        self.check_redirect(provider, callback_url).await?;
        let verifier = ConnectorData::generate();
        let mut url = Url::parse(&format!("{}/authorize", self.s.auth_url))
            .map_err(|e| ConnectorError::Config(format!("Supabase authorize URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("provider", provider)
            .append_pair("redirect_to", &redirect_to(callback_url, state))
            .append_pair("code_challenge", &s256(verifier.secret()))
            .append_pair("code_challenge_method", "s256");
        // Supabase forwards parameters it does not know to the provider.
        if let Some(hint) = options.login_hint.as_deref().filter(|h| !h.is_empty()) {
            url.query_pairs_mut().append_pair("login_hint", hint);
        }
        Ok((url.into(), verifier))
    }

    async fn handle_callback(
        &self,
        _scopes: &Scopes,
        kept: ConnectorData,
        params: &CallbackParams,
    ) -> Result<Identity, ConnectorError> {
        let code = params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectorError::InvalidResponse("Supabase's callback carries no code".into()))?;
        let body = json!({"auth_code": code, "code_verifier": kept.secret()});
        match self.api.token("pkce", &body).await? {
            Ok(session) => self.session_identity(&session),
            Err(e) if e.is("user_banned") => Err(ConnectorError::UserInvalid(e.to_string())),
            Err(e) if e.is("flow_state_expired") => {
                Err(ConnectorError::Denied("The sign-in took too long. Please start again.".into()))
            }
            Err(e) => Err(ConnectorError::InvalidResponse(format!("Supabase refused the code exchange: {e}"))),
        }
    }
}

/// A handed-off token: Supabase's access token, alone or with its refresh token as the glue script
/// posts them (`{"access_token":…,"refresh_token":…}`).
fn handed_off(token: &str) -> Result<(String, Option<String>), ConnectorError> {
    let token = token.trim();
    if !token.starts_with('{') {
        return Ok((token.to_owned(), None));
    }
    let v: Value = serde_json::from_str(token)
        .map_err(|_| ConnectorError::InvalidResponse("the handed-off session is not JSON".into()))?;
    let access = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::InvalidResponse("the handed-off session has no access token".into()))?;
    let refresh = v.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
    Ok((access.to_owned(), refresh))
}

#[async_trait]
impl HandoffConnector for SupabaseConnector {
    fn page(&self) -> HandoffPage {
        let providers: Vec<Value> =
            self.s.providers.iter().map(|p| json!({"id": p, "label": provider_label(p)})).collect();
        HandoffPage {
            glue_js: GLUE_JS,
            scripts: self.s.script_url.iter().cloned().collect(),
            origins: vec![self.s.origin.clone()],
            config: json!({
                "url": self.s.auth_url.trim_end_matches("/auth/v1"),
                "anonKey": self.s.anon_key,
                "providers": providers,
            }),
        }
    }

    async fn verify(&self, _scopes: &Scopes, token: &str) -> Result<Identity, ConnectorError> {
        let (access, refresh) = handed_off(token)?;
        let claims = self.verify_token(&access).await?;
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
        // The user record is the authority on bans, deletion and email confirmation.
        let user = match self.api.user(&access).await? {
            Ok(u) => u,
            Err(e) if e.is("user_not_found") || e.is("user_banned") => {
                return Err(ConnectorError::UserInvalid(e.to_string()));
            }
            Err(e) if e.is("session_not_found") || e.is("session_expired") => {
                return Err(ConnectorError::Denied("Your Supabase session has ended. Please sign in again.".into()));
            }
            Err(e) => return Err(ConnectorError::InvalidResponse(format!("Supabase refused the token: {e}"))),
        };
        if user.get("id").and_then(Value::as_str) != Some(sub.as_str()) {
            return Err(ConnectorError::InvalidResponse("the token's subject is not Supabase's user".into()));
        }
        let kept = if self.s.refresh_upstream { refresh.map(ConnectorData::new) } else { None };
        user::identity(&user, &self.s.groups_claim, kept, SystemTime::now())
    }
}

#[async_trait]
impl RefreshConnector for SupabaseConnector {
    async fn refresh(&self, _scopes: &Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let Some(token) = identity.connector_data.as_ref() else {
            return Err(ConnectorError::UserInvalid(
                "no Supabase session was kept for this login (a bare hand-off token); sign in again".into(),
            ));
        };
        match self.api.token("refresh_token", &json!({"refresh_token": token.secret()})).await? {
            Ok(session) => {
                let fresh = self.session_identity(&session)?;
                if fresh.upstream_id != identity.upstream_id {
                    return Err(ConnectorError::UserInvalid("Supabase's session belongs to another user".into()));
                }
                Ok(fresh)
            }
            Err(e) if (400..500).contains(&e.status) => Err(ConnectorError::UserInvalid(e.to_string())),
            Err(e) => Err(ConnectorError::Upstream(e.to_string())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(yaml_like: Value) -> Config {
        serde_json::from_value(yaml_like).unwrap()
    }

    #[test]
    fn labels_and_redirect_to() {
        assert_eq!(provider_label("github"), "GitHub");
        assert_eq!(provider_label("azure"), "Microsoft");
        assert_eq!(provider_label("custom:acme"), "Acme");
        assert_eq!(redirect_to("https://a.example/callback/sb", "x y"), "https://a.example/callback/sb?state=x+y");
        assert!(is_callback("https://a.example/callback/sb?state=abc&code=1", "https://a.example/callback/sb", "abc"));
        assert!(!is_callback("https://app.example/?code=1", "https://a.example/callback/sb", "abc"));
        assert!(!is_callback("https://a.example/callback/sb?state=other", "https://a.example/callback/sb", "abc"));
    }

    #[test]
    fn handed_off_tokens() {
        assert_eq!(handed_off(" a.b.c ").unwrap(), ("a.b.c".into(), None));
        assert_eq!(
            handed_off(r#"{"access_token":"a.b.c","refresh_token":"r1"}"#).unwrap(),
            ("a.b.c".into(), Some("r1".into()))
        );
        assert!(handed_off("{not json").is_err());
        assert!(handed_off(r#"{"refresh_token":"r1"}"#).is_err());
    }

    #[test]
    fn password_errors_do_not_enumerate() {
        let e = |status, code: &str, msg: &str| ApiError { status, code: Some(code.into()), message: msg.into() };
        for err in [
            e(400, "invalid_credentials", "Invalid login credentials"),
            e(400, "user_banned", "User is banned"),
            e(400, "invalid_grant", "Invalid login credentials"),
        ] {
            assert!(matches!(password_error(err), Ok(None)));
        }
        assert!(
            matches!(password_error(e(400, "email_not_confirmed", "Email not confirmed")), Err(ConnectorError::Denied(m)) if m.contains("confirm"))
        );
        assert!(matches!(
            password_error(e(400, "invalid_grant", "Email not confirmed")),
            Err(ConnectorError::Denied(_))
        ));
        assert!(matches!(password_error(e(429, "over_request_rate_limit", "")), Err(ConnectorError::Denied(_))));
        assert!(matches!(password_error(e(422, "email_provider_disabled", "")), Err(ConnectorError::Denied(_))));
        assert!(matches!(password_error(e(418, "teapot", "")), Err(ConnectorError::Upstream(_))));
    }

    #[test]
    fn config_problems_are_listed_with_their_keys() {
        let err = SupabaseConnector::open(config(json!({
            "url": "http://project.example.com/auth/v1?x=1",
            "providers": ["google", "Google", "google"],
            "jwt_secret": "short",
            "groups_claim": ["user_metadata.roles"],
            "timeout": "5m",
        })))
        .unwrap_err();
        let text = err.join("\n");
        for needle in [
            "url: \"http://project.example.com/auth/v1?x=1\" must use https",
            "anon_key: required",
            "providers[1]: \"Google\" is not a Supabase provider name",
            "providers[2]: \"google\" is listed twice",
            "jwt_secret: only verifies handed-off tokens",
            "jwt_secret: too short",
            "groups_claim[0]: \"user_metadata.roles\" must be a path under app_metadata",
            "timeout: must be between 1s and 60s",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let err =
            SupabaseConnector::open(config(json!({"url": "https://p.supabase.co", "anon_key": "k"}))).unwrap_err();
        assert!(err[0].starts_with("providers: no sign-in method is on"), "{err:?}");
        let err = SupabaseConnector::open(config(json!({
            "url": "https://p.supabase.co/auth/v1", "anon_key": "sb_secret_abc", "password": true,
        })))
        .unwrap_err();
        assert!(err.iter().any(|e| e.contains("without /auth/v1")), "{err:?}");
        assert!(err.iter().any(|e| e.contains("this is a secret (service_role) key")), "{err:?}");
        let ok = SupabaseConnector::open(config(json!({
            "url": "https://p.supabase.co/", "anon_key": "k", "providers": ["google"], "refresh_upstream": true,
        })))
        .unwrap();
        assert_eq!(ok.auth_url(), "https://p.supabase.co/auth/v1");
        let c = Arc::new(ok).connector("sb", "Supabase");
        assert!(c.callback.is_some() && c.refresher.is_some() && c.password.is_none() && c.handoff.is_none());
    }
}
