//! The `oidc` connector against a real OpenID provider (npm `oidc-provider`, started per test):
//! full logins as the GPT client does them, the upstream refresh re-check, and the callback's
//! single use. Failures the real provider cannot be made to commit (bad signatures, wrong `iss`,
//! `aud` or nonce, a hanging upstream) run against the generic fake in `oidc_failures`.

use std::time::Duration;

use keybridge_testkit::process::{ChildGuard, free_port, repo_root, spawn_node};
use keybridge_testkit::{
    Browser, GPT_CLIENT, GPT_REDIRECT, Options, TestApp, default_yaml, location, query_param, spawn_app_with,
};
use serde_json::Value;
use url::Url;

/// Keybridge's client credentials at the test provider.
const OP_CLIENT: &str = "keybridge";
const OP_SECRET: &str = "op-secret";

/// The default test config plus `extra` connector entries (each starting `  - id: ...`).
pub fn yaml_with(extra: String) -> Option<keybridge_testkit::YamlRewrite> {
    Some(Box::new(move |issuer: &str, listen: &str| format!("{}{extra}", default_yaml(issuer, listen))))
}

/// A running `oidc-provider` and the broker that uses it as connector `oidc`.
pub struct RealOp {
    /// The broker.
    pub app: TestApp,
    /// The provider's issuer.
    pub issuer: String,
    _node: ChildGuard,
}

impl RealOp {
    /// Disables (or re-enables) an account at the provider.
    pub async fn set_disabled(&self, id: &str, disabled: bool) {
        let what = if disabled { "disable" } else { "enable" };
        let res = reqwest::Client::new().post(format!("{}/test/{what}/{id}", self.issuer)).send().await.unwrap();
        assert_eq!(res.status(), 204);
    }
}

/// Starts the broker (connector `oidc` pointing at a free port) and then the provider on that
/// port, registered with the broker's callback URL. Discovery is lazy, so the order is safe.
pub async fn start_real_op(extra_config: &str) -> RealOp {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let entry = format!(
        r#"
  - id: oidc
    type: oidc
    name: Test OP
    config:
      issuer: {issuer}
      client_id: {OP_CLIENT}
      client_secret: {OP_SECRET}
      scopes: [openid, email, profile, groups, offline_access]
      extra_auth_params: {{prompt: consent}}
      timeout: 5s
{extra_config}"#
    );
    let app = spawn_app_with(Options { yaml: yaml_with(entry), ..Default::default() }).await;
    let callback = app.url("/callback/oidc");
    let node = spawn_node(
        &repo_root().join("tests/upstreams/oidc-provider"),
        "server.mjs",
        &[],
        &[
            ("PORT", &port.to_string()),
            ("CLIENT_ID", OP_CLIENT),
            ("CLIENT_SECRET", OP_SECRET),
            ("REDIRECT_URI", &callback),
        ],
        "oidc-provider ready",
        Duration::from_secs(30),
    )
    .await;
    RealOp { app, issuer, _node: node }
}

/// The GPT client's authorization request through `connector`, with extra parameters.
pub fn gpt_query(connector: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut q: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", GPT_CLIENT),
        ("redirect_uri", GPT_REDIRECT),
        ("state", "client-state"),
        ("scope", "openid email profile groups"),
        ("connector_id", connector),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    q.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    q
}

/// Where a login ended.
pub struct Flow {
    /// The upstream authorization URL Keybridge sent the browser to.
    pub upstream: Url,
    /// The upstream's redirect to Keybridge's callback, if it came back.
    pub callback: Option<String>,
    /// The last response: Keybridge's redirect to the client (303) or its error page.
    pub last: reqwest::Response,
}

/// Walks a login the way a browser does: `/authorize`, Keybridge's redirect upstream, every
/// upstream redirect, then Keybridge's callback, stopping at the first answer that is not a
/// redirect or that leaves for the client.
pub async fn run_login(app: &TestApp, b: &Browser, query: &[(String, String)]) -> Flow {
    let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = b.authorize(&q).await;
    assert_eq!(res.status(), 303, "authorize redirects to the login page");
    let mut res = b.http.get(location(&res)).send().await.unwrap();
    if res.status() == 200 {
        // A connector with several ways in shows a page: take its upstream button.
        let html = res.text().await.unwrap();
        let start = html.find("/upstream?req=").unwrap_or_else(|| panic!("no upstream button in {html}"));
        let start = html[..start].rfind('"').unwrap() + 1;
        let href = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
        res = b.http.get(Url::parse(&app.issuer).unwrap().join(&href).unwrap()).send().await.unwrap();
    }
    assert_eq!(res.status(), 303, "the login page sends the browser upstream: {:?}", res.status());
    let upstream = Url::parse(&location(&res)).unwrap();
    let mut next = upstream.to_string();
    let mut callback = None;
    for _ in 0..20 {
        if next.starts_with(&app.url("/callback/")) {
            callback = Some(next.clone());
        }
        let res = b.http.get(&next).send().await.unwrap();
        if !res.status().is_redirection() {
            return Flow { upstream, callback, last: res };
        }
        let loc = location(&res);
        let loc = Url::parse(&next).unwrap().join(&loc).unwrap().to_string();
        if loc.starts_with(GPT_REDIRECT) {
            return Flow { upstream, callback, last: res };
        }
        next = loc;
    }
    panic!("too many redirects");
}

