//! Configuration in two layers (kanidm's `config.rs`, Dex's `Validate`): [`RawConfig`] is what the
//! YAML file and `KEYBRIDGE__*` environment variables say; [`Config`] is the validated runtime shape.
//! [`load`] reports every problem at once, each with its path.
//!
//! The key names are a contract that outside tooling relies on: extend them, never rename them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use keybridge_core::client::Client;
use keybridge_core::provider::Settings;
use keybridge_core::scope::{DEFAULT_SCOPES, STANDARD_SCOPES, Scopes};
use keybridge_core::types::{ClientId, ClientSecret};
use keybridge_tokens::Algorithm;
use serde::Deserialize;
use url::Url;

use crate::connectors::{self, ConnectorSpec, RawConnector};

/// The file's top level.
#[derive(Debug, Deserialize)]
pub struct RawConfig {
    /// The issuer identifier: every token's `iss`, and the base of every endpoint URL.
    pub issuer: Option<String>,
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Where state is kept.
    #[serde(default)]
    pub storage: RawStorage,
    /// Token lifetimes and the signing algorithm.
    #[serde(default)]
    pub tokens: RawTokens,
    /// Signing-key rotation and encryption at rest.
    #[serde(default)]
    pub keys: RawKeys,
    /// Log format and level.
    #[serde(default)]
    pub logging: RawLogging,
    /// Registered OAuth clients.
    #[serde(default)]
    pub clients: Vec<RawClient>,
    /// Upstream connectors.
    #[serde(default)]
    pub connectors: Vec<RawConnector>,
}

/// `storage:`.
#[derive(Debug, Deserialize)]
pub struct RawStorage {
    /// `memory` (the embedded default) or `postgres`.
    #[serde(default = "default_storage_kind")]
    pub kind: String,
    /// `postgres`: a connection URL, `postgres://user:password@host:5432/db`.
    pub url: Option<String>,
    /// `postgres`: the name of an environment variable holding the URL (keeps the password out of the file).
    pub url_env: Option<String>,
    /// `postgres`: the connection pool's size (default 16).
    pub max_connections: Option<usize>,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self { kind: default_storage_kind(), url: None, url_env: None, max_connections: None }
    }
}

fn default_storage_kind() -> String {
    "memory".into()
}

/// `tokens:`.
#[derive(Debug, Deserialize, Default)]
pub struct RawTokens {
    /// `RS256` (default), `ES256` or `EdDSA`.
    pub signing_alg: Option<String>,
    /// Access-token lifetime, e.g. `1h`.
    #[serde(default, with = "humantime_serde")]
    pub access_token_ttl: Option<Duration>,
    /// ID-token lifetime.
    #[serde(default, with = "humantime_serde")]
    pub id_token_ttl: Option<Duration>,
    /// Refresh-token lifetime from its issue.
    #[serde(default, with = "humantime_serde")]
    pub refresh_token_ttl: Option<Duration>,
    /// How long a rotated refresh token may still be exchanged, for clients that refresh in parallel.
    #[serde(default, with = "humantime_serde")]
    pub refresh_reuse_grace: Option<Duration>,
}

/// `keys:`.
#[derive(Debug, Deserialize, Default)]
pub struct RawKeys {
    /// How often the signing key rotates (default 30 days; `0s` turns automatic rotation off).
    #[serde(default, with = "humantime_serde")]
    pub rotation_period: Option<Duration>,
    /// How long a new key is published before it signs (default 6 minutes: longer than the JWKS
    /// `max-age`, so relying parties have it first).
    #[serde(default, with = "humantime_serde")]
    pub publish_delay: Option<Duration>,
    /// An environment variable holding the 256-bit key that encrypts private keys at rest
    /// (base64 or hex).
    pub encryption_key_env: Option<String>,
    /// A file holding that key.
    pub encryption_key_file: Option<String>,
    /// Environment variables holding earlier encryption keys, still accepted for decryption.
    #[serde(default)]
    pub old_encryption_key_envs: Vec<String>,
    /// Files holding earlier encryption keys.
    #[serde(default)]
    pub old_encryption_key_files: Vec<String>,
}

