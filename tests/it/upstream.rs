//! The upstream plumbing every callback and hand-off connector shares, through a mock upstream:
//! redirect, callback (single use, CSRF-bound, per-connector URL), failures (a page for the
//! person and an error redirect for the client), hand-off, and the refresh re-check.

use std::sync::Arc;

use keybridge_testkit::mock::{MockUpstream, UPSTREAM, UpstreamUser};
use keybridge_testkit::{Browser, GPT_CLIENT, GPT_REDIRECT, Options, TestApp, location, query_param, spawn_app_with};
use serde_json::Value;
use url::Url;

async fn app_with_mock() -> (TestApp, Arc<MockUpstream>) {
    let mock = Arc::new(MockUpstream::default());
    let app = spawn_app_with(Options {
        connectors: vec![mock.connector("mock"), mock.callback_only("mock2")],
        ..Default::default()
    })
    .await;
    (app, mock)
}

fn query(connector: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", GPT_CLIENT.into()),
        ("redirect_uri", GPT_REDIRECT.into()),
        ("state", "client-state".into()),
        ("scope", "openid email profile".into()),
        ("connector_id", connector.into()),
    ]
}

/// Authorize through a callback-only connector; returns the upstream URL the browser was sent to.
async fn go_upstream(app: &TestApp, b: &Browser, connector: &str) -> Url {
    let q = query(connector);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.authorize(&q).await;
    assert_eq!(res.status(), 303);
    let login = location(&res);
    let res = b.http.get(&login).send().await.unwrap();
    assert_eq!(res.status(), 303, "a callback-only connector redirects straight upstream");
    let up = Url::parse(&location(&res)).unwrap();
    assert!(up.as_str().starts_with(UPSTREAM));
    assert_eq!(query_param(&up, "redirect_uri").unwrap(), app.url(&format!("/callback/{connector}")));
    up
}

async fn callback(b: &Browser, app: &TestApp, connector: &str, params: &[(&str, &str)]) -> reqwest::Response {
    let url = Url::parse_with_params(&app.url(&format!("/callback/{connector}")), params).unwrap();
    b.http.get(url).send().await.unwrap()
}

#[tokio::test]
async fn an_upstream_login_ends_with_a_code_and_keybridge_tokens() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let up = go_upstream(&app, &b, "mock2").await;
    let state = query_param(&up, "state").unwrap();
    let res = callback(&b, &app, "mock2", &[("code", "user:carol"), ("state", &state)]).await;
    assert_eq!(res.status(), 303);
    let back = Url::parse(&location(&res)).unwrap();
    assert_eq!(query_param(&back, "state").as_deref(), Some("client-state"));
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    let tokens = app.redeem_gpt_code(&query_param(&back, "code").unwrap()).await;
    let id = crate::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "carol@example.com");
    let at = tokens["access_token"].as_str().unwrap();
    assert!(!at.contains("upstream-refresh-token"), "upstream tokens never leave the broker");
    assert!(!serde_json::to_string(&tokens).unwrap().contains("upstream-refresh-token"));
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let up = go_upstream(&app, &b, "mock2").await;
    let state = query_param(&up, "state").unwrap();
    assert_eq!(callback(&b, &app, "mock2", &[("code", "user:carol"), ("state", &state)]).await.status(), 303);
    let again = callback(&b, &app, "mock2", &[("code", "user:carol"), ("state", &state)]).await;
    assert_eq!(again.status(), 400);
    assert!(again.headers().get("location").is_none());
}

#[tokio::test]
async fn a_callback_from_another_browser_or_to_another_connector_is_refused() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let up = go_upstream(&app, &b, "mock2").await;
    let state = query_param(&up, "state").unwrap();
    // Login CSRF: the attacker's browser has no cookie for this request.
    let other = app.browser();
    assert_eq!(callback(&other, &app, "mock2", &[("code", "user:mallory"), ("state", &state)]).await.status(), 400);
    // Mix-up: a response delivered to another connector's callback URL.
    let res = callback(&b, &app, "mock", &[("code", "user:carol"), ("state", &state)]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("does not match a sign-in in progress"));
    // Missing state.
    assert_eq!(callback(&b, &app, "mock2", &[("code", "user:carol")]).await.status(), 400);
    // The real flow still completes.
    assert_eq!(callback(&b, &app, "mock2", &[("code", "user:carol"), ("state", &state)]).await.status(), 303);
}

async fn assert_failure(res: reqwest::Response, app: &TestApp, error: &str, message: &str) {
    assert_eq!(res.status(), 502);
    assert!(res.headers().get("location").is_none(), "the person reads a page first");
    let html = res.text().await.unwrap();
    assert!(html.contains(message), "{message:?} not in {html}");
    let start = html.find("class=\"btn\" href=\"").unwrap() + 18;
    let href = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
    let back = Url::parse(&href).unwrap();
    assert!(back.as_str().starts_with(GPT_REDIRECT));
    assert_eq!(query_param(&back, "error").as_deref(), Some(error));
    assert_eq!(query_param(&back, "state").as_deref(), Some("client-state"));
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
}

