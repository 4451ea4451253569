//! A fake Supabase Auth (GoTrue) server, faithful to upstreams.md §1 where Keybridge can tell:
//!
//! - the gateway: `401` without the `apikey` header on API routes (§1.1);
//! - server-side PKCE OAuth (§1.2): `/auth/v1/authorize` validates the PKCE parameters and checks
//!   `redirect_to` against the Site URL's host and the allow-list (globs), **silently falling back**
//!   to an allowed `Referer`, then to the Site URL; a fake provider page stands in for Google or
//!   GitHub; `/auth/v1/callback` redirects to `redirect_to` + `code=<uuid>` (no `state`), or with
//!   `error`, `error_code`, `error_description` in the query and again in the fragment with `sb`;
//!   flow states expire after 300 s and are single use;
//! - `/auth/v1/token` with `grant_type` in the query: `pkce`, `password`, `refresh_token` with
//!   rotation, a reuse interval for the immediately previous token, and family revocation on reuse
//!   outside it (§1.3);
//! - `/auth/v1/user` (§1.4), session and user JSON (§1.5), access tokens with `aud` as a string and
//!   `amr` as a list of objects (§1.6);
//! - keys (§1.7): ES256 or RS256 with `kid` in a JWKS served with `Cache-Control: public,
//!   max-age=600`, rotation (the new key signs, the old one stays published), or legacy HS256
//!   without `kid` and an empty JWKS;
//! - error bodies in all three shapes (§1.9), chosen by the `X-Supabase-Api-Version` request
//!   header, or always legacy for an old server ([`FakeOptions::legacy_errors`]);
//! - discovery and the OAuth 2.1 server (§1.8, §1.10): `/oauth/authorize` → the project's consent
//!   page at the Site URL, the consent API, `/oauth/token` (codes, PKCE, refresh, client auth in
//!   the GoTrue shape on failure), `/oauth/userinfo`, ID tokens for the `openid` scope.
//!
//! Control API for tests (§6): users, bans, deletion, the allow-list, key rotation, a clock offset,
//! and counters.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// How the fake signs access tokens.
#[derive(Debug, Clone)]
pub enum KeyMode {
    /// Asymmetric signing keys, ES256 with `kid` (Supabase's default).
    Es256,
    /// Asymmetric signing keys, RS256 with `kid`.
    Rs256,
    /// The legacy shared secret: HS256, no `kid`, an empty JWKS.
    Hs256(String),
}

/// Options.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Signing keys.
    pub keys: KeyMode,
    /// `SITE_URL`: where logins land when `redirect_to` is not allowed.
    pub site_url: String,
    /// `GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL`, seconds (hosted projects use 10).
    pub reuse_interval: i64,
    /// Behave like a server that predates API versions: always the legacy error shape.
    pub legacy_errors: bool,
    /// Enabled social providers.
    pub providers: Vec<String>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            keys: KeyMode::Es256,
            site_url: "https://app.example.com".into(),
            reuse_interval: 10,
            legacy_errors: false,
            providers: vec!["google".into(), "github".into()],
        }
    }
}

/// A user in the fake's database.
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub id: String,
    pub email: String,
    pub password: Option<String>,
    pub email_confirmed: bool,
    pub banned: bool,
    pub is_anonymous: bool,
    pub app_metadata: Value,
    pub user_metadata: Value,
    pub provider: String,
}

struct Key {
    kid: Option<String>,
    alg: &'static str,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
    public: Option<Jwk>,
}

struct Flow {
    provider: String,
    challenge: String,
    method: String,
    redirect: String,
    created: i64,
    user_id: Option<String>,
    auth_code: Option<String>,
}

struct Session {
    user_id: String,
    amr: String,
    /// The refresh token currently active.
    active: String,
}

struct RefreshToken {
    session_id: String,
    used_at: Option<i64>,
    /// OAuth-server tokens are bound to their client.
    client_id: Option<String>,
    scope: Option<String>,
}

struct OAuthClient {
    secret: Option<String>,
    redirect_uris: Vec<String>,
    name: String,
}

struct Authorization {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    challenge: String,
    method: String,
    nonce: Option<String>,
    created: i64,
    user_id: Option<String>,
    code: Option<String>,
}

struct State {
    opts: FakeOptions,
    keys: Vec<Key>,
    users: HashMap<String, FakeUser>,
    allow_list: Vec<String>,
    flows: HashMap<String, Flow>,
    provider_codes: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    refresh_tokens: HashMap<String, RefreshToken>,
    oauth_clients: HashMap<String, OAuthClient>,
    authorizations: HashMap<String, Authorization>,
    offset: i64,
    password_logins: bool,
}

/// The fake server.
pub struct FakeSupabase {
    url: OnceLock<String>,
    anon_key: String,
    state: Mutex<State>,
    jwks_hits: AtomicUsize,
    authorize_hits: AtomicUsize,
    token_calls: Mutex<Vec<String>>,
    legacy_errors: bool,
}

fn uuid() -> String {
    let b: [u8; 16] = rand_bytes();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let v = josekit::util::random_bytes(N);
    out.copy_from_slice(&v);
    out
}

fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(josekit::util::random_bytes(n))
}

fn timestamp(secs: i64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)).to_string()
}

