//! The `supabase` connector end to end, against the fake Supabase Auth in the test kit
//! (`keybridge_testkit::fakes::supabase`), with a GPT-style client: social login through Supabase
//! (server-side PKCE, `state` carried in `redirect_to`, the allow-list check), email and password,
//! token hand-off (ES256 with key rotation, legacy HS256), the refresh re-check, config
//! validation, and Supabase's OAuth 2.1 server through the generic `oidc` connector.

use std::sync::Arc;
use std::time::Duration;

use keybridge_testkit::fakes::supabase::{CONSENT_PATH, FakeOptions, FakeSupabase, KeyMode};
use keybridge_testkit::{
    Browser, GPT_CLIENT, GPT_REDIRECT, Options, TestApp, default_yaml, location, query_param, spawn_app_with,
};
use serde_json::{Value, json};
use url::Url;

const SCRIPT_URL: &str = "https://cdn.example.test/npm/@supabase/supabase-js@2/dist/umd/supabase.js";
const HS_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

/// The connector's YAML entry; `extra` lines go under `config:`.
fn entry(fake: &FakeSupabase, extra: &[&str]) -> String {
    let mut s = format!(
        "  - id: supabase\n    type: supabase\n    name: Acme account\n    config:\n      url: {url}\n      anon_key: \"{key}\"\n",
        url = fake.url(),
        key = fake.anon_key()
    );
    for line in extra {
        s.push_str(&format!("      {line}\n"));
    }
    s
}

const ALL_MODES: &[&str] = &[
    "providers: [google, github]",
    "password: true",
    "handoff: {script_url: \"https://cdn.example.test/npm/@supabase/supabase-js@2/dist/umd/supabase.js\"}",
    "groups_claim: app_metadata.roles",
];

async fn app_with(fake: &FakeSupabase, extra: &[&str]) -> TestApp {
    let yaml_entry = entry(fake, extra);
    let app = spawn_app_with(Options {
        yaml: Some(Box::new(move |iss, listen| default_yaml(iss, listen) + &yaml_entry)),
        ..Default::default()
    })
    .await;
    fake.allow_redirects(&[&format!("{}/callback/supabase?state=*", app.issuer)]);
    app
}

fn gpt_query(connector: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", GPT_CLIENT.into()),
        ("redirect_uri", GPT_REDIRECT.into()),
        ("state", "gpt-state".into()),
        ("scope", "openid email profile groups offline_access".into()),
        ("connector_id", connector.into()),
    ]
}

/// `/authorize` through to the connector's page; returns the request id and the page.
async fn login_page(b: &Browser, connector: &str) -> (String, String) {
    let q = gpt_query(connector);
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.authorize(&q).await;
    assert_eq!(res.status(), 303);
    let login = location(&res);
    let req = query_param(&Url::parse(&login).unwrap(), "req").unwrap();
    let page = b.http.get(&login).send().await.unwrap();
    assert_eq!(page.status(), 200);
    (req, page.text().await.unwrap())
}

async fn get(b: &Browser, url: &str) -> reqwest::Response {
    b.http.get(url).send().await.unwrap()
}

/// Clicks "Continue with <provider>", approves as `email` at the fake provider, and follows the
/// redirects back through Supabase and Keybridge. Returns Keybridge's last answer.
async fn social_login(
    app: &TestApp,
    fake: &FakeSupabase,
    b: &Browser,
    provider: &str,
    email: &str,
) -> reqwest::Response {
    let (req, _) = login_page(b, "supabase").await;
    let res = get(b, &app.url(&format!("/login/supabase/upstream?req={req}&provider={provider}"))).await;
    if res.status() != 303 {
        return res;
    }
    let to_supabase = Url::parse(&location(&res)).unwrap();
    assert!(to_supabase.as_str().starts_with(&format!("{}/authorize?", fake.auth_url())), "{to_supabase}");
    let res = get(b, to_supabase.as_str()).await;
    assert_eq!(res.status(), 302, "Supabase sends the browser to the provider");
    let at_provider = Url::parse(&location(&res)).unwrap();
    let flow = query_param(&at_provider, "state").unwrap();
    let approve = Url::parse_with_params(
        &format!("{}/fake-provider/{provider}/approve", fake.url()),
        &[("state", flow.as_str()), ("email", email)],
    )
    .unwrap();
    let res = get(b, approve.as_str()).await;
    let res = get(b, &location(&res)).await; // Supabase's callback
    assert_eq!(res.status(), 302);
    let back = location(&res);
    get(b, &back).await
}