#[tokio::test]
async fn upstream_failures_get_a_page_and_an_error_redirect_and_store_nothing() {
    let (app, _) = app_with_mock().await;
    for (params, error, message) in [
        (vec![("error", "access_denied"), ("error_description", "user said no")], "access_denied", "user said no"),
        (vec![("code", "bad-signature")], "access_denied", "could not be verified"),
        (vec![("code", "down")], "temporarily_unavailable", "could not be reached"),
    ] {
        let b = app.browser();
        let up = go_upstream(&app, &b, "mock2").await;
        let state = query_param(&up, "state").unwrap();
        let mut p = params.clone();
        p.push(("state", &state));
        assert_failure(callback(&b, &app, "mock2", &p).await, &app, error, message).await;
        // Nothing half-stored: the request is gone.
        let again = callback(&b, &app, "mock2", &[("code", "user:carol"), ("state", &state)]).await;
        assert_eq!(again.status(), 400);
    }
}

#[tokio::test]
async fn a_connector_with_several_capabilities_shows_a_page_with_each() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let q = query("mock");
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.authorize(&q).await;
    let page = b.http.get(location(&res)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/login/mock/upstream?req="), "{html}");
    assert!(html.contains("/login/mock/handoff?req="), "{html}");
    assert!(!html.contains("<form"), "no password capability, no password form");
}

#[tokio::test]
async fn a_handed_off_token_is_verified_and_ends_with_a_code() {
    let (app, _) = app_with_mock().await;
    let b = app.browser();
    let q = query("mock");
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.authorize(&q).await;
    let login = location(&res);
    let req = query_param(&Url::parse(&login).unwrap(), "req").unwrap();
    let page = b.http.get(app.url(&format!("/login/mock/handoff?req={req}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self' https://sdk.upstream.example"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let grab = |attr: &str| {
        let needle = format!("{attr}=\"");
        let start = html.find(&needle).unwrap() + needle.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let csrf = grab("data-csrf");
    let glue = app.http.get(app.url("/assets/handoff/mock.js")).send().await.unwrap();
    assert_eq!(glue.status(), 200);
    // A forged token fails with a page and an error redirect.
    let bad = b
        .http
        .post(app.url("/login/mock/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", "forged")])
        .send()
        .await
        .unwrap();
    assert_failure(bad, &app, "access_denied", "could not be verified").await;

    // A fresh request with a valid token.
    let res = b.authorize(&q).await;
    let req = query_param(&Url::parse(&location(&res)).unwrap(), "req").unwrap();
    let html =
        b.http.get(app.url(&format!("/login/mock/handoff?req={req}"))).send().await.unwrap().text().await.unwrap();
    let start = html.find("data-csrf=\"").unwrap() + 11;
    let csrf = html[start..start + html[start..].find('"').unwrap()].to_owned();
    // The token alone, without this browser's cookie, is refused.
    let res = app
        .browser()
        .http
        .post(app.url("/login/mock/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", "token:dave")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = b
        .http
        .post(app.url("/login/mock/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", "token:dave")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let code = query_param(&Url::parse(&location(&res)).unwrap(), "code").unwrap();
    let tokens = app.redeem_gpt_code(&code).await;
    assert_eq!(crate::jwt_claims(tokens["id_token"].as_str().unwrap())["email"], "dave@example.com");
}

async fn upstream_tokens(app: &TestApp, user: &str) -> Value {
    let b = app.browser();
    let up = go_upstream(app, &b, "mock2").await;
    let state = query_param(&up, "state").unwrap();
    let res = callback(&b, app, "mock2", &[("code", &format!("user:{user}")), ("state", &state)]).await;
    let code = query_param(&Url::parse(&location(&res)).unwrap(), "code").unwrap();
    app.redeem_gpt_code(&code).await
}

#[tokio::test]
async fn refresh_rechecks_the_user_upstream() {
    let (app, mock) = app_with_mock().await;
    let t = upstream_tokens(&app, "erin").await;
    let res =
        app.token(&[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(res.status(), 200);
    let t1: Value = res.json().await.unwrap();
    assert_eq!(*mock.refreshes.lock().unwrap(), 1);
    assert_eq!(
        crate::jwt_claims(t1["id_token"].as_str().unwrap())["name"],
        "Refreshed Name",
        "fresh upstream claims flow into tokens"
    );

    mock.set_user("erin", UpstreamUser::Unreachable);
    let res =
        app.token(&[("grant_type", "refresh_token"), ("refresh_token", t1["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");

    mock.set_user("erin", UpstreamUser::Gone);
    app.clock.advance(1);
    let t2 = upstream_tokens(&app, "erin").await;
    let res =
        app.token(&[("grant_type", "refresh_token"), ("refresh_token", t2["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_description"], "the user is no longer valid upstream");
}
