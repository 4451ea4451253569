//! `/authorize` over HTTP: untrusted redirects get pages, everything else goes back with `state` and `iss`.

use keybridge_testkit::{
    ALICE, GPT_CLIENT, GPT_REDIRECT, Options, TestApp, default_yaml, location, query_param, spawn_app, spawn_app_with,
};
use url::Url;

fn q<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn assert_error_page(res: reqwest::Response, needle: &str) {
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none(), "an untrusted redirect must not be followed");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.unwrap();
    assert!(html.contains(needle), "{needle:?} not in {html}");
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    let res = app
        .browser()
        .authorize(&[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", GPT_REDIRECT),
            ("state", "s"),
        ])
        .await;
    assert_error_page(res, "is not registered with this server").await;
}

#[tokio::test]
async fn unregistered_redirect_uris_get_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    for bad in [
        format!("{GPT_REDIRECT}/"),
        GPT_REDIRECT.replace("g-0123", "g-9999"),
        GPT_REDIRECT.replace("chatgpt.com", "chatgpt.com.evil.example"),
        format!("{GPT_REDIRECT}?x=1"),
        "https://evil.example/cb".to_string(),
    ] {
        let res = app
            .browser()
            .authorize(&[("response_type", "code"), ("client_id", GPT_CLIENT), ("redirect_uri", &bad), ("state", "s")])
            .await;
        assert_error_page(res, "is not registered for this application").await;
    }
}

#[tokio::test]
async fn errors_after_the_redirect_is_trusted_go_back_with_error_state_and_iss() {
    let app = spawn_app().await;
    let state = "st4te with spaces & symbols/?=";
    let res = app
        .browser()
        .authorize(&[
            ("response_type", "token"),
            ("client_id", GPT_CLIENT),
            ("redirect_uri", GPT_REDIRECT),
            ("state", state),
        ])
        .await;
    assert_eq!(res.status(), 303);
    let to = Url::parse(&location(&res)).unwrap();
    assert!(to.as_str().starts_with(GPT_REDIRECT));
    assert_eq!(query_param(&to, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(query_param(&to, "state").as_deref(), Some(state));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(app.issuer.as_str()));
}

#[tokio::test]
async fn pkce_plain_is_refused_with_a_redirect() {
    let app = spawn_app().await;
    let res = app
        .browser()
        .authorize(&[
            ("response_type", "code"),
            ("client_id", GPT_CLIENT),
            ("redirect_uri", GPT_REDIRECT),
            ("state", "s"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "plain"),
        ])
        .await;
    let to = Url::parse(&location(&res)).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_request"));
    assert_eq!(
        query_param(&to, "error_description").as_deref(),
        Some("code_challenge_method \"plain\" is not supported; use S256")
    );
    assert_eq!(query_param(&to, "state").as_deref(), Some("s"));
}

#[tokio::test]
async fn long_state_is_echoed_byte_for_byte_on_success() {
    let app = spawn_app().await;
    let state: String = (0..2000).map(|i| ['a', '-', '_', '.', '~', 'Z', '9', '%', ' ', '+'][i % 10]).collect();
    let pairs = TestApp::gpt_query(&state);
    let redirect = app.authorize_and_login(&q(&pairs), ALICE).await;
    assert!(redirect.as_str().starts_with(GPT_REDIRECT));
    assert_eq!(query_param(&redirect, "state").as_deref(), Some(state.as_str()));
    assert_eq!(query_param(&redirect, "iss").as_deref(), Some(app.issuer.as_str()));
    assert!(query_param(&redirect, "code").is_some());
}

#[tokio::test]
async fn absent_and_empty_scope_get_the_default_scopes() {
    let app = spawn_app().await;
    for with_scope in [true, false] {
        let mut pairs = TestApp::gpt_query("s");
        if !with_scope {
            pairs.retain(|(k, _)| *k != "scope");
        }
        let redirect = app.authorize_and_login(&q(&pairs), ALICE).await;
        let code = query_param(&redirect, "code").unwrap();
        let tokens = app.redeem_gpt_code(&code).await;
        assert_eq!(tokens["scope"], "openid email profile");
    }
}

#[tokio::test]
async fn unknown_connector_id_is_refused_and_a_known_one_preselects() {
    let app = spawn_app().await;
    let mut base =
        vec![("response_type", "code"), ("client_id", GPT_CLIENT), ("redirect_uri", GPT_REDIRECT), ("state", "s")];
    base.push(("connector_id", "github"));
    let res = app.browser().authorize(&base).await;
    let to = Url::parse(&location(&res)).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&to, "error_description").as_deref(), Some("unknown connector_id \"github\""));
    base.pop();
    base.push(("connector_id", "local"));
    let res = app.browser().authorize(&base).await;
    assert!(location(&res).starts_with(&app.url("/login/local?req=")));
}

#[tokio::test]
async fn several_connectors_and_none_chosen_show_a_chooser() {
    let app =
        spawn_app_with(Options {
            yaml: Some(Box::new(|iss, listen| {
                let yaml = default_yaml(iss, listen);
                let second = yaml[yaml.find("  - id: local").unwrap()..]
                    .replacen("id: local", "id: staff", 1)
                    .replacen("name: Email and password", "name: Staff login", 1);
                format!("{yaml}{second}")
            })),
            ..Default::default()
        })
        .await;
    let browser = app.browser();
    let res = browser
        .authorize(&[
            ("response_type", "code"),
            ("client_id", GPT_CLIENT),
            ("redirect_uri", GPT_REDIRECT),
            ("state", "s"),
        ])
        .await;
    let chooser_url = location(&res);
    assert!(chooser_url.starts_with(&app.url("/login?req=")), "{chooser_url}");
    let page = browser.http.get(&chooser_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Continue with Email and password"), "{html}");
    assert!(html.contains("Continue with Staff login"), "{html}");
    assert!(html.contains("/login/staff?req="));
}

#[tokio::test]
async fn authorize_accepts_post_too() {
    let app = spawn_app().await;
    let b = app.browser();
    let res = b
        .http
        .post(app.url("/authorize"))
        .form(&[("response_type", "code"), ("client_id", GPT_CLIENT), ("redirect_uri", GPT_REDIRECT), ("state", "s")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with(&app.url("/login/local?req=")));
}

#[tokio::test]
async fn authorize_has_no_cors() {
    let app = spawn_app().await;
    let res = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/authorize"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
