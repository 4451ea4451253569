//! What a connector returns after a login: normalised claims plus opaque upstream state (as Dex's `Identity`).

use serde::{Deserialize, Serialize};

use crate::types::ConnectorData;

/// Normalised user claims, as the upstream asserted them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `email_verified`: whether the upstream asserts it verified `email`.
    #[serde(default)]
    pub email_verified: bool,
    /// `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `preferred_username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `picture`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// `groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// An upstream login's result.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The user's id at the upstream (never put in Keybridge's tokens by default).
    pub upstream_id: String,
    /// Normalised claims.
    pub claims: Claims,
    /// State kept for refresh. Never shared with end users, clients, or through any API.
    pub connector_data: Option<ConnectorData>,
}
