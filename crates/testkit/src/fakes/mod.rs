//! In-process fakes of upstream services (loopback HTTP, ephemeral ports, keys made per run).

pub mod auth0;
pub mod clerk;
pub mod google_certs;
pub mod supabase;
