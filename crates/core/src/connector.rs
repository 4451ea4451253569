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
    /// The upstream could not be reached, timed out, or answered nonsense.
    #[error("upstream failure: {0}")]
    Upstream(String),
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

/// A connector that redirects the browser upstream and handles its callback.
#[async_trait]
pub trait CallbackConnector: Send + Sync {
    /// The upstream URL to send the browser to, and the correlation to keep server-side
    /// (bound to the authorization request, single use).
    async fn login_url(
        &self,
        scopes: &Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<(String, ConnectorData), ConnectorError>;
    /// Completes the login from the upstream's callback.
    async fn handle_callback(
        &self,
        scopes: &Scopes,
        kept: ConnectorData,
        params: &CallbackParams,
    ) -> Result<Identity, ConnectorError>;
}

/// A connector that can re-check a user with the upstream at refresh.
#[async_trait]
pub trait RefreshConnector: Send + Sync {
    /// Re-checks the user. `UserInvalid` fails the refresh with `invalid_grant`.
    async fn refresh(&self, scopes: &Scopes, identity: Identity) -> Result<Identity, ConnectorError>;
}

/// How a connector logs people in.
#[derive(Clone)]
pub enum LoginMethod {
    /// Keybridge's own password form.
    Password(Arc<dyn PasswordConnector>),
    /// A redirect to the upstream and back.
    Callback(Arc<dyn CallbackConnector>),
}

/// A configured connector.
#[derive(Clone)]
pub struct Connector {
    /// `connectors[].id`.
    pub id: ConnectorId,
    /// Display name on the chooser.
    pub name: String,
    /// How it logs people in.
    pub login: LoginMethod,
    /// Its refresh re-check, when it has one and it is configured.
    pub refresher: Option<Arc<dyn RefreshConnector>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}
