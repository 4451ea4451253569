//! `/token` with `authorization_code`: client authentication, code binding, PKCE, replay.

use base64::Engine as _;
use keybridge_testkit::{
    ALICE, GPT_CLIENT, GPT_REDIRECT, GPT_SECRET, OTHER_CLIENT, OTHER_SECRET, PUBLIC_CLIENT, PUBLIC_REDIRECT,
    query_param, spawn_app,
};
use serde_json::Value;

async fn error_of(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_token_response_has_every_field_and_no_store() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let res = app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", GPT_REDIRECT)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body: Value = res.json().await.unwrap();
    assert!(body["access_token"].is_string());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_i64(), "expires_in must be a JSON integer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["refresh_token"].is_string());
    assert!(body["id_token"].is_string(), "openid was asked for");
    assert_eq!(body["scope"], "openid email profile");

    let at = body["access_token"].as_str().unwrap();
    let header = crate::jwt_header(at);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    let claims = crate::jwt_claims(at);
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"] {
        assert!(claims.get(claim).is_some(), "access token lacks {claim}");
    }
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["client_id"], GPT_CLIENT);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    let sub = claims["sub"].as_str().unwrap();
    assert!(!sub.contains("alice"), "sub must not reveal the upstream id");

    let id = crate::jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], GPT_CLIENT);
    assert_eq!(id["sub"], sub);
    assert_eq!(id["email"], ALICE.0);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "Alice Example");
}

#[tokio::test]
async fn the_same_person_keeps_the_same_sub_across_logins_and_clients() {
    let app = spawn_app().await;
    let a = app.redeem_gpt_code(&app.gpt_code().await).await;
    let b = app.redeem_gpt_code(&app.gpt_code().await).await;
    let sub = |t: &Value| crate::jwt_claims(t["access_token"].as_str().unwrap())["sub"].clone();
    assert_eq!(sub(&a), sub(&b));
}

#[tokio::test]
async fn basic_client_authentication_works_with_form_encoded_credentials() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(GPT_CLIENT), enc(GPT_SECRET)));
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", GPT_REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client_with_401_and_a_challenge() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", GPT_REDIRECT),
            ("client_id", GPT_CLIENT),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert_eq!(error_of(res).await, (401, "invalid_client".into(), "unknown client or wrong credentials".into()));
    // The code was not spent by the failed attempt.
    app.redeem_gpt_code(&code).await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_the_first_redemption_issued() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let first = app.redeem_gpt_code(&code).await;
    let again =
        app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", GPT_REDIRECT)]).await;
    assert_eq!(
        error_of(again).await,
        (
            400,
            "invalid_grant".into(),
            "authorization code was already used; the tokens issued from it are revoked".into()
        )
    );
    // The refresh token from the first redemption is dead...
    let refresh = app
        .token(&[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().unwrap())])
        .await;
    assert_eq!(error_of(refresh).await.1, "invalid_grant");
    // ...and so is its access token at /userinfo.
    let ui =
        app.http.get(app.url("/userinfo")).bearer_auth(first["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(ui.status(), 401);
}

#[tokio::test]
async fn a_code_expires_after_60_seconds() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    app.clock.advance(61);
    let res = app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", GPT_REDIRECT)]).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".into(), "authorization code is invalid or expired".into()));
}

#[tokio::test]
async fn a_redirect_uri_that_differs_at_the_token_endpoint_is_refused() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let other = GPT_REDIRECT.replace("chatgpt.com", "chat.openai.com");
    let res = app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &other)]).await;
    assert_eq!(
        error_of(res).await,
        (400, "invalid_grant".into(), "redirect_uri does not match the authorization request".into())
    );
    let res = app.token(&[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(error_of(res).await.2, "redirect_uri is required: the authorization request had one");
}

#[tokio::test]
async fn a_code_used_by_another_client_is_refused_and_not_spent() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", GPT_REDIRECT),
            ("client_id", OTHER_CLIENT),
            ("client_secret", OTHER_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (400, "invalid_grant".into(), "authorization code was issued to another client".into())
    );
    app.redeem_gpt_code(&code).await;
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn pkce_code(app: &keybridge_testkit::TestApp) -> String {
    let redirect = app
        .authorize_and_login(
            &[
                ("response_type", "code"),
                ("client_id", GPT_CLIENT),
                ("redirect_uri", GPT_REDIRECT),
                ("state", "s"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
            ALICE,
        )
        .await;
    query_param(&redirect, "code").unwrap()
}

#[tokio::test]
async fn pkce_s256_is_enforced_when_a_challenge_was_sent() {
    let app = spawn_app().await;
    let code = pkce_code(&app).await;
    let base = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", GPT_REDIRECT)];
    let res = app.token(&base).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".into(), "code_verifier is required".into()));
    let mut wrong = base.to_vec();
    wrong.push(("code_verifier", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    let res = app.token(&wrong).await;
    assert_eq!(
        error_of(res).await,
        (400, "invalid_grant".into(), "code_verifier does not match the code_challenge".into())
    );
    let mut right = base.to_vec();
    right.push(("code_verifier", VERIFIER));
    assert_eq!(app.token(&right).await.status(), 200);
}

#[tokio::test]
async fn a_verifier_for_a_code_issued_without_a_challenge_is_a_downgrade() {
    let app = spawn_app().await;
    let code = app.gpt_code().await;
    let res = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", GPT_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(
        error_of(res).await,
        (
            400,
            "invalid_grant".into(),
            "code_verifier was sent, but the authorization request had no code_challenge".into()
        )
    );
}

#[tokio::test]
async fn a_public_client_must_use_pkce_and_authenticates_with_client_id_alone() {
    let app = spawn_app().await;
    let b = app.browser();
    let res = b
        .authorize(&[
            ("response_type", "code"),
            ("client_id", PUBLIC_CLIENT),
            ("redirect_uri", PUBLIC_REDIRECT),
            ("state", "s"),
        ])
        .await;
    let to = url::Url::parse(&keybridge_testkit::location(&res)).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_request"));
    let redirect = b
        .authorize_and_login(
            &[
                ("response_type", "code"),
                ("client_id", PUBLIC_CLIENT),
                ("redirect_uri", PUBLIC_REDIRECT),
                ("state", "s"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
            ALICE,
        )
        .await;
    let code = query_param(&redirect, "code").unwrap();
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", PUBLIC_REDIRECT),
            ("client_id", PUBLIC_CLIENT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn credentials_in_both_header_and_body_are_invalid_request() {
    let app = spawn_app().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{GPT_CLIENT}:x"));
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "authorization_code"), ("code", "c"), ("client_id", GPT_CLIENT), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.1, "invalid_request");
}
