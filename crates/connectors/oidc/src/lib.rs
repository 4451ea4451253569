//! The generic `oidc` connector: any OpenID provider upstream of Keybridge (Okta, Keycloak,
//! Google, Supabase's OAuth 2.1 server, ...), and the base of the `auth0` and `clerk` connectors.
//!
//! - Discovery from the configured issuer (`openidconnect`), exact issuer match, cached for an
//!   hour and refetched on failure.
//! - The authorization-code flow with PKCE S256, `state` (Keybridge's request id) and `nonce`;
//!   the verifier, nonce and state live in the request's kept [`ConnectorData`], which Keybridge
//!   hands back exactly once. RFC 9207 `iss` on the callback is checked when present (and
//!   required when the upstream advertises it).
//! - ID-token verification with [`keybridge_connector_common`]: signature against the
//!   discovered JWKS (cached, refetched on an unknown `kid`), `iss`, `aud`, `azp`, `exp`, `nbf`,
//!   `iat`, `nonce`; then userinfo, whose `sub` must match.
//! - Claim mapping ([`ClaimMap`]), configurable scopes and extra authorize parameters, and an
//!   explicit `insecure_skip_email_verified`.
//! - Refresh: with `refresh_upstream`, the upstream refresh token is kept in the grant's
//!   `connector_data` and every Keybridge refresh re-checks the user upstream; `invalid_grant`
//!   upstream becomes [`ConnectorError::UserInvalid`].
//! - Every upstream call has a timeout (`timeout`, default 10 s, at most 60 s).
//!
//! ```yaml
//! connectors:
//!   - id: okta
//!     type: oidc
//!     name: Okta
//!     config:
//!       issuer: https://example.okta.com
//!       client_id: 0oa...
//!       client_secret_env: OKTA_CLIENT_SECRET
//!       scopes: [openid, email, profile, groups, offline_access]
//!       claims: {groups: groups}
//!       refresh_upstream: true
//! ```
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod claims;
mod config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
pub use claims::{ClaimMap, ClaimsConfig};
pub use config::{
    Config, DEFAULT_SCOPES, MAX_TIMEOUT, check_extra_auth_params, check_issuer, check_scopes, check_timeout,
    resolve_client_secret,
};
use keybridge_connector_common::{Expectations, KeyFormat, RemoteKeys, check_claims, upstream_error, verify_jwt};
use keybridge_core::connector::{
    CallbackConnector, CallbackParams, ConnectorError, LoginOptions, RefreshConnector, UpstreamChoice,
};
use keybridge_core::identity::Identity;
use keybridge_core::scope::Scopes;
use keybridge_core::types::{ClientSecret, ConnectorData, Sha256Digest};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthorizationCode, ClientId, CsrfToken, DiscoveryError, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpClientError, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError, StandardErrorResponse,
    TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long discovered metadata is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Clock skew allowed on upstream tokens.
const LEEWAY: i64 = 60;
/// How long the result of an upstream refresh answers a repeated refresh of the same token.
const REUSE_WINDOW: Duration = Duration::from_secs(60);
/// Algorithms accepted on ID tokens (what `RemoteKeys` can verify; never `none` or HS*).
const ID_TOKEN_ALGS: &[&str] = &["RS256", "ES256", "EdDSA"];

/// A validated connector setup: what the `oidc`, `auth0` and `clerk` types all come down to.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer, exactly as the upstream writes it in `iss` (Auth0's ends with `/`).
    pub issuer: String,
    /// Keybridge's client id at the upstream.
    pub client_id: String,
    /// Its secret; `None` for a public client (PKCE only).
    pub client_secret: Option<ClientSecret>,
    /// Scopes requested (`openid` is always sent).
    pub scopes: Vec<String>,
    /// Extra authorize parameters, in order.
    pub extra_auth_params: Vec<(String, String)>,
    /// Claim mapping.
    pub claims: ClaimMap,
    /// Treat every email as verified.
    pub insecure_skip_email_verified: bool,
    /// Keep the upstream refresh token and re-check the user at every Keybridge refresh.
    pub refresh_upstream: bool,
    /// Call the userinfo endpoint after the ID token (when the upstream has one).
    pub userinfo: bool,
    /// Timeout of each upstream call.
    pub timeout: Duration,
    /// The upstream's name on the login page's button.
    pub label: String,
    /// Pass the authorization request's `prompt` upstream.
    pub pass_prompt: bool,
    /// Pass the authorization request's `login_hint` upstream.
    pub pass_login_hint: bool,
}

