//! [`KeyManager`]: the keys, their rotation, the JWKS, and [`JwtSigner`].

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use josekit::jws::{JwsHeader, JwsVerifier};
use keybridge_core::clock::{Clock as _, SystemClock, UnixTime};
use keybridge_core::signer::{JwtSigner, SignError, VerifyError};
use keybridge_core::store::{SigningKeyRecord, StorageError, Store};
use keybridge_core::types::{ConnectorData, KeyId};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::keys::{KeySet, active_record, generate_record};
use crate::seal::Sealer;
use crate::{Algorithm, TokenError};

/// How many times [`KeyManager::rotate`] retries after losing a compare-and-swap.
const ROTATE_ATTEMPTS: usize = 3;

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What `keybridge keys list` shows about a stored key: no private material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// `kid`.
    pub kid: KeyId,
    /// `alg`, as stored.
    pub alg: String,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it stopped signing (`None` while active).
    pub retired_at: Option<UnixTime>,
    /// When it leaves the JWKS.
    pub expires_at: Option<UnixTime>,
    /// Whether it signs new tokens.
    pub active: bool,
    /// Whether it is in the JWKS (and verifies tokens) as of the last load.
    pub published: bool,
}

/// Owns Keybridge's signing keys: loads or creates them, rotates them, publishes the JWKS, and
/// signs and verifies JWTs ([`JwtSigner`]).
///
/// The keys live in an immutable snapshot swapped atomically ([`ArcSwap`]); signing and
/// verifying never lock and never parse PEM.
pub struct KeyManager {
    store: Arc<dyn Store>,
    /// The configured algorithm: what new keys are generated with.
    alg: Algorithm,
    retain_secs: i64,
    publish_delay: i64,
    sealer: Arc<Sealer>,
    pub(crate) keys: ArcSwap<KeySet>,
    /// Serialises read-and-swap, so a slow reload cannot swap in an older snapshot over a newer one.
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.load();
        f.debug_struct("KeyManager")
            .field("alg", &self.alg)
            .field("retain_secs", &self.retain_secs)
            .field("active_kid", &keys.active.kid)
            .field("published", &keys.published.len())
            .finish_non_exhaustive()
    }
}

/// How keys are made, kept and rotated.
#[derive(Clone, Debug)]
pub struct KeyOptions {
    /// What new keys are generated with.
    pub alg: Algorithm,
    /// How long a retired key stays published: the longest token lifetime.
    pub retain_secs: i64,
    /// How long a new key is published before it signs (replicas reload and relying parties
    /// refetch the JWKS in that time). The key it replaces signs until then.
    pub publish_delay: i64,
    /// Encryption of private keys at rest.
    pub sealer: Arc<Sealer>,
}

impl KeyOptions {
    /// No publish delay, no encryption.
    pub fn new(alg: Algorithm, retain_secs: i64) -> Self {
        Self { alg, retain_secs, publish_delay: 0, sealer: Arc::new(Sealer::none()) }
    }
}

/// A generated record with its private key sealed for storage.
async fn sealed_record(sealer: &Sealer, alg: Algorithm, now: UnixTime) -> Result<SigningKeyRecord, TokenError> {
    let mut record = generate_record(alg, now).await?;
    record.private_pem = ConnectorData::new(sealer.seal(record.kid.as_str(), record.private_pem.secret())?);
    Ok(record)
}

impl KeyManager {
    /// [`KeyManager::load_or_create_with`] without a publish delay or encryption.
    pub async fn load_or_create(
        store: Arc<dyn Store>,
        alg: Algorithm,
        now: UnixTime,
        retain_secs: i64,
    ) -> Result<Arc<KeyManager>, TokenError> {
        Self::load_or_create_with(store, KeyOptions::new(alg, retain_secs), now).await
    }

