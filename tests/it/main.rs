//! Keybridge's integration tests: the real server over real HTTP, one module per feature.
//! All integration tests share this one binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth0_upstream;
mod authorize;
mod clerk_upstream;
mod discovery;
mod firebase;
mod gpt;
mod linking;
mod login;
mod malformed;
mod oidc_failures;
mod oidc_rp;
mod oidc_upstream;
mod ops;
mod refresh;
mod supabase;
mod token;
mod upstream;
mod userinfo;

use base64::Engine as _;

/// The claims of a JWT, unverified (verification is tested where it matters).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The header of a JWT.
pub fn jwt_header(jwt: &str) -> serde_json::Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}
