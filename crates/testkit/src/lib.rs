//! Test helpers for Keybridge (after kanidm's testkit): [`spawn_app`] starts the real server on a
//! free loopback port with the memory store and a movable clock, and [`Browser`] walks the login
//! flow the way a person's browser does (cookies, no automatic redirects, the HTML form).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};

use keybridge_core::clock::{Clock, FixedClock, SystemClock};
use keybridge_core::store::Store;
use keybridge_server::app::{self, AppState, Deps, Running};
use keybridge_server::config;
use keybridge_store::MemoryStore;
use url::Url;

pub mod fakes;
pub mod mock;
pub mod pg;
pub mod process;

/// The confidential GPT-style client's id, secret and redirect URI.
pub const GPT_CLIENT: &str = "gpt";
/// Its secret (with characters that need form-encoding in Basic credentials).
pub const GPT_SECRET: &str = "gpt-secret:with%odd+chars";
/// Its redirect URI, as ChatGPT's editor shows it.
pub const GPT_REDIRECT: &str = "https://chatgpt.com/aip/g-0123456789abcdef0123456789abcdef01234567/oauth/callback";
/// A second confidential client.
pub const OTHER_CLIENT: &str = "other";
/// Its secret.
pub const OTHER_SECRET: &str = "other-secret";
/// A public (PKCE-only) client.
pub const PUBLIC_CLIENT: &str = "spa";
/// Its redirect URI.
pub const PUBLIC_REDIRECT: &str = "http://127.0.0.1:9999/callback";
/// The demo user's email and password.
pub const ALICE: (&str, &str) = ("alice@example.com", "alice-password");
/// A second user.
pub const BOB: (&str, &str) = ("bob@example.com", "bob-password");

fn hashes() -> &'static (String, String) {
    static H: OnceLock<(String, String)> = OnceLock::new();
    H.get_or_init(|| (keybridge_connector_local_hash(ALICE.1), keybridge_connector_local_hash(BOB.1)))
}

/// An argon2id hash of `pw` for `local` connector users in test configs.
pub fn password_hash(pw: &str) -> String {
    keybridge_connector_local_hash(pw)
}

/// The default test config with its `connectors:` section replaced by `connectors_yaml`.
pub fn yaml_with_connectors(issuer: &str, listen: &str, connectors_yaml: &str) -> String {
    let yaml = default_yaml(issuer, listen);
    let cut = yaml.find("connectors:").unwrap();
    format!("{}connectors:\n{connectors_yaml}", &yaml[..cut])
}

fn keybridge_connector_local_hash(pw: &str) -> String {
    use argon2::password_hash::PasswordHasher as _;
    argon2::Argon2::default().hash_password(pw.as_bytes()).unwrap().to_string()
}

/// The default test config for an issuer and listen address.
pub fn default_yaml(issuer: &str, listen: &str) -> String {
    let (alice, bob) = hashes();
    format!(
        r#"
issuer: {issuer}
listen: {listen}
storage:
  kind: memory
clients:
  - id: {GPT_CLIENT}
    name: My GPT
    secret: "{GPT_SECRET}"
    redirect_uris:
      - {GPT_REDIRECT}
      - https://chat.openai.com/aip/g-0123456789abcdef0123456789abcdef01234567/oauth/callback
    audience: https://api.example.com
  - id: {OTHER_CLIENT}
    name: Other app
    secret: {OTHER_SECRET}
    redirect_uris: [https://other.example.com/callback]
  - id: {PUBLIC_CLIENT}
    name: Single-page app
    public: true
    redirect_uris: [{PUBLIC_REDIRECT}]
connectors:
  - id: local
    type: local
    name: Email and password
    config:
      users:
        - email: {alice_email}
          password_hash: "{alice}"
          name: Alice Example
          email_verified: true
          groups: [staff]
        - email: {bob_email}
          password_hash: "{bob}"
          name: Bob Example
"#,
        alice_email = ALICE.0,
        bob_email = BOB.0,
    )
}

/// A running broker for one test.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its issuer, `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// Its storage.
    pub store: Arc<dyn Store>,
    /// Its clock, which tests may move forward.
    pub clock: Arc<FixedClock>,
    /// A plain HTTP client that never follows redirects.
    pub http: reqwest::Client,
    /// The server's state (provider, keys).
    pub state: actix_web::web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// Rewrites the test YAML, given the issuer and the listen address.
pub type YamlRewrite = Box<dyn FnOnce(&str, &str) -> String + Send>;

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    /// Rewrites the default YAML (given the issuer and listen address) before it is loaded.
    pub yaml: Option<YamlRewrite>,
    /// Storage to use instead of a fresh memory store.
    pub store: Option<Arc<dyn Store>>,
    /// Connectors built in code (see [`mock`]).
    pub connectors: Vec<keybridge_core::connector::Connector>,
}

/// The environment variable that runs the integration suite on PostgreSQL instead of memory.
pub const STORAGE_ENV: &str = "KEYBRIDGE_TEST_STORAGE";

/// A fresh store of the kind `KEYBRIDGE_TEST_STORAGE` names (`memory`, the default, or `postgres`).
pub async fn default_store() -> Arc<dyn Store> {
    match std::env::var(STORAGE_ENV).as_deref() {
        Ok("postgres") => Arc::new(pg::test_store().await),
        Ok("memory") | Err(_) => Arc::new(MemoryStore::new()),
        Ok(other) => panic!("{STORAGE_ENV}={other:?}: use memory or postgres"),
    }
}

