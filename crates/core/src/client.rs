//! Registered clients and client authentication ([RFC 6749 §2.3](https://www.rfc-editor.org/rfc/rfc6749#section-2.3)).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::OAuthError;
use crate::scope::Scopes;
use crate::types::{ClientId, ClientSecret};

/// A registered OAuth client, validated.
#[derive(Clone, Debug)]
pub struct Client {
    /// `client_id`.
    pub id: ClientId,
    /// Display name, shown on login pages.
    pub name: String,
    /// Accepted secrets (two during a rotation). Empty for a public client.
    pub secrets: Vec<ClientSecret>,
    /// Registered redirect URIs, matched exactly ([RFC 9700 §2.1](https://www.rfc-editor.org/rfc/rfc9700#section-2.1)).
    pub redirect_uris: Vec<String>,
    /// The `aud` of its access tokens; the client id when unset.
    pub audience: Option<String>,
    /// Scopes it may ask for.
    pub allowed_scopes: Scopes,
    /// Scopes granted when it asks for none.
    pub default_scopes: Scopes,
    /// Opt-in: tokens also carry `upstream_connector` and `upstream_sub`, the identity the user
    /// logged in with (off by default: `sub` is all a client needs, and it survives provider changes).
    pub upstream_claims: bool,
}

impl Client {
    /// A public client has no secret and must use PKCE.
    pub fn is_public(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The `aud` of this client's access tokens.
    pub fn access_token_audience(&self) -> &str {
        self.audience.as_deref().unwrap_or(self.id.as_str())
    }

    /// Whether `uri` is registered, by simple string comparison (RFC 3986 §6.2.1).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    fn secret_matches(&self, presented: &str) -> bool {
        // Evaluate every secret, so timing does not reveal which one matched.
        self.secrets.iter().fold(false, |acc, s| s.verify(presented) | acc)
    }
}

/// How a client presented itself at the token endpoint.
#[derive(Debug)]
pub enum ClientCredentials {
    /// `client_secret_basic`.
    Basic {
        /// Decoded username.
        id: ClientId,
        /// Decoded password.
        secret: ClientSecret,
    },
    /// `client_secret_post`.
    Post {
        /// `client_id` from the body.
        id: ClientId,
        /// `client_secret` from the body.
        secret: ClientSecret,
    },
    /// `none`: a public client names itself with `client_id` only.
    None {
        /// `client_id` from the body.
        id: ClientId,
    },
}

impl ClientCredentials {
    /// Reads credentials from the `Authorization` header and the body's `client_id` and
    /// `client_secret`. More than one method in one request is `invalid_request` (RFC 6749 §2.3).
    pub fn extract(
        authorization: Option<&str>,
        body_client_id: Option<&str>,
        body_client_secret: Option<&str>,
    ) -> Result<Self, OAuthError> {
        if let Some(header) = authorization {
            let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::InvalidClient("unsupported Authorization scheme; use Basic".into()));
            }
            let (id, secret) = decode_basic(rest.trim())?;
            if body_client_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "client credentials were sent both in the Authorization header and in the body; use one method"
                        .into(),
                ));
            }
            if let Some(body_id) = body_client_id
                && body_id != id
            {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the one in the Authorization header".into(),
                ));
            }
            return Ok(Self::Basic { id: ClientId::new(id), secret: ClientSecret::new(secret) });
        }
        match (body_client_id, body_client_secret) {
            (Some(id), Some(secret)) => Ok(Self::Post { id: ClientId::new(id), secret: ClientSecret::new(secret) }),
            (Some(id), None) => Ok(Self::None { id: ClientId::new(id) }),
            (None, Some(_)) => Err(OAuthError::InvalidRequest("client_secret was sent without client_id".into())),
            (None, None) => Err(OAuthError::InvalidClient("client authentication is required".into())),
        }
    }

    /// The client id presented.
    pub fn client_id(&self) -> &ClientId {
        match self {
            Self::Basic { id, .. } | Self::Post { id, .. } | Self::None { id } => id,
        }
    }

    /// Whether the Basic scheme was used (its failures answer with `WWW-Authenticate`).
    pub fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }
}

/// Decodes `base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn decode_basic(b64: &str) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::InvalidClient("malformed Basic credentials".into());
    let raw = STANDARD.decode(b64).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let dec = |s: &str| -> Result<String, OAuthError> {
        let plus_as_space = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus_as_space).decode_utf8().map(|c| c.into_owned()).map_err(|_| bad())
    };
    let id = dec(id)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, dec(secret)?))
}

/// The registered clients, by id.
#[derive(Clone, Debug, Default)]
pub struct ClientRegistry {
    clients: HashMap<ClientId, Arc<Client>>,
}