/// Logs in and returns the client's code.
pub async fn login_code(app: &TestApp, query: &[(String, String)]) -> String {
    let flow = run_login(app, &app.browser(), query).await;
    assert_eq!(flow.last.status(), 303, "the login ends with a redirect to the client");
    let back = Url::parse(&location(&flow.last)).unwrap();
    assert_eq!(query_param(&back, "state").as_deref(), Some("client-state"));
    query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

/// Keybridge's userinfo for an access token.
pub async fn userinfo(app: &TestApp, access_token: &str) -> Value {
    app.http.get(app.url("/userinfo")).bearer_auth(access_token).send().await.unwrap().json().await.unwrap()
}

/// Asserts an upstream failure: a page for the person (502, no redirect) whose button returns
/// to the client with `error` and the client's `state`.
pub async fn assert_failure_page(res: reqwest::Response, app: &TestApp, error: &str) {
    assert_eq!(res.status(), 502, "a failure page");
    assert!(res.headers().get("location").is_none(), "the person reads a page first");
    let html = res.text().await.unwrap();
    let start = html.find("class=\"btn\" href=\"").unwrap_or_else(|| panic!("no button in {html}")) + 18;
    let href = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
    let back = Url::parse(&href).unwrap();
    assert!(back.as_str().starts_with(GPT_REDIRECT));
    assert_eq!(query_param(&back, "error").as_deref(), Some(error), "{html}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("client-state"));
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
}

fn refresh_token(t: &Value) -> &str {
    t["refresh_token"].as_str().unwrap()
}

#[tokio::test]
async fn a_login_through_a_real_openid_provider_ends_with_keybridge_tokens() {
    let op = start_real_op("").await;
    let app = &op.app;
    let flow = run_login(app, &app.browser(), &gpt_query("oidc", &[("login_hint", "carol")])).await;
    // What went upstream: PKCE S256, a nonce, Keybridge's callback, the configured extras.
    let up = &flow.upstream;
    assert!(up.as_str().starts_with(&format!("{}/auth?", op.issuer)), "{up}");
    assert_eq!(query_param(up, "code_challenge_method").as_deref(), Some("S256"));
    assert!(query_param(up, "nonce").is_some_and(|n| n.len() >= 16));
    assert_eq!(query_param(up, "redirect_uri").unwrap(), app.url("/callback/oidc"));
    assert_eq!(query_param(up, "prompt").as_deref(), Some("consent"));
    assert_eq!(query_param(up, "login_hint").as_deref(), Some("carol"));
    assert_eq!(query_param(up, "scope").as_deref(), Some("openid email profile groups offline_access"));
    let callback = Url::parse(flow.callback.as_deref().unwrap()).unwrap();
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(op.issuer.as_str()), "RFC 9207 iss from the OP");

    assert_eq!(flow.last.status(), 303);
    let back = Url::parse(&location(&flow.last)).unwrap();
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    let tokens = app.redeem_gpt_code(&query_param(&back, "code").unwrap()).await;
    let id = crate::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], app.issuer.as_str());
    assert_eq!(id["email"], "carol@example.com");
    assert_eq!(id["email_verified"], true);
    assert_ne!(id["sub"], "carol", "Keybridge's sub is its own");
    let info = userinfo(app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["name"], "User carol", "userinfo claims are merged");
    assert_eq!(info["groups"], serde_json::json!(["staff", "carol"]));
    assert!(tokens.get("refresh_token").is_some());

    // The same upstream user again is the same Keybridge user.
    let code = login_code(app, &gpt_query("oidc", &[("login_hint", "carol")])).await;
    let again = app.redeem_gpt_code(&code).await;
    assert_eq!(crate::jwt_claims(again["id_token"].as_str().unwrap())["sub"], id["sub"]);
}

#[tokio::test]
async fn refresh_rechecks_the_real_provider_and_a_disabled_user_fails_with_invalid_grant() {
    let op = start_real_op("      refresh_upstream: true\n").await;
    let app = &op.app;
    let code = login_code(app, &gpt_query("oidc", &[("login_hint", "dave")])).await;
    let t = app.redeem_gpt_code(&code).await;
    let text = serde_json::to_string(&t).unwrap();
    assert!(!text.contains(OP_SECRET));

    // Two refreshes: each re-checks upstream with the (rotating) upstream refresh token.
    let mut rt = refresh_token(&t).to_owned();
    for _ in 0..2 {
        let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
        assert_eq!(res.status(), 200);
        let t: Value = res.json().await.unwrap();
        assert_eq!(crate::jwt_claims(t["id_token"].as_str().unwrap())["email"], "dave@example.com");
        rt = refresh_token(&t).to_owned();
    }

    // Parallel refreshes of one token (Keybridge's reuse grace) must not trip the provider's
    // refresh-token reuse detection.
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    let (a, b) = tokio::join!(app.token(&form), app.token(&form));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let rt = refresh_token(&b.json::<Value>().await.unwrap()).to_owned();
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(res.status(), 200, "the upstream session survived the parallel refresh");
    let rt = refresh_token(&res.json::<Value>().await.unwrap()).to_owned();

    op.set_disabled("dave", true).await;
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant");

    // The grant is revoked: enabling the user again does not revive it.
    op.set_disabled("dave", false).await;
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn without_refresh_upstream_a_refresh_does_not_call_the_provider() {
    let op = start_real_op("").await;
    let app = &op.app;
    let t = app.redeem_gpt_code(&login_code(app, &gpt_query("oidc", &[("login_hint", "erin")])).await).await;
    op.set_disabled("erin", true).await;
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token(&t))]).await;
    assert_eq!(res.status(), 200, "no re-check configured");
}

