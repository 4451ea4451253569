//! [`MemoryStore`]: every record in `HashMap`s behind one `std::sync::Mutex`.
//!
//! Every method takes the lock once, checks, then mutates, so each call is atomic with respect to
//! every other call. The lock is never held across an `.await` (there are none inside).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use keybridge_core::clock::UnixTime;
use keybridge_core::store::{
    AuthCodeRecord, AuthRequest, Grant, GrantData, GrantFilter, IdentityLink, RedeemOutcome, RefreshOutcome,
    RefreshTokenRecord, SigningKeyRecord, StorageError, StorageResult, Store, User,
};
use keybridge_core::types::{AuthRequestId, ClientId, ConnectorId, GrantId, KeyId, Sha256Digest, Subject};

/// An in-memory [`Store`]: for a single instance and for tests. Nothing survives a restart.
///
/// Semantics beyond what the trait spells out (the conformance suite pins each of them):
/// - `put_auth_request` and `put_auth_code` refuse an id/digest already stored (`AlreadyExists`),
///   so a stored code can never be reset to unredeemed.
/// - `revoke_grant` marks the grant revoked and keeps its refresh tokens until they lapse, so any
///   token of the family answers [`RefreshOutcome::Revoked`] rather than `NotFound`.
/// - A redeemed code answers `AlreadyRedeemed` whoever presents it (as `Provider` does after
///   `get_auth_code`); an unredeemed code presented by another client answers `NotFound` and is
///   not consumed.
/// - `purge_expired` deletes, in this order and up to `batch` in total: authorization requests and
///   codes with `expires_at <= now`, refresh tokens with `expires_at <= now`, grants no refresh
///   token refers to any more (a grant is created with its first token and every later token
///   outlives the ones before, so a grant without tokens has had its last token lapse; a revoked
///   grant therefore stays visible to `/userinfo` as revoked until its last token lapses), and
///   retired signing keys with `expires_at <= now`. The active key is never purged.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    auth_requests: HashMap<AuthRequestId, AuthRequest>,
    codes: HashMap<Sha256Digest, AuthCodeRecord>,
    grants: HashMap<GrantId, Grant>,
    refresh_tokens: HashMap<Sha256Digest, RefreshTokenRecord>,
    users: HashMap<Subject, User>,
    links: HashMap<(ConnectorId, String), IdentityLink>,
    /// In insertion order, so `list_signing_keys` is stable.
    signing_keys: Vec<SigningKeyRecord>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the maps. A panic while the lock was held cannot have left a half-applied change
    /// (every method checks before it mutates), so a poisoned lock is recovered, not propagated.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn link_key(connector_id: &ConnectorId, upstream_id: &str) -> (ConnectorId, String) {
    (connector_id.clone(), upstream_id.to_owned())
}

impl Inner {
    /// Marks a grant revoked. Its refresh tokens stay (until they lapse) and answer `Revoked`.
    fn revoke(&mut self, id: &GrantId) {
        if let Some(g) = self.grants.get_mut(id) {
            g.revoked = true;
        }
    }

