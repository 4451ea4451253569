//! The `firebase` connector: people sign in with Firebase Authentication, and Keybridge turns
//! that into its own OAuth/OIDC tokens (Firebase Auth cannot be an OAuth provider for third
//! parties itself).
//!
//! - **Email and password** on Keybridge's own form, checked through the Identity Toolkit REST API
//!   (`accounts:signInWithPassword`). Wrong passwords, unknown emails and disabled accounts get one
//!   answer, so the form does not reveal who has an account.
//! - **SDK hand-off**: a Keybridge page loads the Firebase JS SDK, signs the person in with the
//!   providers the project enabled (Google, GitHub, ...) and posts the ID token back, bound by
//!   CSRF to the authorization request.
//! - **ID-token verification** for both ([`verify`]): RS256 with Google's x509 certificates.
//! - **Refresh re-check** (`refresh_upstream: true`): each Keybridge refresh runs the Secure Token
//!   refresh, so a disabled or deleted Firebase user loses access.
//! - **Emulator mode** (`emulator: true`): the Firebase Auth Emulator's unsigned tokens are
//!   accepted, only while the configured hosts are loopback.
//!
//! ```yaml
//! connectors:
//!   - id: firebase
//!     type: firebase
//!     name: My app account
//!     config:
//!       project_id: my-project
//!       api_key_env: FIREBASE_API_KEY
//!       password: true
//!       handoff:
//!         providers: [google.com, github.com]
//!       refresh_upstream: true
//! ```
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

pub mod api;
mod config;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keybridge_connector_common::{KeyFormat, RemoteKeys, http_client};
use keybridge_core::clock::{Clock, SystemClock};
use keybridge_core::connector::{
    Connector, ConnectorError, HandoffConnector, HandoffPage, PasswordConnector, RefreshConnector,
};
use keybridge_core::identity::Identity;
use keybridge_core::scope::Scopes;
use keybridge_core::types::{ConnectorData, Password};
use serde::{Deserialize, Serialize};
use url::Url;

use config::Settings;
pub use config::{
    ApiKey, Config, DEFAULT_CERTS_URL, DEFAULT_IDENTITY_TOOLKIT_URL, DEFAULT_SDK_URL, DEFAULT_SECURETOKEN_URL,
    GAPI_SCRIPT_URL, HandoffConfig, is_loopback,
};
use verify::{Verified, Verifier, provider_label};

/// The hand-off page's glue script (served at `/assets/handoff/{id}.js`; the page has no inline script).
pub const GLUE_JS: &str = include_str!("handoff.js");

/// The longest hand-off form value accepted (an ID token plus a refresh token, as JSON).
const MAX_HANDOFF: usize = 32 * 1024;

/// What the connector keeps for refresh, inside the redacting [`ConnectorData`].
#[derive(Serialize, Deserialize)]
struct Kept {
    refresh_token: String,
}

/// What the hand-off page posts: the ID token and the refresh token, as JSON (a bare ID token
/// is accepted too).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handed {
    id_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The connector.
pub struct FirebaseConnector {
    settings: Settings,
    http: reqwest::Client,
    verifier: Verifier,
}

impl std::fmt::Debug for FirebaseConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirebaseConnector")
            .field("project_id", &self.settings.project_id)
            .field("password", &self.settings.password)
            .field("handoff", &self.settings.handoff.is_some())
            .field("refresh_upstream", &self.settings.refresh_upstream)
            .field("emulator", &self.settings.emulator)
            .finish_non_exhaustive()
    }
}

impl FirebaseConnector {
    /// Validates the config and builds the connector. Returns every problem found, each prefixed
    /// with its path below the connector's `config`.
    pub fn open(config: Config) -> Result<Self, Vec<String>> {
        let settings = config.validate()?;
        let http = http_client(settings.timeout).map_err(|e| vec![e.to_string()])?;
        let keys = RemoteKeys::new(settings.certs_url.clone(), KeyFormat::X509Map, http.clone(), &["RS256"]);
        let verifier = Verifier {
            project_id: settings.project_id.clone(),
            issuer: format!("https://securetoken.google.com/{}", settings.project_id),
            keys,
            emulator: settings.emulator,
            allowed_sign_in_providers: settings.allowed_sign_in_providers.clone(),
            clock: Arc::new(SystemClock),
        };
        Ok(Self { settings, http, verifier })
    }