fn client_redirect(res: &reqwest::Response) -> Url {
    assert_eq!(res.status(), 303, "a finished login answers 303");
    let to = Url::parse(&location(res)).unwrap();
    assert!(to.as_str().starts_with(GPT_REDIRECT), "{to}");
    to
}

/// Checks a failure page: the message, and the client's error redirect behind its button.
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
    assert_eq!(query_param(&back, "state").as_deref(), Some("gpt-state"));
    assert_eq!(query_param(&back, "iss").as_deref(), Some(app.issuer.as_str()));
}

async fn redeem(app: &TestApp, to: &Url) -> Value {
    assert_eq!(query_param(to, "state").as_deref(), Some("gpt-state"));
    app.redeem_gpt_code(&query_param(to, "code").unwrap()).await
}

#[tokio::test]
async fn social_login_through_supabase_ends_with_keybridge_tokens() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, ALL_MODES).await;
    let b = app.browser();
    let (req, html) = login_page(&b, "supabase").await;
    assert!(html.contains("Continue with Google") && html.contains("Continue with GitHub"), "{html}");
    assert!(html.contains("<form method=\"post\""), "the password form");
    assert!(html.contains("/login/supabase/handoff?req="), "the hand-off button");

    // The redirect to Supabase: PKCE S256, and Keybridge's state inside redirect_to.
    let res = get(&b, &app.url(&format!("/login/supabase/upstream?req={req}&provider=github"))).await;
    assert_eq!(res.status(), 303);
    let up = Url::parse(&location(&res)).unwrap();
    assert_eq!(query_param(&up, "provider").as_deref(), Some("github"));
    assert_eq!(query_param(&up, "code_challenge_method").as_deref(), Some("s256"));
    assert_eq!(query_param(&up, "code_challenge").unwrap().len(), 43);
    assert_eq!(
        query_param(&up, "redirect_to").unwrap(),
        format!("{}/callback/supabase?state={req}", app.issuer),
        "Supabase returns no state: Keybridge's travels inside redirect_to"
    );

    let res = social_login(&app, &fake, &app.browser(), "github", "carol@example.com").await;
    let tokens = redeem(&app, &client_redirect(&res)).await;
    let id = crate::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "carol@example.com");
    assert_eq!(id["email_verified"], true, "from email_confirmed_at");
    assert_eq!(id["name"], "carol (via github)", "from user_metadata.full_name");
    let supabase_id = fake.user_id("carol@example.com").unwrap();
    assert_ne!(id["sub"], supabase_id, "Keybridge's sub reveals no upstream id");
    assert!(!tokens.to_string().contains("provider-token"), "upstream tokens never leave the broker");
    assert!(fake.token_calls().contains(&"pkce".to_string()));

    // The same Supabase user through another provider is the same Keybridge user.
    let again = social_login(&app, &fake, &app.browser(), "google", "carol@example.com").await;
    let t2 = redeem(&app, &client_redirect(&again)).await;
    assert_eq!(crate::jwt_claims(t2["id_token"].as_str().unwrap())["sub"], id["sub"]);
}