fn query(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// GoTrue's redirect allow-list globs (gobwas/glob with `.` and `/` as separators): `*` matches
/// within a segment, `**` across segments, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn m(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') if p.get(1) == Some(&'*') => (0..=t.len()).any(|i| m(&p[2..], &t[i..])),
            Some('*') => {
                let mut i = 0;
                loop {
                    if m(&p[1..], &t[i..]) {
                        return true;
                    }
                    if i >= t.len() || t[i] == '.' || t[i] == '/' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some('?') => !t.is_empty() && m(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && m(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    m(&p, &t)
}

fn host_of(u: &str) -> Option<String> {
    url::Url::parse(u).ok().and_then(|u| u.host_str().map(str::to_owned))
}

fn append_query(base: &str, params: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let base = base.split('#').next().unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{q}")
}

impl FakeSupabase {
    /// Starts a fake with the default options (ES256, Google and GitHub enabled).
    pub fn start() -> Arc<Self> {
        Self::start_with(FakeOptions::default())
    }

    /// Starts a fake on a free loopback port.
    pub fn start_with(opts: FakeOptions) -> Arc<Self> {
        let keys = vec![make_key(&opts.keys)];
        let legacy_errors = opts.legacy_errors;
        let fake = Arc::new(Self {
            url: OnceLock::new(),
            anon_key: format!("sb_publishable_{}", random_token(16)),
            state: Mutex::new(State {
                opts,
                keys,
                users: HashMap::new(),
                allow_list: Vec::new(),
                flows: HashMap::new(),
                provider_codes: HashMap::new(),
                sessions: HashMap::new(),
                refresh_tokens: HashMap::new(),
                oauth_clients: HashMap::new(),
                authorizations: HashMap::new(),
                offset: 0,
                password_logins: true,
            }),
            jwks_hits: AtomicUsize::new(0),
            authorize_hits: AtomicUsize::new(0),
            token_calls: Mutex::new(Vec::new()),
            legacy_errors,
        });
        let data = web::Data::from(fake.clone());
        let addr = crate::process::serve(move |cfg| {
            cfg.app_data(data.clone()).configure(routes);
        });
        let _ = fake.url.set(format!("http://{addr}"));
        fake
    }

    /// The project URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.get().cloned().unwrap_or_default()
    }

    /// `{url}/auth/v1`: also the `iss` of its tokens.
    pub fn auth_url(&self) -> String {
        format!("{}/auth/v1", self.url())
    }

    /// The public anon (publishable) key the gateway expects in `apikey`.
    pub fn anon_key(&self) -> &str {
        &self.anon_key
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Now, on the fake's clock (real time plus [`advance`](Self::advance)).
    pub fn now(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + self.st().offset
    }

    /// Moves the fake's clock forward.
    pub fn advance(&self, secs: i64) {
        self.st().offset += secs;
    }

    /// Adds a confirmed email user with a password; returns the user id.
    pub fn add_user(&self, email: &str, password: &str) -> String {
        let id = uuid();
        let user = FakeUser {
            id: id.clone(),
            email: email.to_owned(),
            password: Some(password.to_owned()),
            email_confirmed: true,
            banned: false,
            is_anonymous: false,
            app_metadata: json!({"provider": "email", "providers": ["email"]}),
            user_metadata: json!({}),
            provider: "email".into(),
        };
        self.st().users.insert(id.clone(), user);
        id
    }

    /// Changes a user.
    pub fn update_user(&self, id: &str, f: impl FnOnce(&mut FakeUser)) {
        if let Some(u) = self.st().users.get_mut(id) {
            f(u);
        }
    }

    /// A user, by id.
    pub fn user(&self, id: &str) -> Option<FakeUser> {
        self.st().users.get(id).cloned()
    }

    /// A user's id, by email.
    pub fn user_id(&self, email: &str) -> Option<String> {
        self.st().users.values().find(|u| u.email.eq_ignore_ascii_case(email)).map(|u| u.id.clone())
    }

    /// Bans a user (`banned_until` in the far future).
    pub fn ban(&self, id: &str) {
        self.update_user(id, |u| u.banned = true);
    }

    /// Deletes a user, and with them their sessions and refresh tokens.
    pub fn delete_user(&self, id: &str) {
        let mut st = self.st();
        st.users.remove(id);
        let gone: Vec<String> = st.sessions.iter().filter(|(_, s)| s.user_id == id).map(|(k, _)| k.clone()).collect();
        for sid in &gone {
            st.sessions.remove(sid);
        }
        st.refresh_tokens.retain(|_, t| !gone.contains(&t.session_id));
    }

    /// Sets the Redirect URLs allow-list (globs).
    pub fn allow_redirects(&self, patterns: &[&str]) {
        self.st().allow_list = patterns.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Turns the email provider off (`422 email_provider_disabled`).
    pub fn disable_password_logins(&self) {
        self.st().password_logins = false;
    }

    /// Rotates the signing key: a new key signs, the old one stays published.
    pub fn rotate_key(&self) {
        let mut st = self.st();
        let k = make_key(&st.opts.keys);
        st.keys.push(k);
    }

    /// How often the JWKS was fetched.
    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// How many flows `/authorize` started.
    pub fn authorize_hits(&self) -> usize {
        self.authorize_hits.load(Ordering::SeqCst)
    }

    /// Replaces an OAuth client's registered redirect URIs.
    pub fn set_oauth_redirect_uris(&self, client_id: &str, uris: &[&str]) {
        if let Some(c) = self.st().oauth_clients.get_mut(client_id) {
            c.redirect_uris = uris.iter().map(|s| (*s).to_owned()).collect();
        }
    }

    /// The `grant_type` of every `/token` call so far.
    pub fn token_calls(&self) -> Vec<String> {
        self.token_calls.lock().unwrap().clone()
    }

    /// How many refresh tokens of a user's sessions are still active (not revoked).
    pub fn active_sessions(&self, user_id: &str) -> usize {
        self.st().sessions.values().filter(|s| s.user_id == user_id).count()
    }

    /// Signs claims with the active key, exactly as the fake signs its own tokens.
    pub fn sign(&self, claims: &Value) -> String {
        let st = self.st();
        sign_with(st.keys.last().unwrap(), claims)
    }

    /// The claims of a fresh access token for a user (§1.6), before signing.
    pub fn access_claims(&self, user_id: &str, session_id: &str, method: &str) -> Value {
        let now = self.now();
        let st = self.st();
        let u = st.users.get(user_id).cloned().unwrap();
        self.claims_for(&u, session_id, method, now)
    }

    /// Signs a user in directly (as supabase-js would after any sign-in method): a session JSON.
    pub fn sign_in(&self, user_id: &str, method: &str) -> Value {
        let now = self.now();
        let mut st = self.st();
        let user = st.users.get(user_id).cloned().unwrap();
        self.new_session(&mut st, &user, method, now, None, None)
    }

    /// Registers an OAuth 2.1 server client (§1.10); returns `(client_id, client_secret)`.
    pub fn register_oauth_client(&self, name: &str, redirect_uris: &[&str]) -> (String, String) {
        let id = uuid();
        let secret = format!("sb_oauth_secret_{}", random_token(24));
        self.st().oauth_clients.insert(
            id.clone(),
            OAuthClient {
                secret: Some(secret.clone()),
                redirect_uris: redirect_uris.iter().map(|s| (*s).to_owned()).collect(),
                name: name.to_owned(),
            },
        );
        (id, secret)
    }

    fn claims_for(&self, u: &FakeUser, session_id: &str, method: &str, now: i64) -> Value {
        json!({
            "iss": self.auth_url(),
            "aud": "authenticated",
            "exp": now + 3600,
            "iat": now,
            "sub": u.id,
            "email": u.email,
            "phone": "",
            "app_metadata": u.app_metadata,
            "user_metadata": u.user_metadata,
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": method, "timestamp": now}],
            "session_id": session_id,
            "is_anonymous": u.is_anonymous,
        })
    }

    fn user_json(&self, u: &FakeUser, now: i64) -> Value {
        let created = timestamp(1_700_000_000);
        let confirmed = u.email_confirmed.then(|| timestamp(1_700_000_100));
        let mut v = json!({
            "id": u.id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": u.email,
            "email_confirmed_at": confirmed,
            "phone": "",
            "confirmed_at": confirmed,
            "last_sign_in_at": timestamp(now),
            "app_metadata": u.app_metadata,
            "user_metadata": u.user_metadata,
            "identities": [{
                "identity_id": uuid(),
                "id": u.id,
                "user_id": u.id,
                "identity_data": {"sub": u.id, "email": u.email, "email_verified": u.email_confirmed},
                "provider": u.provider,
                "last_sign_in_at": created, "created_at": created, "updated_at": created,
                "email": u.email,
            }],
            "created_at": created,
            "updated_at": created,
            "is_anonymous": u.is_anonymous,
        });
        if u.banned {
            v["banned_until"] = json!(timestamp(now + 100 * 365 * 24 * 3600));
        }
        v
    }

    fn new_session(
        &self,
        st: &mut State,
        u: &FakeUser,
        method: &str,
        now: i64,
        client: Option<&str>,
        scope: Option<&str>,
    ) -> Value {
        let sid = uuid();
        let rt = random_token(9);
        st.sessions.insert(sid.clone(), Session { user_id: u.id.clone(), amr: method.into(), active: rt.clone() });
        st.refresh_tokens.insert(
            rt.clone(),
            RefreshToken {
                session_id: sid.clone(),
                used_at: None,
                client_id: client.map(str::to_owned),
                scope: scope.map(str::to_owned),
            },
        );
        self.session_json(st, u, &sid, &rt, method, now, client, scope)
    }

    #[allow(clippy::too_many_arguments)]
    fn session_json(
        &self,
        st: &State,
        u: &FakeUser,
        sid: &str,
        rt: &str,
        method: &str,
        now: i64,
        client: Option<&str>,
        scope: Option<&str>,
    ) -> Value {
        let mut claims = self.claims_for(u, sid, method, now);
        if let Some(c) = client {
            claims["client_id"] = json!(c);
        }
        if let Some(s) = scope {
            claims["scope"] = json!(s);
        }
        json!({
            "access_token": sign_with(st.keys.last().unwrap(), &claims),
            "token_type": "bearer",
            "expires_in": 3600,
            "expires_at": now + 3600,
            "refresh_token": rt,
            "user": self.user_json(u, now),
        })
    }

    fn versioned(&self, req: &HttpRequest) -> bool {
        !self.legacy_errors && req.headers().contains_key("x-supabase-api-version")
    }

    /// GoTrue's HTTPError in the shape the request asked for (§1.9).
    fn error(&self, req: &HttpRequest, status: u16, code: &str, msg: &str) -> HttpResponse {
        let st = StatusCode::from_u16(status).unwrap();
        let mut res = HttpResponse::build(st);
        res.insert_header(("x-sb-error-code", code));
        if self.versioned(req) {
            res.insert_header(("x-supabase-api-version", "2024-01-01"));
            res.json(json!({"code": code, "message": msg}))
        } else {
            let mut body = json!({"code": status, "error_code": code, "msg": msg});
            if status >= 500 {
                body["error_id"] = json!(uuid());
            }
            res.json(body)
        }
    }

    /// The gateway's `apikey` check (§1.1).
    fn gateway(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let key = req
            .headers()
            .get("apikey")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| get(&query(req), "apikey").map(str::to_owned));
        match key {
            None => Some(HttpResponse::Unauthorized().json(json!({
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found.",
            }))),
            Some(k) if k != self.anon_key => Some(HttpResponse::Unauthorized().json(json!({
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            }))),
            Some(_) => None,
        }
    }

    fn redirect_allowed(&self, st: &State, url: &str) -> bool {
        if url.is_empty() || url::Url::parse(url).is_err() {
            return false;
        }
        if host_of(url).is_some() && host_of(url) == host_of(&st.opts.site_url) {
            return true;
        }
        st.allow_list.iter().any(|p| glob_match(p, url))
    }

    /// Verifies one of the fake's own access tokens.
    fn verify(&self, token: &str) -> Option<Map<String, Value>> {
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?).ok()?;
        let kid = header.get("kid").and_then(Value::as_str);
        let alg = header.get("alg").and_then(Value::as_str)?;
        let st = self.st();
        let key = st.keys.iter().find(|k| k.kid.as_deref() == kid && k.alg == alg)?;
        let (payload, _) = josekit::jws::deserialize_compact(token, key.verifier.as_ref()).ok()?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload).ok()?;
        drop(st);
        (claims.get("exp")?.as_i64()? > self.now()).then_some(claims)
    }
}

fn make_key(mode: &KeyMode) -> Key {
    match mode {
        KeyMode::Es256 => {
            let pair = josekit::jws::ES256.generate_key_pair().unwrap();
            let kid = uuid();
            let mut jwk = pair.to_jwk_public_key();
            jwk.set_key_id(&kid);
            jwk.set_algorithm("ES256");
            jwk.set_key_use("sig");
            jwk.set_key_operations(vec!["verify"]);
            Key {
                kid: Some(kid),
                alg: "ES256",
                signer: Box::new(josekit::jws::ES256.signer_from_der(pair.to_der_private_key()).unwrap()),
                verifier: Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
                public: Some(jwk),
            }
        }
        KeyMode::Rs256 => {
            let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
            let kid = uuid();
            let mut jwk = pair.to_jwk_public_key();
            jwk.set_key_id(&kid);
            jwk.set_algorithm("RS256");
            jwk.set_key_use("sig");
            jwk.set_key_operations(vec!["verify"]);
            Key {
                kid: Some(kid),
                alg: "RS256",
                signer: Box::new(josekit::jws::RS256.signer_from_der(pair.to_der_private_key()).unwrap()),
                verifier: Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()),
                public: Some(jwk),
            }
        }
        KeyMode::Hs256(secret) => Key {
            kid: None,
            alg: "HS256",
            signer: Box::new(josekit::jws::HS256.signer_from_bytes(secret.as_bytes()).unwrap()),
            verifier: Box::new(josekit::jws::HS256.verifier_from_bytes(secret.as_bytes()).unwrap()),
            public: None,
        },
    }
}

fn sign_with(key: &Key, claims: &Value) -> String {
    let mut h = JwsHeader::new();
    h.set_token_type("JWT");
    if let Some(kid) = &key.kid {
        h.set_key_id(kid);
    }
    josekit::jws::serialize_compact(&serde_json::to_vec(claims).unwrap(), &h, key.signer.as_ref()).unwrap()
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/auth/v1")
            .route("/authorize", web::get().to(authorize))
            .route("/callback", web::get().to(callback))
            .route("/token", web::post().to(token))
            .route("/user", web::get().to(user))
            .route("/.well-known/jwks.json", web::get().to(jwks))
            .route("/.well-known/openid-configuration", web::get().to(discovery))
            .route("/.well-known/oauth-authorization-server", web::get().to(discovery))
            .route("/oauth/authorize", web::get().to(oauth_authorize))
            .route("/oauth/authorizations/{id}", web::get().to(oauth_authorization))
            .route("/oauth/authorizations/{id}/consent", web::post().to(oauth_consent))
            .route("/oauth/token", web::post().to(oauth_token))
            .route("/oauth/userinfo", web::get().to(oauth_userinfo)),
    )
    .route("/fake-provider/{provider}/authorize", web::get().to(provider_page))
    .route("/fake-provider/{provider}/approve", web::get().to(provider_approve));
}

