//! The `local` connector: email-and-password users listed in YAML, with argon2id hashes.
//! For development and demos; production logins come from upstream providers.
//!
//! ```yaml
//! connectors:
//!   - id: local
//!     type: local
//!     name: Email and password
//!     config:
//!       users:
//!         - email: alice@example.com
//!           password_hash: "$argon2id$v=19$..."   # keybridge hash-password
//!           name: Alice Example
//!           email_verified: true
//! ```
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Argon2, PasswordHash};
use async_trait::async_trait;
use keybridge_core::connector::{ConnectorError, PasswordConnector};
use keybridge_core::identity::{Claims, Identity};
use keybridge_core::scope::Scopes;
use keybridge_core::types::Password;
use serde::Deserialize;
use tokio::sync::oneshot;

/// The connector's `config:` block.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// One user.
#[derive(Debug, Clone, Deserialize)]
pub struct UserConfig {
    /// Login name and `email` claim.
    pub email: String,
    /// An argon2id PHC string (`keybridge hash-password`).
    pub password_hash: String,
    /// The user's id at this connector; the lower-cased email when unset. Changing it makes a new user.
    #[serde(default)]
    pub id: Option<String>,
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `preferred_username`.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// `email_verified` (default false).
    #[serde(default)]
    pub email_verified: bool,
    /// `groups`.
    #[serde(default)]
    pub groups: Vec<String>,
}

struct User {
    id: String,
    hash: String,
    claims: Claims,
}

/// The connector.
pub struct LocalConnector {
    users: HashMap<String, User>,
    /// A hash that matches nothing, verified when the email is unknown, so timing does not tell
    /// which emails exist.
    decoy: String,
    /// argon2id costs about 16 ms and 19 MiB: a few dedicated threads run it.
    hashers: Arc<Hashers>,
}

impl std::fmt::Debug for LocalConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConnector").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

type Job = (String, Password, oneshot::Sender<bool>);

/// A fixed set of threads that verify argon2id hashes, never on the async runtime's threads.
/// A fixed set (rather than the runtime's growable blocking pool) bounds both the CPU and the
/// memory argon2 takes: each thread reuses its 19 MiB working area from one hash to the next.
struct Hashers {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

impl Hashers {
    fn start(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok((hash, password, reply)) = job else { return };
                    let ok = PasswordHash::new(&hash)
                        .map(|h| Argon2::default().verify_password(password.secret().as_bytes(), &h).is_ok())
                        .unwrap_or(false);
                    let _ = reply.send(ok);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an argon2 thread");
            }
        }
        Self { jobs: std::sync::Mutex::new(tx) }
    }

    async fn verify(&self, hash: String, password: Password) -> Result<bool, ConnectorError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| ConnectorError::Upstream("password checker is unavailable".into()))?
            .send((hash, password, reply))
            .map_err(|_| ConnectorError::Upstream("password checker is unavailable".into()))?;
        answer.await.map_err(|_| ConnectorError::Upstream("password check failed".into()))
    }
}

/// Hashes a password as an argon2id PHC string with the library's default costs.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

impl LocalConnector {
    /// Validates the config and builds the connector. Returns every problem found, each prefixed
    /// with its path below the connector's `config`.
    pub fn open(config: Config) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut users = HashMap::new();
        for (i, u) in config.users.into_iter().enumerate() {
            let key = u.email.trim().to_lowercase();
            if key.is_empty() || !key.contains('@') {
                problems.push(format!("users[{i}].email: {:?} is not an email address", u.email));
                continue;
            }
            match PasswordHash::new(&u.password_hash) {
                Ok(h) if h.algorithm.as_str() == "argon2id" => {}
                Ok(h) => problems.push(format!("users[{i}].password_hash: algorithm {} is not argon2id", h.algorithm)),
                Err(e) => problems.push(format!(
                    "users[{i}].password_hash: not an argon2id PHC string ({e}); make one with `keybridge hash-password`"
                )),
            }
            let user = User {
                id: u.id.clone().unwrap_or_else(|| key.clone()),
                hash: u.password_hash,
                claims: Claims {
                    email: Some(u.email.trim().to_owned()),
                    email_verified: u.email_verified,
                    name: u.name,
                    preferred_username: u.preferred_username,
                    picture: None,
                    groups: u.groups,
                },
            };
            if users.insert(key, user).is_some() {
                problems.push(format!("users[{i}].email: {:?} is listed more than once", u.email));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let decoy = hash_password("keybridge-decoy-password").map_err(|e| vec![format!("argon2 failed: {e}")])?;
        let permits = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Self { users, decoy, hashers: Arc::new(Hashers::start(permits)) })
    }

    /// The configured emails, for the startup banner.
    pub fn emails(&self) -> Vec<String> {
        let mut v: Vec<String> = self.users.values().filter_map(|u| u.claims.email.clone()).collect();
        v.sort();
        v
    }
}

#[async_trait]
impl PasswordConnector for LocalConnector {
    async fn login(
        &self,
        _scopes: &Scopes,
        username: &str,
        password: &Password,
    ) -> Result<Option<Identity>, ConnectorError> {
        let user = self.users.get(&username.trim().to_lowercase());
        let hash = user.map_or(self.decoy.clone(), |u| u.hash.clone());
        let ok = self.hashers.verify(hash, password.clone()).await?;
        Ok(match (ok, user) {
            (true, Some(u)) => {
                Some(Identity { upstream_id: u.id.clone(), claims: u.claims.clone(), connector_data: None })
            }
            _ => None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user(email: &str, hash: &str) -> UserConfig {
        UserConfig {
            email: email.into(),
            password_hash: hash.into(),
            id: None,
            name: Some("Alice".into()),
            preferred_username: None,
            email_verified: true,
            groups: vec!["admins".into()],
        }
    }

    #[tokio::test]
    async fn right_password_logs_in_and_wrong_ones_do_not() {
        let hash = hash_password("correct horse").unwrap();
        let c = LocalConnector::open(Config { users: vec![user("Alice@Example.com", &hash)] }).unwrap();
        let id =
            c.login(&Scopes::default(), "alice@example.com", &Password::new("correct horse")).await.unwrap().unwrap();
        assert_eq!(id.upstream_id, "alice@example.com");
        assert_eq!(id.claims.email.as_deref(), Some("Alice@Example.com"));
        assert!(id.claims.email_verified);
        assert_eq!(id.claims.groups, vec!["admins".to_string()]);
        assert!(c.login(&Scopes::default(), "alice@example.com", &Password::new("wrong")).await.unwrap().is_none());
        assert!(
            c.login(&Scopes::default(), "bob@example.com", &Password::new("correct horse")).await.unwrap().is_none()
        );
    }

    #[test]
    fn bad_config_lists_every_problem() {
        let hash = hash_password("pw").unwrap();
        let err = LocalConnector::open(Config {
            users: vec![
                user("not-an-email", &hash),
                user("a@x.io", "plaintext"),
                user("b@x.io", &hash),
                user("B@x.io", &hash),
            ],
        })
        .unwrap_err();
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err[0].starts_with("users[0].email"));
        assert!(err[1].starts_with("users[1].password_hash"));
        assert!(err[2].starts_with("users[3].email: \"B@x.io\" is listed more than once"));
    }
}