#[tokio::test]
async fn a_redirect_to_missing_from_supabases_allow_list_is_caught_and_explained() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, &["providers: [google]", "password: true"]).await;
    fake.allow_redirects(&["https://app.example.com/**"]);

    // What Supabase itself does: silently sends the browser to its Site URL, with the code.
    let direct = Url::parse_with_params(
        &format!("{}/authorize", fake.auth_url()),
        &[
            ("provider", "google"),
            ("redirect_to", &format!("{}/callback/supabase?state=abc", app.issuer)),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "s256"),
        ],
    )
    .unwrap();
    let http = app.browser().http;
    let res = http.get(direct).send().await.unwrap();
    let flow = query_param(&Url::parse(&location(&res)).unwrap(), "state").unwrap();
    let res = http
        .get(format!("{}/fake-provider/google/approve?state={flow}&email=dave@example.com", fake.url()))
        .send()
        .await
        .unwrap();
    let res = http.get(location(&res)).send().await.unwrap();
    let landed = location(&res);
    assert!(
        landed.starts_with("https://app.example.com?code=") || landed.starts_with("https://app.example.com/?code="),
        "{landed}"
    );

    // Keybridge checks before it sends anyone there, and explains.
    let b = app.browser();
    let (req, _) = login_page(&b, "supabase").await;
    let res = get(&b, &app.url(&format!("/login/supabase/upstream?req={req}&provider=google"))).await;
    let pattern = format!("{}/callback/supabase?state=*", app.issuer);
    assert_failure(res, &app, "access_denied", &format!("Redirect URLs list does not include {pattern}")).await;

    // Fixed in the dashboard: the next login goes through.
    fake.allow_redirects(&[&pattern]);
    let res = social_login(&app, &fake, &app.browser(), "google", "dave@example.com").await;
    client_redirect(&res);
    // A passed check is cached: the next login starts one Supabase flow, not two.
    let before = fake.authorize_hits();
    let res = social_login(&app, &fake, &app.browser(), "google", "dave@example.com").await;
    client_redirect(&res);
    assert_eq!(fake.authorize_hits(), before + 1);
}

#[tokio::test]
async fn a_provider_that_supabase_has_not_enabled_is_explained() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, &["providers: [google, gitlab]"]).await;
    let b = app.browser();
    let (req, _) = login_page(&b, "supabase").await;
    let res = get(&b, &app.url(&format!("/login/supabase/upstream?req={req}&provider=gitlab"))).await;
    assert_failure(res, &app, "access_denied", "Sign-in with GitLab is not enabled in this Supabase project").await;
}

#[tokio::test]
async fn supabase_callback_failures_get_a_page_and_an_error_redirect() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, &["providers: [google, github]"]).await;

    // The person says no at the provider: Supabase redirects with error=access_denied.
    let b = app.browser();
    let (req, _) = login_page(&b, "supabase").await;
    let res = get(&b, &app.url(&format!("/login/supabase/upstream?req={req}&provider=google"))).await;
    let res = get(&b, &location(&res)).await;
    let flow = query_param(&Url::parse(&location(&res)).unwrap(), "state").unwrap();
    let res = get(&b, &format!("{}/fake-provider/google/approve?state={flow}&deny=1", fake.url())).await;
    let res = get(&b, &location(&res)).await;
    let back = location(&res);
    assert!(back.contains("#error=access_denied"), "errors are repeated in the fragment: {back}");
    assert!(back.ends_with("&sb="), "{back}");
    assert_failure(get(&b, &back).await, &app, "access_denied", "The user denied the request").await;

    // A banned Supabase user: Supabase refuses at its callback.
    let id = fake.add_user("mallory@example.com", "pw-mallory-1");
    fake.ban(&id);
    let res = social_login(&app, &fake, &app.browser(), "google", "mallory@example.com").await;
    assert_failure(res, &app, "access_denied", "User is banned").await;

    // A replayed Keybridge callback is refused (single use), and so is one without state.
    let b = app.browser();
    let (req, _) = login_page(&b, "supabase").await;
    let res = get(&b, &app.url(&format!("/login/supabase/upstream?req={req}&provider=google"))).await;
    let res = get(&b, &location(&res)).await;
    let flow = query_param(&Url::parse(&location(&res)).unwrap(), "state").unwrap();
    let res =
        get(&b, &format!("{}/fake-provider/google/approve?state={flow}&email=erin@example.com", fake.url())).await;
    let res = get(&b, &location(&res)).await;
    let back = location(&res);
    client_redirect(&get(&b, &back).await);
    let replay = get(&b, &back).await;
    assert_eq!(replay.status(), 400);
    let code = query_param(&Url::parse(&back).unwrap(), "code").unwrap();
    let no_state = get(&b, &app.url(&format!("/callback/supabase?code={code}"))).await;
    assert_eq!(no_state.status(), 400);
}

/// Submits Keybridge's password form for the Supabase connector.
async fn password_login(app: &TestApp, email: &str, password: &str) -> (Browser, reqwest::Response) {
    let b = app.browser();
    let (_, html) = login_page(&b, "supabase").await;
    let form = keybridge_testkit::LoginForm::parse(&app.issuer, &html);
    let res = b.submit(&form, (email, password)).await;
    (b, res)
}