fn found(location: &str) -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", location)).finish()
}

const RESERVED: &[&str] = &[
    "provider",
    "scopes",
    "redirect_to",
    "client_id",
    "client_secret",
    "redirect_uri",
    "response_type",
    "state",
    "code_challenge",
    "code_challenge_method",
    "code_verifier",
    "apikey",
];

fn valid_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn authorize(req: HttpRequest, fake: web::Data<FakeSupabase>) -> HttpResponse {
    let q = query(&req);
    let provider = get(&q, "provider").unwrap_or_default().to_owned();
    if !fake.st().opts.providers.contains(&provider) {
        return fake.error(&req, 400, "validation_failed", "Unsupported provider: provider is not enabled");
    }
    let (challenge, method) = match (get(&q, "code_challenge"), get(&q, "code_challenge_method")) {
        (Some(c), Some(m)) => (c.to_owned(), m.to_ascii_lowercase()),
        (None, None) => {
            return fake.error(&req, 400, "validation_failed", "the fake supports only the PKCE flow");
        }
        _ => {
            return fake.error(
                &req,
                400,
                "validation_failed",
                "PKCE flow requires code_challenge_method and code_challenge",
            );
        }
    };
    if !valid_challenge(&challenge) {
        return fake.error(&req, 400, "validation_failed", "code challenge has to be between 43 and 128 characters");
    }
    if method != "s256" && method != "plain" {
        return fake.error(&req, 400, "validation_failed", "Invalid code_challenge_method");
    }
    let now = fake.now();
    let flow_id = uuid();
    fake.authorize_hits.fetch_add(1, Ordering::SeqCst);
    let mut st = fake.st();
    // The silent fallback: an unlisted redirect_to becomes the Referer (if allowed), else SITE_URL.
    let wanted = get(&q, "redirect_to").unwrap_or_default();
    let referer = req.headers().get("referer").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let redirect = if fake.redirect_allowed(&st, wanted) {
        wanted.to_owned()
    } else if fake.redirect_allowed(&st, referer) {
        referer.to_owned()
    } else {
        st.opts.site_url.clone()
    };
    st.flows.insert(
        flow_id.clone(),
        Flow { provider: provider.clone(), challenge, method, redirect, created: now, user_id: None, auth_code: None },
    );
    drop(st);
    let mut params: Vec<(String, String)> = vec![
        ("client_id".into(), format!("fake-{provider}-client")),
        ("redirect_uri".into(), format!("{}/callback", fake.auth_url())),
        ("response_type".into(), "code".into()),
        ("state".into(), flow_id),
    ];
    for (k, v) in &q {
        if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            params.push((k.clone(), v.clone()));
        }
    }
    let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    found(&format!("{}/fake-provider/{provider}/authorize?{qs}", fake.url()))
}