    /// Loads keys from the store; if there is no active key, or the active key's alg differs
    /// from `alg`, generates a new key for `alg` and installs it with
    /// [`Store::rotate_signing_key`] (compare-and-swap), retiring the old one until
    /// `now + retain_secs`. If another replica wins the race, its key is used.
    ///
    /// `retain_secs` is how long a retired key stays published: the longest token lifetime.
    pub async fn load_or_create_with(
        store: Arc<dyn Store>,
        opts: KeyOptions,
        now: UnixTime,
    ) -> Result<Arc<KeyManager>, TokenError> {
        let KeyOptions { alg, retain_secs, publish_delay, sealer } = opts;
        let mut records = store.list_signing_keys().await?;
        let current = active_record(&records).map(|r| (r.kid.clone(), r.alg.clone()));
        let needs_key = match &current {
            None => true,
            Some((_, stored_alg)) => stored_alg != alg.as_str(),
        };
        if needs_key {
            let expected = current.as_ref().map(|(kid, _)| kid.clone());
            let record = sealed_record(&sealer, alg, now).await?;
            let old_expires = now.saturating_add(publish_delay).saturating_add(retain_secs);
            match store.rotate_signing_key(expected.as_ref(), &record, now, old_expires).await {
                Ok(()) => {
                    tracing::info!(kid = %record.kid, %alg, retired = ?expected, "installed a new signing key");
                }
                Err(StorageError::Conflict(msg)) => {
                    tracing::info!(%msg, "another replica installed a signing key first; using it");
                }
                Err(e) => return Err(e.into()),
            }
            records = store.list_signing_keys().await?;
        }
        let set = KeySet::build(&records, now, None, &sealer, publish_delay)?;
        if set.active.alg != alg {
            tracing::warn!(
                configured = %alg,
                active = %set.active.alg,
                kid = %set.active.kid,
                "the active signing key (installed by another replica) uses a different algorithm"
            );
        }
        Ok(Arc::new(KeyManager {
            store,
            alg,
            retain_secs,
            publish_delay,
            sealer,
            keys: ArcSwap::from_pointee(set),
            refresh: tokio::sync::Mutex::new(()),
        }))
    }

    /// Re-reads the keys from the store and swaps them in atomically: use it after another
    /// replica rotated. Keys whose `expires_at` has passed (by the system clock) are dropped
    /// from the JWKS; see [`KeyManager::reload_at`] to supply the time.
    pub async fn reload(&self) -> Result<(), TokenError> {
        self.reload_at(SystemClock.now()).await
    }

    /// [`KeyManager::reload`], with keys whose `expires_at <= now` dropped from the JWKS.
    pub async fn reload_at(&self, now: UnixTime) -> Result<(), TokenError> {
        let _guard = self.refresh.lock().await;
        let records = self.store.list_signing_keys().await?;
        let set = {
            let previous = self.keys.load();
            KeySet::build(&records, now, Some(&previous), &self.sealer, self.publish_delay)?
        };
        self.keys.store(Arc::new(set));
        Ok(())
    }

