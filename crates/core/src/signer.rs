//! The signing boundary: core asks for JWTs; `keybridge-tokens` owns the keys.

use serde_json::{Map, Value};

/// A signing or verification failure.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No usable key.
    #[error("no signing key available: {0}")]
    NoKey(String),
    /// The crypto library failed.
    #[error("signing failed: {0}")]
    Crypto(String),
}

/// Why a presented JWT was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a JWT, or an unknown `kid`, bad signature, or wrong `typ`/`alg`.
    #[error("{0}")]
    Invalid(String),
}

/// Signs Keybridge's JWTs and verifies its own access tokens.
pub trait JwtSigner: Send + Sync + 'static {
    /// Signs `claims` with the current key; the header carries `typ`, `alg` and `kid`.
    fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, SignError>;
    /// Verifies the signature against any published key, and that the header's `typ` equals `typ`.
    /// Returns the claims. Time and issuer checks are the caller's.
    fn verify(&self, token: &str, typ: &str) -> Result<Map<String, Value>, VerifyError>;
    /// The algorithm new tokens are signed with (`RS256`, `ES256`, `EdDSA`).
    fn algorithm(&self) -> &'static str;
}