    /// Uses another clock for token lifetimes (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.verifier.clock = clock;
        self
    }

    /// Sets how often an unknown `kid` may trigger a refetch of Google's certificates (tests).
    pub fn with_min_key_refetch(mut self, d: Duration) -> Self {
        let keys = RemoteKeys::new(self.settings.certs_url.clone(), KeyFormat::X509Map, self.http.clone(), &["RS256"]);
        self.verifier.keys = keys.with_min_refetch(d);
        self
    }

    /// Whether emulator mode is on (unsigned tokens accepted).
    pub fn emulator(&self) -> bool {
        self.settings.emulator
    }

    /// The Firebase project id.
    pub fn project_id(&self) -> &str {
        &self.settings.project_id
    }

    /// Verifies a Firebase ID token (both modes use this).
    pub async fn verify_id_token(&self, token: &str) -> Result<Verified, ConnectorError> {
        self.verifier.verify(token).await
    }

    /// The core connector with the capabilities this config turns on. Warns loudly in emulator mode.
    pub fn connector(self: &Arc<Self>, id: &str, name: &str) -> Connector {
        if self.settings.emulator {
            tracing::warn!(
                connector_id = id,
                project_id = %self.settings.project_id,
                identity_toolkit_url = %self.settings.identity_toolkit_url,
                "FIREBASE EMULATOR MODE: connector {id:?} accepts UNSIGNED ID tokens from the Firebase Auth Emulator; \
                 never use emulator: true in production"
            );
        }
        let mut c = Connector::new(id, name);
        if self.settings.password {
            c.password = Some(self.clone());
        }
        if self.settings.handoff.is_some() {
            c.handoff = Some(self.clone());
        }
        if self.settings.refresh_upstream {
            c.refresher = Some(self.clone());
        }
        c
    }

    fn kept(&self, refresh_token: Option<String>) -> Result<Option<ConnectorData>, ConnectorError> {
        if !self.settings.refresh_upstream {
            return Ok(None);
        }
        let refresh_token = refresh_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectorError::InvalidResponse("Firebase returned no refresh token".into()))?;
        let json = serde_json::to_string(&Kept { refresh_token })
            .map_err(|e| ConnectorError::InvalidResponse(format!("cannot keep the Firebase session: {e}")))?;
        Ok(Some(ConnectorData::new(json)))
    }

    /// The emulator's origin, when in emulator mode (the SDK's `useEmulator` URL).
    fn emulator_origin(&self) -> Option<String> {
        if !self.settings.emulator {
            return None;
        }
        Url::parse(&self.settings.identity_toolkit_url).ok().map(|u| u.origin().ascii_serialization())
    }

    async fn secure_token_refresh(&self, refresh_token: &str) -> Result<(Verified, String), ConnectorError> {
        let fresh =
            api::refresh(&self.http, &self.settings.securetoken_url, &self.settings.api_key, refresh_token).await?;
        let verified = self.verifier.verify(&fresh.id_token).await?;
        if fresh.user_id.as_deref().is_some_and(|u| u != verified.uid) {
            return Err(ConnectorError::InvalidResponse("the refreshed ID token is for another user".into()));
        }
        Ok((verified, fresh.refresh_token.filter(|t| !t.is_empty()).unwrap_or_else(|| refresh_token.to_owned())))
    }
}

fn identity(v: Verified, connector_data: Option<ConnectorData>) -> Identity {
    Identity { upstream_id: v.uid, claims: v.claims, connector_data }
}

#[async_trait]
impl PasswordConnector for FirebaseConnector {
    async fn login(
        &self,
        _scopes: &Scopes,
        username: &str,
        password: &Password,
    ) -> Result<Option<Identity>, ConnectorError> {
        let email = username.trim();
        if email.is_empty() || password.secret().is_empty() {
            return Ok(None);
        }
        match api::sign_in_with_password(
            &self.http,
            &self.settings.identity_toolkit_url,
            &self.settings.api_key,
            email,
            password.secret(),
        )
        .await
        {
            Ok(ok) => {
                let verified = self.verifier.verify(&ok.id_token).await?;
                let kept = self.kept(ok.refresh_token)?;
                Ok(Some(identity(verified, kept)))
            }
            Err(api::SignInFailure::WrongCredentials(reason)) => {
                tracing::info!(reason = %reason, "Firebase refused the email and password");
                Ok(None)
            }
            Err(api::SignInFailure::Error(e)) => Err(e),
        }
    }
}

