//! Key material: generation, parsing (once per key) and the published key set.

use std::collections::HashMap;
use std::sync::Arc;

use josekit::jwk::{Ed25519, Jwk, KeyPair as _};
use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier, RS256};
use keybridge_core::clock::UnixTime;
use keybridge_core::store::SigningKeyRecord;
use keybridge_core::types::{ConnectorData, KeyId, random_id};
use serde_json::{Map, Value};

use crate::manager::KeyInfo;
use crate::seal::Sealer;
use crate::{Algorithm, TokenError};

/// RSA modulus size for `RS256` keys.
const RSA_BITS: u32 = 2048;

/// A key parsed once: its josekit signer and verifier, and its public JWK.
pub(crate) struct PreparedKey {
    pub(crate) kid: KeyId,
    pub(crate) alg: Algorithm,
    pub(crate) signer: Box<dyn JwsSigner>,
    pub(crate) verifier: Box<dyn JwsVerifier>,
    /// The public JWK (with `kid`, `alg`, `use`), as published.
    pub(crate) public_jwk: Map<String, Value>,
}

impl PreparedKey {
    /// Parses a PKCS#8 PEM private key for `alg`.
    pub(crate) fn from_pem(kid: &KeyId, alg: Algorithm, pem: &[u8]) -> Result<Self, TokenError> {
        let (signer, mut jwk): (Box<dyn JwsSigner>, Jwk) = match alg {
            Algorithm::RS256 => {
                let pair = RS256.key_pair_from_pem(pem)?;
                let mut signer = RS256.signer_from_pem(pem)?;
                signer.set_key_id(kid.as_str());
                (Box::new(signer), pair.to_jwk_public_key())
            }
            Algorithm::ES256 => {
                // Checks the curve is P-256.
                let pair = ES256.key_pair_from_pem(pem)?;
                let mut signer = ES256.signer_from_pem(pem)?;
                signer.set_key_id(kid.as_str());
                (Box::new(signer), pair.to_jwk_public_key())
            }
            Algorithm::EdDSA => {
                let pair = EdDSA.key_pair_from_pem(pem)?;
                let mut signer = EdDSA.signer_from_pem(pem)?;
                signer.set_key_id(kid.as_str());
                (Box::new(signer), pair.to_jwk_public_key())
            }
        };
        if alg == Algorithm::EdDSA && jwk.curve() != Some("Ed25519") {
            return Err(TokenError::Crypto(format!(
                "key {kid}: EdDSA keys must be Ed25519, not {}",
                jwk.curve().unwrap_or("unknown")
            )));
        }
        jwk.set_key_id(kid.as_str());
        jwk.set_algorithm(alg.as_str());
        jwk.set_key_use("sig");
        let verifier: Box<dyn JwsVerifier> = match alg {
            Algorithm::RS256 => Box::new(RS256.verifier_from_jwk(&jwk)?),
            Algorithm::ES256 => Box::new(ES256.verifier_from_jwk(&jwk)?),
            Algorithm::EdDSA => Box::new(EdDSA.verifier_from_jwk(&jwk)?),
        };
        // Belt and braces: josekit checks a verifier's kid against the header's.
        if verifier.key_id() != Some(kid.as_str()) || signer.key_id() != Some(kid.as_str()) {
            return Err(TokenError::Crypto(format!("key {kid}: josekit lost the kid")));
        }
        let public_jwk: Map<String, Value> = jwk.into();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            if public_jwk.contains_key(private) {
                return Err(TokenError::Crypto(format!("key {kid}: public JWK holds private member {private:?}")));
            }
        }
        Ok(PreparedKey { kid: kid.clone(), alg, signer, verifier, public_jwk })
    }
}

/// Generates a fresh private key for `alg`, as PKCS#8 PEM.
fn generate_pem(alg: Algorithm) -> Result<String, TokenError> {
    let pem = match alg {
        Algorithm::RS256 => RS256.generate_key_pair(RSA_BITS)?.to_pem_private_key(),
        Algorithm::ES256 => ES256.generate_key_pair()?.to_pem_private_key(),
        Algorithm::EdDSA => EdDSA.generate_key_pair(Ed25519)?.to_pem_private_key(),
    };
    String::from_utf8(pem).map_err(|e| TokenError::Crypto(format!("generated PEM is not UTF-8: {e}")))
}

/// A new active key record (random `kid`), generated off the async executor (RSA takes a while).
pub(crate) async fn generate_record(alg: Algorithm, now: UnixTime) -> Result<SigningKeyRecord, TokenError> {
    let pem = tokio::task::spawn_blocking(move || generate_pem(alg))
        .await
        .map_err(|e| TokenError::Crypto(format!("key generation task failed: {e}")))??;
    let kid = KeyId::new(random_id());
    // Prove the stored form parses before anyone relies on it.
    PreparedKey::from_pem(&kid, alg, pem.as_bytes())?;
    Ok(SigningKeyRecord {
        kid,
        alg: alg.as_str().to_string(),
        private_pem: ConnectorData::new(pem),
        created_at: now,
        retired_at: None,
        expires_at: None,
    })
}