/// Discovery fields `openidconnect`'s core metadata lacks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct ExtraMetadata {
    /// RFC 9207: the upstream puts `iss` on its authorization responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

type TokenError = RequestTokenError<HttpClientError<reqwest::Error>, StandardErrorResponse<CoreErrorResponseType>>;

struct Discovered {
    meta: Metadata,
    keys: Arc<RemoteKeys>,
    auth_type: AuthType,
    at: Instant,
}

/// What a login keeps between the redirect upstream and the callback (inside the request's
/// [`ConnectorData`], a redacting secret).
#[derive(Serialize, Deserialize)]
struct Kept {
    state: String,
    nonce: String,
    pkce_verifier: String,
    redirect_uri: String,
}

/// What a grant keeps for the refresh re-check.
#[derive(Serialize, Deserialize)]
struct GrantData {
    refresh_token: String,
}

/// The connector.
pub struct OidcConnector {
    settings: Settings,
    http: reqwest::Client,
    discovered: Mutex<Option<Arc<Discovered>>>,
    /// Recent refreshes by the digest of the upstream refresh token they used.
    recent: Mutex<HashMap<String, RecentRefresh>>,
}

type RecentRefresh = Arc<tokio::sync::Mutex<Option<(Instant, Identity)>>>;

impl std::fmt::Debug for OidcConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConnector")
            .field("issuer", &self.settings.issuer)
            .field("client_id", &self.settings.client_id)
            .field("refresh_upstream", &self.settings.refresh_upstream)
            .finish_non_exhaustive()
    }
}

impl OidcConnector {
    /// Validates a `type: oidc` config and builds the connector (no network: discovery happens
    /// at the first login). Returns every problem, each prefixed with its key below `config`.
    pub fn open(config: Config) -> Result<Self, Vec<String>> {
        let settings = config.validate()?;
        Self::new(settings).map_err(|e| vec![e])
    }