    fn purge(&mut self, now: UnixTime, batch: usize) -> usize {
        let mut left = batch;

        let ids: Vec<AuthRequestId> =
            self.auth_requests.iter().filter(|(_, r)| r.expires_at <= now).map(|(k, _)| k.clone()).take(left).collect();
        for id in &ids {
            self.auth_requests.remove(id);
        }
        left -= ids.len();

        let digests: Vec<Sha256Digest> =
            self.codes.iter().filter(|(_, c)| c.expires_at <= now).map(|(k, _)| k.clone()).take(left).collect();
        for d in &digests {
            self.codes.remove(d);
        }
        left -= digests.len();

        let digests: Vec<Sha256Digest> = self
            .refresh_tokens
            .iter()
            .filter(|(_, t)| t.expires_at <= now)
            .map(|(k, _)| k.clone())
            .take(left)
            .collect();
        for d in &digests {
            self.refresh_tokens.remove(d);
        }
        left -= digests.len();

        let referenced: HashSet<&GrantId> = self.refresh_tokens.values().map(|t| &t.grant_id).collect();
        let orphans: Vec<GrantId> =
            self.grants.keys().filter(|id| !referenced.contains(id)).take(left).cloned().collect();
        for id in &orphans {
            self.grants.remove(id);
        }
        left -= orphans.len();

        let before = self.signing_keys.len();
        let mut budget = left;
        self.signing_keys.retain(|k| {
            let expired = k.retired_at.is_some() && k.expires_at.is_some_and(|e| e <= now);
            if expired && budget > 0 {
                budget -= 1;
                false
            } else {
                true
            }
        });
        left -= before - self.signing_keys.len();

        batch - left
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_auth_request(&self, req: &AuthRequest) -> StorageResult<()> {
        let mut inner = self.lock();
        if inner.auth_requests.contains_key(&req.id) {
            return Err(StorageError::AlreadyExists);
        }
        inner.auth_requests.insert(req.id.clone(), req.clone());
        Ok(())
    }

    async fn get_auth_request(&self, id: &AuthRequestId, now: UnixTime) -> StorageResult<AuthRequest> {
        match self.lock().auth_requests.get(id) {
            Some(r) if r.expires_at > now => Ok(r.clone()),
            _ => Err(StorageError::NotFound),
        }
    }

    async fn update_auth_request(&self, req: &AuthRequest) -> StorageResult<()> {
        match self.lock().auth_requests.get_mut(&req.id) {
            Some(slot) => {
                *slot = req.clone();
                Ok(())
            }
            None => Err(StorageError::NotFound),
        }
    }

    async fn take_auth_request(&self, id: &AuthRequestId, now: UnixTime) -> StorageResult<AuthRequest> {
        let mut inner = self.lock();
        match inner.auth_requests.get(id) {
            Some(r) if r.expires_at > now => inner.auth_requests.remove(id).ok_or(StorageError::NotFound),
            _ => Err(StorageError::NotFound),
        }
    }

    async fn put_auth_code(&self, code: &AuthCodeRecord) -> StorageResult<()> {
        let mut inner = self.lock();
        if inner.codes.contains_key(&code.code_digest) {
            return Err(StorageError::AlreadyExists);
        }
        inner.codes.insert(code.code_digest.clone(), code.clone());
        Ok(())
    }

    async fn get_auth_code(&self, digest: &Sha256Digest, now: UnixTime) -> StorageResult<AuthCodeRecord> {
        match self.lock().codes.get(digest) {
            Some(c) if c.expires_at > now => Ok(c.clone()),
            _ => Err(StorageError::NotFound),
        }
    }

    async fn redeem_auth_code(
        &self,
        digest: &Sha256Digest,
        client_id: &ClientId,
        grant: &Grant,
        refresh: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StorageResult<RedeemOutcome> {
        let mut inner = self.lock();
        let code = match inner.codes.get(digest) {
            Some(c) if c.expires_at > now => c,
            _ => return Ok(RedeemOutcome::NotFound),
        };
        if code.redeemed {
            return Ok(RedeemOutcome::AlreadyRedeemed(code.grant_id.clone()));
        }
        if &code.client_id != client_id {
            return Ok(RedeemOutcome::NotFound);
        }
        if inner.grants.contains_key(&grant.id) || inner.refresh_tokens.contains_key(&refresh.token_digest) {
            return Err(StorageError::AlreadyExists);
        }
        if let Some(c) = inner.codes.get_mut(digest) {
            c.redeemed = true;
        }
        inner.grants.insert(grant.id.clone(), grant.clone());
        inner.refresh_tokens.insert(refresh.token_digest.clone(), refresh.clone());
        Ok(RedeemOutcome::Redeemed)
    }

    async fn get_grant(&self, id: &GrantId) -> StorageResult<Grant> {
        self.lock().grants.get(id).cloned().ok_or(StorageError::NotFound)
    }

    async fn revoke_grant(&self, id: &GrantId) -> StorageResult<()> {
        self.lock().revoke(id);
        Ok(())
    }

    async fn use_refresh_token(
        &self,
        digest: &Sha256Digest,
        client_id: &ClientId,
        new_digest: &Sha256Digest,
        new_expires_at: UnixTime,
        grace: i64,
        now: UnixTime,
    ) -> StorageResult<RefreshOutcome> {
        let mut inner = self.lock();
        let token = match inner.refresh_tokens.get(digest) {
            Some(t) if t.expires_at > now => t.clone(),
            _ => return Ok(RefreshOutcome::NotFound),
        };
        if &token.client_id != client_id {
            return Ok(RefreshOutcome::WrongClient);
        }
        // A token whose grant is gone (cannot happen through this store) is treated as revoked.
        let grant = match inner.grants.get(&token.grant_id) {
            Some(g) if !g.revoked => g.clone(),
            _ => return Ok(RefreshOutcome::Revoked),
        };
        if let Some(used) = token.used_at
            && now.saturating_sub(used) > grace
        {
            inner.revoke(&grant.id);
            return Ok(RefreshOutcome::ReuseDetected(grant.id));
        }
        // Never overwrite a stored token (that could reset one to unused).
        if inner.refresh_tokens.contains_key(new_digest) {
            return Err(StorageError::AlreadyExists);
        }
        if token.used_at.is_none()
            && let Some(t) = inner.refresh_tokens.get_mut(digest)
        {
            t.used_at = Some(now);
        }
        inner.refresh_tokens.insert(
            new_digest.clone(),
            RefreshTokenRecord {
                token_digest: new_digest.clone(),
                grant_id: grant.id.clone(),
                client_id: token.client_id.clone(),
                expires_at: new_expires_at,
                used_at: None,
            },
        );
        Ok(RefreshOutcome::Rotated(grant))
    }

    async fn update_grant_data(&self, id: &GrantId, data: &GrantData) -> StorageResult<()> {
        match self.lock().grants.get_mut(id) {
            Some(g) => {
                g.data = data.clone();
                Ok(())
            }
            None => Err(StorageError::NotFound),
        }
    }

    async fn find_link(&self, connector_id: &ConnectorId, upstream_id: &str) -> StorageResult<Option<IdentityLink>> {
        Ok(self.lock().links.get(&link_key(connector_id, upstream_id)).cloned())
    }

    async fn create_user(&self, user: &User, link: &IdentityLink) -> StorageResult<()> {
        let mut inner = self.lock();
        let key = link_key(&link.connector_id, &link.upstream_id);
        if inner.links.contains_key(&key) || inner.users.contains_key(&user.subject) {
            return Err(StorageError::AlreadyExists);
        }
        inner.users.insert(user.subject.clone(), user.clone());
        inner.links.insert(key, link.clone());
        Ok(())
    }

    async fn update_link(&self, link: &IdentityLink) -> StorageResult<()> {
        match self.lock().links.get_mut(&link_key(&link.connector_id, &link.upstream_id)) {
            Some(slot) => {
                *slot = link.clone();
                Ok(())
            }
            None => Err(StorageError::NotFound),
        }
    }

    async fn find_links_by_email(&self, email: &str) -> StorageResult<Vec<IdentityLink>> {
        let want = email.to_lowercase();
        let mut out: Vec<IdentityLink> = self
            .lock()
            .links
            .values()
            .filter(|l| l.claims.email.as_deref().is_some_and(|e| e.to_lowercase() == want))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (a.updated_at, &a.connector_id, &a.upstream_id).cmp(&(b.updated_at, &b.connector_id, &b.upstream_id))
        });
        Ok(out)
    }

