//! The browser-flow steps for connectors that leave Keybridge's own form: the redirect upstream
//! and its callback, and the token hand-off.

use crate::OAuthError;
use crate::authorize::{Target, error_response_url};
use crate::connector::{CallbackParams, ConnectorError, LoginOptions};
use crate::provider::{LoginError, Provider};
use crate::store::AuthRequest;
use crate::types::{AuthRequestId, ConnectorId};

/// A login that failed upstream: what the person reads, and where the client learns of it.
#[derive(Debug)]
pub struct UpstreamFailure {
    /// A readable explanation for the person.
    pub message: String,
    /// The client's error redirect (`error`, `state`, `iss`), to a validated redirect URI.
    pub client_redirect: String,
    /// The client's display name.
    pub client_name: String,
}

/// Why a callback or hand-off did not produce a code.
#[derive(Debug)]
pub enum UpstreamError {
    /// The flow itself is broken (expired request, CSRF): a page and nothing else.
    Login(LoginError),
    /// The upstream refused or failed: a page, plus an error redirect for the client.
    Failed(UpstreamFailure),
}

impl From<LoginError> for UpstreamError {
    fn from(e: LoginError) -> Self {
        Self::Login(e)
    }
}

impl From<crate::store::StorageError> for UpstreamError {
    fn from(e: crate::store::StorageError) -> Self {
        Self::Login(e.into())
    }
}

/// The OAuth error a client gets for a connector failure, and the person's message.
pub fn classify(e: &ConnectorError) -> (OAuthError, String) {
    match e {
        ConnectorError::Denied(m) => {
            (OAuthError::AccessDenied("the identity provider refused the login".into()), m.clone())
        }
        ConnectorError::UserInvalid(_) => (
            OAuthError::AccessDenied("the account is disabled or no longer exists".into()),
            "This account is disabled or no longer exists at the sign-in provider.".into(),
        ),
        ConnectorError::InvalidResponse(_) => (
            OAuthError::AccessDenied("the identity provider's response failed verification".into()),
            "The sign-in provider's answer could not be verified, so you were not signed in. Please try again.".into(),
        ),
        ConnectorError::Upstream(_) => (
            OAuthError::TemporarilyUnavailable("the identity provider could not be reached".into()),
            "The sign-in provider could not be reached or did not answer in time. Please try again in a moment.".into(),
        ),
        ConnectorError::Config(_) => (
            OAuthError::ServerError("connector misconfigured".into()),
            "This sign-in method is misconfigured. Please tell the site's operators.".into(),
        ),
    }
}

impl Provider {
    /// Starts an upstream login: asks the connector for the upstream URL and keeps its
    /// correlation data with the authorization request. The upstream `state` is the request id;
    /// the callback must also carry this browser's CSRF cookie.
    pub async fn begin_upstream(
        &self,
        mut req: AuthRequest,
        connector_id: &ConnectorId,
        callback_url: &str,
        options: &LoginOptions,
    ) -> Result<String, UpstreamError> {
        let connector = self
            .connector(connector_id.as_str())
            .ok_or_else(|| LoginError::UnknownConnector(connector_id.to_string()))?;
        let cb = connector.callback.clone().ok_or_else(|| LoginError::UnknownConnector(connector_id.to_string()))?;
        match cb.login_url(&req.scopes, callback_url, req.id.as_str(), options).await {
            Ok((url, kept)) => {
                req.connector_state = Some(kept);
                req.connector_id = Some(connector_id.clone());
                self.store.update_auth_request(&req).await?;
                Ok(url)
            }
            Err(e) => Err(self.fail(&req.id, &e).await),
        }
    }

    /// Handles the upstream's callback: single use (the kept data is consumed first), bound to the
    /// connector the request went to, then the identity becomes a code.
    pub async fn finish_upstream(
        &self,
        req_id: &str,
        csrf: Option<&str>,
        connector_id: &ConnectorId,
        params: &CallbackParams,
    ) -> Result<String, UpstreamError> {
        let mut req = self.login_request(req_id, csrf).await?;
        if req.connector_id.as_ref() != Some(connector_id) {
            return Err(LoginError::CallbackMismatch.into());
        }
        let Some(kept) = req.connector_state.take() else { return Err(LoginError::CallbackMismatch.into()) };
        self.store.update_auth_request(&req).await?;
        let connector = self
            .connector(connector_id.as_str())
            .ok_or_else(|| LoginError::UnknownConnector(connector_id.to_string()))?;
        let cb = connector.callback.clone().ok_or_else(|| LoginError::UnknownConnector(connector_id.to_string()))?;
        if let Some(err) = params.get("error") {
            let detail = params.get("error_description").unwrap_or(err).to_owned();
            tracing::info!(connector_id = %connector_id, error = err, "upstream returned an error");
            let e = if err == "access_denied" {
                ConnectorError::Denied(format!("Sign-in was cancelled or refused: {detail}"))
            } else {
                ConnectorError::Upstream(detail)
            };
            return Err(self.fail(&req.id, &e).await);
        }
        match cb.handle_callback(&req.scopes, kept, params).await {
            Ok(identity) => Ok(self.complete_login(&req.id, connector_id, identity).await?),
            Err(e) => Err(self.fail(&req.id, &e).await),
        }
    }

    /// Completes a token hand-off.
    pub async fn finish_handoff(
        &self,
        req_id: &str,
        csrf: Option<&str>,
        connector_id: &ConnectorId,
        token: &str,
    ) -> Result<String, UpstreamError> {
        let req = self.login_request(req_id, csrf).await?;
        if req.connector_id.as_ref().is_some_and(|c| c != connector_id) {
            return Err(LoginError::CallbackMismatch.into());
        }
        let connector = self
            .connector(connector_id.as_str())
            .ok_or_else(|| LoginError::UnknownConnector(connector_id.to_string()))?;
        let handoff =
            connector.handoff.clone().ok_or_else(|| LoginError::UnknownConnector(connector_id.to_string()))?;
        match handoff.verify(&req.scopes, token).await {
            Ok(identity) => Ok(self.complete_login(&req.id, connector_id, identity).await?),
            Err(e) => Err(self.fail(&req.id, &e).await),
        }
    }

    /// Ends a login that failed upstream: consumes the request (nothing is half-stored) and builds
    /// the client's error redirect.
    async fn fail(&self, req_id: &AuthRequestId, e: &ConnectorError) -> UpstreamError {
        tracing::warn!(error = %e, "upstream login failed");
        let req = match self.store.take_auth_request(req_id, self.now()).await {
            Ok(r) => r,
            Err(err) => return err.into(),
        };
        let client = match self.client_of(&req) {
            Ok(c) => c,
            Err(err) => return err.into(),
        };
        let (oauth, message) = classify(e);
        let target = Target {
            client: client.clone(),
            redirect_uri: req.redirect_uri.clone(),
            redirect_uri_sent: req.redirect_uri_sent,
            state: req.state.clone(),
        };
        match error_response_url(&target, &oauth, &self.settings.issuer) {
            Ok(client_redirect) => {
                UpstreamError::Failed(UpstreamFailure { message, client_redirect, client_name: client.name.clone() })
            }
            Err(err) => UpstreamError::Login(LoginError::OAuth(err)),
        }
    }
}
