//! Scopes ([RFC 6749 §3.3](https://www.rfc-editor.org/rfc/rfc6749#section-3.3)).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The OpenID scope.
pub const OPENID: &str = "openid";
/// Scopes Keybridge understands by default.
pub const STANDARD_SCOPES: &[&str] = &["openid", "email", "profile", "groups", "offline_access"];
/// Scopes granted when a client asks for none (ChatGPT may send `scope=` or nothing).
pub const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile"];

/// An ordered set of scope tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a space-delimited `scope` parameter. Repeated tokens collapse into one.
    /// Returns the first token that is not a valid `scope-token` as the error.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut out: Vec<String> = Vec::new();
        for tok in raw.split(' ').filter(|t| !t.is_empty()) {
            let valid =
                tok.chars().all(|c| c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c));
            if !valid {
                return Err(tok.to_owned());
            }
            if !out.iter().any(|s| s == tok) {
                out.push(tok.to_owned());
            }
        }
        Ok(Self(out))
    }
    /// Builds a set from a list.
    pub fn from_list<S: AsRef<str>>(items: &[S]) -> Self {
        let mut out: Vec<String> = Vec::new();
        for s in items {
            if !out.iter().any(|x| x == s.as_ref()) {
                out.push(s.as_ref().to_owned());
            }
        }
        Self(out)
    }
    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// The tokens not in `allowed`.
    pub fn not_in(&self, allowed: &Scopes) -> Vec<&str> {
        self.iter().filter(|s| !allowed.contains(s)).collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_dedups() {
        let s = Scopes::parse("openid  email openid").unwrap();
        assert_eq!(s.to_string(), "openid email");
        assert!(Scopes::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_invalid_tokens() {
        assert_eq!(Scopes::parse("openid a\"b").unwrap_err(), "a\"b");
        assert_eq!(Scopes::parse("caf\u{e9}").unwrap_err(), "caf\u{e9}");
    }
}
