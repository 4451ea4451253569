//! Firebase ID-token verification, as the Admin SDK's `verifyIdToken` does it
//! (`src/auth/token-verifier.ts` in firebase-admin-node).
//!
//! RS256 only, `kid` looked up in Google's x509 certificates ([`RemoteKeys`] caches them for the
//! response's `max-age` and refetches once on an unknown `kid`); `aud` is the project id; `iss` is
//! `https://securetoken.google.com/<project>`; `exp`, `iat` and `auth_time` are checked with a small
//! skew; `sub` is 1 to 128 characters. In emulator mode the emulator's unsigned tokens (`alg: none`,
//! an empty signature) are accepted, as the Admin SDK accepts them when `FIREBASE_AUTH_EMULATOR_HOST`
//! is set; every claim is still checked.

use std::sync::Arc;

use keybridge_connector_common::{Expectations, RemoteKeys, check_claims, decode, verify_jwt};
use keybridge_core::clock::Clock;
use keybridge_core::connector::ConnectorError;
use keybridge_core::identity::Claims;
use serde_json::{Map, Value};

/// Allowed clock skew, in seconds.
pub const LEEWAY: i64 = 30;

/// The `aud` of a Firebase *custom* token, which is not an ID token.
const CUSTOM_TOKEN_AUD: &str =
    "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit";

/// What a verified ID token says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The Firebase uid (`sub`).
    pub uid: String,
    /// `firebase.sign_in_provider`.
    pub sign_in_provider: Option<String>,
    /// The normalised claims.
    pub claims: Claims,
}

/// Verifies Firebase ID tokens for one project.
pub struct Verifier {
    pub(crate) project_id: String,
    pub(crate) issuer: String,
    pub(crate) keys: RemoteKeys,
    /// Accept the emulator's unsigned tokens. Set only when the configured hosts are loopback.
    pub(crate) emulator: bool,
    pub(crate) allowed_sign_in_providers: Vec<String>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("project_id", &self.project_id)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

fn invalid(why: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidResponse(why.into())
}

impl Verifier {
    /// Verifies an ID token's signature and claims.
    pub async fn verify(&self, token: &str) -> Result<Verified, ConnectorError> {
        let parts = decode(token)?;
        let claims: Map<String, Value> = if parts.header.alg.eq_ignore_ascii_case("none") {
            if !self.emulator {
                return Err(invalid("unsigned token (alg none); only emulator mode accepts those"));
            }
            // The emulator's tokens carry an empty signature; anything else is not one of them.
            if !token.ends_with('.') {
                return Err(invalid("unsigned token (alg none) with a signature"));
            }
            parts.claims
        } else {
            verify_jwt(token, &self.keys).await?
        };
        self.check(&claims)?;
        Ok(self.verified(&claims))
    }

    /// The claim checks, after the signature.
    pub(crate) fn check(&self, claims: &Map<String, Value>) -> Result<(), ConnectorError> {
        if claims.get("aud").and_then(Value::as_str) == Some(CUSTOM_TOKEN_AUD) {
            return Err(invalid("this is a Firebase custom token, not an ID token"));
        }
        let now = self.clock.now();
        check_claims(
            claims,
            &Expectations { issuer: &self.issuer, audience: Some(&self.project_id), now, leeway: LEEWAY },
        )?;
        // Firebase's `aud` is one string; an array is not an ID token of this project.
        if !claims.get("aud").is_some_and(Value::is_string) {
            return Err(invalid("token audience is not a single string"));
        }
        match claims.get("iat").and_then(Value::as_i64) {
            Some(_) => {}
            None => return Err(invalid("token has no iat")),
        }
        match claims.get("auth_time").and_then(Value::as_i64) {
            Some(t) if t - LEEWAY <= now => {}
            Some(_) => return Err(invalid("token's auth_time is in the future")),
            None => return Err(invalid("token has no auth_time")),
        }
        if claims.get("sub").and_then(Value::as_str).is_some_and(|s| s.chars().count() > 128) {
            return Err(invalid("token subject is longer than 128 characters"));
        }
        // Identity Platform tenants have their own uid spaces; their tokens share `iss` and `aud`.
        if claims.get("firebase").and_then(|f| f.get("tenant")).is_some() {
            return Err(ConnectorError::Denied(
                "This account belongs to an Identity Platform tenant, which this sign-in does not accept.".into(),
            ));
        }
        if !self.allowed_sign_in_providers.is_empty() {
            let provider = sign_in_provider(claims);
            if !provider.as_ref().is_some_and(|p| self.allowed_sign_in_providers.contains(p)) {
                return Err(ConnectorError::Denied(format!(
                    "Signing in with {} is not allowed here. Please use another sign-in method.",
                    provider.as_deref().map(provider_label).unwrap_or("this method")
                )));
            }
        }
        Ok(())
    }

    fn verified(&self, claims: &Map<String, Value>) -> Verified {
        let s = |k: &str| claims.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
        Verified {
            uid: s("sub").unwrap_or_default(),
            sign_in_provider: sign_in_provider(claims),
            claims: Claims {
                email: s("email"),
                email_verified: claims.get("email_verified").and_then(Value::as_bool).unwrap_or(false),
                name: s("name"),
                preferred_username: None,
                picture: s("picture"),
                groups: Vec::new(),
            },
        }
    }
}

fn sign_in_provider(claims: &Map<String, Value>) -> Option<String> {
    claims.get("firebase").and_then(|f| f.get("sign_in_provider")).and_then(Value::as_str).map(str::to_owned)
}

/// A person-readable name of a sign-in provider id.
pub fn provider_label(id: &str) -> &str {
    match id {
        "password" => "email and password",
        "google.com" => "Google",
        "github.com" => "GitHub",
        "facebook.com" => "Facebook",
        "twitter.com" => "X (Twitter)",
        "apple.com" => "Apple",
        "microsoft.com" => "Microsoft",
        "yahoo.com" => "Yahoo",
        "phone" => "a phone number",
        "anonymous" => "a guest account",
        "custom" => "a custom token",
        other => other,
    }
}
