//! The `firebase` connector end to end, with a GPT-style client (a browser plus the token
//! endpoint):
//!
//! - against the **real Firebase Auth Emulator** (npm `firebase-tools`, pinned in
//!   `tests/upstreams/firebase-emulator/`): sign-up, password sign-in, wrong passwords, disabled and
//!   deleted users, the SDK hand-off, and the refresh re-check;
//! - against a **fake of Google's certificate endpoint** (RS256 keys and self-signed x509
//!   certificates made in the test), for the production verification path the emulator cannot
//!   exercise (it only issues unsigned tokens): key rotation, expiry, `aud`, `iss`, `alg: none`,
//!   tampered signatures.
//!
//! One emulator serves the whole test binary (it takes seconds to start); each test uses its own
//! users. It dies with the test binary: `launch.js` exits when its stdin closes or its parent
//! process is gone. Node must be installed and `npm ci` run (`./scripts/test.sh` does both); if
//! the emulator cannot start, these tests fail, they never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_connector_firebase::FirebaseConnector;
use keybridge_testkit::fakes::google_certs::{GoogleCerts, id_token_claims, sign_rs256};
use keybridge_testkit::process::{free_port, repo_root};
use keybridge_testkit::{Browser, GPT_CLIENT, GPT_REDIRECT, Options, TestApp, location, query_param, spawn_app_with};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use url::Url;

/// The emulator's project (a `demo-` id: no calls to Google).
const PROJECT: &str = "demo-keybridge";
/// The project of the signed-token tests.
const SIGNED_PROJECT: &str = "keybridge-signed";

// ---------------------------------------------------------------------------------------------
// The emulator, one per test binary.

struct Emulator {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Held until the process exits; dropping the static never happens, so the child watches us.
    _child: Mutex<Child>,
}

static EMULATOR: OnceCell<Emulator> = OnceCell::const_new();

async fn emulator() -> &'static Emulator {
    EMULATOR.get_or_init(start_emulator).await
}

