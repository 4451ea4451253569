//! Supabase's user object (upstreams.md §1.5) as a Keybridge identity.

use std::time::SystemTime;

use keybridge_connector_common::{claim_path, string_list};
use keybridge_core::connector::ConnectorError;
use keybridge_core::identity::{Claims, Identity};
use keybridge_core::types::ConnectorData;
use serde_json::Value;

/// Parses a Supabase timestamp (`2026-11-27T08:40:00.000000Z`, or with a `+00:00` offset).
fn timestamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let s = s.strip_suffix("+00:00").map(|t| format!("{t}Z")).unwrap_or_else(|| s.to_owned());
    humantime::parse_rfc3339_weak(&s).ok()
}

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

/// Why a user may not sign in, if they may not: banned, deleted or anonymous.
fn refusal(user: &Value, now: SystemTime) -> Option<ConnectorError> {
    if let Some(until) = user.get("banned_until").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        // An unreadable ban is treated as a ban.
        if timestamp(until).is_none_or(|t| t > now) {
            return Some(ConnectorError::UserInvalid("the user is banned in Supabase".into()));
        }
    }
    if user.get("deleted_at").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        return Some(ConnectorError::UserInvalid("the user was deleted in Supabase".into()));
    }
    if user.get("is_anonymous").and_then(Value::as_bool) == Some(true) {
        return Some(ConnectorError::Denied(
            "Anonymous Supabase sessions cannot sign in here. Please sign in with an account.".into(),
        ));
    }
    None
}

/// Maps a user object to an identity: `sub` is the Supabase user id, `email_verified` comes from
/// `email_confirmed_at`, the name from `user_metadata`, groups from the `app_metadata` paths.
pub(crate) fn identity(
    user: &Value,
    groups_claim: &[String],
    connector_data: Option<ConnectorData>,
    now: SystemTime,
) -> Result<Identity, ConnectorError> {
    let id = user
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::InvalidResponse("Supabase's user has no id".into()))?;
    if let Some(e) = refusal(user, now) {
        return Err(e);
    }
    let meta = user.get("user_metadata").cloned().unwrap_or(Value::Null);
    let email = text(user, &["email"]);
    let email_verified =
        email.is_some() && user.get("email_confirmed_at").and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
    let mut groups: Vec<String> = Vec::new();
    for path in groups_claim {
        for g in string_list(claim_path(user, path)) {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    Ok(Identity {
        upstream_id: id.to_owned(),
        claims: Claims {
            email,
            email_verified,
            name: text(&meta, &["full_name", "name"]),
            preferred_username: text(&meta, &["preferred_username", "user_name", "username"]),
            picture: text(&meta, &["avatar_url", "picture"]),
            groups,
        },
        connector_data,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn groups() -> Vec<String> {
        vec!["app_metadata.roles".into(), "app_metadata.groups".into()]
    }

    #[test]
    fn a_user_object_becomes_an_identity() {
        let user = json!({
            "id": "6f0c2d5e-2b7a-4c1e-9a43-0e3c7d1f9b22",
            "email": "alice@example.com",
            "email_confirmed_at": "2026-11-27T08:40:00.000000Z",
            "app_metadata": {"provider": "github", "roles": ["admin"], "groups": "staff"},
            "user_metadata": {"full_name": "Alice", "user_name": "alice", "avatar_url": "https://x/a.png", "roles": ["root"]},
        });
        let id = identity(&user, &groups(), None, SystemTime::now()).unwrap();
        assert_eq!(id.upstream_id, "6f0c2d5e-2b7a-4c1e-9a43-0e3c7d1f9b22");
        assert_eq!(id.claims.email.as_deref(), Some("alice@example.com"));
        assert!(id.claims.email_verified);
        assert_eq!(id.claims.name.as_deref(), Some("Alice"));
        assert_eq!(id.claims.preferred_username.as_deref(), Some("alice"));
        assert_eq!(id.claims.picture.as_deref(), Some("https://x/a.png"));
        assert_eq!(id.claims.groups, vec!["admin".to_string(), "staff".to_string()], "never from user_metadata");
    }

    #[test]
    fn unconfirmed_banned_deleted_and_anonymous_users() {
        let now = SystemTime::now();
        let unconfirmed = json!({"id": "u", "email": "a@x.io", "email_confirmed_at": null});
        assert!(!identity(&unconfirmed, &groups(), None, now).unwrap().claims.email_verified);
        let banned = json!({"id": "u", "banned_until": "2999-01-01T00:00:00Z"});
        assert!(matches!(identity(&banned, &groups(), None, now), Err(ConnectorError::UserInvalid(_))));
        let was_banned = json!({"id": "u", "banned_until": "2001-01-01T00:00:00.123456+00:00"});
        assert!(identity(&was_banned, &groups(), None, now).is_ok());
        let deleted = json!({"id": "u", "deleted_at": "2026-01-01T00:00:00Z"});
        assert!(matches!(identity(&deleted, &groups(), None, now), Err(ConnectorError::UserInvalid(_))));
        let anon = json!({"id": "u", "is_anonymous": true});
        assert!(matches!(identity(&anon, &groups(), None, now), Err(ConnectorError::Denied(_))));
        assert!(identity(&json!({"email": "a@x.io"}), &groups(), None, now).is_err());
    }
}