/// Starts a broker with the default test config.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// Starts a broker with options.
pub async fn spawn_app_with(opts: Options) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let yaml = match opts.yaml {
        Some(f) => f(&issuer, &addr.to_string()),
        None => default_yaml(&issuer, &addr.to_string()),
    };
    let cfg = config::from_yaml(&yaml).unwrap_or_else(|e| panic!("test config is invalid: {e}"));
    let store: Arc<dyn Store> = match opts.store {
        Some(s) => s,
        None => default_store().await,
    };
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let Running { handle, state, server, .. } = app::start(
        cfg,
        Deps {
            store: Some(store.clone()),
            clock: clock.clone(),
            listener: Some(listener),
            workers: Some(2),
            extra_connectors: opts.connectors,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("server did not start: {e:#}"));
    tokio::spawn(server);
    TestApp { addr, issuer, store, clock, http: no_redirects(false), handle, state }
}

impl TestApp {
    /// `issuer + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A new browser (its own cookie jar).
    pub fn browser(&self) -> Browser {
        Browser { http: no_redirects(true), issuer: self.issuer.clone() }
    }

    /// Logs `user` in through the local connector for an authorization request with these
    /// query parameters, and returns the redirect to the client (with `code`, `state`, `iss`).
    pub async fn authorize_and_login(&self, query: &[(&str, &str)], user: (&str, &str)) -> Url {
        self.browser().authorize_and_login(query, user).await
    }

    /// The GPT client's standard authorization request, as ChatGPT sends it (no PKCE, no nonce).
    pub fn gpt_query(state: &str) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", GPT_CLIENT.into()),
            ("redirect_uri", GPT_REDIRECT.into()),
            ("state", state.into()),
            ("scope", "".into()),
        ]
    }

    /// Logs Alice in for the GPT client and returns the code.
    pub async fn gpt_code(&self) -> String {
        let redirect = self
            .authorize_and_login(
                &[
                    ("response_type", "code"),
                    ("client_id", GPT_CLIENT),
                    ("redirect_uri", GPT_REDIRECT),
                    ("state", "s"),
                    ("scope", "openid email profile"),
                ],
                ALICE,
            )
            .await;
        query_param(&redirect, "code").expect("a code in the redirect")
    }

    /// POSTs a form to `/token` with the GPT client's credentials in the body.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        let mut body: Vec<(&str, &str)> = form.to_vec();
        body.push(("client_id", GPT_CLIENT));
        body.push(("client_secret", GPT_SECRET));
        self.http.post(self.url("/token")).form(&body).send().await.unwrap()
    }

    /// Exchanges a GPT code and returns the JSON response (asserting 200).
    pub async fn redeem_gpt_code(&self, code: &str) -> serde_json::Value {
        let res =
            self.token(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", GPT_REDIRECT)]).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

/// A browser: a cookie jar, no automatic redirects.
pub struct Browser {
    /// Its HTTP client.
    pub http: reqwest::Client,
    issuer: String,
}

impl Browser {
    /// GET `/authorize` with `query`; returns the response (a redirect to the login page, an error
    /// redirect to the client, or an error page).
    pub async fn authorize(&self, query: &[(&str, &str)]) -> reqwest::Response {
        let url = Url::parse_with_params(&format!("{}/authorize", self.issuer), query).unwrap();
        self.http.get(url).send().await.unwrap()
    }

    /// Follows `/authorize` to the login form and returns (form action URL, req, csrf, page HTML).
    pub async fn open_login_form(&self, query: &[(&str, &str)]) -> LoginForm {
        let res = self.authorize(query).await;
        assert_eq!(res.status(), 303, "authorize should redirect to the login page");
        let location = location(&res);
        let page = self.http.get(&location).send().await.unwrap();
        assert_eq!(page.status(), 200, "login page");
        let html = page.text().await.unwrap();
        LoginForm::parse(&self.issuer, &html)
    }

    /// Posts the login form; returns the response.
    pub async fn submit(&self, form: &LoginForm, user: (&str, &str)) -> reqwest::Response {
        self.http
            .post(&form.action)
            .form(&[("req", form.req.as_str()), ("csrf", form.csrf.as_str()), ("login", user.0), ("password", user.1)])
            .send()
            .await
            .unwrap()
    }

    /// The whole flow; returns the redirect to the client.
    pub async fn authorize_and_login(&self, query: &[(&str, &str)], user: (&str, &str)) -> Url {
        let form = self.open_login_form(query).await;
        let res = self.submit(&form, user).await;
        assert_eq!(res.status(), 303, "a successful login answers 303");
        Url::parse(&location(&res)).unwrap()
    }
}

/// The login form's fields.
#[derive(Debug, Clone)]
pub struct LoginForm {
    /// Absolute URL the form posts to.
    pub action: String,
    /// The authorization request id.
    pub req: String,
    /// The CSRF token.
    pub csrf: String,
    /// The page.
    pub html: String,
}

impl LoginForm {
    /// Reads the form out of a login page.
    pub fn parse(issuer: &str, html: &str) -> Self {
        let grab = |needle: &str| -> String {
            let start = html.find(needle).unwrap_or_else(|| panic!("{needle} not in {html}")) + needle.len();
            let rest = &html[start..];
            html_unescape(&rest[..rest.find('"').unwrap()])
        };
        let action = grab("<form method=\"post\" action=\"");
        let origin = Url::parse(issuer).unwrap().origin().ascii_serialization();
        Self {
            action: format!("{origin}{action}"),
            req: grab("name=\"req\" value=\""),
            csrf: grab("name=\"csrf\" value=\""),
            html: html.to_owned(),
        }
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn no_redirects(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(cookies).build().unwrap()
}

/// The `Location` header.
pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", res.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A query parameter of a URL.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
