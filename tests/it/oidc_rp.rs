//! End to end with the `openidconnect` crate as the relying party: discovery, authorize with PKCE
//! and nonce, the HTML login form, the code exchange, ID-token validation against the JWKS,
//! userinfo, and refresh.

use keybridge_testkit::{ALICE, LoginForm, OTHER_CLIENT, OTHER_SECRET, location, query_param, spawn_app};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use url::Url;

const REDIRECT: &str = "https://other.example.com/callback";

#[tokio::test]
async fn an_openidconnect_relying_party_completes_a_login() {
    let app = spawn_app().await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(OTHER_CLIENT.into()),
        Some(ClientSecret::new(OTHER_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("groups".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The person's browser: authorize, the login page, the form.
    let browser = app.browser();
    let res = browser.http.get(auth_url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let html = browser.http.get(location(&res)).send().await.unwrap().text().await.unwrap();
    let form = LoginForm::parse(&app.issuer, &html);
    let res = browser.submit(&form, ALICE).await;
    assert_eq!(res.status(), 303);
    let callback = Url::parse(&location(&res)).unwrap();
    assert_eq!(query_param(&callback, "state").as_deref(), Some(csrf.secret().as_str()));
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(app.issuer.as_str()));
    let code = query_param(&callback, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("the ID token validates against the JWKS");
    assert_eq!(claims.issuer().as_str(), app.issuer);
    assert_eq!(claims.email().map(|e| e.as_str()), Some(ALICE.0));
    assert_eq!(claims.email_verified(), Some(true));
    let sub = claims.subject().clone();

    let userinfo: CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), Some(sub.clone())).unwrap().request_async(&http).await.unwrap();
    assert_eq!(userinfo.subject(), &sub);
    assert_eq!(userinfo.email().map(|e| e.as_str()), Some(ALICE.0));

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("a refresh token"))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(refreshed.refresh_token().unwrap().secret(), tokens.refresh_token().unwrap().secret());
    let again = refreshed.id_token().expect("an ID token on refresh");
    let claims = again
        .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .expect("the refreshed ID token validates");
    assert_eq!(claims.subject(), &sub);
}

#[tokio::test]
async fn id_tokens_validate_with_es256_and_eddsa_too() {
    for alg in ["ES256", "EdDSA"] {
        let app = keybridge_testkit::spawn_app_with(keybridge_testkit::Options {
            yaml: Some(Box::new(move |iss, listen| {
                format!("{}tokens:\n  signing_alg: {alg}\n", keybridge_testkit::default_yaml(iss, listen))
            })),
            ..Default::default()
        })
        .await;
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let metadata =
            CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http).await.unwrap();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(OTHER_CLIENT.into()),
            Some(ClientSecret::new(OTHER_SECRET.into())),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
        let (auth_url, _csrf, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .url();
        let browser = app.browser();
        let res = browser.http.get(auth_url).send().await.unwrap();
        let html = browser.http.get(location(&res)).send().await.unwrap().text().await.unwrap();
        let res = browser.submit(&LoginForm::parse(&app.issuer, &html), ALICE).await;
        let code = query_param(&Url::parse(&location(&res)).unwrap(), "code").unwrap();
        let tokens = client.exchange_code(AuthorizationCode::new(code)).unwrap().request_async(&http).await.unwrap();
        let verifier = client.id_token_verifier().set_allowed_algs([
            openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            openidconnect::core::CoreJwsSigningAlgorithm::EdDsa,
        ]);
        let claims = tokens.id_token().unwrap().claims(&verifier, &nonce).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.issuer().as_str(), app.issuer, "{alg}");
        assert_eq!(crate::jwt_header(tokens.access_token().secret())["alg"], alg);
    }
}