/// `logging:`.
#[derive(Debug, Deserialize, Default)]
pub struct RawLogging {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `keybridge=debug`. `RUST_LOG` wins when set.
    pub level: Option<String>,
}

/// One `clients:` entry.
#[derive(Debug, Deserialize)]
pub struct RawClient {
    /// `client_id`.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// The client secret, inline.
    pub secret: Option<String>,
    /// The name of an environment variable holding the secret.
    pub secret_env: Option<String>,
    /// A second accepted secret, for rotating without downtime (inline).
    pub previous_secret: Option<String>,
    /// A public client (no secret; PKCE S256 required).
    #[serde(default)]
    pub public: bool,
    /// Exact redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `aud` of its access tokens.
    pub audience: Option<String>,
    /// Scopes it may request (default: the standard OIDC scopes).
    pub scopes: Option<Vec<String>>,
    /// Scopes granted when it requests none (default: `openid email profile`).
    pub default_scopes: Option<Vec<String>>,
    /// Opt-in: tokens also name the upstream identity (`upstream_connector`, `upstream_sub`).
    #[serde(default)]
    pub upstream_identity_claims: bool,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Issuer and lifetimes.
    pub settings: Settings,
    /// Listen address.
    pub listen: SocketAddr,
    /// Storage kind.
    pub storage: StorageConfig,
    /// Signing algorithm.
    pub signing_alg: Algorithm,
    /// Key rotation and encryption.
    pub keys: KeysConfig,
    /// Log format is JSON.
    pub log_json: bool,
    /// Log filter.
    pub log_level: String,
    /// Clients.
    pub clients: Vec<Client>,
    /// Connectors, validated.
    pub connectors: Vec<ConnectorSpec>,
    /// For clients whose secret comes from the environment: client id to variable name.
    pub secret_env: HashMap<String, String>,
}

/// Validated `keys:`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// Automatic rotation period, seconds (`None`: off).
    pub rotation_period: Option<i64>,
    /// Publish delay, seconds.
    pub publish_delay: i64,
    /// Encryption at rest.
    pub sealer: std::sync::Arc<keybridge_tokens::Sealer>,
}

/// Validated `storage:`.
#[derive(Clone)]
pub enum StorageConfig {
    /// In-process memory.
    Memory,
    /// PostgreSQL.
    Postgres {
        /// Connection URL (may hold a password: never printed).
        url: String,
        /// Pool size.
        max_connections: usize,
    },
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Postgres { url, max_connections } => {
                // Never print the password.
                let shown = url::Url::parse(url)
                    .map(|mut u| {
                        if u.password().is_some() {
                            let _ = u.set_password(Some("***"));
                        }
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "(unparsable URL)".into());
                write!(f, "postgres {shown} (pool {max_connections})")
            }
        }
    }
}

/// Every problem found, in order.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigErrors(pub Vec<String>);

fn render(problems: &[String]) -> String {
    let mut s =
        format!("the configuration has {} problem{}:", problems.len(), if problems.len() == 1 { "" } else { "s" });
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(p);
    }
    s
}

/// Reads `path` plus `KEYBRIDGE__SECTION__KEY` environment overrides, and validates everything.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let source = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Yaml).required(true))
        .add_source(
            config::Environment::with_prefix("KEYBRIDGE").prefix_separator("__").separator("__").try_parsing(true),
        )
        .build()
        .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    from_source(source)
}

/// Validates YAML text (environment overrides included): for tests and tooling.
pub fn from_yaml(yaml: &str) -> Result<Config, ConfigErrors> {
    let source = config::Config::builder()
        .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
        .build()
        .map_err(|e| ConfigErrors(vec![e.to_string()]))?;
    from_source(source)
}