async fn provider_page(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let q = query(&req);
    let state = get(&q, "state").unwrap_or_default();
    let provider = path.into_inner();
    let esc = |s: &str| s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Sign in with {p}</title><form method=\"get\" action=\"/fake-provider/{p}/approve\">\
<input type=\"hidden\" name=\"state\" value=\"{s}\"><input name=\"email\" type=\"email\"><button>Allow</button></form>",
        p = esc(&provider),
        s = esc(state)
    ))
}

async fn provider_approve(req: HttpRequest, fake: web::Data<FakeSupabase>, path: web::Path<String>) -> HttpResponse {
    let q = query(&req);
    let provider = path.into_inner();
    let state = get(&q, "state").unwrap_or_default().to_owned();
    let callback = format!("{}/callback", fake.auth_url());
    if get(&q, "deny").is_some() {
        return found(&append_query(
            &callback,
            &[("error", "access_denied"), ("error_description", "The user denied the request"), ("state", &state)],
        ));
    }
    let email = get(&q, "email").unwrap_or_default().to_owned();
    let code = format!("{provider}-code-{}", random_token(12));
    fake.st().provider_codes.insert(code.clone(), email);
    found(&append_query(&callback, &[("code", &code), ("state", &state)]))
}

/// GoTrue's error redirect: query and again in the fragment, with `sb` (§1.2).
fn error_redirect(to: &str, error: &str, code: Option<&str>, description: &str) -> HttpResponse {
    let mut params: Vec<(&str, &str)> = vec![("error", error)];
    if let Some(c) = code {
        params.push(("error_code", c));
    }
    params.push(("error_description", description));
    let frag =
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).append_pair("sb", "").finish();
    found(&format!("{}#{frag}", append_query(to, &params)))
}

