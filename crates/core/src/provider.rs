//! [`Provider`]: clients, connectors, storage, signing and the clock, and the browser-flow steps
//! between `/authorize` and the code.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::OAuthError;
use crate::authorize::{ConnectorDirectory, ValidatedAuthorize, response_url};
use crate::client::{Client, ClientRegistry};
use crate::clock::{Clock, UnixTime};
use crate::connector::{Connector, LinkBy, OnConflict};
use crate::identity::{Claims, Identity};
use crate::scope::{OPENID, Scopes};
use crate::signer::JwtSigner;
use crate::store::{AuthCodeRecord, AuthRequest, GrantData, IdentityLink, StorageError, Store, User};
use crate::types::{AuthCode, AuthRequestId, ConnectorId, CsrfToken, GrantId, Subject, random_id, random_token};

/// Lifetimes and limits, validated from config.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The exact issuer identifier (no trailing slash drift).
    pub issuer: String,
    /// Access-token lifetime, seconds.
    pub access_token_ttl: i64,
    /// ID-token lifetime, seconds.
    pub id_token_ttl: i64,
    /// Refresh-token lifetime since issue (each rotation starts a new one), seconds.
    pub refresh_token_ttl: i64,
    /// How long a rotated refresh token may still be exchanged (parallel refreshes), seconds.
    pub refresh_reuse_grace: i64,
    /// Authorization-code lifetime, seconds (at most 60).
    pub code_ttl: i64,
    /// How long a person has to log in after `/authorize`, seconds.
    pub auth_request_ttl: i64,
}

impl Settings {
    /// Defaults for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            access_token_ttl: 3600,
            id_token_ttl: 3600,
            refresh_token_ttl: 30 * 24 * 3600,
            refresh_reuse_grace: 10,
            code_ttl: 60,
            auth_request_ttl: 600,
        }
    }
}

/// A failure in the browser flow after `/authorize`: shown to the person as a page.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The authorization request is unknown, used, or expired.
    #[error("This sign-in link has expired or was already used. Go back to the application and start again.")]
    RequestExpired,
    /// The form's CSRF token does not match this browser's.
    #[error(
        "This sign-in form was not opened in this browser, or has expired. Go back to the application and start again."
    )]
    CsrfMismatch,
    /// The email matches an existing account this login cannot be linked to.
    #[error(
        "An account with this email address already exists, but this sign-in method did not verify the address, so it cannot be linked to that account. Sign in the way you did before, or ask the site's operators to link your accounts."
    )]
    EmailConflict,
    /// No such connector, or it cannot log people in this way.
    #[error("Unknown sign-in method {0:?}.")]
    UnknownConnector(String),
    /// A callback arrived for a request that is not waiting for this connector (replayed, or
    /// delivered to another connector's callback URL).
    #[error("This sign-in response does not match a sign-in in progress. Go back to the application and start again.")]
    CallbackMismatch,
    /// Something on our side.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

impl From<StorageError> for LoginError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Self::RequestExpired,
            other => Self::OAuth(other.into()),
        }
    }
}

/// The broker.
pub struct Provider {
    /// Lifetimes and the issuer.
    pub settings: Settings,
    /// Registered clients.
    pub clients: ClientRegistry,
    /// Configured connectors, in config order (the chooser's order).
    pub connectors: Vec<Connector>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Signing.
    pub signer: Arc<dyn JwtSigner>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl ConnectorDirectory for Provider {
    fn has_connector(&self, id: &str) -> bool {
        self.connector(id).is_some()
    }
}

impl Provider {
    /// A connector by id.
    pub fn connector(&self, id: &str) -> Option<&Connector> {
        self.connectors.iter().find(|c| c.id.as_str() == id)
    }

    /// Now.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Stores a validated authorization request. Returns it with the CSRF token the browser keeps
    /// in a cookie and echoes in the login form.
    pub async fn start_authorization(&self, v: ValidatedAuthorize) -> Result<(AuthRequest, CsrfToken), OAuthError> {
        let csrf = CsrfToken::generate();
        let connector_id = v.connector_id.or_else(|| match self.connectors.as_slice() {
            [only] => Some(only.id.clone()),
            _ => None,
        });
        let req = AuthRequest {
            id: AuthRequestId::new(random_token()),
            client_id: v.target.client.id.clone(),
            redirect_uri: v.target.redirect_uri,
            redirect_uri_sent: v.target.redirect_uri_sent,
            state: v.target.state,
            scopes: v.scopes,
            nonce: v.nonce,
            code_challenge: v.code_challenge,
            connector_id,
            csrf_digest: csrf.digest(),
            connector_state: None,
            login_hint: v.login_hint,
            prompt: v.prompt,
            expires_at: self.now() + self.settings.auth_request_ttl,
        };
        self.store.put_auth_request(&req).await?;
        Ok((req, csrf))
    }