    async fn list_links(&self, subject: &Subject) -> StorageResult<Vec<IdentityLink>> {
        let mut out: Vec<IdentityLink> =
            self.lock().links.values().filter(|l| &l.subject == subject).cloned().collect();
        out.sort_by(|a, b| (&a.connector_id, &a.upstream_id).cmp(&(&b.connector_id, &b.upstream_id)));
        Ok(out)
    }

    async fn create_link(&self, link: &IdentityLink) -> StorageResult<()> {
        let mut inner = self.lock();
        if !inner.users.contains_key(&link.subject) {
            return Err(StorageError::NotFound);
        }
        let key = link_key(&link.connector_id, &link.upstream_id);
        if inner.links.contains_key(&key) {
            return Err(StorageError::AlreadyExists);
        }
        inner.links.insert(key, link.clone());
        Ok(())
    }

    async fn delete_link(&self, connector_id: &ConnectorId, upstream_id: &str) -> StorageResult<()> {
        self.lock().links.remove(&link_key(connector_id, upstream_id)).map(|_| ()).ok_or(StorageError::NotFound)
    }

    async fn get_user(&self, subject: &Subject) -> StorageResult<User> {
        self.lock().users.get(subject).cloned().ok_or(StorageError::NotFound)
    }

    async fn list_users(&self) -> StorageResult<Vec<User>> {
        let mut out: Vec<User> = self.lock().users.values().cloned().collect();
        out.sort_by(|a, b| (a.created_at, &a.subject).cmp(&(b.created_at, &b.subject)));
        Ok(out)
    }