async fn callback(req: HttpRequest, fake: web::Data<FakeSupabase>) -> HttpResponse {
    let q = query(&req);
    let Some(state) = get(&q, "state") else {
        return fake.error(&req, 400, "bad_oauth_callback", "OAuth state parameter missing");
    };
    let now = fake.now();
    let mut st = fake.st();
    let site = st.opts.site_url.clone();
    let Some(flow) = st.flows.get(state) else {
        return error_redirect(&site, "invalid_request", Some("bad_oauth_state"), "OAuth callback with invalid state");
    };
    let to = flow.redirect.clone();
    let provider = flow.provider.clone();
    if flow.auth_code.is_some() {
        return error_redirect(&to, "invalid_request", Some("flow_state_already_used"), "Flow state already used");
    }
    if now - flow.created > 300 {
        return error_redirect(&to, "invalid_request", Some("flow_state_expired"), "Flow state has expired");
    }
    if let Some(err) = get(&q, "error") {
        let desc = get(&q, "error_description").unwrap_or(err);
        return error_redirect(&to, err, None, desc);
    }
    let Some(email) = get(&q, "code").and_then(|c| st.provider_codes.remove(c)) else {
        return error_redirect(
            &to,
            "invalid_request",
            Some("bad_oauth_callback"),
            "OAuth callback with missing authorization code missing",
        );
    };
    let existing = st.users.values().find(|u| u.email.eq_ignore_ascii_case(&email)).cloned();
    let user = match existing {
        Some(mut u) => {
            if let Some(list) = u.app_metadata.get_mut("providers").and_then(Value::as_array_mut)
                && !list.iter().any(|p| p == &json!(provider))
            {
                list.push(json!(provider));
            }
            st.users.insert(u.id.clone(), u.clone());
            u
        }
        None => {
            let local = email.split('@').next().unwrap_or_default().to_owned();
            let u = FakeUser {
                id: uuid(),
                email: email.clone(),
                password: None,
                email_confirmed: true,
                banned: false,
                is_anonymous: false,
                app_metadata: json!({"provider": provider, "providers": [provider]}),
                user_metadata: json!({
                    "email": email, "email_verified": true, "full_name": format!("{local} (via {provider})"),
                    "name": local, "preferred_username": local, "user_name": local,
                    "avatar_url": format!("https://avatars.example/{local}.png"),
                    "iss": format!("https://{provider}.example"), "sub": "12345", "provider_id": "12345",
                }),
                provider: provider.clone(),
            };
            st.users.insert(u.id.clone(), u.clone());
            u
        }
    };
    if user.banned {
        return error_redirect(&to, "access_denied", Some("user_banned"), "User is banned");
    }
    let code = uuid();
    if let Some(flow) = st.flows.get_mut(state) {
        flow.user_id = Some(user.id.clone());
        flow.auth_code = Some(code.clone());
    }
    found(&append_query(&to, &[("code", &code)]))
}

