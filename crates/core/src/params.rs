//! Form and query parameters as OAuth reads them: in order, with repeated names refused.

use crate::OAuthError;

/// Decoded `application/x-www-form-urlencoded` parameters.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a query string or form body. Invalid percent-encoding is kept literally and invalid
    /// UTF-8 is replaced, so a damaged value fails its own check with a clear error instead of
    /// failing the parse.
    pub fn parse(raw: &str) -> Self {
        Self::parse_bytes(raw.as_bytes())
    }

    /// As [`Params::parse`], from bytes.
    pub fn parse_bytes(raw: &[u8]) -> Self {
        Self { pairs: url::form_urlencoded::parse(raw).into_owned().collect() }
    }

    /// A parameter's value. Absent and empty are both `None` (RFC 6749 §3.1: a parameter sent
    /// without a value is treated as omitted). A repeated parameter is `invalid_request`
    /// (RFC 6749 §3.1, §3.2).
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::InvalidRequest(format!("parameter {name} is included more than once").into()));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?.ok_or_else(|| OAuthError::InvalidRequest(format!("parameter {name} is required").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_repeats_are_refused() {
        let p = Params::parse("a=&b=1&c=1&c=2");
        assert_eq!(p.get("a").unwrap(), None);
        assert_eq!(p.get("b").unwrap(), Some("1"));
        assert_eq!(p.get("c").unwrap_err().description(), Some("parameter c is included more than once"));
        assert_eq!(p.require("z").unwrap_err().description(), Some("parameter z is required"));
    }

    #[test]
    fn broken_percent_encoding_is_kept_literally() {
        let p = Params::parse("code=%zz%4");
        assert_eq!(p.get("code").unwrap(), Some("%zz%4"));
    }
}
