//! The connector registry: each config `type:` maps to a connector crate, in two steps as Dex does.
//! First every entry is read as a [`RawConnector`]; then its `config:` is parsed into that type's own
//! strict config, and the connector is built.

use std::collections::HashSet;
use std::sync::Arc;

use keybridge_connector_clerk::ClerkConnector;
use keybridge_connector_firebase::FirebaseConnector;
use keybridge_connector_local::LocalConnector;
use keybridge_connector_oidc::OidcConnector;
use keybridge_connector_supabase::SupabaseConnector;
use keybridge_core::connector::{Connector, LinkBy, LinkPolicy, OnConflict};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The connector types this build knows.
pub const TYPES: &[&str] = &["local", "supabase", "oidc", "firebase", "auth0", "clerk"];

/// One `connectors:` entry, before its type is known.
#[derive(Debug, Deserialize)]
pub struct RawConnector {
    /// Stable id: part of login URLs and of every user's identity link. Never change it.
    pub id: Option<String>,
    /// The connector type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Display name on the chooser.
    pub name: Option<String>,
    /// The type's own settings.
    pub config: Option<config::Value>,
    /// `verified_email` (default) or `none`: what links a new identity from this connector to
    /// an existing user.
    pub link_by: Option<String>,
    /// This upstream verifies every email it asserts (default false).
    pub trust_email: Option<bool>,
    /// `new_user` (default) or `deny`: for an identity whose email matches a user it cannot be
    /// linked to.
    pub on_email_conflict: Option<String>,
}

/// A validated connector, ready to open.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Type and built connector.
    pub kind: ConnectorKind,
    /// How new identities are linked to existing users.
    pub link: LinkPolicy,
}

/// The built connector of each type.
#[derive(Debug, Clone)]
pub enum ConnectorKind {
    /// `local`.
    Local(Arc<LocalConnector>),
    /// `supabase`.
    Supabase(Arc<SupabaseConnector>),
    /// `oidc`: any OpenID provider.
    Oidc(Arc<OidcConnector>),
    /// `auth0`: the generic OIDC connector with Auth0's specifics.
    Auth0(Arc<OidcConnector>),
    /// `clerk`.
    Clerk(Arc<ClerkConnector>),
    /// `firebase`.
    Firebase(Arc<FirebaseConnector>),
}

impl ConnectorSpec {
    /// The type name.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ConnectorKind::Local(_) => "local",
            ConnectorKind::Supabase(_) => "supabase",
            ConnectorKind::Oidc(_) => "oidc",
            ConnectorKind::Auth0(_) => "auth0",
            ConnectorKind::Clerk(_) => "clerk",
            ConnectorKind::Firebase(_) => "firebase",
        }
    }

    /// Builds the core [`Connector`].
    pub fn open(&self) -> Connector {
        let mut connector = match &self.kind {
            ConnectorKind::Local(l) => {
                let mut c = Connector::new(&self.id, &self.name);
                c.password = Some(l.clone());
                c
            }
            ConnectorKind::Supabase(s) => s.connector(&self.id, &self.name),
            ConnectorKind::Oidc(o) | ConnectorKind::Auth0(o) => {
                let mut c = Connector::new(&self.id, &self.name);
                c.callback = Some(o.clone());
                if o.settings().refresh_upstream {
                    c.refresher = Some(o.clone());
                }
                c
            }
            ConnectorKind::Firebase(f) => f.connector(&self.id, &self.name),
            ConnectorKind::Clerk(k) => k.connector(&self.id, &self.name),
        };
        connector.link = self.link;
        connector
    }
}

fn link_policy(at: &str, c: &RawConnector, problems: &mut Vec<String>) -> LinkPolicy {
    let mut policy = LinkPolicy::default();
    match c.link_by.as_deref() {
        None | Some("verified_email") => {}
        Some("none") => policy.link_by = LinkBy::None,
        Some(other) => problems.push(format!("{at}.link_by: {other:?} is not verified_email or none")),
    }
    policy.trust_email = c.trust_email.unwrap_or(false);
    match c.on_email_conflict.as_deref() {
        None | Some("new_user") => {}
        Some("deny") => policy.on_conflict = OnConflict::Deny,
        Some(other) => problems.push(format!("{at}.on_email_conflict: {other:?} is not new_user or deny")),
    }
    policy
}