#[async_trait]
impl HandoffConnector for FirebaseConnector {
    fn page(&self) -> HandoffPage {
        let Some(h) = &self.settings.handoff else {
            return HandoffPage {
                glue_js: GLUE_JS,
                scripts: Vec::new(),
                origins: Vec::new(),
                config: Default::default(),
            };
        };
        let scripts = vec![
            format!("{}/firebase-app-compat.js", h.sdk_url),
            format!("{}/firebase-auth-compat.js", h.sdk_url),
            GAPI_SCRIPT_URL.to_owned(),
        ];
        let mut origins: Vec<String> = Vec::new();
        for u in [&self.settings.identity_toolkit_url, &self.settings.securetoken_url] {
            if let Ok(u) = Url::parse(u) {
                origins.push(u.origin().ascii_serialization());
            }
        }
        origins.push(format!("https://{}", h.auth_domain));
        let mut seen = std::collections::HashSet::new();
        origins.retain(|o| seen.insert(o.clone()));
        let providers: Vec<serde_json::Value> = h
            .providers
            .iter()
            .map(|p| serde_json::json!({"id": p, "label": format!("Continue with {}", provider_label(p))}))
            .collect();
        let mut config = serde_json::json!({
            "apiKey": self.settings.api_key.secret(),
            "authDomain": h.auth_domain,
            "projectId": self.settings.project_id,
            "providers": providers,
        });
        if let (Some(origin), Some(obj)) = (self.emulator_origin(), config.as_object_mut()) {
            obj.insert("emulatorUrl".into(), origin.into());
        }
        HandoffPage { glue_js: GLUE_JS, scripts, origins, config }
    }

    async fn verify(&self, _scopes: &Scopes, token: &str) -> Result<Identity, ConnectorError> {
        let token = token.trim();
        if token.len() > MAX_HANDOFF {
            return Err(ConnectorError::InvalidResponse("the handed-off token is too long".into()));
        }
        let handed = if token.starts_with('{') {
            serde_json::from_str::<Handed>(token)
                .map_err(|_| ConnectorError::InvalidResponse("the hand-off is not the page's JSON".into()))?
        } else {
            Handed { id_token: token.to_owned(), refresh_token: None }
        };
        let verified = self.verifier.verify(&handed.id_token).await?;
        if !self.settings.refresh_upstream {
            return Ok(identity(verified, None));
        }
        // The refresh token comes from the browser: prove it is this user's session before keeping it.
        let Some(rt) = handed.refresh_token.filter(|t| !t.is_empty()) else {
            return Err(ConnectorError::InvalidResponse(
                "the hand-off carried no Firebase refresh token, which refresh_upstream needs".into(),
            ));
        };
        let (fresh, rt) = self.secure_token_refresh(&rt).await?;
        if fresh.uid != verified.uid {
            return Err(ConnectorError::InvalidResponse("the handed-off refresh token is another user's".into()));
        }
        let kept = self.kept(Some(rt))?;
        Ok(identity(verified, kept))
    }
}

#[async_trait]
impl RefreshConnector for FirebaseConnector {
    async fn refresh(&self, _scopes: &Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        let Some(data) = identity.connector_data.as_ref() else {
            return Err(ConnectorError::UserInvalid("no Firebase session was kept for this login".into()));
        };
        let kept: Kept = serde_json::from_str(data.secret())
            .map_err(|_| ConnectorError::UserInvalid("the kept Firebase session is unreadable".into()))?;
        let (fresh, rt) = self.secure_token_refresh(&kept.refresh_token).await?;
        if fresh.uid != identity.upstream_id {
            return Err(ConnectorError::UserInvalid("the kept Firebase session is another user's".into()));
        }
        let kept = self.kept(Some(rt))?;
        Ok(self::identity(fresh, kept))
    }
}

#[cfg(test)]
mod tests;
