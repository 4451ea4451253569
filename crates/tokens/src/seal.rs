//! Signing keys encrypted at rest: AES-256-GCM (OpenSSL), with the `kid` as associated data so a
//! sealed key cannot be moved to another row. A list of old encryption keys keeps older sealed
//! keys readable while the encryption key itself is rotated.
//!
//! Stored form: `kbenc1:<key id>:<base64(nonce || ciphertext || tag)>`, where the key id is the
//! first 8 hex digits of the encryption key's SHA-256. Unsealed keys are stored as plain PEM.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

use crate::TokenError;

const PREFIX: &str = "kbenc1:";

struct SealKey {
    id: String,
    key: [u8; 32],
}

impl SealKey {
    fn new(key: [u8; 32]) -> Self {
        let digest = openssl::sha::sha256(&key);
        Self { id: digest.iter().take(4).map(|b| format!("{b:02x}")).collect(), key }
    }
}

/// Seals and opens private keys.
pub struct Sealer {
    current: Option<SealKey>,
    old: Vec<SealKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// Parses a 256-bit key written as base64 (standard or URL-safe) or as 64 hex digits.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32).map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0)).collect::<Vec<u8>>()
    } else {
        STANDARD
            .decode(t)
            .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
            .map_err(|_| "not base64 or hex".to_string())?
    };
    bytes.try_into().map_err(|b: Vec<u8>| format!("must be 32 bytes (256 bits), got {}", b.len()))
}

impl Sealer {
    /// No encryption: keys are stored as plain PEM.
    pub fn none() -> Self {
        Self { current: None, old: Vec::new() }
    }

    /// Seals with `current`; opens with `current` or any of `old`.
    pub fn new(current: Option<[u8; 32]>, old: Vec<[u8; 32]>) -> Self {
        Self { current: current.map(SealKey::new), old: old.into_iter().map(SealKey::new).collect() }
    }

    /// Whether new keys are encrypted.
    pub fn is_sealing(&self) -> bool {
        self.current.is_some()
    }

    /// Seals `pem` for the key `kid`.
    pub fn seal(&self, kid: &str, pem: &str) -> Result<String, TokenError> {
        let Some(k) = &self.current else { return Ok(pem.to_owned()) };
        let mut nonce = [0u8; 12];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| TokenError::Crypto(e.to_string()))?;
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(Cipher::aes_256_gcm(), &k.key, Some(&nonce), kid.as_bytes(), pem.as_bytes(), &mut tag)
            .map_err(|e| TokenError::Crypto(format!("sealing a signing key: {e}")))?;
        let mut blob = Vec::with_capacity(12 + ct.len() + 16);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        blob.extend_from_slice(&tag);
        Ok(format!("{PREFIX}{}:{}", k.id, STANDARD.encode(blob)))
    }

    /// Opens a stored key (sealed or plain).
    pub fn open(&self, kid: &str, stored: &str) -> Result<String, TokenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let (id, b64) =
            rest.split_once(':').ok_or_else(|| TokenError::Crypto(format!("key {kid}: malformed sealed key")))?;
        let k = self.current.iter().chain(self.old.iter()).find(|k| k.id == id).ok_or_else(|| {
            TokenError::Crypto(format!(
                "key {kid} is encrypted with encryption key {id}, which is not configured (add it to keys.old_encryption_keys)"
            ))
        })?;
        let blob = STANDARD.decode(b64).map_err(|_| TokenError::Crypto(format!("key {kid}: malformed sealed key")))?;
        if blob.len() < 12 + 16 {
            return Err(TokenError::Crypto(format!("key {kid}: malformed sealed key")));
        }
        let (nonce, rest) = blob.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        let pem = decrypt_aead(Cipher::aes_256_gcm(), &k.key, Some(nonce), kid.as_bytes(), ct, tag).map_err(|_| {
            TokenError::Crypto(format!(
                "key {kid}: decryption failed (wrong encryption key, or the row was tampered with)"
            ))
        })?;
        String::from_utf8(pem).map_err(|_| TokenError::Crypto(format!("key {kid}: decrypted key is not text")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_the_kid() {
        let k1 = [7u8; 32];
        let s = Sealer::new(Some(k1), vec![]);
        let sealed = s.seal("kid-1", "-----BEGIN PRIVATE KEY-----\nabc").unwrap();
        assert!(sealed.starts_with("kbenc1:"));
        assert!(!sealed.contains("BEGIN"));
        assert_eq!(s.open("kid-1", &sealed).unwrap(), "-----BEGIN PRIVATE KEY-----\nabc");
        assert!(s.open("kid-2", &sealed).is_err(), "moved to another row");
        // Rotating the encryption key: the old one still opens old rows.
        let rotated = Sealer::new(Some([9u8; 32]), vec![k1]);
        assert_eq!(rotated.open("kid-1", &sealed).unwrap(), "-----BEGIN PRIVATE KEY-----\nabc");
        let err = Sealer::new(Some([9u8; 32]), vec![]).open("kid-1", &sealed).unwrap_err().to_string();
        assert!(err.contains("not configured"), "{err}");
        // Plain PEM passes through (keys stored before encryption was turned on).
        assert_eq!(rotated.open("k", "-----BEGIN X").unwrap(), "-----BEGIN X");
    }

    #[test]
    fn parses_keys_in_base64_and_hex() {
        assert_eq!(parse_key(&STANDARD.encode([1u8; 32])).unwrap(), [1u8; 32]);
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert!(parse_key("short").is_err());
        assert!(parse_key(&STANDARD.encode([1u8; 16])).unwrap_err().contains("32 bytes"));
    }
}
