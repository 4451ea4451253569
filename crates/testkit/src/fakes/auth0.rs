//! A fake OpenID provider with Auth0's wire quirks (upstreams.md §4), and the same engine with
//! the quirks off as a generic OIDC upstream, or with Clerk's paths and shapes (§3.2, used by
//! [`super::clerk`]).
//!
//! Auth0 quirks copied: the issuer ends with `/`; `updated_at` is an ISO-8601 string; `sub` is
//! `auth0|...`; a namespaced custom claim (`https://keybridge.test/roles`); `audience` switches
//! the access token from opaque to a JWT whose `aud` is `[API, {issuer}userinfo]`; `connection`,
//! `prompt` and `login_hint` on `/authorize`; `/oauth/token` takes a form or JSON body and Basic
//! or body client auth; `offline_access` gives a refresh token; rotation with family revocation
//! on reuse; `invalid_grant` "Unknown or invalid refresh token."; no `iss` on the callback.
//!
//! Test controls: [`FakeOp::set_fault`] makes the next logins fail in one chosen way (a denial,
//! a bad signature, a wrong `iss`, `aud` or nonce, an endpoint that never answers), and
//! [`FakeOp::block`] disables a user. Keys are made per run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use josekit::jwk::Jwk;
use josekit::jws::alg::rsassa::RsassaJwsSigner;
use josekit::jws::{JwsHeader, RS256};
use serde_json::{Map, Value, json};

use crate::process::serve;

/// An RSA signing key with its public JWK.
pub struct RsaKey {
    /// `kid`.
    pub kid: String,
    signer: RsassaJwsSigner,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: Jwk,
}

impl RsaKey {
    /// A fresh 2048-bit key.
    pub fn generate(kid: &str) -> Self {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id(kid);
        jwk.set_algorithm("RS256");
        jwk.set_key_use("sig");
        Self { kid: kid.to_owned(), signer: RS256.signer_from_der(pair.to_der_private_key()).unwrap(), jwk }
    }

    /// Signs `claims` as a compact JWT with `typ: JWT`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = JwsHeader::new();
        h.set_key_id(&self.kid);
        h.set_token_type("JWT");
        josekit::jws::serialize_compact(&serde_json::to_vec(claims).unwrap(), &h, &self.signer).unwrap()
    }
}

/// A random URL-safe string.
pub fn random(n: usize) -> String {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Which provider the engine imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A plain OpenID provider: issuer without a slash, numeric `updated_at`, RFC 9207 `iss`.
    Generic,
    /// Auth0 (§4).
    Auth0,
    /// Clerk's OAuth applications (§3.2): `/oauth/*` paths, its userinfo shape, S256 only.
    Clerk,
}

/// A way to make logins fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Everything works.
    None,
    /// `/authorize` redirects back with `error=access_denied`.
    Deny,
    /// ID tokens are signed by a key the JWKS does not publish, under its `kid`.
    BadSignature,
    /// ID tokens carry another `iss`.
    WrongIssuer,
    /// ID tokens are for another client.
    WrongAudience,
    /// ID tokens carry another nonce.
    WrongNonce,
    /// The token endpoint never answers.
    HangToken,
    /// Userinfo describes another subject.
    UserinfoOtherSubject,
}

/// A user of the fake.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// `sub`.
    pub id: String,
    /// `email`.
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// `name`.
    pub name: String,
    /// `nickname` / `username`.
    pub username: String,
    /// Roles: Auth0's namespaced claim, Clerk's `public_metadata.roles`.
    pub roles: Vec<String>,
    /// Blocked upstream: refreshes fail with `invalid_grant`, logins with `access_denied`.
    pub blocked: bool,
}

struct Code {
    user: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    scope: String,
    audience: Option<String>,
}

struct Refresh {
    user: String,
    scope: String,
    audience: Option<String>,
    used: bool,
    family: String,
}

