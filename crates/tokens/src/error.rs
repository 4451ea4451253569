//! Errors.

use keybridge_core::store::StorageError;

/// A key-management failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The store failed (or a compare-and-swap kept losing).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Key generation, parsing or signing failed.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// An algorithm name Keybridge does not sign with.
    #[error("unsupported signing algorithm {0:?} (expected RS256, ES256 or EdDSA)")]
    UnsupportedAlgorithm(String),
    /// The store holds no active signing key.
    #[error("no active signing key in the store")]
    NoActiveKey,
}

impl From<josekit::JoseError> for TokenError {
    fn from(e: josekit::JoseError) -> Self {
        TokenError::Crypto(e.to_string())
    }
}