    /// Loads an authorization request for a login step, checking the browser's CSRF token.
    pub async fn login_request(&self, id: &str, csrf: Option<&str>) -> Result<AuthRequest, LoginError> {
        let req = self.store.get_auth_request(&AuthRequestId::new(id), self.now()).await?;
        match csrf {
            Some(c) if CsrfToken::new(c).digest().ct_eq(&req.csrf_digest) => Ok(req),
            _ => Err(LoginError::CsrfMismatch),
        }
    }

    /// The client of an authorization request.
    pub fn client_of(&self, req: &AuthRequest) -> Result<Arc<Client>, LoginError> {
        // A client removed from config since /authorize: the request can no longer complete.
        self.clients.get(req.client_id.as_str()).ok_or(LoginError::RequestExpired)
    }

    /// Finishes a login: links the identity to a Keybridge user, consumes the authorization
    /// request (single use), and returns the redirect carrying the code, `state` and `iss`.
    pub async fn complete_login(
        &self,
        req_id: &AuthRequestId,
        connector_id: &ConnectorId,
        identity: Identity,
    ) -> Result<String, LoginError> {
        let now = self.now();
        let req = self.store.take_auth_request(req_id, now).await?;
        let mut identity = identity;
        if self.connector(connector_id.as_str()).is_some_and(|c| c.link.trust_email) && identity.claims.email.is_some()
        {
            identity.claims.email_verified = true;
        }
        let subject = self.resolve_subject(connector_id, &identity).await?;
        let code = AuthCode::generate();
        let record = AuthCodeRecord {
            code_digest: code.digest(),
            grant_id: GrantId::new(random_id()),
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            redirect_uri_sent: req.redirect_uri_sent,
            code_challenge: req.code_challenge.clone(),
            nonce: req.nonce.clone(),
            grant: GrantData {
                subject,
                connector_id: connector_id.clone(),
                upstream_id: identity.upstream_id,
                claims: identity.claims,
                connector_data: identity.connector_data,
                scopes: req.scopes.clone(),
                auth_time: now,
            },
            expires_at: now + self.settings.code_ttl,
            redeemed: false,
        };
        self.store.put_auth_code(&record).await?;
        let mut params: Vec<(&str, &str)> = vec![("code", code.secret())];
        if let Some(s) = &req.state {
            params.push(("state", s));
        }
        Ok(response_url(&req.redirect_uri, &params, &self.settings.issuer)?)
    }

