//! The token endpoint ([RFC 6749 §3.2](https://www.rfc-editor.org/rfc/rfc6749#section-3.2)) as a
//! registry of grants. The dispatcher runs the shared phases (grant-type lookup, client
//! authentication) once, so a grant only fills in what is unique to it and cannot skip a shared step.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::OAuthError;
use crate::client::{Client, ClientCredentials};
use crate::connector::ConnectorError;
use crate::identity::Identity;
use crate::params::Params;
use crate::provider::Provider;
use crate::scope::Scopes;
use crate::store::{Grant, GrantData, RedeemOutcome, RefreshOutcome, RefreshTokenRecord};
use crate::types::{AuthCode, GrantId, RefreshToken};

/// A successful token response ([RFC 6749 §5.1](https://www.rfc-editor.org/rfc/rfc6749#section-5.1)).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// An RFC 9068 JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds, as a JSON integer.
    pub expires_in: i64,
    /// A new opaque refresh token.
    pub refresh_token: String,
    /// The granted scopes.
    pub scope: String,
    /// Present when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The grant types Keybridge supports, in discovery order.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token"];

impl Provider {
    /// Handles a token request: looks up the grant, authenticates the client, runs the grant.
    pub async fn token(
        &self,
        creds: Result<ClientCredentials, OAuthError>,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params.require("grant_type")?;
        if !GRANT_TYPES.contains(&grant_type) {
            return Err(OAuthError::UnsupportedGrantType(format!("grant_type {grant_type:?} is not supported").into()));
        }
        let client = self.clients.authenticate(&creds?)?;
        match grant_type {
            "authorization_code" => self.grant_authorization_code(&client, params).await,
            _ => self.grant_refresh_token(&client, params).await,
        }
    }