#[tokio::test]
async fn password_login_works_and_failures_do_not_reveal_who_has_an_account() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, ALL_MODES).await;
    let alice = fake.add_user("alice@acme.test", "alice-pw-123");
    fake.update_user(&alice, |u| {
        u.app_metadata["roles"] = json!(["admin", "billing"]);
        u.user_metadata = json!({"full_name": "Alice Acme", "roles": ["root"]});
    });
    let (_, res) = password_login(&app, "alice@acme.test", "alice-pw-123").await;
    let tokens = redeem(&app, &client_redirect(&res)).await;
    let id = crate::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "alice@acme.test");
    assert_eq!(id["name"], "Alice Acme");
    assert_eq!(id["groups"], json!(["admin", "billing"]), "from app_metadata, never user_metadata");
    assert!(fake.token_calls().contains(&"password".to_string()));

    let banned = fake.add_user("bob@acme.test", "bob-pw-1234");
    fake.ban(&banned);
    let mut answers = Vec::new();
    for (email, pw) in [
        ("alice@acme.test", "wrong-password"),
        ("nobody@acme.test", "whatever-pw"),
        ("bob@acme.test", "not-bobs-password"),
        ("bob@acme.test", "bob-pw-1234"),
    ] {
        let (_, res) = password_login(&app, email, pw).await;
        let status = res.status();
        let html = res.text().await.unwrap();
        assert!(html.contains("Wrong email or password."), "{email}: {html}");
        answers.push(status);
    }
    assert!(answers.iter().all(|s| *s == 401), "{answers:?}");

    // After the right password, Supabase says the email is unconfirmed: that may be said.
    let carol = fake.add_user("carol@acme.test", "carol-pw-123");
    fake.update_user(&carol, |u| u.email_confirmed = false);
    let (_, res) = password_login(&app, "carol@acme.test", "carol-pw-123").await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Please confirm your email address first"));

    fake.disable_password_logins();
    let (_, res) = password_login(&app, "alice@acme.test", "alice-pw-123").await;
    assert!(res.text().await.unwrap().contains("turned off"));
}

#[tokio::test]
async fn errors_in_the_legacy_shape_are_understood_too() {
    let fake = FakeSupabase::start_with(FakeOptions { legacy_errors: true, ..Default::default() });
    let app = app_with(&fake, &["password: true"]).await;
    let id = fake.add_user("dana@acme.test", "dana-pw-123");
    let (_, res) = password_login(&app, "dana@acme.test", "wrong").await;
    assert!(res.text().await.unwrap().contains("Wrong email or password."));
    fake.update_user(&id, |u| u.email_confirmed = false);
    let (_, res) = password_login(&app, "dana@acme.test", "dana-pw-123").await;
    assert!(res.text().await.unwrap().contains("Please confirm your email address first"));

    // The fake answers in the shape the request asked for.
    let http = reqwest::Client::new();
    let url = format!("{}/token?grant_type=password", fake.auth_url());
    let body = json!({"email": "dana@acme.test", "password": "wrong"});
    let legacy: Value =
        http.post(&url).header("apikey", fake.anon_key()).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(legacy, json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}));
    let modern = FakeSupabase::start();
    modern.add_user("dana@acme.test", "dana-pw-123");
    let url = format!("{}/token?grant_type=password", modern.auth_url());
    let res = http
        .post(&url)
        .header("apikey", modern.anon_key())
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-supabase-api-version"], "2024-01-01");
    assert_eq!(res.headers()["x-sb-error-code"], "invalid_credentials");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v, json!({"code": "invalid_credentials", "message": "Invalid login credentials"}));
    // The gateway: no apikey, no entry.
    let res = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "No API key found in request");
}

#[tokio::test]
async fn a_wrong_anon_key_is_a_clear_failure_not_wrong_credentials() {
    let fake = FakeSupabase::start();
    let entry = entry(&fake, &["password: true"]).replace(fake.anon_key(), "sb_publishable_not-the-key");
    let app = spawn_app_with(Options {
        yaml: Some(Box::new(move |iss, listen| default_yaml(iss, listen) + &entry)),
        ..Default::default()
    })
    .await;
    fake.add_user("erin@acme.test", "erin-pw-123");
    let (_, res) = password_login(&app, "erin@acme.test", "erin-pw-123").await;
    assert_eq!(res.status(), 503);
    assert!(!res.text().await.unwrap().contains("Wrong email or password."));
}

