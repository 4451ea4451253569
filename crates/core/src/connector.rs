//! Upstream connectors, as small capability traits (after Dex's `connector` package).
//!
//! A connector takes parsed data, never an HTTP request, and gets its HTTP client injected.
//! **Invariant:** upstream tokens live only in [`ConnectorData`], never in a Keybridge token.

use std::sync::Arc;

use async_trait::async_trait;

use crate::identity::Identity;
use crate::scope::Scopes;
use crate::types::{ConnectorData, ConnectorId, Password};

/// Why a connector could not log someone in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The upstream refused the login; the message is safe to show the person.
    #[error("{0}")]
    Denied(String),
    /// The upstream could not be reached, timed out, or answered with an HTTP error.
    #[error("upstream failure: {0}")]
    Upstream(String),
    /// The upstream's answer failed verification: a bad signature, wrong `iss` or `aud`, an
    /// expired token, a nonce or state mismatch.
    #[error("upstream response failed verification: {0}")]
    InvalidResponse(String),
    /// The user is gone or disabled upstream (refresh fails with `invalid_grant`).
    #[error("user no longer valid upstream: {0}")]
    UserInvalid(String),
    /// The connector is misconfigured.
    #[error("connector misconfigured: {0}")]
    Config(String),
}

/// A connector with its own email-and-password form on Keybridge's login page.
#[async_trait]
pub trait PasswordConnector: Send + Sync {
    /// Checks credentials. `Ok(None)` means wrong email or password: one answer for both.
    async fn login(
        &self,
        scopes: &Scopes,
        username: &str,
        password: &Password,
    ) -> Result<Option<Identity>, ConnectorError>;
    /// The label of the username field ("Email").
    fn username_label(&self) -> &str {
        "Email"
    }
}

/// The data a callback connector gets back from the upstream's redirect.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    /// Every query parameter of the callback, in order.
    pub query: Vec<(String, String)>,
}

impl CallbackParams {
    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A button on the login page that starts an upstream redirect ("Continue with Google").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamChoice {
    /// Passed back as [`LoginOptions::provider`]; empty for a connector with one upstream.
    pub provider: String,
    /// The button's label.
    pub label: String,
}

/// What the authorization request and the person chose, passed to the upstream.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// The upstream sub-provider chosen on the login page (Supabase's `provider=google`, say).
    pub provider: Option<String>,
    /// OIDC `login_hint` from the authorization request.
    pub login_hint: Option<String>,
    /// OIDC `prompt` from the authorization request.
    pub prompt: Option<String>,
}

/// A connector that redirects the browser upstream and handles its callback.
///
/// Keybridge gives each connector its own callback URL (`/callback/{id}`, RFC 9700 §4.4.2 mix-up
/// defence) and an opaque `state` that the upstream must send back (in `state`, or inside the
/// callback URL for upstreams that drop it). What [`login_url`](Self::login_url) returns to keep
/// (PKCE verifier, nonce) is stored with the authorization request and handed back exactly once.
#[async_trait]
pub trait CallbackConnector: Send + Sync {
    /// The buttons to show; one entry with an empty `provider` for a plain OIDC upstream.
    fn choices(&self) -> Vec<UpstreamChoice>;
    /// The upstream URL to send the browser to, and the data to keep server-side.
    async fn login_url(
        &self,
        scopes: &Scopes,
        callback_url: &str,
        state: &str,
        options: &LoginOptions,
    ) -> Result<(String, ConnectorData), ConnectorError>;
    /// Completes the login from the upstream's callback.
    async fn handle_callback(
        &self,
        scopes: &Scopes,
        kept: ConnectorData,
        params: &CallbackParams,
    ) -> Result<Identity, ConnectorError>;
}

/// What a token hand-off page loads: the provider's browser SDK signs the person in, and the page
/// posts the resulting token to Keybridge, bound by CSRF to the authorization request.
#[derive(Debug, Clone)]
pub struct HandoffPage {
    /// The glue script that drives the provider's SDK on the page and posts the token. It reads
    /// the `data-*` attributes of `#keybridge-handoff` (`action`, `req`, `csrf`, `config`) and
    /// submits a form with `req`, `csrf` and `token`.
    pub glue_js: &'static str,
    /// Script URLs to load (the provider's SDK), allowed by the page's CSP.
    pub scripts: Vec<String>,
    /// Origins the SDK talks to, allowed as `connect-src` and `frame-src`.
    pub origins: Vec<String>,
    /// Public configuration for the SDK (never secrets).
    pub config: serde_json::Value,
}

/// A connector that accepts a token obtained by the provider's own browser SDK.
#[async_trait]
pub trait HandoffConnector: Send + Sync {
    /// What the hand-off page loads.
    fn page(&self) -> HandoffPage;
    /// Verifies a handed-off token and returns the identity it proves.
    async fn verify(&self, scopes: &Scopes, token: &str) -> Result<Identity, ConnectorError>;
}

/// A connector that can re-check a user with the upstream at refresh.
#[async_trait]
pub trait RefreshConnector: Send + Sync {
    /// Re-checks the user. `UserInvalid` fails the refresh with `invalid_grant`.
    async fn refresh(&self, scopes: &Scopes, identity: Identity) -> Result<Identity, ConnectorError>;
}

/// How a new upstream identity finds its Keybridge user (after Keycloak's first-broker-login).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    /// What links a new identity to an existing user.
    pub link_by: LinkBy,
    /// This upstream verifies every email it asserts: treat its emails as verified.
    pub trust_email: bool,
    /// What an identity whose email matches an existing user, but cannot be linked, gets.
    pub on_conflict: OnConflict,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        Self { link_by: LinkBy::VerifiedEmail, trust_email: false, on_conflict: OnConflict::NewUser }
    }
}

/// `link_by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkBy {
    /// Link when this upstream asserts the email is verified and the existing link's email was
    /// verified too. Never on an unverified email: that is the account-takeover path.
    VerifiedEmail,
    /// A new identity is always a new user.
    None,
}

/// `on_email_conflict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Make a new user.
    NewUser,
    /// Refuse the login with an explanation.
    Deny,
}

/// A configured connector: a name and the capabilities it has (after Dex's small interfaces).
#[derive(Clone)]
pub struct Connector {
    /// `connectors[].id`.
    pub id: ConnectorId,
    /// Display name on the chooser.
    pub name: String,
    /// An email-and-password form on Keybridge's login page.
    pub password: Option<Arc<dyn PasswordConnector>>,
    /// Redirects to the upstream and back.
    pub callback: Option<Arc<dyn CallbackConnector>>,
    /// A page where the provider's SDK signs the person in and hands Keybridge a token.
    pub handoff: Option<Arc<dyn HandoffConnector>>,
    /// Its refresh re-check, when it has one and it is configured.
    pub refresher: Option<Arc<dyn RefreshConnector>>,
    /// How its new identities are linked to existing users.
    pub link: LinkPolicy,
}

impl Connector {
    /// A connector with no capabilities yet and the default link policy.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: ConnectorId::new(id),
            name: name.into(),
            password: None,
            callback: None,
            handoff: None,
            refresher: None,
            link: LinkPolicy::default(),
        }
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password", &self.password.is_some())
            .field("callback", &self.callback.is_some())
            .field("handoff", &self.handoff.is_some())
            .field("refresher", &self.refresher.is_some())
            .finish()
    }
}