async fn token(req: HttpRequest, fake: web::Data<FakeSupabase>, body: web::Bytes) -> HttpResponse {
    if let Some(res) = fake.gateway(&req) {
        return res;
    }
    let q = query(&req);
    let grant = get(&q, "grant_type").unwrap_or_default().to_owned();
    fake.token_calls.lock().unwrap().push(grant.clone());
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return fake.error(&req, 400, "bad_json", "Could not parse request body as JSON");
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let now = fake.now();
    match grant.as_str() {
        "pkce" => {
            let (code, verifier) = (s("auth_code"), s("code_verifier"));
            if code.is_empty() || verifier.is_empty() {
                return fake.error(
                    &req,
                    400,
                    "validation_failed",
                    "invalid request: both auth code and code verifier should be non-empty",
                );
            }
            let mut st = fake.st();
            let Some(fid) =
                st.flows.iter().find(|(_, f)| f.auth_code.as_deref() == Some(&code)).map(|(k, _)| k.clone())
            else {
                drop(st);
                return fake.error(&req, 404, "flow_state_not_found", "invalid flow state, no valid flow state found");
            };
            let flow = st.flows.remove(&fid).unwrap();
            if now - flow.created > 300 {
                drop(st);
                return fake.error(&req, 422, "flow_state_expired", "invalid flow state, flow state has expired");
            }
            let ok = match flow.method.as_str() {
                "s256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == flow.challenge,
                _ => verifier == flow.challenge,
            };
            if !ok {
                drop(st);
                return fake.error(
                    &req,
                    400,
                    "bad_code_verifier",
                    "code challenge does not match previously saved code verifier",
                );
            }
            let Some(user) = flow.user_id.and_then(|id| st.users.get(&id).cloned()) else {
                drop(st);
                return fake.error(&req, 404, "user_not_found", "User not found");
            };
            if user.banned {
                drop(st);
                return fake.error(&req, 400, "user_banned", "User is banned");
            }
            let mut session = fake.new_session(&mut st, &user, "oauth", now, None, None);
            session["provider_token"] = json!(format!("{}-provider-token", flow.provider));
            session["provider_refresh_token"] = json!("provider-refresh-token");
            HttpResponse::Ok().json(session)
        }
        "password" => {
            let (email, phone, password) = (s("email"), s("phone"), s("password"));
            if !email.is_empty() && !phone.is_empty() {
                return fake.error(
                    &req,
                    400,
                    "validation_failed",
                    "Only an email address or phone number should be provided on login.",
                );
            }
            let mut st = fake.st();
            if !st.password_logins {
                drop(st);
                return fake.error(&req, 422, "email_provider_disabled", "Email logins are disabled");
            }
            let user = st.users.values().find(|u| !email.is_empty() && u.email.eq_ignore_ascii_case(&email)).cloned();
            let Some(user) = user else {
                drop(st);
                return fake.error(&req, 400, "invalid_credentials", "Invalid login credentials");
            };
            if user.banned {
                drop(st);
                return fake.error(&req, 400, "user_banned", "User is banned");
            }
            if user.password.as_deref() != Some(password.as_str()) {
                drop(st);
                return fake.error(&req, 400, "invalid_credentials", "Invalid login credentials");
            }
            if !user.email_confirmed {
                drop(st);
                return fake.error(&req, 400, "email_not_confirmed", "Email not confirmed");
            }
            let mut session = fake.new_session(&mut st, &user, "password", now, None, None);
            if password.len() < 8 {
                session["weak_password"] = json!({"reasons": ["length"]});
            }
            HttpResponse::Ok().json(session)
        }
        "refresh_token" => refresh(&req, &fake, &s("refresh_token"), None, now),
        _ => fake.error(&req, 400, "invalid_credentials", "unsupported_grant_type"),
    }
}

/// The refresh-token grant, shared by `/token` and `/oauth/token` (rotation and reuse rules, §1.3).
fn refresh(req: &HttpRequest, fake: &FakeSupabase, token: &str, client: Option<&str>, now: i64) -> HttpResponse {
    let mut st = fake.st();
    let reuse = st.opts.reuse_interval;
    let Some(rt) = st.refresh_tokens.get(token) else {
        drop(st);
        return fake.error(req, 400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
    };
    if rt.client_id.as_deref() != client {
        drop(st);
        return HttpResponse::BadRequest()
            .json(json!({"error": "invalid_grant", "error_description": "Invalid refresh token"}));
    }
    let (sid, used_at, scope) = (rt.session_id.clone(), rt.used_at, rt.scope.clone());
    let Some(session) = st.sessions.get(&sid) else {
        drop(st);
        return fake.error(req, 400, "session_not_found", "Invalid Refresh Token: Session Not Found");
    };
    let (uid, amr, active) = (session.user_id.clone(), session.amr.clone(), session.active.clone());
    let Some(user) = st.users.get(&uid).cloned() else {
        drop(st);
        return fake.error(req, 400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
    };
    if user.banned {
        drop(st);
        return fake.error(req, 400, "user_banned", "User is banned");
    }
    let rt_now = if let Some(t) = used_at {
        if now - t < reuse {
            // The client lost the answer of its last refresh: hand back the active token.
            active
        } else {
            st.sessions.remove(&sid);
            st.refresh_tokens.retain(|_, r| r.session_id != sid);
            drop(st);
            return fake.error(req, 400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
        }
    } else {
        let fresh = random_token(9);
        if let Some(r) = st.refresh_tokens.get_mut(token) {
            r.used_at = Some(now);
        }
        st.refresh_tokens.insert(
            fresh.clone(),
            RefreshToken {
                session_id: sid.clone(),
                used_at: None,
                client_id: client.map(str::to_owned),
                scope: scope.clone(),
            },
        );
        if let Some(s) = st.sessions.get_mut(&sid) {
            s.active = fresh.clone();
        }
        fresh
    };
    let session = fake.session_json(&st, &user, &sid, &rt_now, &amr, now, client, scope.as_deref());
    HttpResponse::Ok().json(session)
}

/// The user behind a request's Bearer access token, or GoTrue's error.
#[allow(clippy::result_large_err)] // test code; the error is the response itself
fn bearer_user(req: &HttpRequest, fake: &FakeSupabase) -> Result<(FakeUser, Map<String, Value>), HttpResponse> {
    let Some(token) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return Err(fake.error(req, 401, "no_authorization", "This endpoint requires a valid Bearer token"));
    };
    let Some(claims) = fake.verify(token.trim()) else {
        return Err(fake.error(
            req,
            403,
            "bad_jwt",
            "invalid JWT: unable to parse or verify signature, token is expired or signature is invalid",
        ));
    };
    if claims.get("aud").and_then(Value::as_str) != Some("authenticated") {
        return Err(fake.error(req, 400, "validation_failed", "Token audience doesn't match request audience"));
    }
    let st = fake.st();
    let sid = claims.get("session_id").and_then(Value::as_str).unwrap_or_default();
    let uid = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    let Some(user) = st.users.get(uid).cloned() else {
        drop(st);
        return Err(fake.error(req, 403, "user_not_found", "User from sub claim in JWT does not exist"));
    };
    if !st.sessions.contains_key(sid) {
        drop(st);
        return Err(fake.error(req, 403, "session_not_found", "Session from session_id claim in JWT does not exist"));
    }
    Ok((user, claims))
}

async fn user(req: HttpRequest, fake: web::Data<FakeSupabase>) -> HttpResponse {
    if let Some(res) = fake.gateway(&req) {
        return res;
    }
    match bearer_user(&req, &fake) {
        Ok((u, _)) => HttpResponse::Ok().json(fake.user_json(&u, fake.now())),
        Err(res) => res,
    }
}

async fn jwks(fake: web::Data<FakeSupabase>) -> HttpResponse {
    fake.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let st = fake.st();
    let keys: Vec<Value> =
        st.keys.iter().filter_map(|k| k.public.as_ref()).map(|j| Value::Object(j.as_ref().clone())).collect();
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=600")).json(json!({"keys": keys}))
}

async fn discovery(fake: web::Data<FakeSupabase>) -> HttpResponse {
    let a = fake.auth_url();
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=600")).json(json!({
        "issuer": a,
        "authorization_endpoint": format!("{a}/oauth/authorize"),
        "token_endpoint": format!("{a}/oauth/token"),
        "jwks_uri": format!("{a}/.well-known/jwks.json"),
        "userinfo_endpoint": format!("{a}/oauth/userinfo"),
        "scopes_supported": ["openid", "profile", "email", "phone", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "claims_supported": ["sub", "aud", "iss", "exp", "iat", "auth_time", "nonce", "email", "email_verified",
            "phone_number", "phone_number_verified", "name", "picture", "preferred_username", "updated_at"],
        "code_challenge_methods_supported": ["S256", "plain"],
    }))
}