/// Opens the hand-off page for a new request; returns (req, csrf, the response).
async fn handoff_page(app: &TestApp, b: &Browser) -> (String, String, reqwest::Response) {
    let (req, _) = login_page(b, "supabase").await;
    let page = get(b, &app.url(&format!("/login/supabase/handoff?req={req}"))).await;
    let text = page.text().await.unwrap();
    let start = text.find("data-csrf=\"").unwrap() + 11;
    let csrf = text[start..start + text[start..].find('"').unwrap()].to_owned();
    let again = get(b, &app.url(&format!("/login/supabase/handoff?req={req}"))).await;
    (req, csrf, again)
}

async fn hand_off(app: &TestApp, b: &Browser, token: &str) -> reqwest::Response {
    let (req, csrf, _) = handoff_page(app, b).await;
    b.http
        .post(app.url("/login/supabase/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap()
}

fn session_token(session: &Value) -> String {
    json!({"access_token": session["access_token"], "refresh_token": session["refresh_token"]}).to_string()
}

#[tokio::test]
async fn the_handoff_page_loads_supabase_js_under_a_strict_csp() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, ALL_MODES).await;
    let b = app.browser();
    let (_, _, page) = handoff_page(&app, &b).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self' https://cdn.example.test"), "{csp}");
    assert!(csp.contains(&format!("connect-src 'self' {}", fake.url())), "{csp}");
    assert!(!csp.contains("unsafe-inline"));
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("<script src=\"{SCRIPT_URL}\"></script>")), "{html}");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(html.contains(fake.anon_key()), "the public anon key is in the page's config");
    let glue = app.http.get(app.url("/assets/handoff/supabase.js")).send().await.unwrap();
    assert_eq!(glue.status(), 200);
    let js = glue.text().await.unwrap();
    assert_eq!(js, keybridge_connector_supabase::GLUE_JS);
    for needle in ["createClient", "signInWithPassword", "signInWithOAuth", "data-action", "refresh_token"] {
        assert!(js.contains(needle), "{needle}");
    }
    // It is valid JavaScript (Node is installed by scripts/test.sh).
    let path = std::env::temp_dir().join(format!("keybridge-supabase-glue-{}.js", std::process::id()));
    std::fs::write(&path, &js).unwrap();
    let out = std::process::Command::new("node").arg("--check").arg(&path).output().expect("node is installed");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_handed_off_es256_token_is_verified_and_the_user_looked_up() {
    let fake = FakeSupabase::start();
    let app = app_with(&fake, ALL_MODES).await;
    let id = fake.add_user("frank@acme.test", "frank-pw-123");
    let session = fake.sign_in(&id, "magiclink");
    let at = session["access_token"].as_str().unwrap();
    assert_eq!(crate::jwt_header(at)["alg"], "ES256");
    let claims = crate::jwt_claims(at);
    assert_eq!(claims["aud"], "authenticated", "aud is a string");
    assert!(claims["amr"][0]["method"].is_string(), "amr is a list of objects");

    let b = app.browser();
    let res = hand_off(&app, &b, &session_token(&session)).await;
    let tokens = redeem(&app, &client_redirect(&res)).await;
    assert_eq!(crate::jwt_claims(tokens["id_token"].as_str().unwrap())["email"], "frank@acme.test");

    // A bare access token works too.
    let res = hand_off(&app, &app.browser(), at).await;
    client_redirect(&res);

    // Forgeries and misfits: each a page and an error redirect.
    let sid = claims["session_id"].as_str().unwrap().to_owned();
    let mut wrong_iss = fake.access_claims(&id, &sid, "password");
    wrong_iss["iss"] = json!("https://other.supabase.co/auth/v1");
    let mut expired = fake.access_claims(&id, &sid, "password");
    expired["exp"] = json!(expired["iat"].as_i64().unwrap() - 3600);
    let mut anon = fake.access_claims(&id, &sid, "password");
    anon["role"] = json!("anon");
    let mut wrong_aud = fake.access_claims(&id, &sid, "password");
    wrong_aud["aud"] = json!("service");
    let tampered = {
        let mut t = at.to_owned();
        t.replace_range(t.len() - 6.., "AAAAAA");
        t
    };
    for token in [fake.sign(&wrong_iss), fake.sign(&expired), fake.sign(&anon), fake.sign(&wrong_aud), tampered] {
        let res = hand_off(&app, &app.browser(), &token).await;
        assert_failure(res, &app, "access_denied", "could not be verified").await;
    }
    // An HS256 token, with no legacy secret configured.
    let other = FakeSupabase::start_with(FakeOptions { keys: KeyMode::Hs256(HS_SECRET.into()), ..Default::default() });
    let oid = other.add_user("frank@acme.test", "x");
    let hs = other.sign(&fake.access_claims(&id, &sid, "password"));
    let _ = oid;
    assert_failure(hand_off(&app, &app.browser(), &hs).await, &app, "access_denied", "could not be verified").await;

    // Banned, then deleted, with a token that is still valid: the user lookup refuses them.
    fake.ban(&id);
    let res = hand_off(&app, &app.browser(), at).await;
    assert_failure(res, &app, "access_denied", "disabled or no longer exists").await;
    fake.delete_user(&id);
    let res = hand_off(&app, &app.browser(), at).await;
    assert_failure(res, &app, "access_denied", "disabled or no longer exists").await;
}

