//! Keybridge's storage backends and the conformance suite every backend runs.
//!
//! # Contents
//! - [`MemoryStore`]: an in-process [`Store`](keybridge_core::store::Store) behind one mutex, for
//!   single-instance deployments and tests. Everything is lost on restart.
//! - `conformance` (feature `conformance`): one `async fn` per storage behaviour the
//!   [`Store`](keybridge_core::store::Store) trait documents, and the `conformance_tests!` macro that
//!   turns them into one `#[test]` per case for any backend:
//!
//! ```ignore
//! async fn make_store() -> std::sync::Arc<dyn keybridge_core::store::Store> {
//!     std::sync::Arc::new(keybridge_store::MemoryStore::new())
//! }
//! keybridge_store::conformance_tests!(make_store);
//! ```
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod memory;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use memory::MemoryStore;