    /// Keybridge's subject for an upstream identity (after Keycloak's first-broker-login):
    /// 1. the user this identity is linked to;
    /// 2. with `link_by: verified_email`, the one user whose linked identity has the same
    ///    verified email, when this upstream verified it too;
    /// 3. otherwise a new user, or a refusal when the email matches a user it cannot be linked to
    ///    and the connector says `on_email_conflict: deny`.
    ///
    /// An unverified email never links: that is the account-takeover path.
    pub async fn resolve_subject(
        &self,
        connector_id: &ConnectorId,
        identity: &Identity,
    ) -> Result<Subject, LoginError> {
        let now = self.now();
        if let Some(mut link) = self.store.find_link(connector_id, &identity.upstream_id).await? {
            if link.claims != identity.claims {
                link.claims = identity.claims.clone();
                link.updated_at = now;
                self.store.update_link(&link).await?;
            }
            return Ok(link.subject);
        }
        let policy = self.connector(connector_id.as_str()).map(|c| c.link).unwrap_or_default();
        let new_link = |subject: Subject| IdentityLink {
            connector_id: connector_id.clone(),
            upstream_id: identity.upstream_id.clone(),
            subject,
            claims: identity.claims.clone(),
            updated_at: now,
        };
        if let Some(email) = identity.claims.email.as_deref().filter(|e| !e.is_empty()) {
            let matches = self.store.find_links_by_email(email).await?;
            let mut verified: Vec<Subject> =
                matches.iter().filter(|l| l.claims.email_verified).map(|l| l.subject.clone()).collect();
            verified.sort();
            verified.dedup();
            let linkable = policy.link_by == LinkBy::VerifiedEmail && identity.claims.email_verified;
            match (linkable, verified.as_slice()) {
                (true, [subject]) => match self.store.create_link(&new_link(subject.clone())).await {
                    Ok(()) => {
                        tracing::info!(connector_id = %connector_id, subject = %subject, "linked a new identity to an existing user by verified email");
                        return Ok(subject.clone());
                    }
                    Err(StorageError::AlreadyExists) => return self.linked_after_race(connector_id, identity).await,
                    Err(e) => return Err(e.into()),
                },
                _ if !matches.is_empty() => {
                    tracing::info!(
                        connector_id = %connector_id,
                        email_verified = identity.claims.email_verified,
                        candidates = verified.len(),
                        "email matches an existing user but cannot be linked"
                    );
                    if policy.on_conflict == OnConflict::Deny {
                        return Err(LoginError::EmailConflict);
                    }
                }
                _ => {}
            }
        }
        let user = User { subject: Subject::new(random_id()), created_at: now };
        match self.store.create_user(&user, &new_link(user.subject.clone())).await {
            Ok(()) => Ok(user.subject),
            // A concurrent first login of the same person won the race: use its user.
            Err(StorageError::AlreadyExists) => self.linked_after_race(connector_id, identity).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn linked_after_race(&self, connector_id: &ConnectorId, identity: &Identity) -> Result<Subject, LoginError> {
        self.store
            .find_link(connector_id, &identity.upstream_id)
            .await?
            .map(|l| l.subject)
            .ok_or_else(|| LoginError::OAuth(OAuthError::ServerError("identity link vanished after a conflict".into())))
    }

    /// Mints an RFC 9068 access token.
    pub(crate) fn mint_access_token(
        &self,
        client: &Client,
        grant_id: &GrantId,
        data: &GrantData,
        scopes: &Scopes,
    ) -> Result<String, OAuthError> {
        let now = self.now();
        let claims = json!({
            "iss": self.settings.issuer,
            "sub": data.subject,
            "aud": client.access_token_audience(),
            "exp": now + self.settings.access_token_ttl,
            "iat": now,
            "jti": random_token(),
            "client_id": client.id,
            "scope": scopes.to_string(),
            "auth_time": data.auth_time,
            "sid": grant_id,
        });
        let mut claims = as_map(claims);
        if client.upstream_claims {
            claims.extend(upstream_claims(data));
        }
        Ok(self.signer.sign("at+jwt", &claims)?)
    }

    /// Mints an OIDC Core ID token, when `openid` was granted.
    pub(crate) fn mint_id_token(
        &self,
        client: &Client,
        grant_id: &GrantId,
        data: &GrantData,
        scopes: &Scopes,
        nonce: Option<&str>,
    ) -> Result<Option<String>, OAuthError> {
        if !scopes.contains(OPENID) {
            return Ok(None);
        }
        let now = self.now();
        let mut claims = as_map(json!({
            "iss": self.settings.issuer,
            "sub": data.subject,
            "aud": client.id,
            "azp": client.id,
            "exp": now + self.settings.id_token_ttl,
            "iat": now,
            "auth_time": data.auth_time,
            "sid": grant_id,
        }));
        if let Some(n) = nonce {
            claims.insert("nonce".into(), n.into());
        }
        claims.extend(scoped_claims(&data.claims, scopes));
        if client.upstream_claims {
            claims.extend(upstream_claims(data));
        }
        Ok(Some(self.signer.sign("JWT", &claims)?))
    }
}

/// The standard claims a set of scopes releases (OIDC Core §5.4).
pub fn scoped_claims(c: &Claims, scopes: &Scopes) -> Map<String, Value> {
    let mut out = Map::new();
    if scopes.contains("email")
        && let Some(e) = &c.email
    {
        out.insert("email".into(), e.clone().into());
        out.insert("email_verified".into(), c.email_verified.into());
    }
    if scopes.contains("profile") {
        for (k, v) in [("name", &c.name), ("preferred_username", &c.preferred_username), ("picture", &c.picture)] {
            if let Some(v) = v {
                out.insert(k.into(), v.clone().into());
            }
        }
    }
    if scopes.contains("groups") {
        out.insert("groups".into(), c.groups.clone().into());
    }
    out
}

/// The opt-in claims naming the upstream identity behind a grant.
pub fn upstream_claims(data: &GrantData) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("upstream_connector".into(), data.connector_id.as_str().into());
    out.insert("upstream_sub".into(), data.upstream_id.clone().into());
    out
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