    /// Builds a connector from validated settings.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let http = keybridge_connector_common::http_client(settings.timeout).map_err(|e| e.to_string())?;
        Ok(Self { settings, http, discovered: Mutex::new(None), recent: Mutex::new(HashMap::new()) })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The injected HTTP client (for connectors built on this one).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        self.discovered.lock().ok().and_then(|g| g.clone())
    }

    /// The upstream's metadata, discovered at first use and cached.
    async fn discovery(&self) -> Result<Arc<Discovered>, ConnectorError> {
        let cached = self.cached();
        if let Some(d) = &cached
            && d.at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        match self.discover(cached.as_deref()).await {
            Ok(d) => {
                let d = Arc::new(d);
                if let Ok(mut g) = self.discovered.lock() {
                    *g = Some(d.clone());
                }
                Ok(d)
            }
            Err(e) => match cached {
                Some(stale) => {
                    tracing::warn!(issuer = %self.settings.issuer, error = %e, "rediscovery failed; using cached metadata");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    async fn discover(&self, previous: Option<&Discovered>) -> Result<Discovered, ConnectorError> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| ConnectorError::Config(format!("issuer is not a URL: {e}")))?;
        let meta = Metadata::discover_async(issuer, &self.http).await.map_err(|e| discovery_error(&e))?;
        let jwks_uri = meta.jwks_uri().url().to_string();
        let keys = match previous {
            Some(p) if p.meta.jwks_uri().url().as_str() == jwks_uri => p.keys.clone(),
            _ => {
                let advertised: Vec<String> = meta
                    .id_token_signing_alg_values_supported()
                    .iter()
                    .filter_map(|a| serde_json::to_value(a).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let mut algs: Vec<&str> =
                    ID_TOKEN_ALGS.iter().copied().filter(|a| advertised.iter().any(|x| x == a)).collect();
                if algs.is_empty() {
                    algs.push("RS256");
                }
                Arc::new(RemoteKeys::new(jwks_uri, KeyFormat::Jwks, self.http.clone(), &algs))
            }
        };
        // client_secret_basic unless the upstream supports only client_secret_post.
        let auth_type = match meta.token_endpoint_auth_methods_supported() {
            Some(m)
                if !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && m.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ if self.settings.client_secret.is_none() => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        };
        tracing::info!(issuer = %self.settings.issuer, "discovered the upstream OpenID provider");
        Ok(Discovered { meta, keys, auth_type, at: Instant::now() })
    }

    fn client(&self, d: &Discovered, redirect_uri: &str) -> Result<Client, ConnectorError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ConnectorError::Config(format!("callback URL {redirect_uri:?} is not a URL: {e}")))?;
        Ok(Client::from_provider_metadata(
            d.meta.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.as_ref().map(|s| openidconnect::ClientSecret::new(s.secret().to_owned())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(d.auth_type.clone()))
    }

    /// Verifies an ID token: signature, `iss`, `aud`, `azp`, times, and `nonce` when expected.
    async fn verify_id_token(
        &self,
        d: &Discovered,
        raw: &str,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, ConnectorError> {
        let claims = verify_jwt(raw, &d.keys).await?;
        let e = Expectations {
            issuer: &self.settings.issuer,
            audience: Some(&self.settings.client_id),
            now: now(),
            leeway: LEEWAY,
        };
        check_claims(&claims, &e).map_err(|err| match err {
            ConnectorError::InvalidResponse(m) => ConnectorError::InvalidResponse(format!("ID token: {m}")),
            other => other,
        })?;
        let several_audiences = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.settings.client_id => {
                return Err(ConnectorError::InvalidResponse(format!("ID token was issued to {azp:?}")));
            }
            None if several_audiences => {
                return Err(ConnectorError::InvalidResponse("ID token has several audiences and no azp".into()));
            }
            _ => {}
        }
        if let Some(expected) = nonce {
            let got = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(got.as_bytes(), expected.as_bytes())) {
                return Err(ConnectorError::InvalidResponse("ID token nonce does not match this login".into()));
            }
        }
        Ok(claims)
    }

    /// Adds the userinfo claims (their `sub` must match) to the ID token's.
    async fn with_userinfo(
        &self,
        d: &Discovered,
        access_token: &str,
        mut claims: Map<String, Value>,
    ) -> Result<Map<String, Value>, ConnectorError> {
        let Some(url) = d.meta.userinfo_endpoint().filter(|_| self.settings.userinfo) else {
            return Ok(claims);
        };
        let res = self
            .http
            .get(url.url().clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| upstream_error("userinfo", &e))?;
        if !res.status().is_success() {
            return Err(ConnectorError::Upstream(format!("userinfo: HTTP {}", res.status())));
        }
        let is_jwt = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/jwt"));
        let info: Map<String, Value> = if is_jwt {
            let body = res.text().await.map_err(|e| upstream_error("userinfo", &e))?;
            verify_jwt(body.trim(), &d.keys).await?
        } else {
            res.json().await.map_err(|e| ConnectorError::Upstream(format!("userinfo is not a JSON object: {e}")))?
        };
        let sub = claims.get("sub").and_then(Value::as_str);
        if info.get("sub").and_then(Value::as_str) != sub {
            return Err(ConnectorError::InvalidResponse("userinfo is about another subject".into()));
        }
        for (k, v) in info {
            if !matches!(k.as_str(), "iss" | "aud" | "exp" | "iat" | "nbf" | "nonce" | "azp") {
                claims.insert(k, v);
            }
        }
        Ok(claims)
    }

    fn identity(&self, claims: &Map<String, Value>, refresh_token: Option<String>) -> Result<Identity, ConnectorError> {
        let (upstream_id, mapped) =
            self.settings.claims.map(&Value::Object(claims.clone()), self.settings.insecure_skip_email_verified)?;
        let connector_data = refresh_token.map(grant_data).transpose()?;
        Ok(Identity { upstream_id, claims: mapped, connector_data })
    }
}

fn grant_data(refresh_token: String) -> Result<ConnectorData, ConnectorError> {
    serde_json::to_string(&GrantData { refresh_token })
        .map(ConnectorData::new)
        .map_err(|e| ConnectorError::Upstream(e.to_string()))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn http_client_error(what: &str, e: &HttpClientError<reqwest::Error>) -> ConnectorError {
    match e {
        HttpClientError::Reqwest(e) => upstream_error(what, e),
        other => ConnectorError::Upstream(format!("{what}: {other}")),
    }
}

fn discovery_error(e: &DiscoveryError<HttpClientError<reqwest::Error>>) -> ConnectorError {
    match e {
        DiscoveryError::Request(e) => http_client_error("discovery", e),
        DiscoveryError::Response(status, _, msg) => {
            ConnectorError::Upstream(format!("discovery: HTTP {status}: {msg}"))
        }
        DiscoveryError::Parse(e) => ConnectorError::Upstream(format!("discovery document is not valid: {e}")),
        DiscoveryError::Validation(m) => ConnectorError::InvalidResponse(format!("discovery: {m}")),
        other => ConnectorError::Upstream(format!("discovery: {other}")),
    }
}

/// The connector error for a token-endpoint failure. At refresh, `invalid_grant` (and
/// `access_denied`) mean the user or their grant is gone upstream.
fn token_error(e: TokenError, refreshing: bool) -> ConnectorError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let what = format!(
                "token endpoint: {}{}",
                r.error(),
                r.error_description().map(|d| format!(": {d}")).unwrap_or_default()
            );
            let denied = matches!(r.error(), CoreErrorResponseType::Extension(e) if e == "access_denied");
            match r.error() {
                CoreErrorResponseType::InvalidGrant if refreshing => ConnectorError::UserInvalid(what),
                _ if denied && refreshing => ConnectorError::UserInvalid(what),
                _ if denied => ConnectorError::Denied("The sign-in provider refused the login.".into()),
                CoreErrorResponseType::InvalidGrant => ConnectorError::InvalidResponse(what),
                CoreErrorResponseType::InvalidClient | CoreErrorResponseType::UnauthorizedClient => {
                    ConnectorError::Config(what)
                }
                _ => ConnectorError::Upstream(what),
            }
        }
        RequestTokenError::Request(e) => http_client_error("token endpoint", &e),
        RequestTokenError::Parse(e, _) => ConnectorError::Upstream(format!("token response is not valid: {e}")),
        RequestTokenError::Other(m) => ConnectorError::Upstream(format!("token endpoint: {m}")),
    }
}