struct State {
    flavor: Flavor,
    issuer: OnceLock<String>,
    base: OnceLock<String>,
    client_id: String,
    client_secret: String,
    key: RsaKey,
    rogue: RsaKey,
    users: Mutex<Vec<FakeUser>>,
    codes: Mutex<HashMap<String, Code>>,
    refresh: Mutex<HashMap<String, Refresh>>,
    revoked_families: Mutex<Vec<String>>,
    access: Mutex<HashMap<String, String>>,
    fault: Mutex<Fault>,
    authorize_requests: Mutex<Vec<Vec<(String, String)>>>,
    token_requests: AtomicUsize,
    refresh_requests: AtomicUsize,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeOp {
    /// Its issuer, exactly as in `iss` (Auth0's ends with `/`).
    pub issuer: String,
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FakeOp {
    /// Starts a fake for a client id and secret.
    pub fn start(flavor: Flavor, client_id: &str, client_secret: &str) -> Self {
        Self::start_with_key(flavor, client_id, client_secret, RsaKey::generate(&format!("kid-{}", random(6))))
    }

    /// Starts a fake that signs with `key`.
    pub fn start_with_key(flavor: Flavor, client_id: &str, client_secret: &str, key: RsaKey) -> Self {
        let rogue = RsaKey::generate(&key.kid);
        let state = Arc::new(State {
            flavor,
            issuer: OnceLock::new(),
            base: OnceLock::new(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            key,
            rogue,
            users: Mutex::new(Vec::new()),
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            revoked_families: Mutex::new(Vec::new()),
            access: Mutex::new(HashMap::new()),
            fault: Mutex::new(Fault::None),
            authorize_requests: Mutex::new(Vec::new()),
            token_requests: AtomicUsize::new(0),
            refresh_requests: AtomicUsize::new(0),
        });
        let st = state.clone();
        let addr = serve(move |cfg| routes(cfg, st.clone()));
        let base = format!("http://{addr}");
        let issuer = if flavor == Flavor::Auth0 { format!("{base}/") } else { base.clone() };
        state.base.set(base).unwrap();
        state.issuer.set(issuer.clone()).unwrap();
        let op = Self { issuer, addr, state };
        for (name, roles) in [("alice", vec!["admin"]), ("bob", vec![]), ("carol", vec!["editor", "viewer"])] {
            op.add_user(FakeUser {
                id: match flavor {
                    Flavor::Auth0 => format!("auth0|{name}-0001"),
                    Flavor::Clerk => format!("user_{name}0001"),
                    Flavor::Generic => name.to_owned(),
                },
                email: format!("{name}@example.com"),
                email_verified: true,
                name: format!("{}{} Example", name[..1].to_uppercase(), &name[1..]),
                username: name.to_owned(),
                roles: roles.into_iter().map(str::to_owned).collect(),
                blocked: false,
            });
        }
        op
    }

    /// The base URL (the issuer without Auth0's trailing slash).
    pub fn base(&self) -> &str {
        self.state.base()
    }

    /// Adds a user (logins pick one by `login_hint`: email, id or username; default the first).
    pub fn add_user(&self, user: FakeUser) {
        self.state.users.lock().unwrap().push(user);
    }

    /// The user with this username.
    pub fn user(&self, username: &str) -> FakeUser {
        self.state.users.lock().unwrap().iter().find(|u| u.username == username).cloned().unwrap()
    }

    /// Blocks (or unblocks) a user.
    pub fn block(&self, username: &str, blocked: bool) {
        for u in self.state.users.lock().unwrap().iter_mut().filter(|u| u.username == username) {
            u.blocked = blocked;
        }
    }

    /// Makes logins fail in one way from now on.
    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// The query of every `/authorize` request so far.
    pub fn authorize_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state.authorize_requests.lock().unwrap().clone()
    }

    /// How many refresh-token grants were asked for.
    pub fn refresh_requests(&self) -> usize {
        self.state.refresh_requests.load(Ordering::SeqCst)
    }

    /// How many token requests were made.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The signing key (Clerk's session tokens use the same instance key).
    pub fn key(&self) -> &RsaKey {
        &self.state.key
    }
}

impl State {
    fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or_default()
    }

    fn issuer(&self) -> &str {
        self.issuer.get().map(String::as_str).unwrap_or_default()
    }
}

fn path(st: &State, p: &str) -> String {
    match (st.flavor, p) {
        (Flavor::Clerk, "authorize") => "/oauth/authorize".into(),
        (Flavor::Clerk, "userinfo") => "/oauth/userinfo".into(),
        (Flavor::Generic, "authorize") => "/authorize".into(),
        (Flavor::Generic, "token") => "/token".into(),
        (_, "authorize") => "/authorize".into(),
        (_, "token") => "/oauth/token".into(),
        (_, "userinfo") => "/userinfo".into(),
        _ => unreachable!(),
    }
}

fn routes(cfg: &mut web::ServiceConfig, st: Arc<State>) {
    let data = web::Data::from(st.clone());
    cfg.app_data(data)
        .route("/.well-known/openid-configuration", web::get().to(discovery))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .route(&path(&st, "authorize"), web::get().to(authorize))
        .route(&path(&st, "token"), web::post().to(token))
        .route(&path(&st, "userinfo"), web::get().to(userinfo))
        .route(&path(&st, "userinfo"), web::post().to(userinfo));
}

async fn discovery(st: web::Data<State>) -> HttpResponse {
    let b = st.base();
    let mut doc = json!({
        "issuer": st.issuer(),
        "authorization_endpoint": format!("{b}{}", path(&st, "authorize")),
        "token_endpoint": format!("{b}{}", path(&st, "token")),
        "userinfo_endpoint": format!("{b}{}", path(&st, "userinfo")),
        "jwks_uri": format!("{b}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    });
    match st.flavor {
        Flavor::Auth0 => {
            doc["id_token_signing_alg_values_supported"] = json!(["HS256", "RS256", "PS256"]);
            doc["code_challenge_methods_supported"] = json!(["S256", "plain"]);
            doc["token_endpoint_auth_methods_supported"] =
                json!(["client_secret_basic", "client_secret_post", "private_key_jwt"]);
            doc["response_types_supported"] = json!(["code", "token", "id_token", "code token", "code id_token"]);
            doc["scopes_supported"] = json!(["openid", "profile", "offline_access", "email"]);
            doc["end_session_endpoint"] = json!(format!("{b}/oidc/logout"));
        }
        Flavor::Clerk => {
            doc["grant_types_supported"] = json!(["authorization_code", "refresh_token"]);
            doc["token_endpoint_auth_methods_supported"] = json!(["client_secret_basic", "none"]);
            doc["scopes_supported"] = json!(["openid", "profile", "email", "public_metadata", "offline_access"]);
        }
        Flavor::Generic => {
            doc["authorization_response_iss_parameter_supported"] = json!(true);
            doc["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        }
    }
    HttpResponse::Ok().json(doc)
}

async fn jwks(st: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=600"))
        .json(json!({"keys": [Value::Object(st.key.jwk.as_ref().clone())]}))
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", to)).finish()
}

async fn authorize(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    let q: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    st.authorize_requests.lock().unwrap().push(q.clone());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("client_id").as_deref() != Some(st.client_id.as_str()) {
        return HttpResponse::BadRequest().body("unknown client");
    }
    let Some(redirect_uri) = get("redirect_uri") else { return HttpResponse::BadRequest().body("no redirect_uri") };
    let state = get("state").unwrap_or_default();
    let mut back = url::Url::parse(&redirect_uri).unwrap();
    let fault = *st.fault.lock().unwrap();
    let error = |back: &mut url::Url, e: &str, d: &str| {
        back.query_pairs_mut().append_pair("error", e).append_pair("error_description", d).append_pair("state", &state);
        if st.flavor == Flavor::Generic {
            back.query_pairs_mut().append_pair("iss", st.issuer());
        }
        redirect(back.as_str())
    };
    if get("response_type").as_deref() != Some("code") {
        return error(&mut back, "unsupported_response_type", "only code");
    }
    if get("code_challenge_method").as_deref() != Some("S256") || get("code_challenge").is_none() {
        return error(&mut back, "invalid_request", "PKCE S256 is required");
    }
    if st.flavor == Flavor::Clerk && state.len() < 8 {
        return error(&mut back, "invalid_request", "state must be at least 8 characters");
    }
    if get("prompt").as_deref() == Some("none") {
        return error(&mut back, "login_required", "Login required");
    }
    if fault == Fault::Deny {
        return error(&mut back, "access_denied", "The user declined.");
    }
    let users = st.users.lock().unwrap().clone();
    let user = match get("login_hint") {
        Some(h) => users.iter().find(|u| u.email == h || u.id == h || u.username == h).cloned(),
        None => users.first().cloned(),
    };
    let Some(user) = user else { return error(&mut back, "access_denied", "no such user") };
    if user.blocked {
        return error(&mut back, "access_denied", "user is blocked");
    }
    let code = random(24);
    st.codes.lock().unwrap().insert(
        code.clone(),
        Code {
            user: user.id.clone(),
            redirect_uri,
            challenge: get("code_challenge").unwrap_or_default(),
            nonce: get("nonce"),
            scope: get("scope").unwrap_or_else(|| "openid".into()),
            audience: get("audience"),
        },
    );
    back.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    if st.flavor == Flavor::Generic {
        back.query_pairs_mut().append_pair("iss", st.issuer());
    }
    redirect(back.as_str())
}

fn token_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": error, "error_description": description}))
}

fn user_claims(st: &State, user: &FakeUser, scope: &str) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("sub".into(), json!(user.id));
    let has = |s: &str| scope.split(' ').any(|x| x == s);
    if has("email") {
        c.insert("email".into(), json!(user.email));
        c.insert("email_verified".into(), json!(user.email_verified));
    }
    if has("profile") {
        c.insert("name".into(), json!(user.name));
        let (given, family) = user.name.split_once(' ').unwrap_or((&user.name, ""));
        c.insert("given_name".into(), json!(given));
        c.insert("family_name".into(), json!(family));
        c.insert("picture".into(), json!(format!("https://img.example/{}.png", user.username)));
        match st.flavor {
            Flavor::Auth0 => {
                c.insert("nickname".into(), json!(user.username));
                c.insert("updated_at".into(), json!("2024-06-16T03:23:10.426Z"));
            }
            Flavor::Clerk => {
                c.insert("preferred_username".into(), json!(user.username));
            }
            Flavor::Generic => {
                c.insert("preferred_username".into(), json!(user.username));
                c.insert("updated_at".into(), json!(1_718_508_190));
            }
        }
    }
    if st.flavor == Flavor::Auth0 {
        c.insert("https://keybridge.test/roles".into(), json!(user.roles));
    }
    if st.flavor == Flavor::Clerk && has("public_metadata") {
        c.insert("public_metadata".into(), json!({"roles": user.roles}));
    }
    c
}

fn id_token(st: &State, user: &FakeUser, scope: &str, nonce: Option<&str>) -> String {
    let fault = *st.fault.lock().unwrap();
    let now = now();
    let mut c = user_claims(st, user, scope);
    c.insert(
        "iss".into(),
        json!(if fault == Fault::WrongIssuer {
            format!("{}/evil", st.issuer().trim_end_matches('/'))
        } else {
            st.issuer().to_owned()
        }),
    );
    c.insert("aud".into(), json!(if fault == Fault::WrongAudience { "someone-else" } else { st.client_id.as_str() }));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + 36_000));
    match st.flavor {
        Flavor::Auth0 => {
            c.insert("sid".into(), json!(random(8)));
        }
        Flavor::Clerk => {
            c.insert("jti".into(), json!(random(8)));
        }
        Flavor::Generic => {}
    }
    if let Some(n) = nonce {
        c.insert("nonce".into(), json!(if fault == Fault::WrongNonce { "another-nonce" } else { n }));
    }
    let key = if fault == Fault::BadSignature { &st.rogue } else { &st.key };
    key.sign(&Value::Object(c))
}

fn access_token(st: &State, user: &FakeUser, scope: &str, audience: Option<&str>) -> String {
    let token = match (st.flavor, audience) {
        (_, Some(aud)) => {
            let now = now();
            let mut auds = vec![json!(aud)];
            if scope.split(' ').any(|s| s == "openid") {
                auds.push(json!(format!("{}userinfo", st.issuer())));
            }
            st.key.sign(&json!({"iss": st.issuer(), "sub": user.id, "aud": auds, "azp": st.client_id,
                "iat": now, "exp": now + 86_400, "scope": scope, "gty": "authorization_code"}))
        }
        (Flavor::Clerk, None) => format!("oat_{}", random(24)),
        _ => random(24),
    };
    st.access.lock().unwrap().insert(token.clone(), format!("{}\n{scope}", user.id));
    token
}

fn refresh_token(st: &State, user: &str, scope: &str, audience: Option<String>, family: Option<String>) -> String {
    let rt = if st.flavor == Flavor::Clerk { format!("clk_refresh_{}", random(24)) } else { random(32) };
    let family = family.unwrap_or_else(|| random(8));
    st.refresh
        .lock()
        .unwrap()
        .insert(rt.clone(), Refresh { user: user.to_owned(), scope: scope.to_owned(), audience, used: false, family });
    rt
}

fn find_user(st: &State, id: &str) -> Option<FakeUser> {
    st.users.lock().unwrap().iter().find(|u| u.id == id).cloned()
}

/// Reads a form or JSON body into pairs.
fn body_params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
    if json {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        v.as_object().into_iter().flatten().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

async fn token(req: HttpRequest, body: web::Bytes, st: web::Data<State>) -> HttpResponse {
    st.token_requests.fetch_add(1, Ordering::SeqCst);
    if *st.fault.lock().unwrap() == Fault::HangToken {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let p = body_params(&req, &body);
    // Client authentication: HTTP Basic or the body, treated the same.
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':').map(|(a, b)| {
                let dec =
                    |x: &str| url::form_urlencoded::parse(format!("x={x}").as_bytes()).next().unwrap().1.into_owned();
                (dec(a), dec(b))
            })
        });
    let (id, secret) = match basic {
        Some(c) => c,
        None => (p.get("client_id").cloned().unwrap_or_default(), p.get("client_secret").cloned().unwrap_or_default()),
    };
    if id != st.client_id || secret != st.client_secret {
        return match st.flavor {
            Flavor::Auth0 => token_error(401, "access_denied", "Unauthorized"),
            _ => token_error(401, "invalid_client", "Client authentication failed"),
        };
    }
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = p.get("code").and_then(|c| st.codes.lock().unwrap().remove(c)) else {
                return token_error(403, "invalid_grant", "Invalid authorization code");
            };
            if p.get("redirect_uri") != Some(&code.redirect_uri) {
                return token_error(403, "invalid_grant", "redirect_uri mismatch");
            }
            let verifier = p.get("code_verifier").cloned().unwrap_or_default();
            if URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes())) != code.challenge {
                return token_error(403, "invalid_grant", "Failed to verify code verifier");
            }
            let Some(user) = find_user(&st, &code.user) else {
                return token_error(403, "invalid_grant", "user not found");
            };
            let mut res = json!({
                "access_token": access_token(&st, &user, &code.scope, code.audience.as_deref()),
                "id_token": id_token(&st, &user, &code.scope, code.nonce.as_deref()),
                "scope": code.scope,
                "expires_in": 86_400,
                "token_type": "Bearer",
            });
            if code.scope.split(' ').any(|s| s == "offline_access") {
                res["refresh_token"] = json!(refresh_token(&st, &user.id, &code.scope, code.audience.clone(), None));
            }
            HttpResponse::Ok().json(res)
        }
        Some("refresh_token") => {
            st.refresh_requests.fetch_add(1, Ordering::SeqCst);
            let invalid = || token_error(403, "invalid_grant", "Unknown or invalid refresh token.");
            let given = p.get("refresh_token").cloned().unwrap_or_default();
            let (user_id, scope, audience, family) = {
                let mut map = st.refresh.lock().unwrap();
                let Some(r) = map.get_mut(&given) else { return invalid() };
                if st.revoked_families.lock().unwrap().contains(&r.family) {
                    return invalid();
                }
                if r.used {
                    // Reuse of a rotated token revokes the whole family.
                    st.revoked_families.lock().unwrap().push(r.family.clone());
                    return invalid();
                }
                r.used = true;
                (r.user.clone(), r.scope.clone(), r.audience.clone(), r.family.clone())
            };
            let Some(user) = find_user(&st, &user_id).filter(|u| !u.blocked) else { return invalid() };
            let res = json!({
                "access_token": access_token(&st, &user, &scope, audience.as_deref()),
                "id_token": id_token(&st, &user, &scope, None),
                "refresh_token": refresh_token(&st, &user.id, &scope, audience.clone(), Some(family)),
                "scope": scope,
                "expires_in": 86_400,
                "token_type": "Bearer",
            });
            HttpResponse::Ok().json(res)
        }
        _ => token_error(400, "unsupported_grant_type", "grant type not supported"),
    }
}

