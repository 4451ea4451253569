//! `refresh_token`: rotation, the grace window for parallel refreshes, reuse detection, binding.

use keybridge_testkit::{OTHER_CLIENT, OTHER_SECRET, TestApp, spawn_app};
use serde_json::Value;

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", token)]).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn first_tokens(app: &TestApp) -> Value {
    app.redeem_gpt_code(&app.gpt_code().await).await
}

fn rt(v: &Value) -> &str {
    v["refresh_token"].as_str().unwrap()
}

#[tokio::test]
async fn refresh_rotates_and_issues_fresh_tokens() {
    let app = spawn_app().await;
    let t0 = first_tokens(&app).await;
    app.clock.advance(100);
    let (status, t1) = refresh(&app, rt(&t0)).await;
    assert_eq!(status, 200, "{t1}");
    assert_ne!(rt(&t1), rt(&t0), "the refresh token rotates");
    assert_ne!(t1["access_token"], t0["access_token"]);
    assert!(t1["id_token"].is_string());
    assert_eq!(t1["expires_in"], 3600);
    let c0 = crate::jwt_claims(t0["access_token"].as_str().unwrap());
    let c1 = crate::jwt_claims(t1["access_token"].as_str().unwrap());
    assert_eq!(c0["sub"], c1["sub"]);
    assert_eq!(c1["iat"].as_i64().unwrap() - c0["iat"].as_i64().unwrap(), 100);
    // The new one works in turn.
    assert_eq!(refresh(&app, rt(&t1)).await.0, 200);
}

#[tokio::test]
async fn parallel_refreshes_within_the_grace_window_all_succeed() {
    let app = spawn_app().await;
    let t0 = first_tokens(&app).await;
    let (a, b, c) = tokio::join!(refresh(&app, rt(&t0)), refresh(&app, rt(&t0)), refresh(&app, rt(&t0)));
    for (status, body) in [&a, &b, &c] {
        assert_eq!(*status, 200, "{body}");
    }
    // Each agent's new token keeps working.
    for (_, body) in [&a, &b, &c] {
        assert_eq!(refresh(&app, rt(body)).await.0, 200);
    }
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let app = spawn_app().await;
    let t0 = first_tokens(&app).await;
    let (_, t1) = refresh(&app, rt(&t0)).await;
    app.clock.advance(11);
    let (status, err) = refresh(&app, rt(&t0)).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_description"], "refresh token was already used; the grant is revoked");
    // The legitimate holder's newer token is revoked too (RFC 9700 §4.14.2).
    let (status, err) = refresh(&app, rt(&t1)).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_grant");
    let ui = app.http.get(app.url("/userinfo")).bearer_auth(t1["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(ui.status(), 401);
}

#[tokio::test]
async fn a_refresh_token_of_another_client_is_refused_and_not_spent() {
    let app = spawn_app().await;
    let t0 = first_tokens(&app).await;
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt(&t0)),
            ("client_id", OTHER_CLIENT),
            ("client_secret", OTHER_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "refresh token was issued to another client");
    assert_eq!(refresh(&app, rt(&t0)).await.0, 200);
}

#[tokio::test]
async fn an_unknown_or_expired_refresh_token_is_invalid_grant() {
    let app = spawn_app().await;
    let (status, err) = refresh(&app, "not-a-token").await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")));
    let t0 = first_tokens(&app).await;
    app.clock.advance(30 * 24 * 3600 + 1);
    let (status, err) = refresh(&app, rt(&t0)).await;
    assert_eq!((status, err["error_description"].as_str()), (400, Some("refresh token is invalid or expired")));
}

#[tokio::test]
async fn refresh_may_narrow_scope_but_not_widen_it() {
    let app = spawn_app().await;
    let t0 = first_tokens(&app).await;
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt(&t0)), ("scope", "email")]).await;
    assert_eq!(res.status(), 200);
    let t1: Value = res.json().await.unwrap();
    assert_eq!(t1["scope"], "email");
    assert!(t1.get("id_token").is_none(), "no openid, no ID token");
    let res =
        app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt(&t1)), ("scope", "openid groups")]).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_scope");
}
