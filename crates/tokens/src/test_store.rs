//! A tiny in-memory [`Store`] for these tests: only the signing-key methods work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use keybridge_core::clock::UnixTime;
use keybridge_core::store::{
    AuthCodeRecord, AuthRequest, Grant, GrantData, IdentityLink, RedeemOutcome, RefreshOutcome, SigningKeyRecord,
    StorageError, StorageResult, Store, User,
};
use keybridge_core::types::{AuthRequestId, ClientId, ConnectorId, GrantId, KeyId, Sha256Digest};

fn unused<T>() -> StorageResult<T> {
    Err(StorageError::Backend("unused".into()))
}

/// Signing keys in a vector, with compare-and-swap rotation, and a hook that lets "another
/// replica" win the next rotation.
#[derive(Default)]
pub(crate) struct TestStore {
    keys: Mutex<Vec<SigningKeyRecord>>,
    /// If set, the next `rotate_signing_key` first installs this key itself (as a competing
    /// replica would), so the caller's compare-and-swap then fails with `Conflict`.
    race: Mutex<Option<SigningKeyRecord>>,
    /// Successful rotations.
    pub(crate) rotations: AtomicUsize,
    /// `Conflict`s returned.
    pub(crate) conflicts: AtomicUsize,
}

impl TestStore {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Lets another "replica" win the next rotation with `winner`.
    pub(crate) fn race_next_rotation(&self, winner: SigningKeyRecord) {
        *self.race.lock().unwrap() = Some(winner);
    }

    /// Inserts a record as is.
    pub(crate) fn insert_raw(&self, record: SigningKeyRecord) {
        self.keys.lock().unwrap().push(record);
    }

    pub(crate) fn records(&self) -> Vec<SigningKeyRecord> {
        self.keys.lock().unwrap().clone()
    }

    fn cas(
        keys: &mut Vec<SigningKeyRecord>,
        expected_active: Option<&KeyId>,
        key: &SigningKeyRecord,
        now: UnixTime,
        old_expires_at: UnixTime,
    ) -> StorageResult<()> {
        let active = keys.iter().position(|k| k.retired_at.is_none());
        let active_kid = active.map(|i| keys[i].kid.clone());
        if active_kid.as_ref() != expected_active {
            return Err(StorageError::Conflict(format!("active key is {active_kid:?}, not {expected_active:?}")));
        }
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StorageError::AlreadyExists);
        }
        if let Some(i) = active {
            keys[i].retired_at = Some(now);
            keys[i].expires_at = Some(old_expires_at);
        }
        let mut new = key.clone();
        new.retired_at = None;
        new.expires_at = None;
        keys.push(new);
        Ok(())
    }
}

#[async_trait]
impl Store for TestStore {
    async fn put_auth_request(&self, _req: &AuthRequest) -> StorageResult<()> {
        unused()
    }
    async fn get_auth_request(&self, _id: &AuthRequestId, _now: UnixTime) -> StorageResult<AuthRequest> {
        unused()
    }
    async fn update_auth_request(&self, _req: &AuthRequest) -> StorageResult<()> {
        unused()
    }
    async fn take_auth_request(&self, _id: &AuthRequestId, _now: UnixTime) -> StorageResult<AuthRequest> {
        unused()
    }
    async fn put_auth_code(&self, _code: &AuthCodeRecord) -> StorageResult<()> {
        unused()
    }
    async fn get_auth_code(&self, _digest: &Sha256Digest, _now: UnixTime) -> StorageResult<AuthCodeRecord> {
        unused()
    }
    async fn redeem_auth_code(
        &self,
        _digest: &Sha256Digest,
        _client_id: &ClientId,
        _grant: &Grant,
        _refresh: &keybridge_core::store::RefreshTokenRecord,
        _now: UnixTime,
    ) -> StorageResult<RedeemOutcome> {
        unused()
    }
    async fn get_grant(&self, _id: &GrantId) -> StorageResult<Grant> {
        unused()
    }
    async fn revoke_grant(&self, _id: &GrantId) -> StorageResult<()> {
        unused()
    }
    async fn use_refresh_token(
        &self,
        _digest: &Sha256Digest,
        _client_id: &ClientId,
        _new_digest: &Sha256Digest,
        _new_expires_at: UnixTime,
        _grace: i64,
        _now: UnixTime,
    ) -> StorageResult<RefreshOutcome> {
        unused()
    }
    async fn update_grant_data(&self, _id: &GrantId, _data: &GrantData) -> StorageResult<()> {
        unused()
    }
    async fn find_link(&self, _connector_id: &ConnectorId, _upstream_id: &str) -> StorageResult<Option<IdentityLink>> {
        unused()
    }
    async fn create_user(&self, _user: &User, _link: &IdentityLink) -> StorageResult<()> {
        unused()
    }
    async fn update_link(&self, _link: &IdentityLink) -> StorageResult<()> {
        unused()
    }

    async fn find_links_by_email(&self, _email: &str) -> StorageResult<Vec<IdentityLink>> {
        unused()
    }

    async fn list_links(&self, _subject: &keybridge_core::types::Subject) -> StorageResult<Vec<IdentityLink>> {
        unused()
    }

    async fn create_link(&self, _link: &IdentityLink) -> StorageResult<()> {
        unused()
    }

    async fn delete_link(
        &self,
        _connector_id: &keybridge_core::types::ConnectorId,
        _upstream_id: &str,
    ) -> StorageResult<()> {
        unused()
    }

    async fn get_user(&self, _subject: &keybridge_core::types::Subject) -> StorageResult<User> {
        unused()
    }

    async fn list_users(&self) -> StorageResult<Vec<User>> {
        unused()
    }

    async fn import(&self, _users: &[User], _links: &[IdentityLink]) -> StorageResult<()> {
        unused()
    }

    async fn revoke_grants(&self, _filter: &keybridge_core::store::GrantFilter) -> StorageResult<u64> {
        unused()
    }

    async fn list_signing_keys(&self) -> StorageResult<Vec<SigningKeyRecord>> {
        Ok(self.keys.lock().unwrap().clone())
    }

    async fn rotate_signing_key(
        &self,
        expected_active: Option<&KeyId>,
        key: &SigningKeyRecord,
        now: UnixTime,
        old_expires_at: UnixTime,
    ) -> StorageResult<()> {
        let mut keys = self.keys.lock().unwrap();
        if let Some(winner) = self.race.lock().unwrap().take() {
            let current = keys.iter().find(|k| k.retired_at.is_none()).map(|k| k.kid.clone());
            Self::cas(&mut keys, current.as_ref(), &winner, now, old_expires_at)?;
        }
        let result = Self::cas(&mut keys, expected_active, key, now, old_expires_at);
        match &result {
            Ok(()) => self.rotations.fetch_add(1, Ordering::SeqCst),
            Err(_) => self.conflicts.fetch_add(1, Ordering::SeqCst),
        };
        result
    }

    async fn purge_expired(&self, _now: UnixTime, _batch: usize) -> StorageResult<usize> {
        unused()
    }
    async fn ping(&self) -> StorageResult<()> {
        Ok(())
    }
}
