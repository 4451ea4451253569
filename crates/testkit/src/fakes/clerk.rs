//! A fake Clerk instance (upstreams.md §3, checklist §3.3): the Frontend API's JWKS (an RSA key
//! with `kid = ins_...`), its OAuth-application endpoints (`/oauth/authorize` with S256 only and
//! `state` of at least 8 characters, `/oauth/token` with Basic or body client auth,
//! `/oauth/userinfo` in Clerk's shape, discovery with an issuer without a trailing slash), and a
//! test-only minting of v2 session tokens (60 s, `azp`, `sid`, `sub`, `v: 2`, optional `o` and
//! `sts`), as Clerk's browser SDK would hand them to a page.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::auth0::{FakeOp, Flavor, RsaKey, now, random};

/// A running fake Clerk instance.
pub struct ClerkFake {
    /// The OAuth side (users, faults, blocking): Clerk's flavour of the fake provider.
    pub op: FakeOp,
}

/// How to mint a session token.
#[derive(Debug, Clone)]
pub struct SessionToken {
    /// `sub`.
    pub user_id: String,
    /// `azp` (absent when `None`).
    pub azp: Option<String>,
    /// `sts` (`pending` for a session that must still choose an organization).
    pub status: Option<String>,
    /// `iss` instead of the Frontend API URL.
    pub issuer: Option<String>,
    /// Seconds added to now for `iat`/`nbf`/`exp` (negative: an old token).
    pub shift: i64,
    /// Extra claims ("Customize session token": `email`, `name`, ...).
    pub extra: Map<String, Value>,
    /// Sign with a key the JWKS does not publish.
    pub rogue_key: bool,
}

impl SessionToken {
    /// A fresh, complete session for `user_id`, made on `azp`.
    pub fn new(user_id: &str, azp: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            azp: Some(azp.to_owned()),
            status: None,
            issuer: None,
            shift: 0,
            extra: Map::new(),
            rogue_key: false,
        }
    }
}

impl ClerkFake {
    /// Starts a fake instance with an OAuth application `client_id` / `client_secret`.
    pub fn start(client_id: &str, client_secret: &str) -> Self {
        let key = RsaKey::generate(&format!("ins_{}", random(12).replace(['-', '_'], "x")));
        Self { op: FakeOp::start_with_key(Flavor::Clerk, client_id, client_secret, key) }
    }

    /// The Frontend API URL (the issuer).
    pub fn frontend_api(&self) -> &str {
        &self.op.issuer
    }

    /// A publishable key that encodes this instance's Frontend API host.
    pub fn publishable_key(&self) -> String {
        let host = self.op.addr.to_string();
        format!("pk_test_{}", base64::engine::general_purpose::STANDARD.encode(format!("{host}$")))
    }

    /// Mints a v2 session token as Clerk's SDK would hand it to the page.
    pub fn session_token(&self, t: &SessionToken) -> String {
        let now = now() + t.shift;
        let mut c = json!({
            "iss": t.issuer.clone().unwrap_or_else(|| self.op.issuer.clone()),
            "sub": t.user_id,
            "sid": format!("sess_{}", random(10)),
            "jti": random(10),
            "iat": now,
            "nbf": now - 10,
            "exp": now + 60,
            "v": 2,
            "fva": [7, -1],
        });
        if let Some(azp) = &t.azp {
            c["azp"] = json!(azp);
        }
        if let Some(sts) = &t.status {
            c["sts"] = json!(sts);
        }
        let obj = c.as_object_mut().unwrap();
        for (k, v) in &t.extra {
            obj.insert(k.clone(), v.clone());
        }
        if t.rogue_key { RsaKey::generate(&self.op.key().kid).sign(&c) } else { self.op.key().sign(&c) }
    }
}