/// The OAuth 2.1 server's consent page lives in the project's own app (§1.10).
pub const CONSENT_PATH: &str = "/oauth/consent";

async fn oauth_authorize(req: HttpRequest, fake: web::Data<FakeSupabase>) -> HttpResponse {
    let q = query(&req);
    let client_id = get(&q, "client_id").unwrap_or_default().to_owned();
    let redirect_uri = get(&q, "redirect_uri").unwrap_or_default().to_owned();
    let now = fake.now();
    let mut st = fake.st();
    let Some(client) = st.oauth_clients.get(&client_id) else {
        drop(st);
        return fake.error(&req, 400, "validation_failed", "invalid client_id");
    };
    if !client.redirect_uris.contains(&redirect_uri) {
        drop(st);
        return fake.error(&req, 400, "validation_failed", "invalid redirect_uri");
    }
    let state = get(&q, "state").map(str::to_owned);
    let fail = |desc: &str| {
        let mut p = vec![("error", "invalid_request"), ("error_description", desc)];
        if let Some(s) = &state {
            p.push(("state", s));
        }
        found(&append_query(&redirect_uri, &p))
    };
    if get(&q, "response_type").is_some_and(|r| r != "code") {
        return fail("unsupported response_type");
    }
    let scope = get(&q, "scope").filter(|s| !s.is_empty()).unwrap_or("email").to_owned();
    if scope.split(' ').any(|s| !["openid", "profile", "email", "phone", "offline_access"].contains(&s)) {
        return fail("invalid scope");
    }
    let (Some(challenge), Some(method)) = (get(&q, "code_challenge"), get(&q, "code_challenge_method")) else {
        return fail("PKCE flow requires code_challenge and code_challenge_method");
    };
    if !valid_challenge(challenge) || !["S256", "plain"].contains(&method) {
        return fail("invalid code_challenge or code_challenge_method");
    }
    let id = uuid();
    st.authorizations.insert(
        id.clone(),
        Authorization {
            client_id,
            redirect_uri: redirect_uri.clone(),
            scope,
            state,
            challenge: challenge.to_owned(),
            method: method.to_owned(),
            nonce: get(&q, "nonce").map(str::to_owned),
            created: now,
            user_id: None,
            code: None,
        },
    );
    let site = st.opts.site_url.trim_end_matches('/').to_owned();
    found(&append_query(&format!("{site}{CONSENT_PATH}"), &[("authorization_id", &id)]))
}

async fn oauth_authorization(req: HttpRequest, fake: web::Data<FakeSupabase>, path: web::Path<String>) -> HttpResponse {
    if let Some(res) = fake.gateway(&req) {
        return res;
    }
    let (u, _) = match bearer_user(&req, &fake) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let st = fake.st();
    let Some(a) = st.authorizations.get(&path.into_inner()) else {
        drop(st);
        return fake.error(&req, 404, "oauth_authorization_not_found", "authorization not found");
    };
    let name = st.oauth_clients.get(&a.client_id).map(|c| c.name.clone()).unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "authorization_id": path_id(&req),
        "redirect_uri": a.redirect_uri,
        "client": {"client_id": a.client_id, "client_name": name},
        "user": {"id": u.id, "email": u.email},
        "scope": a.scope,
    }))
}

fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_owned()
}

async fn oauth_consent(
    req: HttpRequest,
    fake: web::Data<FakeSupabase>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(res) = fake.gateway(&req) {
        return res;
    }
    let (u, _) = match bearer_user(&req, &fake) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let action = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let now = fake.now();
    let mut st = fake.st();
    let Some(a) = st.authorizations.get_mut(&path.into_inner()) else {
        drop(st);
        return fake.error(&req, 404, "oauth_authorization_not_found", "authorization not found");
    };
    if now - a.created > 600 {
        drop(st);
        return fake.error(&req, 400, "oauth_authorization_expired", "authorization expired");
    }
    let mut params: Vec<(String, String)> = Vec::new();
    if action == "approve" {
        let code = random_token(24);
        a.user_id = Some(u.id.clone());
        a.code = Some(code.clone());
        params.push(("code".into(), code));
    } else {
        params.push(("error".into(), "access_denied".into()));
        params.push(("error_description".into(), "User denied the request".into()));
    }
    if let Some(s) = &a.state {
        params.push(("state".into(), s.clone()));
    }
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    HttpResponse::Ok().json(json!({"redirect_url": append_query(&a.redirect_uri, &p)}))
}

fn oauth_err(error: &str, desc: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error, "error_description": desc}))
}