#[tokio::test]
async fn handoff_follows_supabase_key_rotation_with_one_refetch() {
    let fake = FakeSupabase::start_with(FakeOptions { keys: KeyMode::Rs256, ..Default::default() });
    // Built in code to shorten the unknown-kid refetch interval (5 s in production).
    let cfg: keybridge_connector_supabase::Config = serde_json::from_value(json!({
        "url": fake.url(),
        "anon_key": fake.anon_key(),
        "handoff": {"script_url": SCRIPT_URL},
    }))
    .unwrap();
    let sb = Arc::new(
        keybridge_connector_supabase::SupabaseConnector::open(cfg).unwrap().with_jwks_min_refetch(Duration::ZERO),
    );
    let app =
        spawn_app_with(Options { connectors: vec![sb.connector("supabase", "Acme")], ..Default::default() }).await;
    let id = fake.add_user("gina@acme.test", "gina-pw-123");
    let first = fake.sign_in(&id, "password");
    client_redirect(&hand_off(&app, &app.browser(), &session_token(&first)).await);
    assert_eq!(fake.jwks_hits(), 1);
    client_redirect(&hand_off(&app, &app.browser(), &session_token(&fake.sign_in(&id, "password"))).await);
    assert_eq!(fake.jwks_hits(), 1, "cached");

    fake.rotate_key();
    let rotated = fake.sign_in(&id, "password");
    assert_ne!(
        crate::jwt_header(rotated["access_token"].as_str().unwrap())["kid"],
        crate::jwt_header(first["access_token"].as_str().unwrap())["kid"]
    );
    client_redirect(&hand_off(&app, &app.browser(), &session_token(&rotated)).await);
    assert_eq!(fake.jwks_hits(), 2, "an unknown kid refetches once");
    // Tokens signed before the rotation still verify: the old key stays published.
    client_redirect(&hand_off(&app, &app.browser(), &session_token(&first)).await);
    assert_eq!(fake.jwks_hits(), 2);
}

#[tokio::test]
async fn handoff_with_the_legacy_hs256_secret() {
    let fake = FakeSupabase::start_with(FakeOptions { keys: KeyMode::Hs256(HS_SECRET.into()), ..Default::default() });
    let app = app_with(
        &fake,
        &[&format!("handoff: {{script_url: \"{SCRIPT_URL}\"}}"), &format!("jwt_secret: \"{HS_SECRET}\"")],
    )
    .await;
    let id = fake.add_user("hal@acme.test", "hal-pw-1234");
    let session = fake.sign_in(&id, "password");
    let at = session["access_token"].as_str().unwrap();
    assert_eq!(crate::jwt_header(at)["alg"], "HS256");
    assert!(crate::jwt_header(at).get("kid").is_none(), "legacy tokens carry no kid");
    let jwks: Value =
        reqwest::get(format!("{}/.well-known/jwks.json", fake.auth_url())).await.unwrap().json().await.unwrap();
    assert_eq!(jwks, json!({"keys": []}), "symmetric keys are never published");
    client_redirect(&hand_off(&app, &app.browser(), &session_token(&session)).await);

    let other = FakeSupabase::start_with(FakeOptions {
        keys: KeyMode::Hs256("another-secret-of-at-least-32-characters!!".into()),
        ..Default::default()
    });
    let forged = other.sign(&crate::jwt_claims(at));
    assert_failure(hand_off(&app, &app.browser(), &forged).await, &app, "access_denied", "could not be verified").await;
}