#[tokio::test]
async fn a_replayed_or_forged_callback_is_refused() {
    let op = start_real_op("").await;
    let app = &op.app;
    let b = app.browser();
    let flow = run_login(app, &b, &gpt_query("oidc", &[])).await;
    assert_eq!(flow.last.status(), 303);
    let callback = flow.callback.unwrap();
    // Replayed: the request and its kept PKCE verifier and nonce are gone.
    let again = b.http.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.headers().get("location").is_none());

    // A state that matches no sign-in in progress.
    let flow_b = app.browser();
    let q = gpt_query("oidc", &[]);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = flow_b.authorize(&q).await;
    let res = flow_b.http.get(location(&res)).send().await.unwrap();
    let up = Url::parse(&location(&res)).unwrap();
    let state = query_param(&up, "state").unwrap();
    let forged = Url::parse_with_params(
        &app.url("/callback/oidc"),
        &[("code", "forged"), ("state", &format!("{state}x")), ("iss", &op.issuer)],
    )
    .unwrap();
    assert_eq!(flow_b.http.get(forged).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn access_denied_upstream_gets_a_page_and_an_error_redirect() {
    let op = start_real_op("").await;
    let app = &op.app;
    let b = app.browser();
    let flow = run_login(app, &b, &gpt_query("oidc", &[("login_hint", "deny")])).await;
    assert!(flow.callback.as_deref().unwrap().contains("error=access_denied"));
    assert_failure_page(flow.last, app, "access_denied").await;
    // Nothing half-stored: the callback cannot be used again.
    let again = b.http.get(flow.callback.unwrap()).send().await.unwrap();
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn an_unreachable_provider_gets_a_page_and_temporarily_unavailable() {
    // Nothing listens on the issuer's port.
    let port = free_port();
    let entry = format!(
        "\n  - id: oidc\n    type: oidc\n    config:\n      issuer: http://127.0.0.1:{port}\n      client_id: x\n      timeout: 2s\n"
    );
    let app = spawn_app_with(Options { yaml: yaml_with(entry), ..Default::default() }).await;
    let b = app.browser();
    let q = gpt_query("oidc", &[]);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = b.authorize(&q).await;
    let res = b.http.get(location(&res)).send().await.unwrap();
    assert_failure_page(res, &app, "temporarily_unavailable").await;
}

#[test]
fn check_config_rejects_bad_connector_config_with_clear_messages() {
    let yaml = default_yaml("https://auth.example.com", "127.0.0.1:5556")
        + r#"
  - id: okta
    type: oidc
    config:
      client_id: x
      clams: {groups: roles}
  - id: plain
    type: oidc
    config:
      issuer: http://login.example.com
      client_id: x
      timeout: 5m
  - id: auth0
    type: auth0
    config:
      client_id: x
      conection: github
  - id: clerk
    type: clerk
    config:
      frontend_api: https://clerk.acme.com
      publishable_key: pk_live_Y2xlcmsuYWNtZS5jb20k
"#;
    let err = keybridge_server::config::from_yaml(&yaml).unwrap_err().to_string();
    for needle in [
        "connectors[1].config.clams: unknown key",
        "connectors[1].config.issuer: required",
        "connectors[2].config.issuer: \"http://login.example.com\" must use https (http is allowed only on loopback",
        "connectors[2].config.timeout: 5m is out of range",
        "connectors[3].config.conection: unknown key",
        "connectors[3].config.domain: required",
        "connectors[4].config.authorized_parties: required with publishable_key",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // A good one of each passes.
    let yaml = default_yaml("https://auth.example.com", "127.0.0.1:5556")
        + r#"
  - id: okta
    type: oidc
    config: {issuer: "https://example.okta.com", client_id: x, extra_auth_params: {access_type: offline}}
  - id: auth0
    type: auth0
    config: {domain: example.us.auth0.com, client_id: x, connection: github}
  - id: clerk
    type: clerk
    config: {frontend_api: "https://clerk.acme.com", client_id: x}
"#;
    let cfg = keybridge_server::config::from_yaml(&yaml).unwrap();
    let types: Vec<&str> = cfg.connectors.iter().map(|c| c.type_name()).collect();
    assert_eq!(types, vec!["local", "oidc", "auth0", "clerk"]);
}