impl ClientRegistry {
    /// Builds a registry. Ids are unique (config validation guarantees it).
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Self {
        Self { clients: clients.into_iter().map(|c| (c.id.clone(), Arc::new(c))).collect() }
    }

    /// Looks a client up.
    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.clients.get(&ClientId::new(id)).cloned()
    }

    /// All clients.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    /// Authenticates a client at the token endpoint.
    pub fn authenticate(&self, creds: &ClientCredentials) -> Result<Arc<Client>, OAuthError> {
        let unknown = || OAuthError::InvalidClient("unknown client or wrong credentials".into());
        let client = self.clients.get(creds.client_id());
        match (creds, client) {
            (ClientCredentials::Basic { secret, .. } | ClientCredentials::Post { secret, .. }, Some(c)) => {
                if !c.is_public() && c.secret_matches(secret.secret()) { Ok(c.clone()) } else { Err(unknown()) }
            }
            (ClientCredentials::None { .. }, Some(c)) if c.is_public() => Ok(c.clone()),
            (ClientCredentials::None { .. }, Some(_)) => {
                Err(OAuthError::InvalidClient("this client must authenticate with its client secret".into()))
            }
            (ClientCredentials::Basic { secret, .. } | ClientCredentials::Post { secret, .. }, None) => {
                // Spend the same work as a real comparison.
                let _ = ClientSecret::new("x").verify(secret.secret());
                Err(unknown())
            }
            (ClientCredentials::None { .. }, None) => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ClientRegistry {
        ClientRegistry::new([
            Client {
                id: ClientId::new("gpt"),
                name: "GPT".into(),
                secrets: vec![ClientSecret::new("s3cr:t%")],
                redirect_uris: vec!["https://chatgpt.com/aip/g-1/oauth/callback".into()],
                audience: None,
                allowed_scopes: Scopes::default(),
                default_scopes: Scopes::default(),
                upstream_claims: false,
            },
            Client {
                id: ClientId::new("spa"),
                name: "SPA".into(),
                secrets: vec![],
                redirect_uris: vec![],
                audience: None,
                allowed_scopes: Scopes::default(),
                default_scopes: Scopes::default(),
                upstream_claims: false,
            },
        ])
    }

    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let creds = ClientCredentials::extract(Some(&basic("gpt", "s3cr:t%")), None, None).unwrap();
        assert!(creds.is_basic());
        assert_eq!(registry().authenticate(&creds).unwrap().id.as_str(), "gpt");
    }

    #[test]
    fn post_credentials_authenticate() {
        let creds = ClientCredentials::extract(None, Some("gpt"), Some("s3cr:t%")).unwrap();
        assert_eq!(registry().authenticate(&creds).unwrap().id.as_str(), "gpt");
    }

    #[test]
    fn wrong_secret_is_invalid_client() {
        let creds = ClientCredentials::extract(None, Some("gpt"), Some("nope")).unwrap();
        assert_eq!(registry().authenticate(&creds).unwrap_err().code(), "invalid_client");
        let creds = ClientCredentials::extract(None, Some("who"), Some("nope")).unwrap();
        assert_eq!(registry().authenticate(&creds).unwrap_err().code(), "invalid_client");
    }

    #[test]
    fn two_methods_at_once_are_invalid_request() {
        let err = ClientCredentials::extract(Some(&basic("gpt", "s3cr:t%")), Some("gpt"), Some("s3cr:t%")).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        let err = ClientCredentials::extract(Some(&basic("gpt", "s3cr:t%")), Some("other"), None).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn confidential_client_without_secret_is_refused_and_public_client_is_accepted() {
        let creds = ClientCredentials::extract(None, Some("gpt"), None).unwrap();
        assert_eq!(registry().authenticate(&creds).unwrap_err().code(), "invalid_client");
        let creds = ClientCredentials::extract(None, Some("spa"), None).unwrap();
        assert!(registry().authenticate(&creds).is_ok());
        let creds = ClientCredentials::extract(None, Some("spa"), Some("anything")).unwrap();
        assert_eq!(registry().authenticate(&creds).unwrap_err().code(), "invalid_client");
    }

    #[test]
    fn no_credentials_is_invalid_client_and_malformed_basic_too() {
        assert_eq!(ClientCredentials::extract(None, None, None).unwrap_err().code(), "invalid_client");
        assert_eq!(ClientCredentials::extract(Some("Basic !!!"), None, None).unwrap_err().code(), "invalid_client");
        assert_eq!(ClientCredentials::extract(Some("Bearer x"), None, None).unwrap_err().code(), "invalid_client");
    }
}