/// Parses a connector's `config:` strictly, reporting unknown keys with their full path.
fn parse_config<T: DeserializeOwned>(at: &str, value: Option<config::Value>, problems: &mut Vec<String>) -> Option<T> {
    let value = value.unwrap_or_else(|| config::Value::new(None, config::ValueKind::Table(Default::default())));
    let mut unknown = Vec::new();
    match serde_ignored::deserialize(value, |path| {
        unknown.push(format!("{at}.config.{}: unknown key", crate::config::bracket_path(&path.to_string())))
    }) {
        Ok(v) => {
            problems.extend(unknown);
            Some(v)
        }
        Err(e) => {
            problems.push(format!("{at}.config: {e}"));
            None
        }
    }
}

/// A built connector, or its problems prefixed with `{at}.config.`.
fn open_or_report<T>(at: &str, built: Result<T, Vec<String>>, problems: &mut Vec<String>) -> Option<T> {
    built.map_err(|errs| problems.extend(errs.into_iter().map(|e| format!("{at}.config.{e}")))).ok()
}

/// Validates every entry.
pub fn check_all(raw: Vec<RawConnector>, problems: &mut Vec<String>) -> Vec<ConnectorSpec> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let at = format!("connectors[{i}]");
        let id = match c.id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
                id.to_owned()
            }
            Some(id) if !id.is_empty() => {
                problems.push(format!("{at}.id: {id:?} may use only letters, digits, - and _ (it appears in URLs)"));
                continue;
            }
            _ => {
                problems.push(format!("{at}.id: required"));
                continue;
            }
        };
        if !seen.insert(id.clone()) {
            problems.push(format!("{at}.id: duplicate connector id {id:?}"));
        }
        let link = link_policy(&at, &c, problems);
        let name = c.name.unwrap_or_else(|| id.clone());
        let kind =
            match c.kind.as_deref() {
                Some("local") => {
                    parse_config::<keybridge_connector_local::Config>(&at, c.config, problems).and_then(|cfg| {
                        if cfg.users.is_empty() {
                            problems.push(format!("{at}.config.users: at least one user is required"));
                        }
                        match LocalConnector::open(cfg) {
                            Ok(l) => Some(ConnectorKind::Local(Arc::new(l))),
                            Err(errs) => {
                                problems.extend(errs.into_iter().map(|e| format!("{at}.config.{e}")));
                                None
                            }
                        }
                    })
                }
                Some("supabase") => parse_config::<keybridge_connector_supabase::Config>(&at, c.config, problems)
                    .and_then(|cfg| match SupabaseConnector::open(cfg) {
                        Ok(s) => Some(ConnectorKind::Supabase(Arc::new(s))),
                        Err(errs) => {
                            problems.extend(errs.into_iter().map(|e| format!("{at}.config.{e}")));
                            None
                        }
                    }),
                Some("auth0") => parse_config::<keybridge_connector_auth0::Config>(&at, c.config, problems)
                    .and_then(|cfg| open_or_report(&at, keybridge_connector_auth0::open(cfg), problems))
                    .map(|o| ConnectorKind::Auth0(Arc::new(o))),
                Some("clerk") => parse_config::<keybridge_connector_clerk::Config>(&at, c.config, problems)
                    .and_then(|cfg| open_or_report(&at, ClerkConnector::open(cfg), problems))
                    .map(|o| ConnectorKind::Clerk(Arc::new(o))),
                Some("oidc") => parse_config::<keybridge_connector_oidc::Config>(&at, c.config, problems)
                    .and_then(|cfg| open_or_report(&at, OidcConnector::open(cfg), problems))
                    .map(|o| ConnectorKind::Oidc(Arc::new(o))),
                Some("firebase") => parse_config::<keybridge_connector_firebase::Config>(&at, c.config, problems)
                    .and_then(|cfg| open_or_report(&at, FirebaseConnector::open(cfg), problems))
                    .map(|f| ConnectorKind::Firebase(Arc::new(f))),
                Some(other) => {
                    problems.push(format!("{at}.type: unknown connector type {other:?} (known: {})", TYPES.join(", ")));
                    None
                }
                None => {
                    problems.push(format!("{at}.type: required (one of: {})", TYPES.join(", ")));
                    None
                }
            };
        if let Some(kind) = kind {
            out.push(ConnectorSpec { id, name, kind, link });
        }
    }
    out
}