fn from_source(source: config::Config) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let raw: RawConfig = serde_ignored::deserialize(source, |path| {
        problems.push(format!("{}: unknown key", bracket_path(&path.to_string())))
    })
    .map_err(|e| ConfigErrors(vec![e.to_string()]))?;
    let cfg = validate(raw, &mut problems);
    match cfg {
        Some(cfg) if problems.is_empty() => Ok(cfg),
        _ => Err(ConfigErrors(problems)),
    }
}

fn validate(raw: RawConfig, problems: &mut Vec<String>) -> Option<Config> {
    let issuer = check_issuer(raw.issuer.as_deref(), problems);
    let listen = match raw.listen.as_deref() {
        None => {
            problems.push("listen: required (for example 127.0.0.1:5556)".into());
            None
        }
        Some(l) => match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "listen: {l:?} is not a host:port address (for example 127.0.0.1:5556 or 0.0.0.0:8080)"
                ));
                None
            }
        },
    };
    let storage = check_storage(&raw.storage, problems);
    let signing_alg = match raw.tokens.signing_alg.as_deref().unwrap_or("RS256").parse::<Algorithm>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(format!(
                "tokens.signing_alg: {:?} is not supported (RS256, ES256 or EdDSA)",
                raw.tokens.signing_alg.unwrap_or_default()
            ));
            None
        }
    };
    let mut settings = Settings::new(issuer.clone().unwrap_or_default());
    let ttl = |d: Option<Duration>, key: &str, default: i64, min: i64, problems: &mut Vec<String>| -> i64 {
        match d {
            None => default,
            Some(d) if (d.as_secs() as i64) < min => {
                problems.push(format!("tokens.{key}: must be at least {min}s"));
                default
            }
            Some(d) => d.as_secs() as i64,
        }
    };
    settings.access_token_ttl =
        ttl(raw.tokens.access_token_ttl, "access_token_ttl", settings.access_token_ttl, 1, problems);
    settings.id_token_ttl = ttl(raw.tokens.id_token_ttl, "id_token_ttl", settings.id_token_ttl, 1, problems);
    settings.refresh_token_ttl =
        ttl(raw.tokens.refresh_token_ttl, "refresh_token_ttl", settings.refresh_token_ttl, 60, problems);
    settings.refresh_reuse_grace =
        ttl(raw.tokens.refresh_reuse_grace, "refresh_reuse_grace", settings.refresh_reuse_grace, 0, problems);
    if settings.refresh_reuse_grace > 300 {
        problems.push("tokens.refresh_reuse_grace: keep it seconds-short (at most 5m; RFC 9700 §4.14)".into());
    }
    let log_json = match raw.logging.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            problems.push(format!("logging.format: {other:?} is not text or json"));
            false
        }
    };

    let secret_env = raw.clients.iter().filter_map(|c| Some((c.id.clone()?, c.secret_env.clone()?))).collect();
    let keys = check_keys(&raw.keys, problems);
    let clients = check_clients(raw.clients, problems);
    let connectors = connectors::check_all(raw.connectors, problems);
    if connectors.is_empty() && problems.is_empty() {
        problems.push("connectors: at least one connector is required to log anyone in".into());
    }

    Some(Config {
        settings,
        listen: listen?,
        storage: storage?,
        signing_alg: signing_alg?,
        keys: keys?,
        log_json,
        log_level: raw.logging.level.unwrap_or_else(|| "info".into()),
        clients,
        connectors,
        secret_env,
    })
    .filter(|_| issuer.is_some())
}

fn read_key(source: &str, value: Result<String, String>, problems: &mut Vec<String>) -> Option<[u8; 32]> {
    match value {
        Err(e) => {
            problems.push(format!("{source}: {e}"));
            None
        }
        Ok(text) => match keybridge_tokens::seal::parse_key(&text) {
            Ok(k) => Some(k),
            Err(e) => {
                problems.push(format!("{source}: the key {e} (make one with `openssl rand -base64 32`)"));
                None
            }
        },
    }
}

fn env_value(var: &str) -> Result<String, String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("environment variable {var} is not set or empty"))
}

