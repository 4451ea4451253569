//! Test doubles for the connector mechanism (as Dex's `connector/mock`): they exercise Keybridge's
//! upstream redirect, callback, hand-off and refresh plumbing. Real connectors are tested against
//! real or faithfully faked upstreams in their own suites.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keybridge_core::connector::{
    CallbackConnector, CallbackParams, Connector, ConnectorError, HandoffConnector, HandoffPage, LoginOptions,
    RefreshConnector, UpstreamChoice,
};
use keybridge_core::identity::{Claims, Identity};
use keybridge_core::scope::Scopes;
use keybridge_core::types::ConnectorData;

/// Where the mock upstream "lives".
pub const UPSTREAM: &str = "https://upstream.example/authorize";

/// How the mock upstream treats a user at refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamUser {
    /// Fine.
    Active,
    /// Disabled or deleted upstream.
    Gone,
    /// The upstream is down.
    Unreachable,
}

/// A callback + hand-off + refresh connector whose "upstream" is the test itself.
///
/// `/callback` codes: `user:<id>` logs `<id>` in (email `<id>@example.com`, verified);
/// `bad-signature` fails verification; `down` is an unreachable upstream.
/// Hand-off tokens: `token:<id>` logs `<id>` in; anything else fails verification.
#[derive(Default)]
pub struct MockUpstream {
    /// Per-user refresh behaviour (default: active).
    pub users: Mutex<HashMap<String, UpstreamUser>>,
    /// How many refresh re-checks ran.
    pub refreshes: Mutex<u32>,
    /// Sub-providers shown as buttons (empty: one plain button).
    pub providers: Vec<String>,
}

impl MockUpstream {
    /// Sets how a user fares at refresh.
    pub fn set_user(&self, id: &str, state: UpstreamUser) {
        self.users.lock().unwrap().insert(id.to_owned(), state);
    }

    /// A connector with every capability backed by this mock.
    pub fn connector(self: &Arc<Self>, id: &str) -> Connector {
        let mut c = Connector::new(id, format!("Mock {id}"));
        c.callback = Some(self.clone());
        c.handoff = Some(self.clone());
        c.refresher = Some(self.clone());
        c
    }

    /// A connector that only redirects upstream.
    pub fn callback_only(self: &Arc<Self>, id: &str) -> Connector {
        let mut c = Connector::new(id, format!("Mock {id}"));
        c.callback = Some(self.clone());
        c.refresher = Some(self.clone());
        c
    }
}

fn identity(id: &str) -> Identity {
    Identity {
        upstream_id: id.to_owned(),
        claims: Claims {
            email: Some(format!("{id}@example.com")),
            email_verified: true,
            name: Some(format!("User {id}")),
            ..Default::default()
        },
        connector_data: Some(ConnectorData::new(format!("upstream-refresh-token-for-{id}"))),
    }
}

#[async_trait]
impl CallbackConnector for MockUpstream {
    fn choices(&self) -> Vec<UpstreamChoice> {
        if self.providers.is_empty() {
            vec![UpstreamChoice { provider: String::new(), label: "Mock".into() }]
        } else {
            self.providers.iter().map(|p| UpstreamChoice { provider: p.clone(), label: p.clone() }).collect()
        }
    }

    async fn login_url(
        &self,
        _: &Scopes,
        callback_url: &str,
        state: &str,
        options: &LoginOptions,
    ) -> Result<(String, ConnectorData), ConnectorError> {
        let url = url::Url::parse_with_params(
            UPSTREAM,
            [("redirect_uri", callback_url), ("state", state), ("provider", options.provider.as_deref().unwrap_or(""))],
        )
        .map_err(|e| ConnectorError::Config(e.to_string()))?;
        Ok((url.into(), ConnectorData::new(format!("kept-for-{state}"))))
    }

    async fn handle_callback(
        &self,
        _: &Scopes,
        kept: ConnectorData,
        params: &CallbackParams,
    ) -> Result<Identity, ConnectorError> {
        let state = params.get("state").unwrap_or_default();
        if kept.secret() != format!("kept-for-{state}") {
            return Err(ConnectorError::InvalidResponse("kept data does not match".into()));
        }
        match params.get("code") {
            Some(code) if code.starts_with("user:") => Ok(identity(&code["user:".len()..])),
            Some("bad-signature") => Err(ConnectorError::InvalidResponse("ID token signature is invalid".into())),
            Some("down") => Err(ConnectorError::Upstream("connection refused".into())),
            _ => Err(ConnectorError::InvalidResponse("no code".into())),
        }
    }
}

#[async_trait]
impl HandoffConnector for MockUpstream {
    fn page(&self) -> HandoffPage {
        HandoffPage {
            glue_js: "/* mock glue */",
            scripts: vec!["https://sdk.upstream.example/sdk.js".into()],
            origins: vec!["https://api.upstream.example".into()],
            config: serde_json::json!({"apiKey": "public-key"}),
        }
    }

    async fn verify(&self, _: &Scopes, token: &str) -> Result<Identity, ConnectorError> {
        match token.strip_prefix("token:") {
            Some(id) => Ok(identity(id)),
            None => Err(ConnectorError::InvalidResponse("token signature is invalid".into())),
        }
    }
}

#[async_trait]
impl RefreshConnector for MockUpstream {
    async fn refresh(&self, _: &Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        *self.refreshes.lock().unwrap() += 1;
        let state = self.users.lock().unwrap().get(&identity.upstream_id).copied().unwrap_or(UpstreamUser::Active);
        match state {
            UpstreamUser::Active => {
                let mut fresh = identity;
                fresh.claims.name = Some("Refreshed Name".into());
                Ok(fresh)
            }
            UpstreamUser::Gone => Err(ConnectorError::UserInvalid("user disabled".into())),
            UpstreamUser::Unreachable => Err(ConnectorError::Upstream("timeout".into())),
        }
    }
}