#[async_trait]
impl CallbackConnector for OidcConnector {
    fn choices(&self) -> Vec<UpstreamChoice> {
        vec![UpstreamChoice { provider: String::new(), label: self.settings.label.clone() }]
    }

    async fn login_url(
        &self,
        _scopes: &Scopes,
        callback_url: &str,
        state: &str,
        options: &LoginOptions,
    ) -> Result<(String, ConnectorData), ConnectorError> {
        let d = self.discovery().await?;
        let client = self.client(&d, callback_url)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = Nonce::new_random();
        let (state_owned, nonce_owned) = (state.to_owned(), nonce.clone());
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state_owned),
                move || nonce_owned,
            )
            .set_pkce_challenge(challenge);
        for s in self.settings.scopes.iter().filter(|s| s.as_str() != "openid") {
            req = req.add_scope(openidconnect::Scope::new(s.clone()));
        }
        let prompt = options.prompt.as_deref().filter(|p| self.settings.pass_prompt && !p.is_empty());
        let login_hint = options.login_hint.as_deref().filter(|h| self.settings.pass_login_hint && !h.is_empty());
        for (k, v) in &self.settings.extra_auth_params {
            // What the authorization request asked for wins over configured defaults.
            if (k == "prompt" && prompt.is_some()) || (k == "login_hint" && login_hint.is_some()) {
                continue;
            }
            req = req.add_extra_param(k.as_str(), v.as_str());
        }
        if let Some(p) = prompt {
            req = req.add_extra_param("prompt", p);
        }
        if let Some(h) = login_hint {
            req = req.add_extra_param("login_hint", h);
        }
        let (url, _, _) = req.url();
        let kept = Kept {
            state: state.to_owned(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            redirect_uri: callback_url.to_owned(),
        };
        let kept = serde_json::to_string(&kept).map_err(|e| ConnectorError::Upstream(e.to_string()))?;
        Ok((url.into(), ConnectorData::new(kept)))
    }

    async fn handle_callback(
        &self,
        _scopes: &Scopes,
        kept: ConnectorData,
        params: &CallbackParams,
    ) -> Result<Identity, ConnectorError> {
        let kept: Kept = serde_json::from_str(kept.secret())
            .map_err(|_| ConnectorError::InvalidResponse("this sign-in's kept state is unreadable".into()))?;
        if params.get("state") != Some(kept.state.as_str()) {
            return Err(ConnectorError::InvalidResponse("state does not match this sign-in".into()));
        }
        let d = self.discovery().await?;
        // RFC 9207 mix-up defence.
        match params.get("iss") {
            Some(iss) if iss != self.settings.issuer => {
                return Err(ConnectorError::InvalidResponse(format!("the response came from issuer {iss:?}")));
            }
            None if d.meta.additional_metadata().authorization_response_iss_parameter_supported == Some(true) => {
                return Err(ConnectorError::InvalidResponse("the response has no iss parameter".into()));
            }
            _ => {}
        }
        let code = params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectorError::InvalidResponse("the upstream sent no code".into()))?;
        let client = self.client(&d, &kept.redirect_uri)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ConnectorError::Config(format!("upstream has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(kept.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| token_error(e, false))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| ConnectorError::InvalidResponse("the upstream sent no ID token".into()))?
            .to_string();
        let claims = self.verify_id_token(&d, &id_token, Some(&kept.nonce)).await?;
        let claims = self.with_userinfo(&d, token.access_token().secret(), claims).await?;
        let refresh_token = token.refresh_token().map(|t| t.secret().clone());
        if self.settings.refresh_upstream && refresh_token.is_none() {
            return Err(ConnectorError::Config(
                "refresh_upstream is on but the upstream returned no refresh token (request offline_access)".into(),
            ));
        }
        self.identity(&claims, refresh_token.filter(|_| self.settings.refresh_upstream))
    }
}