#[tokio::test]
async fn refresh_rechecks_the_user_with_supabase_using_its_rotating_token() {
    // Reuse interval 0: if Keybridge ever sent a rotated-out token, Supabase would revoke it.
    let fake = FakeSupabase::start_with(FakeOptions { reuse_interval: 0, ..Default::default() });
    let mut extra = ALL_MODES.to_vec();
    extra.push("refresh_upstream: true");
    let app = app_with(&fake, &extra).await;
    let id = fake.add_user("ivy@acme.test", "ivy-pw-1234");
    let (_, res) = password_login(&app, "ivy@acme.test", "ivy-pw-1234").await;
    let t0 = redeem(&app, &client_redirect(&res)).await;
    let refresh = |t: &Value| t["refresh_token"].as_str().unwrap().to_owned();

    fake.update_user(&id, |u| u.user_metadata = json!({"full_name": "Ivy Renamed"}));
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh(&t0))]).await;
    assert_eq!(res.status(), 200);
    let t1: Value = res.json().await.unwrap();
    assert_eq!(crate::jwt_claims(t1["id_token"].as_str().unwrap())["name"], "Ivy Renamed");
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh(&t1))]).await;
    assert_eq!(res.status(), 200, "the rotated Supabase refresh token was kept");
    let t2: Value = res.json().await.unwrap();
    assert_eq!(fake.token_calls().iter().filter(|g| *g == "refresh_token").count(), 2);
    assert!(!t2.to_string().contains("ivy-pw"), "nothing upstream leaks");

    fake.ban(&id);
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh(&t2))]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Deleted: a new login, then the user disappears from Supabase.
    let jo = fake.add_user("jo@acme.test", "jo-pw-12345");
    let res = social_login(&app, &fake, &app.browser(), "google", "jo@acme.test").await;
    let t = redeem(&app, &client_redirect(&res)).await;
    fake.delete_user(&jo);
    app.clock.advance(1);
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh(&t))]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error_description"], "the user is no longer valid upstream");

    // A hand-off login keeps the handed-over refresh token, too.
    let kim = fake.add_user("kim@acme.test", "kim-pw-12345");
    let res = hand_off(&app, &app.browser(), &session_token(&fake.sign_in(&kim, "password"))).await;
    let t = redeem(&app, &client_redirect(&res)).await;
    let res = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh(&t))]).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_fakes_refresh_tokens_rotate_with_a_reuse_window() {
    let fake = FakeSupabase::start();
    let id = fake.add_user("lu@acme.test", "lu-pw-123456");
    let s0 = fake.sign_in(&id, "password");
    let http = reqwest::Client::new();
    let url = format!("{}/token?grant_type=refresh_token", fake.auth_url());
    let post = |rt: String| {
        http.post(&url)
            .header("apikey", fake.anon_key())
            .header("X-Supabase-Api-Version", "2024-01-01")
            .json(&json!({"refresh_token": rt}))
            .send()
    };
    let rt0 = s0["refresh_token"].as_str().unwrap().to_owned();
    let s1: Value = post(rt0.clone()).await.unwrap().json().await.unwrap();
    let rt1 = s1["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt0, rt1, "every refresh rotates");
    // Within the reuse interval the previous token answers with the active one.
    let again: Value = post(rt0.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(again["refresh_token"], rt1.as_str());
    // Outside it, reuse revokes the whole session.
    fake.advance(11);
    let res = post(rt0).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "refresh_token_already_used");
    let res = post(rt1).await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "refresh_token_not_found", "the family is gone");
}