async fn oauth_token(req: HttpRequest, fake: web::Data<FakeSupabase>, body: web::Bytes) -> HttpResponse {
    let is_json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
    let form: Vec<(String, String)> = if is_json {
        serde_json::from_slice::<Map<String, Value>>(&body)
            .map(|m| m.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect())
            .unwrap_or_default()
    } else {
        url::form_urlencoded::parse(&body).into_owned().collect()
    };
    let f = |k: &str| get(&form, k).map(str::to_owned);
    // Client authentication: Basic, or the body.
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec =
                |x: &str| url::form_urlencoded::parse(format!("v={x}").as_bytes()).next().map(|(_, v)| v.into_owned());
            Some((dec(id)?, dec(secret)?))
        });
    let (client_id, secret) = match basic {
        Some((id, s)) => (id, Some(s)),
        None => (f("client_id").unwrap_or_default(), f("client_secret")),
    };
    let bad_client = || {
        HttpResponse::BadRequest()
            .json(json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid client credentials"}))
    };
    let now = fake.now();
    {
        let st = fake.st();
        match st.oauth_clients.get(&client_id) {
            Some(c) if c.secret.is_none() || c.secret == secret => {}
            _ => return bad_client(),
        }
    }
    match f("grant_type").as_deref() {
        Some("authorization_code") => {
            let code = f("code").unwrap_or_default();
            let mut st = fake.st();
            let Some(aid) = st
                .authorizations
                .iter()
                .find(|(_, a)| a.code.as_deref() == Some(code.as_str()))
                .map(|(k, _)| k.clone())
            else {
                return oauth_err("invalid_grant", "Invalid authorization code");
            };
            let a = st.authorizations.remove(&aid).unwrap();
            if a.client_id != client_id {
                return oauth_err("invalid_grant", "Invalid authorization code");
            }
            if now - a.created > 600 {
                return oauth_err("invalid_grant", "Authorization code has expired");
            }
            if f("redirect_uri").as_deref() != Some(a.redirect_uri.as_str()) {
                return oauth_err("invalid_grant", "Invalid redirect_uri");
            }
            let verifier = f("code_verifier").unwrap_or_default();
            let ok = match a.method.as_str() {
                "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == a.challenge,
                _ => verifier == a.challenge,
            };
            if !ok {
                return oauth_err("invalid_grant", "PKCE verification failed: code verifier does not match");
            }
            let Some(user) = a.user_id.as_ref().and_then(|id| st.users.get(id)).cloned() else {
                return oauth_err("invalid_grant", "Invalid authorization code");
            };
            if user.banned {
                return oauth_err("access_denied", "User is banned");
            }
            let session = fake.new_session(&mut st, &user, "oauth", now, Some(&client_id), Some(&a.scope));
            let mut out = json!({
                "access_token": session["access_token"],
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": session["refresh_token"],
            });
            if a.scope.split(' ').any(|s| s == "openid") {
                if matches!(st.opts.keys, KeyMode::Hs256(_)) {
                    return HttpResponse::InternalServerError().json(
                        json!({"code": 500, "error_code": "unexpected_failure", "msg": "Error generating ID token"}),
                    );
                }
                let mut id = json!({
                    "iss": fake.auth_url(), "sub": user.id, "aud": client_id, "iat": now, "exp": now + 3600,
                    "auth_time": now, "client_id": client_id,
                    "email_verified": user.email_confirmed, "phone_number_verified": false,
                });
                if let Some(n) = &a.nonce {
                    id["nonce"] = json!(n);
                }
                if a.scope.split(' ').any(|s| s == "email") {
                    id["email"] = json!(user.email);
                }
                if a.scope.split(' ').any(|s| s == "profile") {
                    let m = &user.user_metadata;
                    id["name"] = m.get("name").cloned().unwrap_or(json!(user.email));
                    if let Some(p) = m.get("picture").or(m.get("avatar_url")) {
                        id["picture"] = p.clone();
                    }
                    if let Some(p) = m.get("preferred_username").or(m.get("username")) {
                        id["preferred_username"] = p.clone();
                    }
                    id["updated_at"] = json!(now);
                }
                out["id_token"] = json!(sign_with(st.keys.last().unwrap(), &id));
            }
            HttpResponse::Ok().json(out)
        }
        Some("refresh_token") => {
            let res = refresh(&req, &fake, &f("refresh_token").unwrap_or_default(), Some(&client_id), now);
            if !res.status().is_success() {
                return oauth_err("invalid_grant", "Invalid refresh token");
            }
            // Re-shape: the OAuth server answers without the user object.
            let body = actix_web::body::to_bytes(res.into_body()).await.ok();
            let v: Value = body.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
            HttpResponse::Ok().json(json!({
                "access_token": v["access_token"], "token_type": "bearer", "expires_in": 3600,
                "refresh_token": v["refresh_token"],
            }))
        }
        _ => oauth_err("unsupported_grant_type", "grant_type must be authorization_code or refresh_token"),
    }
}

async fn oauth_userinfo(req: HttpRequest, fake: web::Data<FakeSupabase>) -> HttpResponse {
    let (u, claims) = match bearer_user(&req, &fake) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let scope = claims.get("scope").and_then(Value::as_str).unwrap_or("email").to_owned();
    let mut out = json!({"sub": u.id});
    if scope.split(' ').any(|s| s == "email") {
        out["email"] = json!(u.email);
        out["email_verified"] = json!(u.email_confirmed);
    }
    if scope.split(' ').any(|s| s == "profile") {
        out["name"] = u.user_metadata.get("name").cloned().unwrap_or(Value::Null);
        out["user_metadata"] = u.user_metadata.clone();
    }
    HttpResponse::Ok().json(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_behave_like_gotrue() {
        assert!(glob_match(
            "http://127.0.0.1:5556/callback/sb?state=*",
            "http://127.0.0.1:5556/callback/sb?state=abc-_"
        ));
        assert!(!glob_match(
            "http://127.0.0.1:5556/callback/sb?state=*",
            "http://127.0.0.1:5556/callback/sb?state=a/b"
        ));
        assert!(glob_match("https://auth.example.com/**", "https://auth.example.com/callback/sb?state=x"));
        assert!(!glob_match("https://*.example.com/cb", "https://a.b.example.com/cb"));
        assert!(glob_match("https://*.example.com/cb", "https://a.example.com/cb"));
    }
}
