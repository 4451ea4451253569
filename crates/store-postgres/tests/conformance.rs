//! The storage conformance suite against PostgreSQL: each case on its own cloned database.

use std::sync::Arc;

use keybridge_core::store::Store;

async fn make_store() -> Arc<dyn Store> {
    Arc::new(keybridge_testkit::pg::test_store().await)
}

keybridge_store::conformance_tests!(make_store);