    /// Forces a rotation: a new active key (of the configured algorithm); the old one is retired
    /// and stays in the JWKS until `now + retain_secs`. Retries a few times if another replica
    /// rotates concurrently. Returns the new key's `kid`.
    pub async fn rotate(&self, now: UnixTime) -> Result<KeyId, TokenError> {
        let record = sealed_record(&self.sealer, self.alg, now).await?;
        for _ in 0..ROTATE_ATTEMPTS {
            let expected = self.keys.load().active.kid.clone();
            match self.try_install(&expected, &record, now).await {
                Ok(()) => {
                    tracing::info!(kid = %record.kid, retired = %expected, "rotated the signing key");
                    self.reload_at(now).await?;
                    return Ok(record.kid.clone());
                }
                Err(StorageError::Conflict(msg)) => {
                    tracing::info!(%msg, "signing key rotation raced another replica; re-reading");
                    self.reload_at(now).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TokenError::Storage(StorageError::Conflict(format!(
            "signing key rotation lost the compare-and-swap {ROTATE_ATTEMPTS} times"
        ))))
    }

    async fn try_install(
        &self,
        expected: &KeyId,
        record: &SigningKeyRecord,
        now: UnixTime,
    ) -> Result<(), StorageError> {
        let old_expires = now.saturating_add(self.publish_delay).saturating_add(self.retain_secs);
        self.store.rotate_signing_key(Some(expected), record, now, old_expires).await
    }

    /// The JWKS document (`{"keys":[...]}`), pre-serialised: public keys only, each with `kid`,
    /// `alg` and `use: "sig"`, the active key first. Cheap to clone.
    pub fn jwks_json(&self) -> Arc<[u8]> {
        Arc::clone(&self.keys.load().jwks)
    }

    /// The `kid` new tokens are signed with.
    pub fn active_kid(&self) -> KeyId {
        self.keys.load().signer.kid.clone()
    }

    /// The algorithm new tokens are signed with.
    pub fn active_algorithm(&self) -> Algorithm {
        self.keys.load().signer.alg
    }

    /// The newest key's creation time (rotation is due `rotation_period` after it).
    pub fn newest_key_created_at(&self) -> UnixTime {
        self.keys.load().infos.iter().find(|k| k.active).map_or(0, |k| k.created_at)
    }

    /// Every stored key as of the last load, newest first, without private material.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.keys.load().infos.clone()
    }
}

impl JwtSigner for KeyManager {
    fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, SignError> {
        let keys = self.keys.load();
        let key = &keys.signer;
        // josekit overwrites `alg` and `kid` from the signer anyway; setting them first fixes the
        // member order (josekit turns on serde_json's `preserve_order`): {"alg","kid","typ"}.
        let mut header = JwsHeader::new();
        header.set_algorithm(key.alg.as_str());
        header.set_key_id(key.kid.as_str());
        header.set_token_type(typ);
        let payload = serde_json::to_vec(claims).map_err(|e| SignError::Crypto(e.to_string()))?;
        josekit::jws::serialize_compact(&payload, &header, &*key.signer).map_err(|e| SignError::Crypto(e.to_string()))
    }

    fn verify(&self, token: &str, typ: &str) -> Result<Map<String, Value>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Invalid("token too long".into()));
        }
        let keys = self.keys.load();
        let keys: &KeySet = &keys;
        // Why the selector refused (josekit only reports "a verifier is not found").
        let reason: Cell<&'static str> = Cell::new("malformed token");
        let selected = Cell::new(false);
        let result = josekit::jws::deserialize_compact_with_selector(token, |header| {
            let Some(kid) = header.key_id() else {
                reason.set("missing kid");
                return Ok(None);
            };
            let Some(key) = keys.published.get(kid) else {
                reason.set("unknown kid");
                return Ok(None);
            };
            if header.algorithm() != Some(key.alg.as_str()) {
                reason.set("alg does not match the key");
                return Ok(None);
            }
            if header.token_type() != Some(typ) {
                reason.set("wrong typ");
                return Ok(None);
            }
            selected.set(true);
            Ok(Some(&*key.verifier as &dyn JwsVerifier))
        });
        let (payload, _header) = result.map_err(|e| {
            if selected.get() {
                tracing::debug!(error = %e, "JWT verification failed");
                match e {
                    josekit::JoseError::InvalidSignature(_) => VerifyError::Invalid("invalid signature".into()),
                    _ => VerifyError::Invalid("invalid token".into()),
                }
            } else {
                VerifyError::Invalid(reason.get().into())
            }
        })?;
        serde_json::from_slice::<Map<String, Value>>(&payload)
            .map_err(|_| VerifyError::Invalid("claims are not a JSON object".into()))
    }

    fn algorithm(&self) -> &'static str {
        self.keys.load().signer.alg.as_str()
    }
}
