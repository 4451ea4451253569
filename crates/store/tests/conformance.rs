//! The storage conformance suite, run against [`MemoryStore`].

use std::sync::Arc;

use keybridge_core::store::Store;
use keybridge_store::MemoryStore;

async fn make_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

keybridge_store::conformance_tests!(make_store);