fn file_value(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn check_keys(k: &RawKeys, problems: &mut Vec<String>) -> Option<KeysConfig> {
    let before = problems.len();
    let current = match (&k.encryption_key_env, &k.encryption_key_file) {
        (Some(_), Some(_)) => {
            problems.push("keys: set either encryption_key_env or encryption_key_file, not both".into());
            None
        }
        (Some(var), None) => read_key("keys.encryption_key_env", env_value(var), problems),
        (None, Some(path)) => read_key("keys.encryption_key_file", file_value(path), problems),
        (None, None) => None,
    };
    let mut old = Vec::new();
    for (i, var) in k.old_encryption_key_envs.iter().enumerate() {
        old.extend(read_key(&format!("keys.old_encryption_key_envs[{i}]"), env_value(var), problems));
    }
    for (i, path) in k.old_encryption_key_files.iter().enumerate() {
        old.extend(read_key(&format!("keys.old_encryption_key_files[{i}]"), file_value(path), problems));
    }
    if current.is_none() && !old.is_empty() && problems.len() == before {
        problems.push("keys: old encryption keys are set but no current encryption key (encryption_key_env or encryption_key_file)".into());
    }
    let rotation_period = match k.rotation_period {
        None => Some(30 * 24 * 3600),
        Some(d) if d.is_zero() => None,
        Some(d) if d.as_secs() < 60 => {
            problems.push("keys.rotation_period: must be at least 1m (or 0s to turn automatic rotation off)".into());
            None
        }
        Some(d) => Some(d.as_secs() as i64),
    };
    let publish_delay = k.publish_delay.map_or(360, |d| d.as_secs() as i64);
    (problems.len() == before).then(|| KeysConfig {
        rotation_period,
        publish_delay,
        sealer: std::sync::Arc::new(keybridge_tokens::Sealer::new(current, old)),
    })
}

fn check_storage(s: &RawStorage, problems: &mut Vec<String>) -> Option<StorageConfig> {
    match s.kind.as_str() {
        "memory" => {
            for (key, set) in [
                ("url", s.url.is_some()),
                ("url_env", s.url_env.is_some()),
                ("max_connections", s.max_connections.is_some()),
            ] {
                if set {
                    problems.push(format!("storage.{key}: only applies to kind: postgres"));
                }
            }
            Some(StorageConfig::Memory)
        }
        "postgres" => {
            let url = match (&s.url, &s.url_env) {
                (Some(_), Some(_)) => {
                    problems.push("storage: set either url or url_env, not both".into());
                    None
                }
                (Some(u), None) => Some(u.clone()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(u) if !u.is_empty() => Some(u),
                    _ => {
                        problems.push(format!("storage.url_env: environment variable {var} is not set or empty"));
                        None
                    }
                },
                (None, None) => {
                    problems.push(
                        "storage.url: required for kind: postgres (postgres://user:password@host:5432/db)".into(),
                    );
                    None
                }
            };
            if let Some(u) = &url
                && u.parse::<tokio_postgres::Config>().is_err()
            {
                problems.push(
                    "storage.url: not a PostgreSQL connection URL (postgres://user:password@host:5432/db)".into(),
                );
            }
            let max_connections = s.max_connections.unwrap_or(16);
            if !(1..=1000).contains(&max_connections) {
                problems.push("storage.max_connections: must be between 1 and 1000".into());
            }
            url.map(|url| StorageConfig::Postgres { url, max_connections })
        }
        other => {
            problems.push(format!("storage.kind: unknown kind {other:?} (supported: memory, postgres)"));
            None
        }
    }
}

/// Writes serde_ignored's `clients.0.secrt` as `clients[0].secrt`, like every other message.
pub fn bracket_path(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('.') {
        if !out.is_empty() && !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// Whether a URL's host is loopback (`localhost`, 127.0.0.0/8, `[::1]`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_issuer(issuer: Option<&str>, problems: &mut Vec<String>) -> Option<String> {
    let Some(issuer) = issuer else {
        problems.push("issuer: required (for example https://auth.example.com)".into());
        return None;
    };
    let before = problems.len();
    match Url::parse(issuer) {
        Err(e) => problems.push(format!("issuer: {issuer:?} is not an absolute URL ({e})")),
        Ok(u) => {
            if u.scheme() != "https" && !(u.scheme() == "http" && is_loopback(&u)) {
                problems.push(format!(
                    "issuer: {issuer:?} must use https (http is allowed only on loopback, for development)"
                ));
            }
            if u.query().is_some() || u.fragment().is_some() {
                problems.push(format!("issuer: {issuer:?} must not have a query or fragment"));
            }
            if issuer.ends_with('/') {
                problems.push(format!(
                    "issuer: {issuer:?} must not end with a slash (write {:?})",
                    issuer.trim_end_matches('/')
                ));
            }
        }
    }
    (problems.len() == before).then(|| issuer.to_owned())
}

/// Checks a redirect URI: absolute, no fragment, https (http only on loopback) or a private-use scheme.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let u = Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URI"))?;
    if u.fragment().is_some() {
        return Err(format!("{uri:?} must not have a fragment"));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&u) => Ok(()),
        "http" => Err(format!("{uri:?} must use https (http is allowed only for loopback redirect URIs)")),
        s if s.contains('.') => Ok(()), // RFC 8252 §7.1 private-use scheme, e.g. com.example.app
        s => Err(format!(
            "{uri:?}: scheme {s:?} is not allowed (use https, loopback http, or a reverse-domain private-use scheme)"
        )),
    }
}

