//! The UserInfo endpoint's logic ([OIDC Core §5.3](https://openid.net/specs/openid-connect-core-1_0.html#UserInfo)).

use serde_json::{Map, Value};

use crate::OAuthError;
use crate::provider::{Provider, scoped_claims, upstream_claims};
use crate::scope::Scopes;
use crate::store::StorageError;
use crate::types::GrantId;

impl Provider {
    /// Validates a Keybridge access token and returns the claims its scopes release.
    /// The token's grant must still be live, so revocation reaches `/userinfo` at once.
    pub async fn userinfo(&self, bearer: &str) -> Result<Map<String, Value>, OAuthError> {
        let invalid = |why: &'static str| OAuthError::InvalidToken(why.into());
        let claims = self
            .signer
            .verify(bearer, "at+jwt")
            .map_err(|_| invalid("the access token is malformed or its signature is invalid"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(invalid("the access token was not issued here"));
        }
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp > self.now() => {}
            _ => return Err(invalid("the access token has expired")),
        }
        let sid = claims.get("sid").and_then(Value::as_str).ok_or_else(|| invalid("the access token has no grant"))?;
        let grant = match self.store.get_grant(&GrantId::new(sid)).await {
            Ok(g) => g,
            Err(StorageError::NotFound) => {
                return Err(invalid("the access token's grant no longer exists"));
            }
            Err(e) => return Err(e.into()),
        };
        if grant.revoked {
            return Err(invalid("the access token has been revoked"));
        }
        let scopes =
            claims.get("scope").and_then(Value::as_str).map(Scopes::parse).and_then(Result::ok).unwrap_or_default();
        let mut out = Map::new();
        out.insert("sub".into(), grant.data.subject.as_str().into());
        out.extend(scoped_claims(&grant.data.claims, &scopes));
        if self.clients.get(grant.client_id.as_str()).is_some_and(|c| c.upstream_claims) {
            out.extend(upstream_claims(&grant.data));
        }
        Ok(out)
    }
}
