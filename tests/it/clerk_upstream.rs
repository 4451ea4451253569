//! The `clerk` connector against a fake Clerk instance: the OAuth application's redirect flow with
//! Clerk's userinfo shape, and the session-token hand-off (verified against the instance's JWKS:
//! pinned `iss`, `azp` among the allowed origins, `exp`/`nbf`, pending sessions refused).

use keybridge_testkit::fakes::clerk::{ClerkFake, SessionToken};
use keybridge_testkit::{Browser, Options, TestApp, location, query_param, spawn_app_with};
use serde_json::{Value, json};
use url::Url;

use crate::oidc_upstream::{assert_failure_page, gpt_query, login_code, userinfo};

/// A broker with connector `clerk`; `extra` is indented config, `{issuer}` stands for Keybridge's.
async fn app_for(clerk: &ClerkFake, extra: &str) -> TestApp {
    let fapi = clerk.frontend_api().to_owned();
    let pk = clerk.publishable_key();
    let extra = extra.to_owned();
    spawn_app_with(Options {
        yaml: Some(Box::new(move |issuer: &str, listen: &str| {
            format!(
                "{}\n  - id: clerk\n    type: clerk\n    name: Acme account\n    config:\n      frontend_api: {fapi}\n      publishable_key: {pk}\n      authorized_parties: [{issuer}]\n{}",
                keybridge_testkit::default_yaml(issuer, listen),
                extra.replace("{issuer}", issuer)
            )
        })),
        ..Default::default()
    })
    .await
}

const OAUTH: &str = "      client_id: kb-oauth\n      client_secret: kb-oauth-secret\n      scopes: [openid, email, profile, public_metadata]\n      claims: {groups: public_metadata.roles}\n";