    async fn import(&self, users: &[User], links: &[IdentityLink]) -> StorageResult<()> {
        let mut inner = self.lock();
        // Check everything first, then change: all or nothing.
        let mut new_users = HashSet::new();
        for u in users {
            if inner.users.contains_key(&u.subject) || !new_users.insert(&u.subject) {
                return Err(StorageError::AlreadyExists);
            }
        }
        let mut new_links = HashSet::new();
        for l in links {
            let key = link_key(&l.connector_id, &l.upstream_id);
            if inner.links.contains_key(&key) || !new_links.insert(key) {
                return Err(StorageError::AlreadyExists);
            }
            if !inner.users.contains_key(&l.subject) && !new_users.contains(&l.subject) {
                return Err(StorageError::NotFound);
            }
        }
        for u in users {
            inner.users.insert(u.subject.clone(), u.clone());
        }
        for l in links {
            inner.links.insert(link_key(&l.connector_id, &l.upstream_id), l.clone());
        }
        Ok(())
    }

    async fn revoke_grants(&self, filter: &GrantFilter) -> StorageResult<u64> {
        let mut n = 0;
        for g in self.lock().grants.values_mut() {
            if !g.revoked && filter.matches(g) {
                g.revoked = true;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn list_signing_keys(&self) -> StorageResult<Vec<SigningKeyRecord>> {
        Ok(self.lock().signing_keys.clone())
    }

    async fn rotate_signing_key(
        &self,
        expected_active: Option<&KeyId>,
        key: &SigningKeyRecord,
        now: UnixTime,
        old_expires_at: UnixTime,
    ) -> StorageResult<()> {
        let mut inner = self.lock();
        let active = inner.signing_keys.iter().position(|k| k.retired_at.is_none());
        let active_kid = active.and_then(|i| inner.signing_keys.get(i)).map(|k| &k.kid);
        if active_kid != expected_active {
            return Err(StorageError::Conflict(format!(
                "active signing key is {}, expected {}",
                active_kid.map_or("none", KeyId::as_str),
                expected_active.map_or("none", KeyId::as_str),
            )));
        }
        if inner.signing_keys.iter().any(|k| k.kid == key.kid) {
            return Err(StorageError::AlreadyExists);
        }
        if let Some(old) = active.and_then(|i| inner.signing_keys.get_mut(i)) {
            old.retired_at = Some(now);
            old.expires_at = Some(old_expires_at);
        }
        let mut new = key.clone();
        new.retired_at = None;
        inner.signing_keys.push(new);
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime, batch: usize) -> StorageResult<usize> {
        Ok(self.lock().purge(now, batch))
    }

    async fn ping(&self) -> StorageResult<()> {
        Ok(())
    }
}
