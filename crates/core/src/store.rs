//! The storage trait every backend implements (memory, PostgreSQL), and its records.
//!
//! Methods that must be atomic say so; each backend proves it through the shared conformance
//! suite in `keybridge-store`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::identity::Claims;
use crate::scope::Scopes;
use crate::types::{AuthRequestId, ClientId, ConnectorData, ConnectorId, GrantId, KeyId, Sha256Digest, Subject};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No such record (or it has expired).
    #[error("not found")]
    NotFound,
    /// A record with that key exists.
    #[error("already exists")]
    AlreadyExists,
    /// A compare-and-swap lost: someone else changed the record first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached right now; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Result alias for storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// An authorization request in flight, between `/authorize` and a completed login.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Random id, used in login URLs.
    pub id: AuthRequestId,
    /// The client.
    pub client_id: ClientId,
    /// The validated redirect URI.
    pub redirect_uri: String,
    /// Whether the client sent `redirect_uri` (then `/token` must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    /// `state`, echoed byte for byte.
    pub state: Option<String>,
    /// Granted scopes.
    pub scopes: Scopes,
    /// OIDC `nonce`.
    pub nonce: Option<String>,
    /// PKCE S256 `code_challenge`.
    pub code_challenge: Option<String>,
    /// The connector chosen (by `connector_id`, or the only one).
    pub connector_id: Option<ConnectorId>,
    /// Digest of the CSRF token set in the browser's cookie and the login form.
    pub csrf_digest: Sha256Digest,
    /// Upstream correlation a callback connector keeps (single use, bound to this request).
    pub connector_state: Option<ConnectorData>,
    /// OIDC `login_hint`, passed upstream.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// OIDC `prompt`, passed upstream.
    #[serde(default)]
    pub prompt: Option<String>,
    /// When it lapses.
    pub expires_at: UnixTime,
}

/// An issued authorization code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthCodeRecord {
    /// Digest of the code.
    pub code_digest: Sha256Digest,
    /// The grant its redemption starts (decided at issue, so a replay can revoke it).
    pub grant_id: GrantId,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// Whether `/token` must repeat `redirect_uri`.
    pub redirect_uri_sent: bool,
    /// PKCE S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    /// OIDC nonce, for the ID token.
    pub nonce: Option<String>,
    /// What the grant will hold.
    pub grant: GrantData,
    /// When it lapses.
    pub expires_at: UnixTime,
    /// Set once redeemed; a redeemed code is kept until it lapses so a replay is recognised.
    pub redeemed: bool,
}

/// The user and authorization a grant carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantData {
    /// Keybridge's subject.
    pub subject: Subject,
    /// The connector the user logged in through.
    pub connector_id: ConnectorId,
    /// The user's id at that upstream.
    pub upstream_id: String,
    /// The claims at login (or at the last upstream re-check).
    pub claims: Claims,
    /// Upstream state for refresh re-checks.
    pub connector_data: Option<ConnectorData>,
    /// Granted scopes.
    pub scopes: Scopes,
    /// When the user authenticated.
    pub auth_time: UnixTime,
}

/// One authorization: the refresh-token family started by redeeming a code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    /// Id (the `sid` claim of tokens it issues).
    pub id: GrantId,
    /// The client.
    pub client_id: ClientId,
    /// User and authorization.
    pub data: GrantData,
    /// When it was created.
    pub created_at: UnixTime,
    /// Revoked grants issue nothing, and their access tokens fail at `/userinfo`.
    pub revoked: bool,
}

/// A refresh token, by digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    /// Digest of the token.
    pub token_digest: Sha256Digest,
    /// Its grant.
    pub grant_id: GrantId,
    /// The client it is bound to.
    pub client_id: ClientId,
    /// When it lapses.
    pub expires_at: UnixTime,
    /// When it was exchanged (rotated away), if it was.
    pub used_at: Option<UnixTime>,
}

/// The outcome of redeeming a code.
#[derive(Debug)]
pub enum RedeemOutcome {
    /// The code was unused; it is now redeemed and the grant and its first refresh token exist.
    Redeemed,
    /// The code had been redeemed before: the caller revokes this grant.
    AlreadyRedeemed(GrantId),
    /// No such unexpired code.
    NotFound,
}

/// The outcome of exchanging a refresh token.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per refresh, never stored
pub enum RefreshOutcome {
    /// The token was valid (unused, or used within the grace window); the new one is now stored.
    Rotated(Grant),
    /// A used token came back after the grace window: the grant is now revoked.
    ReuseDetected(GrantId),
    /// Issued to another client (nothing changed).
    WrongClient,
    /// Its grant was revoked.
    Revoked,
    /// No such unexpired token.
    NotFound,
}

/// A Keybridge user: a stable subject.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    /// The subject.
    pub subject: Subject,
    /// When it was created.
    pub created_at: UnixTime,
}

/// A link from an upstream identity to a user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdentityLink {
    /// The connector.
    pub connector_id: ConnectorId,
    /// The upstream's user id.
    pub upstream_id: String,
    /// The user.
    pub subject: Subject,
    /// The last claims the upstream asserted.
    pub claims: Claims,
    /// When they were last updated.
    pub updated_at: UnixTime,
}

/// Which grants to revoke in bulk (`keybridge tokens revoke`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantFilter {
    /// Every grant of a user.
    Subject(Subject),
    /// Every grant made through a connector.
    Connector(ConnectorId),
    /// Every grant of a client.
    Client(ClientId),
}

impl GrantFilter {
    /// Whether a grant matches.
    pub fn matches(&self, g: &Grant) -> bool {
        match self {
            Self::Subject(s) => &g.data.subject == s,
            Self::Connector(c) => &g.data.connector_id == c,
            Self::Client(c) => &g.client_id == c,
        }
    }
}