#[async_trait]
impl RefreshConnector for OidcConnector {
    /// Parallel Keybridge refreshes of one grant (allowed within `refresh_reuse_grace`) would
    /// present the same upstream refresh token twice, and an upstream that rotates refresh tokens
    /// and detects reuse (Auth0, node-oidc-provider) would revoke the user's session. So refreshes
    /// of one upstream token run one at a time, and a second within [`REUSE_WINDOW`] gets the
    /// first one's result.
    async fn refresh(&self, _scopes: &Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let key = identity.connector_data.as_ref().map(|d| Sha256Digest::of(d.secret()).as_str().to_owned());
        let Some(key) = key else { return self.refresh_once(identity).await };
        let slot = {
            let mut recent =
                self.recent.lock().map_err(|_| ConnectorError::Upstream("refresh cache poisoned".into()))?;
            recent.retain(|_, v| {
                Arc::strong_count(v) > 1
                    || v.try_lock().map(|g| g.as_ref().is_some_and(|(t, _)| t.elapsed() < REUSE_WINDOW)).unwrap_or(true)
            });
            recent.entry(key).or_default().clone()
        };
        let mut done = slot.lock().await;
        if let Some((at, fresh)) = done.as_ref()
            && at.elapsed() < REUSE_WINDOW
        {
            return Ok(fresh.clone());
        }
        let fresh = self.refresh_once(identity).await?;
        *done = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

impl OidcConnector {
    async fn refresh_once(&self, identity: Identity) -> Result<Identity, ConnectorError> {
        let data: GrantData =
            identity.connector_data.as_ref().and_then(|d| serde_json::from_str(d.secret()).ok()).ok_or_else(|| {
                ConnectorError::UserInvalid("no upstream refresh token was kept; sign in again".into())
            })?;
        let d = self.discovery().await?;
        let client = Client::from_provider_metadata(
            d.meta.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.as_ref().map(|s| openidconnect::ClientSecret::new(s.secret().to_owned())),
        )
        .set_auth_type(d.auth_type.clone());
        let rt = RefreshToken::new(data.refresh_token.clone());
        let token = client
            .exchange_refresh_token(&rt)
            .map_err(|e| ConnectorError::Config(format!("upstream has no token endpoint: {e}")))?
            .request_async(&self.http)
            .await
            .map_err(|e| token_error(e, true))?;
        let refresh_token = token.refresh_token().map(|t| t.secret().clone()).unwrap_or(data.refresh_token);
        let access_token = token.access_token().secret();
        let claims = match token.id_token() {
            Some(t) => {
                let claims = self.verify_id_token(&d, &t.to_string(), None).await?;
                self.with_userinfo(&d, access_token, claims).await?
            }
            None if self.settings.userinfo && d.meta.userinfo_endpoint().is_some() => {
                self.userinfo_only(&d, access_token).await?
            }
            None => {
                // Nothing says who this is: the accepted refresh token is the whole re-check.
                let mut fresh = identity;
                fresh.connector_data = Some(grant_data(refresh_token)?);
                return Ok(fresh);
            }
        };
        let fresh = self.identity(&claims, Some(refresh_token))?;
        if fresh.upstream_id != identity.upstream_id {
            return Err(ConnectorError::InvalidResponse("the refreshed tokens are about another user".into()));
        }
        Ok(fresh)
    }

    async fn userinfo_only(&self, d: &Discovered, access_token: &str) -> Result<Map<String, Value>, ConnectorError> {
        let Some(url) = d.meta.userinfo_endpoint() else { return Ok(Map::new()) };
        let res = self
            .http
            .get(url.url().clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| upstream_error("userinfo", &e))?;
        match res.status() {
            s if s.is_success() => {
                res.json().await.map_err(|e| ConnectorError::Upstream(format!("userinfo is not a JSON object: {e}")))
            }
            reqwest::StatusCode::UNAUTHORIZED => Err(ConnectorError::UserInvalid("userinfo refused the token".into())),
            s => Err(ConnectorError::Upstream(format!("userinfo: HTTP {s}"))),
        }
    }
}