/// The active record: unretired, newest first (ties broken by `kid`, so every replica agrees).
pub(crate) fn active_record(records: &[SigningKeyRecord]) -> Option<&SigningKeyRecord> {
    records
        .iter()
        .filter(|r| r.retired_at.is_none())
        .max_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.kid.cmp(&b.kid)))
}

/// An immutable snapshot of the keys: swapped whole on load, reload and rotate.
pub(crate) struct KeySet {
    /// The newest key (the one rotation installed last).
    pub(crate) active: Arc<PreparedKey>,
    /// Signs new tokens: the active key once it has been published for the publish delay, the
    /// previous key until then (so every replica and relying party has the new key first).
    pub(crate) signer: Arc<PreparedKey>,
    /// Every published (unexpired) key, by `kid`, the active one included.
    pub(crate) published: HashMap<String, Arc<PreparedKey>>,
    /// `{"keys":[...]}`, active key first.
    pub(crate) jwks: Arc<[u8]>,
    /// Every stored key, newest first, without private material.
    pub(crate) infos: Vec<KeyInfo>,
}

impl KeySet {
    /// Builds the snapshot from the store's records. Keys in `previous` are reused rather
    /// than re-parsed. A retired key that does not parse is skipped (and logged); an active
    /// key that does not parse is an error.
    pub(crate) fn build(
        records: &[SigningKeyRecord],
        now: UnixTime,
        previous: Option<&KeySet>,
        sealer: &Sealer,
        publish_delay: i64,
    ) -> Result<KeySet, TokenError> {
        let active_rec = active_record(records).ok_or(TokenError::NoActiveKey)?;
        let prepare = |rec: &SigningKeyRecord| -> Result<Arc<PreparedKey>, TokenError> {
            let alg: Algorithm = rec.alg.parse()?;
            if let Some(prev) = previous.and_then(|p| p.published.get(rec.kid.as_str()))
                && prev.alg == alg
            {
                return Ok(Arc::clone(prev));
            }
            let pem = sealer.open(rec.kid.as_str(), rec.private_pem.secret())?;
            PreparedKey::from_pem(&rec.kid, alg, pem.as_bytes()).map(Arc::new)
        };

        let active = prepare(active_rec)?;

        let mut others: Vec<&SigningKeyRecord> = records
            .iter()
            .filter(|r| r.kid != active_rec.kid)
            .filter(|r| r.expires_at.is_none_or(|exp| exp > now))
            .collect();
        others.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.kid.cmp(&b.kid)));

        let mut published = HashMap::with_capacity(others.len() + 1);
        let mut jwks_keys = Vec::with_capacity(others.len() + 1);
        jwks_keys.push(Value::Object(active.public_jwk.clone()));
        published.insert(active.kid.as_str().to_string(), Arc::clone(&active));
        for rec in others {
            if published.contains_key(rec.kid.as_str()) {
                continue;
            }
            match prepare(rec) {
                Ok(key) => {
                    jwks_keys.push(Value::Object(key.public_jwk.clone()));
                    published.insert(rec.kid.as_str().to_string(), key);
                }
                Err(e) => {
                    tracing::warn!(kid = %rec.kid, alg = %rec.alg, error = %e, "skipping unusable retired signing key");
                }
            }
        }

        let mut doc = Map::new();
        doc.insert("keys".to_string(), Value::Array(jwks_keys));
        let jwks: Arc<[u8]> = serde_json::to_vec(&Value::Object(doc))
            .map_err(|e| TokenError::Crypto(format!("serialising the JWKS: {e}")))?
            .into();

        let mut infos: Vec<KeyInfo> = records
            .iter()
            .map(|r| KeyInfo {
                kid: r.kid.clone(),
                alg: r.alg.clone(),
                created_at: r.created_at,
                retired_at: r.retired_at,
                expires_at: r.expires_at,
                active: r.kid == active_rec.kid,
                published: published.contains_key(r.kid.as_str()),
            })
            .collect();
        infos.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.kid.cmp(&b.kid)));

        // Until the new key has been published for `publish_delay`, keep signing with the key it
        // replaced (the most recently retired one still published).
        let signer = if active_rec.created_at.saturating_add(publish_delay) > now {
            records
                .iter()
                .filter(|r| r.retired_at.is_some() && r.kid != active_rec.kid)
                .max_by_key(|r| (r.retired_at, r.created_at))
                .and_then(|r| published.get(r.kid.as_str()).cloned())
                .unwrap_or_else(|| Arc::clone(&active))
        } else {
            Arc::clone(&active)
        };

        Ok(KeySet { active, signer, published, jwks, infos })
    }
}