/// A signing key as stored. The private part is a secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// `kid`.
    pub kid: KeyId,
    /// `alg`.
    pub alg: String,
    /// Private key (PEM, PKCS#8), as a redacting secret.
    pub private_pem: ConnectorData,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it stopped signing (`None` while it is the active key).
    pub retired_at: Option<UnixTime>,
    /// When it leaves the JWKS (every token it signed has expired).
    pub expires_at: Option<UnixTime>,
}

/// Storage for everything Keybridge keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Saves an authorization request in flight.
    async fn put_auth_request(&self, req: &AuthRequest) -> StorageResult<()>;
    /// Reads an unexpired authorization request.
    async fn get_auth_request(&self, id: &AuthRequestId, now: UnixTime) -> StorageResult<AuthRequest>;
    /// Replaces an authorization request (e.g. to record the chosen connector or upstream state).
    async fn update_auth_request(&self, req: &AuthRequest) -> StorageResult<()>;
    /// Deletes and returns an unexpired authorization request, atomically: at most one caller gets it.
    async fn take_auth_request(&self, id: &AuthRequestId, now: UnixTime) -> StorageResult<AuthRequest>;

    /// Saves an authorization code.
    async fn put_auth_code(&self, code: &AuthCodeRecord) -> StorageResult<()>;
    /// Reads an unexpired code, redeemed or not.
    async fn get_auth_code(&self, digest: &Sha256Digest, now: UnixTime) -> StorageResult<AuthCodeRecord>;
    /// Atomically marks an unexpired, unredeemed code of `client_id` redeemed and stores its grant
    /// and first refresh token. Two concurrent calls never both return `Redeemed`.
    async fn redeem_auth_code(
        &self,
        digest: &Sha256Digest,
        client_id: &ClientId,
        grant: &Grant,
        refresh: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StorageResult<RedeemOutcome>;

    /// Reads a grant.
    async fn get_grant(&self, id: &GrantId) -> StorageResult<Grant>;
    /// Revokes a grant and every refresh token in its family. Revoking a missing grant is not an error.
    async fn revoke_grant(&self, id: &GrantId) -> StorageResult<()>;
    /// Exchanges a refresh token, atomically, under the rotation rules:
    /// an unused token is marked used and a new token (`new_digest`, in the same grant and for the
    /// same client) is stored; a used one within `grace` seconds of its use also yields a new token
    /// (concurrent refreshes); a used one after that revokes the grant. A token of another client
    /// changes nothing.
    async fn use_refresh_token(
        &self,
        digest: &Sha256Digest,
        client_id: &ClientId,
        new_digest: &Sha256Digest,
        new_expires_at: UnixTime,
        grace: i64,
        now: UnixTime,
    ) -> StorageResult<RefreshOutcome>;
    /// Replaces a grant's claims and connector data after an upstream re-check.
    async fn update_grant_data(&self, id: &GrantId, data: &GrantData) -> StorageResult<()>;

    /// The user linked to an upstream identity, with the link.
    async fn find_link(&self, connector_id: &ConnectorId, upstream_id: &str) -> StorageResult<Option<IdentityLink>>;
    /// Creates a user and its first link. `AlreadyExists` if the link exists (a concurrent first login).
    async fn create_user(&self, user: &User, link: &IdentityLink) -> StorageResult<()>;
    /// Updates a link's last-known claims.
    async fn update_link(&self, link: &IdentityLink) -> StorageResult<()>;
    /// Links whose last-known email equals `email`, compared case-insensitively.
    async fn find_links_by_email(&self, email: &str) -> StorageResult<Vec<IdentityLink>>;
    /// Every link of a user.
    async fn list_links(&self, subject: &Subject) -> StorageResult<Vec<IdentityLink>>;
    /// Links another upstream identity to an existing user. `AlreadyExists` if that identity is
    /// linked already; `NotFound` if the user does not exist.
    async fn create_link(&self, link: &IdentityLink) -> StorageResult<()>;
    /// Removes a link. `NotFound` if there is none.
    async fn delete_link(&self, connector_id: &ConnectorId, upstream_id: &str) -> StorageResult<()>;
    /// A user.
    async fn get_user(&self, subject: &Subject) -> StorageResult<User>;
    /// Every user, oldest first.
    async fn list_users(&self) -> StorageResult<Vec<User>>;
    /// Creates `users` and then `links`, atomically: all of them or none. `AlreadyExists` if any
    /// user or link exists; `NotFound` if a link names a user that exists in neither.
    async fn import(&self, users: &[User], links: &[IdentityLink]) -> StorageResult<()>;
    /// Revokes every grant matching `filter`; returns how many were live.
    async fn revoke_grants(&self, filter: &GrantFilter) -> StorageResult<u64>;

    /// Every stored signing key, active and retired.
    async fn list_signing_keys(&self) -> StorageResult<Vec<SigningKeyRecord>>;
    /// Makes `key` the active key if the active key is still `expected_active` (compare-and-swap),
    /// retiring the old one with `old_expires_at`. `Conflict` if another writer got there first.
    async fn rotate_signing_key(
        &self,
        expected_active: Option<&KeyId>,
        key: &SigningKeyRecord,
        now: UnixTime,
        old_expires_at: UnixTime,
    ) -> StorageResult<()>;

    /// Deletes up to `batch` expired records; returns how many went.
    async fn purge_expired(&self, now: UnixTime, batch: usize) -> StorageResult<usize>;
    /// Whether the backend answers.
    async fn ping(&self) -> StorageResult<()>;
}