#[tokio::test]
async fn supabase_config_problems_are_reported_with_their_paths() {
    let yaml = default_yaml("http://127.0.0.1:5556", "127.0.0.1:5556")
        + r#"  - id: sb
    type: supabase
    config:
      url: http://project.example.com
      anon_key_env: KEYBRIDGE_TEST_SURELY_UNSET_SUPABASE_KEY
      providers: [google, Google]
      groups_claim: user_metadata.roles
      jwt_secret: "x"
      refresh_upstrem: true
  - id: sb2
    type: supabase
    config:
      anon_key: k
"#;
    let err = keybridge_server::config::from_yaml(&yaml).unwrap_err().to_string();
    for needle in [
        "connectors[1].config.url: \"http://project.example.com\" must use https",
        "connectors[1].config.anon_key_env: environment variable KEYBRIDGE_TEST_SURELY_UNSET_SUPABASE_KEY is not set",
        "connectors[1].config.providers[1]: \"Google\" is not a Supabase provider name",
        "connectors[1].config.groups_claim: \"user_metadata.roles\" must be a path under app_metadata",
        "connectors[1].config.jwt_secret: only verifies handed-off tokens",
        "connectors[1].config.refresh_upstrem: unknown key",
        "connectors[2].config: missing configuration field \"url\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let none_on = default_yaml("http://127.0.0.1:5556", "127.0.0.1:5556")
        + "  - id: sb\n    type: supabase\n    config: {url: \"https://p.supabase.co\", anon_key: k}\n";
    let err = keybridge_server::config::from_yaml(&none_on).unwrap_err().to_string();
    assert!(err.contains("connectors[1].config.providers: no sign-in method is on"), "{err}");
}

#[tokio::test]
async fn supabases_oauth_server_works_through_the_generic_oidc_connector() {
    let fake = FakeSupabase::start_with(FakeOptions { keys: KeyMode::Rs256, ..Default::default() });
    // The discovery document Supabase serves (upstreams.md §1.8).
    let disc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", fake.auth_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disc["issuer"], fake.auth_url());
    assert_eq!(disc["authorization_endpoint"], format!("{}/oauth/authorize", fake.auth_url()));

    let (client_id, secret) = fake.register_oauth_client("Keybridge", &[]);
    let auth_url = fake.auth_url();
    let cid = client_id.clone();
    let app = spawn_app_with(Options {
        yaml: Some(Box::new(move |iss, listen| {
            default_yaml(iss, listen)
                + &format!(
                    "  - id: supabase-oidc\n    type: oidc\n    name: Acme (Supabase OAuth)\n    config:\n      issuer: {auth_url}\n      client_id: {cid}\n      client_secret: {secret}\n      scopes: [openid, email, profile]\n"
                )
        })),
        ..Default::default()
    })
    .await;
    // The client's redirect URI is Keybridge's per-connector callback.
    fake.set_oauth_redirect_uris(&client_id, &[&app.url("/callback/supabase-oidc")]);

    let b = app.browser();
    let q = gpt_query("supabase-oidc");
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = b.authorize(&q).await;
    let res = get(&b, &location(&res)).await;
    assert_eq!(res.status(), 303, "a single-upstream connector goes straight there");
    let up = Url::parse(&location(&res)).unwrap();
    assert!(up.as_str().starts_with(&format!("{}/oauth/authorize?", fake.auth_url())), "{up}");
    let res = get(&b, up.as_str()).await;
    assert_eq!(res.status(), 302);
    let consent = Url::parse(&location(&res)).unwrap();
    assert_eq!(consent.path(), CONSENT_PATH, "Supabase sends the person to the project's consent page");
    let authorization_id = query_param(&consent, "authorization_id").unwrap();

    // The project's consent page: a signed-in Supabase user approves.
    let uid = fake.add_user("mo@acme.test", "mo-pw-123456");
    let session = fake.sign_in(&uid, "password");
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/oauth/authorizations/{authorization_id}/consent", fake.auth_url()))
        .header("apikey", fake.anon_key())
        .bearer_auth(session["access_token"].as_str().unwrap())
        .json(&json!({"action": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let redirect_url = res.json::<Value>().await.unwrap()["redirect_url"].as_str().unwrap().to_owned();
    assert!(redirect_url.starts_with(&app.url("/callback/supabase-oidc?")), "{redirect_url}");
    let res = get(&b, &redirect_url).await;
    let tokens = redeem(&app, &client_redirect(&res)).await;
    let id = crate::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "mo@acme.test");
    assert_eq!(id["iss"], app.issuer, "Keybridge's own tokens");
}
