//! Keybridge's domain: what an OAuth 2.0 / OpenID Connect federation broker does, with no HTTP and no SQL.
//!
//! # Contents
//! - [`types`]: newtypes for every protocol identifier and secret.
//! - [`client`]: registered OAuth clients and client authentication (RFC 6749 §2.3).
//! - [`authorize`]: the `/authorize` check pipeline (RFC 6749 §4.1.1, RFC 7636, RFC 9207).
//! - [`grants`]: the token endpoint's grant registry (`authorization_code`, `refresh_token`).
//! - [`connector`]: the small capability traits upstream connectors implement.
//! - [`store`]: the storage trait every backend implements, and its records.
//! - [`provider`]: [`provider::Provider`], which ties clients, connectors, storage and signing together.
//!
//! **Invariant:** nothing here knows about HTTP status codes, HTML or SQL.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

pub mod authorize;
pub mod client;
pub mod clock;
pub mod connector;
pub mod error;
pub mod grants;
pub mod identity;
pub mod params;
pub mod provider;
pub mod scope;
pub mod signer;
pub mod store;
pub mod types;
pub mod upstream;
pub mod userinfo;
pub mod users;

pub use error::OAuthError;