/// Opens the hand-off page for a new authorization request; returns (req, csrf, page response).
async fn handoff_page(app: &TestApp, b: &Browser) -> (String, String, reqwest::Response) {
    let q = gpt_query("clerk", &[]);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = b.authorize(&q).await;
    let req = query_param(&Url::parse(&location(&res)).unwrap(), "req").unwrap();
    let page = b.http.get(app.url(&format!("/login/clerk/handoff?req={req}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let start = html.find("data-csrf=\"").unwrap() + 11;
    let csrf = html[start..start + html[start..].find('"').unwrap()].to_owned();
    let page = b.http.get(app.url(&format!("/login/clerk/handoff?req={req}"))).send().await.unwrap();
    (req, csrf, page)
}

async fn hand_off(app: &TestApp, token: &str) -> reqwest::Response {
    let b = app.browser();
    let (req, csrf, _) = handoff_page(app, &b).await;
    b.http
        .post(app.url("/login/clerk/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_clerk_oauth_login_maps_clerks_userinfo_shape() {
    let clerk = ClerkFake::start("kb-oauth", "kb-oauth-secret");
    let app = app_for(&clerk, OAUTH).await;
    let b = app.browser();
    let q = gpt_query("clerk", &[]);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = b.authorize(&q).await;
    let page = b.http.get(location(&res)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/login/clerk/upstream?req="), "an OAuth button: {page}");
    assert!(page.contains("/login/clerk/handoff?req="), "and the hand-off");

    let code = login_code(&app, &gpt_query("clerk", &[])).await;
    let t = app.redeem_gpt_code(&code).await;
    let info = userinfo(&app, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["name"], "Alice Example");
    assert_eq!(info["preferred_username"], "alice", "Clerk's username");
    assert_eq!(info["groups"], json!(["admin"]), "public_metadata.roles");
    let up = &clerk.op.authorize_requests()[0];
    assert!(up.iter().any(|(k, v)| k == "code_challenge_method" && v == "S256"));
}

#[tokio::test]
async fn the_handoff_page_loads_clerks_sdk_under_a_strict_csp() {
    let clerk = ClerkFake::start("kb-oauth", "kb-oauth-secret");
    let app = app_for(&clerk, "").await;
    let b = app.browser();
    let (_, _, page) = handoff_page(&app, &b).await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains(&format!("script-src 'self' {}", clerk.frontend_api())), "{csp}");
    assert!(csp.contains(&format!("connect-src 'self' {}", clerk.frontend_api())), "{csp}");
    assert!(!csp.contains("unsafe-inline"));
    let html = page.text().await.unwrap();
    assert!(html.contains(&clerk.publishable_key()), "the publishable key is in the page's config");
    assert!(!html.contains("<script>"), "no inline script");
    let glue = app.http.get(app.url("/assets/handoff/clerk.js")).send().await.unwrap().text().await.unwrap();
    assert!(glue.contains("keybridge-handoff") && glue.contains("data-clerk-publishable-key"), "{glue}");
    // The glue parses as JavaScript.
    let path = std::env::temp_dir().join(format!("keybridge-clerk-glue-{}.js", std::process::id()));
    std::fs::write(&path, &glue).unwrap();
    let out = std::process::Command::new("node").arg("--check").arg(&path).output().expect("node must be installed");
    std::fs::remove_file(&path).ok();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_handed_off_session_token_ends_with_a_code() {
    let clerk = ClerkFake::start("kb-oauth", "kb-oauth-secret");
    let app = app_for(&clerk, "      claims: {groups: o.rol}\n").await;
    let mut t = SessionToken::new("user_dana0001", &app.issuer);
    t.extra.insert("email".into(), json!("dana@example.com"));
    t.extra.insert("email_verified".into(), json!(true));
    t.extra.insert("name".into(), json!("Dana Example"));
    t.extra.insert("o".into(), json!({"id": "org_1", "slg": "acme", "rol": "admin"}));
    let res = hand_off(&app, &clerk.session_token(&t)).await;
    assert_eq!(res.status(), 303);
    let back = Url::parse(&location(&res)).unwrap();
    assert_eq!(query_param(&back, "state").as_deref(), Some("client-state"));
    let tokens = app.redeem_gpt_code(&query_param(&back, "code").unwrap()).await;
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "dana@example.com");
    assert_eq!(info["groups"], json!(["admin"]));

    // A token without azp is accepted (Clerk omits it for some requests).
    let mut no_azp = SessionToken::new("user_dana0001", &app.issuer);
    no_azp.azp = None;
    assert_eq!(hand_off(&app, &clerk.session_token(&no_azp)).await.status(), 303);
}

#[tokio::test]
async fn bad_session_tokens_get_a_page_and_an_error_redirect() {
    let clerk = ClerkFake::start("kb-oauth", "kb-oauth-secret");
    let app = app_for(&clerk, "").await;
    let good = || SessionToken::new("user_eve0001", &app.issuer);
    let cases: Vec<(&str, SessionToken, &str)> = vec![
        ("another origin", SessionToken { azp: Some("https://evil.example".into()), ..good() }, "access_denied"),
        (
            "another issuer",
            SessionToken { issuer: Some("https://clerk.evil.example".into()), ..good() },
            "access_denied",
        ),
        ("expired", SessionToken { shift: -3600, ..good() }, "access_denied"),
        ("not yet valid", SessionToken { shift: 3600, ..good() }, "access_denied"),
        ("unknown key", SessionToken { rogue_key: true, ..good() }, "access_denied"),
        ("pending session", SessionToken { status: Some("pending".into()), ..good() }, "access_denied"),
    ];
    for (what, t, error) in cases {
        let res = hand_off(&app, &clerk.session_token(&t)).await;
        assert_eq!(res.status(), 502, "{what}");
        if what == "pending session" {
            let html = res.text().await.unwrap();
            assert!(html.contains("not complete yet"), "{what}: {html}");
        } else {
            assert_failure_page(res, &app, error).await;
        }
    }
    let res = hand_off(&app, "not-a-jwt").await;
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn refresh_rechecks_clerk_oauth_logins_and_leaves_handoff_logins_alone() {
    let clerk = ClerkFake::start("kb-oauth", "kb-oauth-secret");
    let config = OAUTH.replace("public_metadata]", "public_metadata, offline_access]");
    let app = app_for(&clerk, &format!("{config}      refresh_upstream: true\n")).await;
    let code = login_code(&app, &gpt_query("clerk", &[])).await;
    let t = app.redeem_gpt_code(&code).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(res.status(), 200);
    let rt2 = res.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(clerk.op.refresh_requests(), 1);

    let res = hand_off(&app, &clerk.session_token(&SessionToken::new("user_alice0001", &app.issuer))).await;
    let code = query_param(&Url::parse(&location(&res)).unwrap(), "code").unwrap();
    let h = app.redeem_gpt_code(&code).await;

    clerk.op.block("alice", true);
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt2)]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let res =
        app.token(&[("grant_type", "refresh_token"), ("refresh_token", h["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(res.status(), 200, "a hand-off login has no upstream refresh token to re-check");
}
