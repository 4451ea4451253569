//! The `auth0` connector against a fake Auth0 tenant with Auth0's wire quirks: the issuer's
//! trailing slash, `updated_at` as a string, namespaced custom claims, `audience`, `connection`,
//! `prompt` and `login_hint`, `offline_access` and rotating refresh tokens.

use keybridge_testkit::fakes::auth0::{FakeOp, Flavor};
use keybridge_testkit::{Options, TestApp, query_param, spawn_app_with};
use serde_json::{Value, json};

use crate::oidc_upstream::{gpt_query, login_code, run_login, userinfo, yaml_with};

async fn app_for(op: &FakeOp, extra: &str) -> TestApp {
    let entry = format!(
        "\n  - id: auth0\n    type: auth0\n    name: Company login\n    config:\n      domain: {}\n      client_id: kb-app\n      client_secret: kb-app-secret\n{extra}",
        op.base()
    );
    spawn_app_with(Options { yaml: yaml_with(entry), ..Default::default() }).await
}

#[tokio::test]
async fn an_auth0_login_passes_auth0s_parameters_and_maps_namespaced_claims() {
    let op = FakeOp::start(Flavor::Auth0, "kb-app", "kb-app-secret");
    assert!(op.issuer.ends_with('/'), "the fake copies Auth0's trailing slash");
    let app = app_for(
        &op,
        "      audience: https://api.example.com\n      connection: google-oauth2\n      claims:\n        groups: https://keybridge.test/roles\n",
    )
    .await;
    let flow = run_login(
        &app,
        &app.browser(),
        &gpt_query("auth0", &[("login_hint", "carol@example.com"), ("prompt", "login")]),
    )
    .await;
    let up = &flow.upstream;
    assert_eq!(query_param(up, "connection").as_deref(), Some("google-oauth2"));
    assert_eq!(query_param(up, "audience").as_deref(), Some("https://api.example.com"));
    assert_eq!(query_param(up, "prompt").as_deref(), Some("login"));
    assert_eq!(query_param(up, "login_hint").as_deref(), Some("carol@example.com"));
    assert_eq!(query_param(up, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(flow.last.status(), 303, "updated_at as a string does not break the login");
    let back = url::Url::parse(&keybridge_testkit::location(&flow.last)).unwrap();
    let t = app.redeem_gpt_code(&query_param(&back, "code").unwrap()).await;
    let info = userinfo(&app, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "carol@example.com");
    assert_eq!(info["name"], "Carol Example");
    assert_eq!(info["preferred_username"], "carol", "Auth0's nickname");
    assert_eq!(info["groups"], json!(["editor", "viewer"]), "from the namespaced claim");
    let text = serde_json::to_string(&t).unwrap();
    assert!(!text.contains("auth0|"), "the upstream id stays inside Keybridge");
}

#[tokio::test]
async fn without_an_audience_the_opaque_access_token_still_reaches_userinfo() {
    let op = FakeOp::start(Flavor::Auth0, "kb-app", "kb-app-secret");
    let app = app_for(&op, "").await;
    let code = login_code(&app, &gpt_query("auth0", &[])).await;
    let t = app.redeem_gpt_code(&code).await;
    assert_eq!(crate::jwt_claims(t["id_token"].as_str().unwrap())["email"], "alice@example.com");
    let sent = op.authorize_requests();
    assert!(!sent[0].iter().any(|(k, _)| k == "audience" || k == "connection"));
}

#[tokio::test]
async fn auth0_refresh_rotates_upstream_and_a_blocked_user_fails_with_invalid_grant() {
    let op = FakeOp::start(Flavor::Auth0, "kb-app", "kb-app-secret");
    let app = app_for(&op, "      refresh_upstream: true\n").await;
    let flow = run_login(&app, &app.browser(), &gpt_query("auth0", &[("login_hint", "bob@example.com")])).await;
    let scope = query_param(&flow.upstream, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "offline_access"), "{scope}");
    let back = url::Url::parse(&keybridge_testkit::location(&flow.last)).unwrap();
    let t = app.redeem_gpt_code(&query_param(&back, "code").unwrap()).await;
    let mut rt = t["refresh_token"].as_str().unwrap().to_owned();
    for n in 1..=2 {
        let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
        assert_eq!(res.status(), 200);
        let t: Value = res.json().await.unwrap();
        rt = t["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(op.refresh_requests(), n, "each Keybridge refresh re-checks Auth0, with its rotated token");
    }
    op.block("bob", true);
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
}
