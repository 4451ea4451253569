//! Upstream failures of the `oidc` connector, through a fake OpenID provider that can be made to
//! misbehave: each gets a readable page for the person and an `error` redirect (with the
//! client's `state`) for the client, and leaves nothing half-stored.

use std::time::{Duration, Instant};

use keybridge_testkit::fakes::auth0::{FakeOp, Fault, Flavor, never_answers};
use keybridge_testkit::{Options, TestApp, location, spawn_app_with};

use crate::oidc_upstream::{assert_failure_page, gpt_query, login_code, run_login, yaml_with};

async fn app_for(op: &FakeOp, extra: &str) -> TestApp {
    let entry = format!(
        "\n  - id: oidc\n    type: oidc\n    config:\n      issuer: {}\n      client_id: kb\n      client_secret: kb-secret\n{extra}",
        op.issuer
    );
    spawn_app_with(Options { yaml: yaml_with(entry), ..Default::default() }).await
}

#[tokio::test]
async fn the_generic_fake_logs_in_with_client_secret_post_and_rfc9207_iss() {
    let op = FakeOp::start(Flavor::Generic, "kb", "kb-secret");
    let app = app_for(&op, "").await;
    let code = login_code(&app, &gpt_query("oidc", &[("login_hint", "carol")])).await;
    let t = app.redeem_gpt_code(&code).await;
    let id = crate::jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "carol@example.com");
    assert_eq!(id["name"], "Carol Example");
}

#[tokio::test]
async fn every_verification_failure_gets_a_page_and_access_denied() {
    let op = FakeOp::start(Flavor::Generic, "kb", "kb-secret");
    let app = app_for(&op, "").await;
    for fault in
        [Fault::BadSignature, Fault::WrongIssuer, Fault::WrongAudience, Fault::WrongNonce, Fault::UserinfoOtherSubject]
    {
        op.set_fault(fault);
        let b = app.browser();
        let flow = run_login(&app, &b, &gpt_query("oidc", &[])).await;
        assert!(flow.callback.is_some(), "{fault:?}: the upstream came back");
        let res = flow.last;
        assert_eq!(res.status(), 502, "{fault:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("could not be verified"), "{fault:?}: {html}");
        // Nothing half-stored: the same callback cannot complete later.
        op.set_fault(Fault::None);
        let again = b.http.get(flow.callback.unwrap()).send().await.unwrap();
        assert_eq!(again.status(), 400, "{fault:?}");
    }
    // And the client learns of it with its state.
    op.set_fault(Fault::BadSignature);
    let flow = run_login(&app, &app.browser(), &gpt_query("oidc", &[])).await;
    assert_failure_page(flow.last, &app, "access_denied").await;
}

#[tokio::test]
async fn access_denied_upstream_reaches_the_client() {
    let op = FakeOp::start(Flavor::Generic, "kb", "kb-secret");
    let app = app_for(&op, "").await;
    op.set_fault(Fault::Deny);
    let flow = run_login(&app, &app.browser(), &gpt_query("oidc", &[])).await;
    assert_failure_page(flow.last, &app, "access_denied").await;
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_times_out() {
    let op = FakeOp::start(Flavor::Generic, "kb", "kb-secret");
    let app = app_for(&op, "      timeout: 500ms\n").await;
    op.set_fault(Fault::HangToken);
    let started = Instant::now();
    let flow = run_login(&app, &app.browser(), &gpt_query("oidc", &[])).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the configured timeout bounds the wait");
    assert_eq!(op.token_requests(), 1);
    assert_failure_page(flow.last, &app, "temporarily_unavailable").await;
}

#[tokio::test]
async fn a_discovery_endpoint_that_never_answers_times_out() {
    let addr = never_answers();
    let entry = format!(
        "\n  - id: oidc\n    type: oidc\n    config:\n      issuer: http://{addr}\n      client_id: kb\n      timeout: 300ms\n"
    );
    let app = spawn_app_with(Options { yaml: yaml_with(entry), ..Default::default() }).await;
    let b = app.browser();
    let q = gpt_query("oidc", &[]);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let started = Instant::now();
    let res = b.authorize(&q).await;
    let res = b.http.get(location(&res)).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_failure_page(res, &app, "temporarily_unavailable").await;
}

#[tokio::test]
async fn a_refresh_against_an_unreachable_upstream_is_temporarily_unavailable_and_a_blocked_user_invalid_grant() {
    let op = FakeOp::start(Flavor::Generic, "kb", "kb-secret");
    let app = app_for(&op, "      refresh_upstream: true\n      timeout: 500ms\n").await;
    let code = login_code(&app, &gpt_query("oidc", &[("login_hint", "bob")])).await;
    let t = app.redeem_gpt_code(&code).await;
    let rt = t["refresh_token"].as_str().unwrap();
    op.set_fault(Fault::HangToken);
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(res.status(), 503);
    op.set_fault(Fault::None);
    op.block("bob", true);
    app.clock.advance(1);
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");
}