async fn userinfo(req: HttpRequest, st: web::Data<State>) -> HttpResponse {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .unwrap_or_default();
    let Some(entry) = st.access.lock().unwrap().get(&bearer).cloned() else {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .json(json!({"error": "invalid_token", "error_description": "invalid access token"}));
    };
    let (id, scope) = entry.split_once('\n').unwrap();
    let Some(user) = find_user(&st, id) else { return HttpResponse::Unauthorized().finish() };
    let mut c = user_claims(&st, &user, scope);
    if *st.fault.lock().unwrap() == Fault::UserinfoOtherSubject {
        c.insert("sub".into(), json!("somebody-else"));
    }
    if st.flavor == Flavor::Clerk {
        // Clerk's shape (§3.2).
        c.insert("object".into(), json!("oauth_user_info"));
        c.insert("instance_id".into(), json!("ins_fake0001"));
        c.insert("user_id".into(), json!(user.id));
        c.insert("username".into(), json!(user.username));
        c.remove("preferred_username");
        c.entry("public_metadata").or_insert(json!({}));
        c.insert("private_metadata".into(), json!({}));
        c.insert("unsafe_metadata".into(), json!({}));
    }
    HttpResponse::Ok()
        .insert_header(("X-RateLimit-Limit", "10"))
        .insert_header(("X-RateLimit-Remaining", "9"))
        .json(Value::Object(c))
}

/// A server that accepts connections and never answers (for timeout tests).
pub fn never_answers() -> SocketAddr {
    serve(|cfg: &mut web::ServiceConfig| {
        cfg.default_service(web::to(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }));
    })
}