fn check_clients(raw: Vec<RawClient>, problems: &mut Vec<String>) -> Vec<Client> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let standard = Scopes::from_list(STANDARD_SCOPES);
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("clients[{i}]");
        let before = problems.len();
        let id = match c.id.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push(format!("{at}.id: required"));
                String::new()
            }
            Some(id) if id.starts_with("https://") => {
                problems
                    .push(format!("{at}.id: must not start with https:// (reserved for client ID metadata documents)"));
                id.to_owned()
            }
            Some(id) => id.to_owned(),
        };
        if !id.is_empty() && !seen.insert(id.clone()) {
            problems.push(format!("{at}.id: duplicate client id {id:?}"));
        }
        let mut secrets = Vec::new();
        match (c.public, c.secret, c.secret_env.as_deref()) {
            (true, None, None) => {}
            (true, _, _) => problems
                .push(format!("{at}: a public client has no secret; remove secret/secret_env or set public: false")),
            (false, Some(_), Some(_)) => problems.push(format!("{at}: set either secret or secret_env, not both")),
            (false, Some(s), None) if s.is_empty() => problems.push(format!("{at}.secret: must not be empty")),
            (false, Some(s), None) => secrets.push(ClientSecret::new(s)),
            (false, None, Some(var)) => match std::env::var(var) {
                Ok(s) if !s.is_empty() => secrets.push(ClientSecret::new(s)),
                _ => problems.push(format!("{at}.secret_env: environment variable {var} is not set or empty")),
            },
            (false, None, None) => problems.push(format!(
                "{at}: missing secret (set secret or secret_env, or public: true for a PKCE-only client)"
            )),
        }
        if let Some(p) = c.previous_secret.filter(|p| !p.is_empty()) {
            secrets.push(ClientSecret::new(p));
        }
        if c.redirect_uris.is_empty() {
            problems.push(format!("{at}.redirect_uris: at least one redirect URI is required"));
        }
        let mut uris = HashSet::new();
        for (j, uri) in c.redirect_uris.iter().enumerate() {
            if let Err(e) = check_redirect_uri(uri) {
                problems.push(format!("{at}.redirect_uris[{j}]: {e}"));
            }
            if !uris.insert(uri) {
                problems.push(format!("{at}.redirect_uris[{j}]: {uri:?} is listed twice"));
            }
        }
        if let Some(aud) = &c.audience
            && Url::parse(aud).is_err()
        {
            problems.push(format!("{at}.audience: {aud:?} is not an absolute URI"));
        }
        let allowed = c.scopes.as_deref().map(Scopes::from_list).unwrap_or_else(|| standard.clone());
        let defaults =
            c.default_scopes.as_deref().map(Scopes::from_list).unwrap_or_else(|| Scopes::from_list(DEFAULT_SCOPES));
        for (key, set) in [("scopes", &allowed), ("default_scopes", &defaults)] {
            for s in set.iter() {
                if Scopes::parse(s).map(|p| p.iter().count() != 1).unwrap_or(true) {
                    problems.push(format!("{at}.{key}: {s:?} is not a single scope token"));
                }
            }
        }
        let not_allowed = defaults.not_in(&allowed);
        if !not_allowed.is_empty() {
            problems.push(format!("{at}.default_scopes: {} not in scopes", not_allowed.join(" ")));
        }
        if problems.len() == before {
            out.push(Client {
                id: ClientId::new(id.clone()),
                name: c.name.unwrap_or_else(|| id.clone()),
                secrets,
                redirect_uris: c.redirect_uris,
                audience: c.audience,
                allowed_scopes: allowed,
                default_scopes: defaults,
                upstream_claims: c.upstream_identity_claims,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$5d7bcfDjd5z0bBm8Bi2fbmtJ2l6qWoSqNN9tOgM9zT0";

    fn good() -> String {
        format!(
            r#"
issuer: https://auth.example.com
listen: 127.0.0.1:5556
clients:
  - id: chatgpt
    name: My GPT
    secret: change-me
    redirect_uris: [https://chatgpt.com/aip/g-0123/oauth/callback]
connectors:
  - id: local
    type: local
    name: Email and password
    config:
      users:
        - email: alice@example.com
          password_hash: "{HASH}"
"#
        )
    }

    #[test]
    fn a_good_config_validates() {
        let c = from_yaml(&good()).unwrap();
        assert_eq!(c.settings.issuer, "https://auth.example.com");
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.connectors.len(), 1);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let yaml = format!(
            r#"
issuer: http://auth.example.com/
listen: nowhere
colour: blue
storage: {{kind: mongo}}
clients:
  - id: a
    name: A
    secrt: x
    redirect_uris: [/relative, "http://evil.example/cb"]
  - id: a
    secret: s
    redirect_uris: [https://ok.example/cb]
connectors:
  - id: local
    type: local
    config:
      users:
        - email: alice@example.com
          password_hash: "{HASH}"
          shoe_size: 9
  - id: x
    type: ldap
"#
        );
        let err = from_yaml(&yaml).unwrap_err();
        let text = err.to_string();
        for needle in [
            "colour: unknown key",
            "clients[0].secrt: unknown key",
            "issuer: \"http://auth.example.com/\" must use https",
            "must not end with a slash",
            "listen: \"nowhere\" is not a host:port",
            "storage.kind: unknown kind \"mongo\" (supported: memory, postgres)",
            "clients[0]: missing secret",
            "clients[0].redirect_uris[0]: \"/relative\" is not an absolute URI",
            "clients[0].redirect_uris[1]: \"http://evil.example/cb\" must use https",
            "clients[1].id: duplicate client id \"a\"",
            "connectors[0].config.users[0].shoe_size: unknown key",
            "connectors[1].type: unknown connector type \"ldap\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(text.starts_with("the configuration has "), "{text}");
    }

    #[test]
    fn secret_env_must_be_set() {
        let yaml = good().replace("secret: change-me", "secret_env: KEYBRIDGE_TEST_SURELY_UNSET_VAR");
        let err = from_yaml(&yaml).unwrap_err().to_string();
        assert!(
            err.contains("clients[0].secret_env: environment variable KEYBRIDGE_TEST_SURELY_UNSET_VAR is not set"),
            "{err}"
        );
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(check_redirect_uri("https://chatgpt.com/aip/g-1/oauth/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://example.com/cb").is_err());
        assert!(check_redirect_uri("https://example.com/cb#frag").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }
}
