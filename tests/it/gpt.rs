//! Exactly what ChatGPT's GPT-Actions OAuth client sends (clients-and-specs.md, section A):
//! a browser GET to /authorize with `response_type`, `client_id`, `redirect_uri`, a UUID `state`
//! and an empty `scope`, no PKCE, no nonce; then a form POST to /token, with the credentials in
//! the body ("Default (POST request)") or in a Basic header ("Basic authorization header").

use base64::Engine as _;
use keybridge_testkit::{
    ALICE, GPT_CLIENT, GPT_REDIRECT, GPT_SECRET, LoginForm, TestApp, location, query_param, spawn_app,
};
use serde_json::Value;
use url::Url;

const STATE: &str = "0b1a6f0e-8a5c-4f57-9d0e-2f6f2f0c9a77";

/// The browser part, byte for byte as captured: the query ChatGPT builds.
async fn gpt_authorize(app: &TestApp) -> String {
    let b = app.browser();
    let url = format!(
        "{}/authorize?response_type=code&client_id={GPT_CLIENT}&redirect_uri={}&state={STATE}&scope=",
        app.issuer,
        url::form_urlencoded::byte_serialize(GPT_REDIRECT.as_bytes()).collect::<String>()
    );
    let res = b.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login = location(&res);
    let html = b.http.get(&login).send().await.unwrap().text().await.unwrap();
    let form = LoginForm::parse(&app.issuer, &html);
    let res = b.submit(&form, ALICE).await;
    assert_eq!(res.status(), 303);
    let back = Url::parse(&location(&res)).unwrap();
    assert_eq!(format!("{}://{}{}", back.scheme(), back.host_str().unwrap(), back.path()), GPT_REDIRECT);
    assert_eq!(query_param(&back, "state").as_deref(), Some(STATE), "ChatGPT fails without its state");
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    query_param(&back, "code").unwrap()
}

fn assert_gpt_token_response(body: &Value) {
    assert!(body["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64());
    assert!(body["refresh_token"].as_str().is_some_and(|t| !t.is_empty()), "ChatGPT needs a refresh token");
}

#[tokio::test]
async fn gpt_default_post_request_flow() {
    let app = spawn_app().await;
    let code = gpt_authorize(&app).await;
    // "Default (POST request)": everything in a form body.
    let body = format!(
        "grant_type=authorization_code&client_id={GPT_CLIENT}&client_secret={}&code={code}&redirect_uri={}",
        url::form_urlencoded::byte_serialize(GPT_SECRET.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(GPT_REDIRECT.as_bytes()).collect::<String>(),
    );
    let res = app
        .http
        .post(app.url("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_gpt_token_response(&tokens);
    // The GPT's API validates the token; ChatGPT later refreshes the same way.
    let refresh = format!(
        "grant_type=refresh_token&client_id={GPT_CLIENT}&client_secret={}&refresh_token={}",
        url::form_urlencoded::byte_serialize(GPT_SECRET.as_bytes()).collect::<String>(),
        tokens["refresh_token"].as_str().unwrap()
    );
    let res = app
        .http
        .post(app.url("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_gpt_token_response(&res.json().await.unwrap());
}

#[tokio::test]
async fn gpt_basic_authorization_header_flow() {
    let app = spawn_app().await;
    let code = gpt_authorize(&app).await;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(GPT_CLIENT), enc(GPT_SECRET)))
    );
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", &basic)
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", GPT_REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_gpt_token_response(&tokens);
    let res = app
        .http
        .post(app.url("/token"))
        .header("Authorization", &basic)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
