//! Claim mapping: which upstream claims give Keybridge's user id, email, name, picture and groups.

use keybridge_connector_common::{claim_path, string_list};
use keybridge_core::connector::ConnectorError;
use keybridge_core::identity::Claims;
use serde::Deserialize;
use serde_json::Value;

/// The `claims:` block: for each Keybridge claim, the upstream claim that gives it. Paths may be
/// nested (`app_metadata.roles`) or a whole namespaced key (`https://example.com/roles`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClaimsConfig {
    /// The user's stable id at the upstream (default `sub`). Changing it makes new users.
    #[serde(default)]
    pub user_id: Option<String>,
    /// `email` (default `email`).
    #[serde(default)]
    pub email: Option<String>,
    /// `email_verified` (default `email_verified`; a boolean or the string `"true"`).
    #[serde(default)]
    pub email_verified: Option<String>,
    /// `name` (default `name`, else `given_name` and `family_name` joined).
    #[serde(default)]
    pub name: Option<String>,
    /// `preferred_username` (default `preferred_username`, else `username`, else `nickname`).
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// `picture` (default `picture`).
    #[serde(default)]
    pub picture: Option<String>,
    /// `groups` (default `groups`): an array of strings, or one string.
    #[serde(default)]
    pub groups: Option<String>,
}

/// A validated claim mapping.
#[derive(Debug, Clone)]
pub struct ClaimMap {
    user_id: String,
    email: String,
    email_verified: String,
    name: Option<String>,
    preferred_username: Option<String>,
    picture: String,
    groups: String,
}

impl Default for ClaimMap {
    fn default() -> Self {
        Self {
            user_id: "sub".into(),
            email: "email".into(),
            email_verified: "email_verified".into(),
            name: None,
            preferred_username: None,
            picture: "picture".into(),
            groups: "groups".into(),
        }
    }
}

impl ClaimMap {
    /// Validates a `claims:` block over `defaults` (a connector type may default `groups`
    /// elsewhere). Problems are reported as `claims.KEY: ...`.
    pub fn new(cfg: &ClaimsConfig, defaults: ClaimMap, problems: &mut Vec<String>) -> Self {
        let mut check = |key: &str, v: &Option<String>| -> Option<String> {
            match v.as_deref().map(str::trim) {
                None => None,
                Some("") => {
                    problems.push(format!("claims.{key}: must name a claim (or leave it out for the default)"));
                    None
                }
                Some(p) => Some(p.to_owned()),
            }
        };
        Self {
            user_id: check("user_id", &cfg.user_id).unwrap_or(defaults.user_id),
            email: check("email", &cfg.email).unwrap_or(defaults.email),
            email_verified: check("email_verified", &cfg.email_verified).unwrap_or(defaults.email_verified),
            name: check("name", &cfg.name).or(defaults.name),
            preferred_username: check("preferred_username", &cfg.preferred_username).or(defaults.preferred_username),
            picture: check("picture", &cfg.picture).unwrap_or(defaults.picture),
            groups: check("groups", &cfg.groups).unwrap_or(defaults.groups),
        }
    }

    /// Sets the default groups claim (before [`ClaimMap::new`] applies the config).
    pub fn with_groups(mut self, path: &str) -> Self {
        path.clone_into(&mut self.groups);
        self
    }

    /// The upstream user id and Keybridge's claims, from the merged upstream claims.
    ///
    /// `email_verified` is the upstream's assertion; `insecure_skip_email_verified` treats every
    /// email as verified (only for upstreams that verify emails but never say so).
    pub fn map(&self, claims: &Value, insecure_skip_email_verified: bool) -> Result<(String, Claims), ConnectorError> {
        let user_id = match claim_path(claims, &self.user_id) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(ConnectorError::InvalidResponse(format!(
                    "the upstream sent no user id in claim {:?}",
                    self.user_id
                )));
            }
        };
        let string = |path: &str| -> Option<String> {
            claim_path(claims, path).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let email = string(&self.email);
        let verified = match claim_path(claims, &self.email_verified) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let name = match &self.name {
            Some(path) => string(path),
            None => string("name").or_else(|| {
                let parts: Vec<String> = ["given_name", "family_name"].iter().filter_map(|p| string(p)).collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            }),
        };
        let preferred_username = match &self.preferred_username {
            Some(path) => string(path),
            None => string("preferred_username").or_else(|| string("username")).or_else(|| string("nickname")),
        };
        Ok((
            user_id,
            Claims {
                email_verified: email.is_some() && (verified || insecure_skip_email_verified),
                email,
                name,
                preferred_username,
                picture: string(&self.picture),
                groups: string_list(claim_path(claims, &self.groups)),
            },
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_oidc_with_fallbacks() {
        let m = ClaimMap::default();
        let (id, c) = m
            .map(
                &json!({"sub": "u1", "email": "a@example.com", "email_verified": true, "given_name": "Ada",
                        "family_name": "L", "username": "ada", "groups": ["x", "y"]}),
                false,
            )
            .unwrap();
        assert_eq!(id, "u1");
        assert_eq!(c.email.as_deref(), Some("a@example.com"));
        assert!(c.email_verified);
        assert_eq!(c.name.as_deref(), Some("Ada L"));
        assert_eq!(c.preferred_username.as_deref(), Some("ada"));
        assert_eq!(c.groups, vec!["x", "y"]);
    }

    #[test]
    fn nested_and_namespaced_paths_and_email_verified_rules() {
        let cfg = ClaimsConfig {
            user_id: Some("user_id".into()),
            groups: Some("https://example.com/roles".into()),
            picture: Some("meta.avatar".into()),
            ..Default::default()
        };
        let mut problems = Vec::new();
        let m = ClaimMap::new(&cfg, ClaimMap::default(), &mut problems);
        assert!(problems.is_empty());
        let claims = json!({"user_id": 42, "email": "b@example.com", "email_verified": "true",
            "https://example.com/roles": "admin", "meta": {"avatar": "https://img/x.png"}});
        let (id, c) = m.map(&claims, false).unwrap();
        assert_eq!(id, "42");
        assert!(c.email_verified, "Cognito's string booleans count");
        assert_eq!(c.groups, vec!["admin"]);
        assert_eq!(c.picture.as_deref(), Some("https://img/x.png"));
        let unverified = json!({"user_id": "u", "email": "c@example.com"});
        assert!(!m.map(&unverified, false).unwrap().1.email_verified, "a missing email_verified is false");
        assert!(m.map(&unverified, true).unwrap().1.email_verified, "unless explicitly skipped");
        assert!(!m.map(&json!({"user_id": "u"}), true).unwrap().1.email_verified, "no email, nothing verified");
        assert!(matches!(m.map(&json!({"sub": "u"}), false), Err(ConnectorError::InvalidResponse(_))));
    }

    #[test]
    fn empty_paths_are_problems() {
        let mut problems = Vec::new();
        ClaimMap::new(
            &ClaimsConfig { email: Some(" ".into()), ..Default::default() },
            ClaimMap::default(),
            &mut problems,
        );
        assert_eq!(problems, vec!["claims.email: must name a claim (or leave it out for the default)".to_string()]);
    }
}