async fn start_emulator() -> Emulator {
    let dir: PathBuf = repo_root().join("tests/upstreams/firebase-emulator");
    assert!(
        dir.join("node_modules/firebase-tools").is_dir(),
        "{} has no node_modules/firebase-tools: run ./scripts/test.sh (it runs `npm ci` there) or `npm ci --prefix {}`",
        dir.display(),
        dir.display()
    );
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("keybridge-firebase-emulator-{}-{port}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg("launch.js")
        .args(["--port", &port.to_string(), "--project", PROJECT, "--parent", &std::process::id().to_string()])
        .arg("--log")
        .arg(&log_path)
        .current_dir(&dir)
        // The launcher exits when this pipe closes, i.e. when the test binary is gone.
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node (is Node.js installed? ./scripts/test.sh installs it): {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    loop {
        if let Ok(res) = http.get(format!("{base}/")).send().await
            && let Ok(v) = res.json::<Value>().await
            && v["authEmulator"]["ready"] == true
        {
            break;
        }
        let printed = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the Firebase Auth Emulator exited ({status}) before it was ready; it printed:\n{}", printed());
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the Firebase Auth Emulator did not answer within 90s; it printed:\n{}", printed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "firebase emulator ready at {base} in {:.1}s (log: {})",
        started.elapsed().as_secs_f64(),
        log_path.display()
    );
    Emulator { base, _child: Mutex::new(child) }
}

/// A unique email for this test run.
fn email(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{tag}-{}-{}@example.com", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

impl Emulator {
    fn itk(&self) -> String {
        format!("{}/identitytoolkit.googleapis.com", self.base)
    }

    fn securetoken(&self) -> String {
        format!("{}/securetoken.googleapis.com", self.base)
    }

    async fn call(&self, path: &str, admin: bool, body: Value) -> Value {
        let mut req = reqwest::Client::new().post(format!("{}/v1/{path}?key=test-web-key", self.itk())).json(&body);
        if admin {
            req = req.bearer_auth("owner");
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// `accounts:signUp`; returns the uid.
    async fn sign_up(&self, email: &str, password: &str) -> String {
        let v = self
            .call("accounts:signUp", false, json!({"email": email, "password": password, "returnSecureToken": true}))
            .await;
        v["localId"].as_str().unwrap().to_owned()
    }

    /// An admin `accounts:update`.
    async fn update(&self, uid: &str, mut changes: Value) {
        changes["localId"] = json!(uid);
        self.call(&format!("projects/{PROJECT}/accounts:update"), true, changes).await;
    }

    async fn delete(&self, uid: &str) {
        self.call(&format!("projects/{PROJECT}/accounts:delete"), true, json!({"localId": uid})).await;
    }

    /// A social sign-in, as the SDK does it after a popup; returns (uid, ID token, refresh token).
    async fn sign_in_with_idp(&self, provider: &str, sub: &str, email: &str) -> (String, String, String) {
        let id_token = json!({"sub": sub, "email": email, "email_verified": true, "name": "Social User"}).to_string();
        let v = self
            .call(
                "accounts:signInWithIdp",
                false,
                json!({
                    "requestUri": "http://localhost",
                    "postBody": format!("id_token={id_token}&providerId={provider}"),
                    "returnSecureToken": true,
                }),
            )
            .await;
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        (s("localId"), s("idToken"), s("refreshToken"))
    }
}

// ---------------------------------------------------------------------------------------------
// Keybridge with a firebase connector.

/// The default test config plus a `firebase` connector with this `config:` body (indented YAML).
async fn app_with_firebase(config: String) -> TestApp {
    spawn_app_with(Options {
        yaml: Some(Box::new(move |issuer: &str, listen: &str| {
            let base = keybridge_testkit::default_yaml(issuer, listen);
            assert!(base.trim_end().ends_with("Bob Example"), "default_yaml must end with the connectors list");
            format!("{base}  - id: firebase\n    type: firebase\n    name: Firebase\n    config:\n{config}")
        })),
        ..Default::default()
    })
    .await
}

async fn emulator_app(em: &Emulator, extra: &str) -> TestApp {
    app_with_firebase(format!(
        "      project_id: {PROJECT}\n      api_key: test-web-key\n      emulator: true\n      \
         identity_toolkit_url: {}\n      securetoken_url: {}\n{extra}",
        em.itk(),
        em.securetoken()
    ))
    .await
}

fn query() -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("client_id", GPT_CLIENT),
        ("redirect_uri", GPT_REDIRECT),
        ("state", "gpt-state"),
        ("scope", "openid email profile offline_access"),
        ("connector_id", "firebase"),
    ]
}

/// Signs in on Keybridge's form and redeems the code, as ChatGPT would.
async fn password_tokens(app: &TestApp, email: &str, password: &str) -> Value {
    let redirect = app.browser().authorize_and_login(&query(), (email, password)).await;
    assert!(redirect.as_str().starts_with(GPT_REDIRECT), "{redirect}");
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("gpt-state"));
    app.redeem_gpt_code(&query_param(&redirect, "code").unwrap()).await
}

async fn refresh(app: &TestApp, tokens: &Value) -> (u16, Value) {
    let res = app
        .token(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .await;
    (res.status().as_u16(), res.json().await.unwrap())
}

fn id_claims(tokens: &Value) -> Value {
    crate::jwt_claims(tokens["id_token"].as_str().unwrap())
}

/// Opens the hand-off page for a fresh authorization request: (req, csrf, response headers, html).
async fn open_handoff(app: &TestApp, b: &Browser) -> (String, String, reqwest::header::HeaderMap, String) {
    let res = b.authorize(&query()).await;
    assert_eq!(res.status(), 303);
    let req = query_param(&Url::parse(&location(&res)).unwrap(), "req").unwrap();
    let page = b.http.get(app.url(&format!("/login/firebase/handoff?req={req}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let html = page.text().await.unwrap();
    let start = html.find("data-csrf=\"").unwrap() + "data-csrf=\"".len();
    let csrf = html[start..start + html[start..].find('"').unwrap()].to_owned();
    (req, csrf, headers, html)
}

/// An attribute of the hand-off page's `#keybridge-handoff` element, unescaped.
fn data_attr(html: &str, name: &str) -> String {
    let needle = format!("{name}=\"");
    let start = html.find(&needle).unwrap() + needle.len();
    let raw = &html[start..start + html[start..].find('"').unwrap()];
    raw.replace("&quot;", "\"").replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Runs the glue script Keybridge served (`tests/upstreams/firebase-emulator/glue-harness.js`: a
/// minimal DOM and a stand-in for the SDK whose popup returns these tokens), clicks the first
/// button, and returns what the script did.
fn run_glue(glue: &str, html: &str, id_token: &str, refresh_token: &str, fail: Option<&str>) -> Value {
    let dir = repo_root().join("tests/upstreams/firebase-emulator");
    let file = std::env::temp_dir().join(format!("keybridge-glue-{}-{}.js", std::process::id(), email("glue")));
    std::fs::write(&file, glue).unwrap();
    let attrs: serde_json::Map<String, Value> = ["data-action", "data-req", "data-csrf", "data-config"]
        .into_iter()
        .map(|a| (a.to_owned(), Value::String(data_attr(html, a))))
        .collect();
    let input = json!({"attrs": attrs, "idToken": id_token, "refreshToken": refresh_token, "fail": fail});
    let out = Command::new("node")
        .arg("glue-harness.js")
        .arg(&file)
        .arg(input.to_string())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "glue-harness.js failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Hands a token off, as the page's glue script does.
async fn hand_off(app: &TestApp, token: &str) -> reqwest::Response {
    let b = app.browser();
    let (req, csrf, _, _) = open_handoff(app, &b).await;
    b.http
        .post(app.url("/login/firebase/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap()
}

/// The page's Content-Security-Policy: each directive's sources, sorted and deduplicated.
fn csp(headers: &reqwest::header::HeaderMap) -> BTreeMap<String, Vec<String>> {
    let value = headers["content-security-policy"].to_str().unwrap();
    value
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            let name = words.next()?.to_owned();
            let set: BTreeSet<String> = words.map(str::to_owned).collect();
            Some((name, set.into_iter().collect()))
        })
        .collect()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = v.iter().map(|s| (*s).to_owned()).collect();
    set.into_iter().collect()
}

async fn code_from(res: reqwest::Response) -> String {
    let status = res.status();
    if status != 303 {
        panic!("expected 303, got {status}: {}", res.text().await.unwrap());
    }
    query_param(&Url::parse(&location(&res)).unwrap(), "code").unwrap()
}

/// A failed hand-off: a page for the person, an `access_denied` redirect for the client.
async fn assert_refused(res: reqwest::Response, message: &str) {
    assert_eq!(res.status(), 502);
    let html = res.text().await.unwrap();
    assert!(html.contains(message), "{message:?} not in {html}");
    let start = html.find("class=\"btn\" href=\"").unwrap() + 18;
    let back = Url::parse(&html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&")).unwrap();
    assert!(back.as_str().starts_with(GPT_REDIRECT));
    assert_eq!(query_param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&back, "state").as_deref(), Some("gpt-state"));
}

// ---------------------------------------------------------------------------------------------
// Against the real emulator.

#[tokio::test]
async fn firebase_password_login_and_refresh_recheck_end_to_end() {
    let em = emulator().await;
    let app = emulator_app(em, "      password: true\n      refresh_upstream: true\n").await;
    let (mail, pw) = (email("ann"), "ann-secret-1");
    let uid = em.sign_up(&mail, pw).await;

    let tokens = password_tokens(&app, &mail, pw).await;
    let claims = id_claims(&tokens);
    assert_eq!(claims["email"], mail.as_str());
    assert_eq!(claims["email_verified"], false, "a new Firebase user's email is not verified");
    assert_ne!(claims["sub"], uid.as_str(), "Keybridge's sub reveals no upstream id");
    // The emulator's refresh tokens are base64 of {"_AuthEmulatorRefreshToken":...}.
    assert!(!tokens.to_string().contains("eyJfQXV0aEVtdWxhdG9y"), "the Firebase refresh token never leaves Keybridge");

    // A refresh re-checks the user with Firebase and brings its changes in.
    em.update(&uid, json!({"displayName": "Ann Firebase", "emailVerified": true})).await;
    let (status, t1) = refresh(&app, &tokens).await;
    assert_eq!(status, 200, "{t1}");
    let c1 = id_claims(&t1);
    assert_eq!(c1["name"], "Ann Firebase");
    assert_eq!(c1["email_verified"], true);
    assert_eq!(c1["sub"], claims["sub"]);
    let (status, t2) = refresh(&app, &t1).await;
    assert_eq!(status, 200, "{t2}");
}

#[tokio::test]
async fn firebase_wrong_password_unknown_email_and_disabled_user_get_one_answer() {
    let em = emulator().await;
    let app = emulator_app(em, "      password: true\n").await;
    let (mail, pw) = (email("bea"), "bea-secret-1");
    let uid = em.sign_up(&mail, pw).await;
    let b = app.browser();
    let form = b.open_login_form(&query()).await;
    let mut answers = Vec::new();
    for (who, password) in [(mail.clone(), "wrong-password"), (email("nobody"), pw), (String::new(), pw)] {
        let res = b.submit(&form, (&who, password)).await;
        answers.push((res.status().as_u16(), res.text().await.unwrap().contains("Wrong email or password.")));
    }
    em.update(&uid, json!({"disableUser": true})).await;
    for password in [pw, "wrong-password"] {
        let res = b.submit(&form, (&mail, password)).await;
        answers.push((res.status().as_u16(), res.text().await.unwrap().contains("Wrong email or password.")));
    }
    assert!(answers.iter().all(|a| *a == (401, true)), "one answer for all, no enumeration: {answers:?}");
    // Enabled again, the same form signs in.
    em.update(&uid, json!({"disableUser": false})).await;
    let res = b.submit(&form, (&mail, pw)).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with(GPT_REDIRECT));
}

#[tokio::test]
async fn firebase_disabled_user_fails_the_refresh() {
    let em = emulator().await;
    let app = emulator_app(em, "      password: true\n      refresh_upstream: true\n").await;
    let (mail, pw) = (email("cy"), "cy-secret-1");
    let uid = em.sign_up(&mail, pw).await;
    let tokens = password_tokens(&app, &mail, pw).await;
    em.update(&uid, json!({"disableUser": true})).await;
    let (status, err) = refresh(&app, &tokens).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], "invalid_grant");
    // The grant is revoked: enabling the user does not revive the old refresh token.
    em.update(&uid, json!({"disableUser": false})).await;
    assert_eq!(refresh(&app, &tokens).await.0, 400);
}

#[tokio::test]
async fn firebase_deleted_user_fails_the_refresh() {
    let em = emulator().await;
    let app = emulator_app(em, "      password: true\n      refresh_upstream: true\n").await;
    let (mail, pw) = (email("dee"), "dee-secret-1");
    let uid = em.sign_up(&mail, pw).await;
    let tokens = password_tokens(&app, &mail, pw).await;
    em.delete(&uid).await;
    let (status, err) = refresh(&app, &tokens).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_description"], "the user is no longer valid upstream");
}

#[tokio::test]
async fn without_refresh_upstream_a_refresh_does_not_ask_firebase() {
    let em = emulator().await;
    let app = emulator_app(em, "      password: true\n").await;
    let (mail, pw) = (email("eve"), "eve-secret-1");
    let uid = em.sign_up(&mail, pw).await;
    let tokens = password_tokens(&app, &mail, pw).await;
    em.delete(&uid).await;
    assert_eq!(refresh(&app, &tokens).await.0, 200, "refresh_upstream is off");
}

#[tokio::test]
async fn firebase_sdk_handoff_end_to_end_with_the_emulator() {
    let em = emulator().await;
    let app = emulator_app(
        em,
        "      refresh_upstream: true\n      allowed_sign_in_providers: [google.com]\n      handoff:\n        \
         providers: [google.com]\n        sdk_url: https://www.gstatic.com/firebasejs/13.2.0\n",
    )
    .await;
    let b = app.browser();
    let (_, _, headers, html) = open_handoff(&app, &b).await;
    // The page: SDK scripts and the glue from files, a CSP that allows exactly those.
    let csp = csp(&headers);
    let fb_domain = format!("https://{PROJECT}.firebaseapp.com");
    assert_eq!(csp["script-src"], ["'self'", "https://apis.google.com", "https://www.gstatic.com"]);
    assert_eq!(csp["connect-src"], sorted(&["'self'", &em.base, &fb_domain]));
    assert_eq!(csp["frame-src"], sorted(&[&em.base, &fb_domain]));
    assert_eq!(csp["frame-ancestors"], ["'none'"]);
    assert_eq!(csp["default-src"], ["'none'"]);
    assert!(csp.values().flatten().all(|s| !s.contains("unsafe")), "{csp:?}");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(html.contains("firebase-auth-compat.js") && html.contains("/assets/handoff/firebase.js"));
    let glue = app.http.get(app.url("/assets/handoff/firebase.js")).send().await.unwrap();
    assert_eq!(glue.status(), 200);
    let glue = glue.text().await.unwrap();

    // The glue script drives the SDK (a stand-in whose popup returns what the emulator's fake
    // Google sign-in issued) and submits the form Keybridge expects.
    let mail = email("gus");
    let (_, id_token, refresh_token) = em.sign_in_with_idp("google.com", &format!("g-{mail}"), &mail).await;
    let run = run_glue(&glue, &html, &id_token, &refresh_token, None);
    assert_eq!(run["labels"], json!(["Continue with Google"]));
    let calls = &run["calls"];
    assert_eq!(calls[0][0], "initializeApp");
    assert_eq!(calls[0][1], json!({"apiKey": "test-web-key", "authDomain": fb_domain[8..], "projectId": PROJECT}));
    assert_eq!(
        calls[1],
        json!(["useEmulator", em.base, {"disableWarnings": true}]),
        "the SDK is pointed at the emulator"
    );
    assert_eq!(calls[2], json!(["setPersistence", "none"]), "no Firebase session is kept on Keybridge's origin");
    assert_eq!(calls[3], json!(["signInWithPopup", "google.com"]));
    assert_eq!(calls[4], json!(["signOut"]));
    let sub = &run["submitted"];
    assert_eq!(sub["method"], "post");
    assert_eq!(sub["action"], "/login/firebase/handoff");
    let field = |k: &str| sub["fields"][k].as_str().unwrap().to_owned();
    let res = b
        .http
        .post(app.url(sub["action"].as_str().unwrap()))
        .form(&[("req", field("req")), ("csrf", field("csrf")), ("token", field("token"))])
        .send()
        .await
        .unwrap();
    let tokens = app.redeem_gpt_code(&code_from(res).await).await;
    let claims = id_claims(&tokens);
    assert_eq!(claims["email"], mail.as_str());
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Social User");
    assert_eq!(refresh(&app, &tokens).await.0, 200, "the handed-off session is re-checked at refresh");

    // A blocked popup: the person reads why, and nothing is posted.
    let (_, _, _, html) = open_handoff(&app, &b).await;
    let run = run_glue(&glue, &html, "", "", Some("auth/popup-blocked"));
    assert!(run["submitted"].is_null());
    assert!(run["error"].as_str().unwrap().contains("blocked the sign-in window"), "{run}");

    // Another user's refresh token does not ride along with this user's ID token.
    let other = email("mallory");
    let (_, _, other_refresh) = em.sign_in_with_idp("google.com", &format!("g-{other}"), &other).await;
    let (_, id_token, _) = em.sign_in_with_idp("google.com", &format!("g-{mail}"), &mail).await;
    let forged = json!({"idToken": id_token, "refreshToken": other_refresh}).to_string();
    assert_refused(hand_off(&app, &forged).await, "could not be verified").await;

    // A provider outside allowed_sign_in_providers is refused with a readable message.
    let (_, gh_token, gh_refresh) = em.sign_in_with_idp("github.com", "gh-1", &email("hal")).await;
    let gh = json!({"idToken": gh_token, "refreshToken": gh_refresh}).to_string();
    assert_refused(hand_off(&app, &gh).await, "Signing in with GitHub is not allowed here").await;
}

#[tokio::test]
async fn check_config_refuses_emulator_mode_with_a_remote_host() {
    let yaml = keybridge_testkit::default_yaml("http://127.0.0.1:5556", "127.0.0.1:5556")
        + "  - id: firebase\n    type: firebase\n    config:\n      project_id: demo-keybridge\n      \
           api_key: k\n      password: true\n      emulator: true\n      \
           identity_toolkit_url: https://identitytoolkit.googleapis.com\n      \
           securetoken_url: http://127.0.0.1:9099/securetoken.googleapis.com\n";
    let err = keybridge_server::config::from_yaml(&yaml).unwrap_err().0;
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("connectors[1].config.emulator: emulator mode accepts unsigned tokens, so identity_toolkit_url must be a loopback address"),
        "{err:?}"
    );
    let ok =
        yaml.replace("https://identitytoolkit.googleapis.com", "http://localhost:9099/identitytoolkit.googleapis.com");
    assert!(keybridge_server::config::from_yaml(&ok).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Signed tokens, against a fake of Google's certificate endpoint.

async fn signed_app(certs: &GoogleCerts) -> TestApp {
    app_with_firebase(format!(
        "      project_id: {SIGNED_PROJECT}\n      api_key: test-web-key\n      certs_url: {}\n      \
         handoff:\n        providers: [google.com, github.com]\n",
        certs.url
    ))
    .await
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn a_signed_id_token_is_verified_with_googles_certificates_end_to_end() {
    let certs = GoogleCerts::start();
    let app = signed_app(&certs).await;
    let b = app.browser();
    let (req, csrf, headers, _) = open_handoff(&app, &b).await;
    let csp = csp(&headers);
    assert_eq!(csp["script-src"], ["'self'", "https://apis.google.com", "https://www.gstatic.com"]);
    assert_eq!(
        csp["connect-src"],
        [
            "'self'",
            "https://identitytoolkit.googleapis.com",
            "https://keybridge-signed.firebaseapp.com",
            "https://securetoken.googleapis.com"
        ]
    );
    let token = certs.sign(&id_token_claims(SIGNED_PROJECT, "uid-signed-1", "sig@example.com", now()));
    let res = b
        .http
        .post(app.url("/login/firebase/handoff"))
        .form(&[("req", req.as_str()), ("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let tokens = app.redeem_gpt_code(&code_from(res).await).await;
    let claims = id_claims(&tokens);
    assert_eq!(claims["email"], "sig@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["picture"], "https://example.com/p.png");
    assert_eq!(certs.hits(), 1);
    // A second login uses the cached certificates (max-age).
    let again = certs.sign(&id_token_claims(SIGNED_PROJECT, "uid-signed-1", "sig@example.com", now()));
    code_from(hand_off(&app, &again).await).await;
    assert_eq!(certs.hits(), 1, "cached for the response's max-age");
}

#[tokio::test]
async fn google_key_rotation_refetches_the_certificates_once_per_unknown_kid() {
    let certs = GoogleCerts::start();
    // Built in code to lift the unknown-kid refetch floor (5s), so the test need not sleep.
    let cfg: keybridge_connector_firebase::Config = serde_json::from_value(json!({
        "project_id": SIGNED_PROJECT,
        "api_key": "test-web-key",
        "certs_url": certs.url,
        "handoff": {"providers": ["google.com"]},
    }))
    .unwrap();
    let connector = Arc::new(FirebaseConnector::open(cfg).unwrap().with_min_key_refetch(Duration::ZERO));
    let app =
        spawn_app_with(Options { connectors: vec![connector.connector("firebase", "Firebase")], ..Default::default() })
            .await;
    let claims = id_token_claims(SIGNED_PROJECT, "uid-rot", "rot@example.com", now());
    code_from(hand_off(&app, &certs.sign(&claims)).await).await;
    assert_eq!(certs.hits(), 1);
    // Google publishes a new key and signs with it: one refetch, then the new kid is cached.
    let new_kid = certs.rotate();
    assert_eq!(new_kid, certs.current_kid());
    code_from(hand_off(&app, &certs.sign(&claims)).await).await;
    assert_eq!(certs.hits(), 2);
    code_from(hand_off(&app, &certs.sign(&claims)).await).await;
    assert_eq!(certs.hits(), 2, "the new kid is cached");
    // Tokens under the old key still verify while it is published.
    let old = certs.sign_with_header("key-1", &json!({"alg": "RS256", "kid": "key-1", "typ": "JWT"}), &claims);
    code_from(hand_off(&app, &old).await).await;
    assert_eq!(certs.hits(), 2);
    // A kid Google never published: refused after exactly one refetch.
    let forged_kid =
        sign_rs256(&GoogleCerts::unpublished_key(), &json!({"alg": "RS256", "kid": "key-99", "typ": "JWT"}), &claims);
    assert_refused(hand_off(&app, &forged_kid).await, "could not be verified").await;
    assert_eq!(certs.hits(), 3);
    // Google retires the old key: once the cache is refreshed, its tokens fail.
    certs.retire("key-1");
    let newest = certs.rotate();
    let t = certs.sign_with_header(&newest, &json!({"alg": "RS256", "kid": newest, "typ": "JWT"}), &claims);
    code_from(hand_off(&app, &t).await).await;
    assert_eq!(certs.hits(), 4);
    assert_refused(hand_off(&app, &old).await, "could not be verified").await;
}

#[tokio::test]
async fn forged_or_stale_signed_tokens_are_refused() {
    let certs = GoogleCerts::start();
    let app = signed_app(&certs).await;
    let now = now();
    let good = id_token_claims(SIGNED_PROJECT, "uid-bad", "bad@example.com", now);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let kid = certs.current_kid();
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap());
    let valid = certs.sign(&good);
    let mut tampered_sig = valid.clone();
    let last = tampered_sig.pop().unwrap();
    tampered_sig.push(if last == 'A' { 'B' } else { 'A' });
    let (h, _) = valid.split_once('.').unwrap();
    let sig = valid.rsplit('.').next().unwrap();
    let tampered_claims = format!(
        "{h}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&with("email", json!("admin@example.com"))).unwrap())
    );
    let hs256 = {
        // An HS256 token "signed" with the certificate map as the secret (an old confusion attack).
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"key-1","typ":"JWT"}"#);
        format!("{h}.{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]))
    };
    let cases: Vec<(&str, String)> = vec![
        ("expired", certs.sign(&with("exp", json!(now - 120)))),
        ("wrong aud", certs.sign(&with("aud", json!("another-project")))),
        ("wrong iss", certs.sign(&with("iss", json!("https://securetoken.google.com/another-project")))),
        ("iss of another Google service", certs.sign(&with("iss", json!("https://accounts.google.com")))),
        ("auth_time in the future", certs.sign(&with("auth_time", json!(now + 600)))),
        ("empty sub", certs.sign(&with("sub", json!("")))),
        ("alg none", format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#))),
        ("tampered signature", tampered_sig),
        ("tampered claims", tampered_claims),
        ("unpublished key under a real kid", sign_rs256(&GoogleCerts::unpublished_key(), &header, &good)),
        ("no kid", certs.sign_with_header(&kid, &json!({"alg": "RS256", "typ": "JWT"}), &good)),
        ("HS256", hs256),
        ("not a JWT", "not-a-token".into()),
    ];
    for (why, token) in cases {
        let res = hand_off(&app, &token).await;
        assert_eq!(res.status(), 502, "{why}");
        assert_refused(res, "could not be verified").await;
    }
    // The valid one still goes through.
    code_from(hand_off(&app, &valid).await).await;
}
