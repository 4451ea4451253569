//! Keybridge's signing keys: generation and rotation through the [`Store`](keybridge_core::store::Store),
//! the published JWKS, and JWT minting and verification with [josekit].
//!
//! # Contents
//! - [`Algorithm`]: the supported JWS algorithms (`RS256`, `ES256`, `EdDSA`).
//! - [`KeyManager`]: loads (or creates) the keys, rotates them, serves the JWKS and implements
//!   [`JwtSigner`](keybridge_core::signer::JwtSigner).
//! - [`TokenError`]: what can go wrong.
//!
//! Private keys are parsed once per key when the key set is (re)loaded; the signing and
//! verifying hot paths only read a lock-free snapshot ([`arc_swap`]).
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod algorithm;
mod error;
mod keys;
mod manager;
pub mod seal;

#[cfg(test)]
mod test_store;
#[cfg(test)]
mod tests;

pub use algorithm::Algorithm;
pub use error::TokenError;
pub use manager::{KeyInfo, KeyManager, KeyOptions};
pub use seal::Sealer;