    /// `authorization_code` ([RFC 6749 §4.1.3](https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3), RFC 7636 §4.6).
    async fn grant_authorization_code(
        &self,
        client: &Arc<Client>,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError> {
        let code = AuthCode::new(params.require("code")?);
        let now = self.now();
        let record = match self.store.get_auth_code(&code.digest(), now).await {
            Ok(r) => r,
            Err(crate::store::StorageError::NotFound) => {
                return Err(OAuthError::InvalidGrant("authorization code is invalid or expired".into()));
            }
            Err(e) => return Err(e.into()),
        };
        if record.redeemed {
            return Err(self.replayed_code(&record.grant_id).await);
        }
        if record.client_id != client.id {
            return Err(OAuthError::InvalidGrant("authorization code was issued to another client".into()));
        }
        match params.get("redirect_uri")? {
            Some(uri) if uri == record.redirect_uri => {}
            None if !record.redirect_uri_sent => {}
            None => {
                return Err(OAuthError::InvalidGrant(
                    "redirect_uri is required: the authorization request had one".into(),
                ));
            }
            Some(_) => {
                return Err(OAuthError::InvalidGrant("redirect_uri does not match the authorization request".into()));
            }
        }
        check_code_verifier(record.code_challenge.as_deref(), params.get("code_verifier")?)?;

        let grant = Grant {
            id: record.grant_id.clone(),
            client_id: client.id.clone(),
            data: record.grant.clone(),
            created_at: now,
            revoked: false,
        };
        let refresh = RefreshToken::generate();
        let refresh_record = self.refresh_record(&refresh, &grant.id, client);
        match self.store.redeem_auth_code(&code.digest(), &client.id, &grant, &refresh_record, now).await? {
            RedeemOutcome::Redeemed => {}
            RedeemOutcome::AlreadyRedeemed(gid) => return Err(self.replayed_code(&gid).await),
            RedeemOutcome::NotFound => {
                return Err(OAuthError::InvalidGrant("authorization code is invalid or expired".into()));
            }
        }
        tracing::info!(client_id = %client.id, grant_id = %grant.id, "authorization code redeemed");
        self.respond(client, &grant.id, &grant.data, &grant.data.scopes, record.nonce.as_deref(), refresh)
    }

    /// A code came back after redemption: revoke what it issued (RFC 9700 §4.5, RFC 6749 §4.1.2).
    async fn replayed_code(&self, grant_id: &GrantId) -> OAuthError {
        tracing::warn!(grant_id = %grant_id, "authorization code replayed; revoking its grant");
        if let Err(e) = self.store.revoke_grant(grant_id).await {
            return e.into();
        }
        OAuthError::InvalidGrant("authorization code was already used; the tokens issued from it are revoked".into())
    }

    /// `refresh_token` ([RFC 6749 §6](https://www.rfc-editor.org/rfc/rfc6749#section-6)), with rotation
    /// and reuse detection ([RFC 9700 §4.14.2](https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2)).
    async fn grant_refresh_token(&self, client: &Arc<Client>, params: &Params) -> Result<TokenResponse, OAuthError> {
        let presented = RefreshToken::new(params.require("refresh_token")?);
        let requested = match params.get("scope")? {
            None => None,
            Some(raw) => Some(
                Scopes::parse(raw).map_err(|t| OAuthError::InvalidScope(format!("malformed scope {t:?}").into()))?,
            ),
        };
        let new = RefreshToken::generate();
        let now = self.now();
        let outcome = self
            .store
            .use_refresh_token(
                &presented.digest(),
                &client.id,
                &new.digest(),
                now + self.settings.refresh_token_ttl,
                self.settings.refresh_reuse_grace,
                now,
            )
            .await?;
        let mut grant = match outcome {
            RefreshOutcome::Rotated(g) => g,
            RefreshOutcome::ReuseDetected(gid) => {
                tracing::warn!(client_id = %client.id, grant_id = %gid, "refresh token reused after rotation; grant revoked");
                return Err(OAuthError::InvalidGrant("refresh token was already used; the grant is revoked".into()));
            }
            RefreshOutcome::WrongClient => {
                return Err(OAuthError::InvalidGrant("refresh token was issued to another client".into()));
            }
            RefreshOutcome::Revoked => {
                return Err(OAuthError::InvalidGrant("refresh token has been revoked".into()));
            }
            RefreshOutcome::NotFound => {
                return Err(OAuthError::InvalidGrant("refresh token is invalid or expired".into()));
            }
        };
        let scopes = match requested {
            Some(r) if !r.is_empty() => {
                let extra = r.not_in(&grant.data.scopes);
                if !extra.is_empty() {
                    return Err(OAuthError::InvalidScope(
                        format!("scope exceeds the original grant: {}", extra.join(" ")).into(),
                    ));
                }
                r
            }
            _ => grant.data.scopes.clone(),
        };
        grant.data = self.recheck_upstream(&grant).await?;
        self.respond(client, &grant.id, &grant.data, &scopes, None, new)
    }

    /// Re-checks the user with the upstream, when the connector can. A connector that has left the
    /// config falls back to the stored identity.
    async fn recheck_upstream(&self, grant: &Grant) -> Result<GrantData, OAuthError> {
        let data = &grant.data;
        let Some(connector) = self.connector(data.connector_id.as_str()) else {
            tracing::info!(grant_id = %grant.id, connector_id = %data.connector_id, "connector no longer configured; refreshing from the stored identity");
            return Ok(data.clone());
        };
        let Some(refresher) = &connector.refresher else {
            return Ok(data.clone());
        };
        let identity = Identity {
            upstream_id: data.upstream_id.clone(),
            claims: data.claims.clone(),
            connector_data: data.connector_data.clone(),
        };
        match refresher.refresh(&data.scopes, identity).await {
            Ok(fresh) => {
                let mut updated = data.clone();
                updated.claims = fresh.claims;
                updated.connector_data = fresh.connector_data.or(updated.connector_data);
                self.store.update_grant_data(&grant.id, &updated).await?;
                Ok(updated)
            }
            Err(ConnectorError::UserInvalid(why)) | Err(ConnectorError::Denied(why)) => {
                tracing::info!(grant_id = %grant.id, reason = %why, "upstream refused the refresh; grant revoked");
                self.store.revoke_grant(&grant.id).await?;
                Err(OAuthError::InvalidGrant("the user is no longer valid upstream".into()))
            }
            Err(e) => {
                tracing::warn!(grant_id = %grant.id, error = %e, "upstream re-check failed");
                Err(OAuthError::TemporarilyUnavailable("the upstream identity provider could not be reached".into()))
            }
        }
    }

    fn refresh_record(&self, token: &RefreshToken, grant_id: &GrantId, client: &Client) -> RefreshTokenRecord {
        RefreshTokenRecord {
            token_digest: token.digest(),
            grant_id: grant_id.clone(),
            client_id: client.id.clone(),
            expires_at: self.now() + self.settings.refresh_token_ttl,
            used_at: None,
        }
    }

    fn respond(
        &self,
        client: &Client,
        grant_id: &GrantId,
        data: &GrantData,
        scopes: &Scopes,
        nonce: Option<&str>,
        refresh: RefreshToken,
    ) -> Result<TokenResponse, OAuthError> {
        Ok(TokenResponse {
            access_token: self.mint_access_token(client, grant_id, data, scopes)?,
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl,
            refresh_token: refresh.secret().to_owned(),
            scope: scopes.to_string(),
            id_token: self.mint_id_token(client, grant_id, data, scopes, nonce)?,
        })
    }
}

/// PKCE at the token endpoint (RFC 7636 §4.6), including the downgrade check of RFC 9700 §4.8.2:
/// a `code_verifier` for a code issued without a challenge is refused.
pub fn check_code_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::InvalidGrant(
            "code_verifier was sent, but the authorization request had no code_challenge".into(),
        )),
        (Some(_), None) => Err(OAuthError::InvalidGrant("code_verifier is required".into())),
        (Some(c), Some(v)) => {
            let well_formed = (43..=128).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
            if well_formed && bool::from(computed.as_bytes().ct_eq(c.as_bytes())) {
                Ok(())
            } else {
                Err(OAuthError::InvalidGrant("code_verifier does not match the code_challenge".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        assert!(check_code_verifier(Some(CHALLENGE), Some(VERIFIER)).is_ok());
    }

    #[test]
    fn pkce_failures_are_invalid_grant_with_a_reason() {
        let d = |r: Result<(), OAuthError>| r.unwrap_err().description().unwrap_or_default().to_owned();
        assert_eq!(d(check_code_verifier(Some(CHALLENGE), None)), "code_verifier is required");
        assert_eq!(
            d(check_code_verifier(Some(CHALLENGE), Some(&VERIFIER.replace('d', "e")))),
            "code_verifier does not match the code_challenge"
        );
        assert_eq!(
            d(check_code_verifier(Some(CHALLENGE), Some("short"))),
            "code_verifier does not match the code_challenge"
        );
        assert_eq!(
            d(check_code_verifier(None, Some(VERIFIER))),
            "code_verifier was sent, but the authorization request had no code_challenge"
        );
        assert!(check_code_verifier(None, None).is_ok());
    }
}
