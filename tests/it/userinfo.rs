//! `/userinfo`: Bearer tokens only, claims by scope, and revocation reaches it at once.

use keybridge_testkit::{ALICE, GPT_CLIENT, GPT_REDIRECT, query_param, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn userinfo_returns_claims_by_scope_on_get_and_post() {
    let app = spawn_app().await;
    let t = app.redeem_gpt_code(&app.gpt_code().await).await;
    let at = t["access_token"].as_str().unwrap();
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let res = app.http.request(method, app.url("/userinfo")).bearer_auth(at).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let claims: Value = res.json().await.unwrap();
        assert_eq!(claims["sub"], crate::jwt_claims(at)["sub"]);
        assert_eq!(claims["email"], ALICE.0);
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Alice Example");
        assert!(claims.get("groups").is_none(), "groups was not asked for");
    }
}

#[tokio::test]
async fn userinfo_releases_only_what_the_scopes_allow() {
    let app = spawn_app().await;
    let redirect = app
        .authorize_and_login(
            &[
                ("response_type", "code"),
                ("client_id", GPT_CLIENT),
                ("redirect_uri", GPT_REDIRECT),
                ("state", "s"),
                ("scope", "groups"),
            ],
            ALICE,
        )
        .await;
    let t = app.redeem_gpt_code(&query_param(&redirect, "code").unwrap()).await;
    assert!(t.get("id_token").is_none(), "plain OAuth without openid gets no ID token");
    let claims: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claims["groups"], serde_json::json!(["staff"]));
    assert!(claims.get("email").is_none());
    assert!(claims.get("name").is_none());
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let t = app.redeem_gpt_code(&app.gpt_code().await).await;
    let at = t["access_token"].as_str().unwrap();
    let id_token = t["id_token"].as_str().unwrap();
    let mut tampered = at.to_owned();
    tampered.pop();
    tampered.push(if at.ends_with('A') { 'B' } else { 'A' });
    for (name, token) in [("garbage", "garbage"), ("tampered", tampered.as_str()), ("an ID token", id_token)] {
        let res = app.http.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 401, "{name}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{name}: {challenge}");
    }
    let res = app.http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    app.clock.advance(3601);
    let res = app.http.get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap();
    assert_eq!(res.status(), 401, "expired");
}
