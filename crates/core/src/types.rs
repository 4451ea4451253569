//! Newtypes for protocol identifiers and secrets, in the manner of oauth2-rs.
//!
//! Secret types print `Name([redacted])` in `Debug`, have no `PartialEq`, and are compared in
//! constant time through [`Sha256Digest`]s, so logging one with `?` cannot leak it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);
        impl $name {
            /// Wraps a value.
            pub fn new(v: impl Into<String>) -> Self { Self(v.into()) }
            /// The value.
            pub fn as_str(&self) -> &str { &self.0 }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
    };
}

macro_rules! secret_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);
        impl $name {
            /// Wraps a secret value.
            pub fn new(v: impl Into<String>) -> Self { Self(v.into()) }
            /// A fresh random value (256 bits, base64url).
            pub fn generate() -> Self { Self(random_token()) }
            /// # Security Warning
            /// Exposes the secret. Never log the result.
            pub fn secret(&self) -> &str { &self.0 }
            /// The SHA-256 digest, which is what storage keeps.
            pub fn digest(&self) -> Sha256Digest { Sha256Digest::of(&self.0) }
            /// Compares with `candidate` in constant time.
            pub fn verify(&self, candidate: &str) -> bool { self.digest().ct_eq(&Sha256Digest::of(candidate)) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

id_type!(
    /// A registered client's identifier ([RFC 6749 §2.2](https://www.rfc-editor.org/rfc/rfc6749#section-2.2)).
    ClientId
);
id_type!(
    /// The configured id of an upstream connector (`connectors[].id`).
    ConnectorId
);
id_type!(
    /// Keybridge's own stable, opaque subject identifier (`sub`). Reveals no upstream id.
    Subject
);
id_type!(
    /// The id of a grant: one authorization, and the refresh-token family it started.
    GrantId
);
id_type!(
    /// The id of an authorization request in flight between `/authorize` and the login.
    AuthRequestId
);
id_type!(
    /// A signing key's `kid`.
    KeyId
);

secret_type!(
    /// A client secret ([RFC 6749 §2.3.1](https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1)).
    ClientSecret
);
secret_type!(
    /// An authorization code ([RFC 6749 §4.1.2](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2)).
    AuthCode
);
secret_type!(
    /// An opaque refresh token ([RFC 6749 §1.5](https://www.rfc-editor.org/rfc/rfc6749#section-1.5)).
    RefreshToken
);
secret_type!(
    /// A CSRF token that binds a login form to the browser that started the authorization request.
    CsrfToken
);
secret_type!(
    /// A password typed into a login form.
    Password
);
secret_type!(
    /// Opaque upstream state a connector keeps for refresh (an upstream refresh token, say).
    /// Never shared with end users, clients, or through any API.
    ConnectorData
);

/// A SHA-256 digest, base64url without padding. Storage keys codes and tokens by digest, so a
/// leaked database row cannot be replayed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Digest(String);

impl Sha256Digest {
    /// The digest of `value`.
    pub fn of(value: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes())))
    }
    /// Wraps a digest read back from storage.
    pub fn from_stored(v: impl Into<String>) -> Self {
        Self(v.into())
    }
    /// The base64url text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Sha256Digest) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// 128 random bits as 32 lowercase hex characters: used for subjects and grant ids.
pub fn random_id() -> String {
    rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redact_themselves() {
        let s = ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        assert!(s.verify("hunter2"));
        assert!(!s.verify("hunter3"));
    }

    #[test]
    fn random_values_differ_and_have_the_expected_shape() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(random_id().len(), 32);
    }
}
