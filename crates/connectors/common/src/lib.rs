//! What Keybridge's upstream connectors share.
//!
//! - [`http_client`]: the injected upstream HTTP client: no redirects (SSRF), bounded timeouts.
//! - [`RemoteKeys`]: an upstream's public signing keys (a JWKS, or Google's x509 certificate
//!   map), cached for the response's `max-age`, refetched once on an unknown `kid`.
//! - [`verify_jwt`] and [`Expectations`]: signature (algorithm pinned per key, never `none`), then
//!   `iss`, `aud`, `exp`, `nbf`, `iat` with a small skew.
//! - [`claim_path`]: nested claim lookup for claim mapping (`app_metadata.roles`).
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use keybridge_core::connector::ConnectorError;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// The default timeout of an upstream call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An upstream HTTP client: redirects off (openidconnect requires it, and it blocks SSRF through
/// redirects), connect and total timeouts.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ConnectorError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("keybridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConnectorError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Maps a reqwest failure to a connector error (timeouts and refusals are upstream failures).
pub fn upstream_error(what: &str, e: &reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::Upstream(format!("{what}: timed out"))
    } else {
        ConnectorError::Upstream(format!("{what}: {e}"))
    }
}

/// How an upstream publishes its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// A JWK Set (RFC 7517 §5).
    Jwks,
    /// A JSON object of `kid` to X.509 certificate PEM (Google's securetoken certificates).
    X509Map,
}

/// One usable public key.
struct Key {
    /// The algorithm this key verifies. A token naming another `alg` is refused.
    alg: String,
    verifier: Box<dyn JwsVerifier>,
}

struct Cache {
    keys: HashMap<String, Arc<Key>>,
    fresh_until: Option<Instant>,
    last_fetch: Option<Instant>,
}

/// An upstream's signing keys, fetched over HTTP and cached.
pub struct RemoteKeys {
    url: String,
    format: KeyFormat,
    http: reqwest::Client,
    /// Algorithms accepted at all (e.g. `["RS256"]` for Firebase).
    allowed_algs: Vec<String>,
    cache: Mutex<Cache>,
    /// Unknown-kid refetches happen at most this often, so forged kids cannot hammer the upstream.
    min_refetch: Duration,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys").field("url", &self.url).field("format", &self.format).finish_non_exhaustive()
    }
}

/// Bounds on how long fetched keys are trusted without asking again.
const MIN_CACHE: Duration = Duration::from_secs(60);
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_CACHE: Duration = Duration::from_secs(600);

impl RemoteKeys {
    /// Keys at `url`, accepting only `allowed_algs`.
    pub fn new(url: impl Into<String>, format: KeyFormat, http: reqwest::Client, allowed_algs: &[&str]) -> Self {
        Self {
            url: url.into(),
            format,
            http,
            allowed_algs: allowed_algs.iter().map(|s| (*s).to_owned()).collect(),
            cache: Mutex::new(Cache { keys: HashMap::new(), fresh_until: None, last_fetch: None }),
            min_refetch: Duration::from_secs(5),
        }
    }

    /// Sets how often an unknown `kid` may trigger a refetch (tests shorten it).
    pub fn with_min_refetch(mut self, d: Duration) -> Self {
        self.min_refetch = d;
        self
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<Key>>, Duration), ConnectorError> {
        let res = self.http.get(&self.url).send().await.map_err(|e| upstream_error("fetching signing keys", &e))?;
        if !res.status().is_success() {
            return Err(ConnectorError::Upstream(format!("fetching signing keys: HTTP {}", res.status())));
        }
        let max_age = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(|cc| {
                cc.split(',').find_map(|d| d.trim().strip_prefix("max-age=").and_then(|n| n.parse::<u64>().ok()))
            })
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_CACHE)
            .clamp(MIN_CACHE, MAX_CACHE);
        let body: Value =
            res.json().await.map_err(|e| ConnectorError::Upstream(format!("signing keys are not JSON: {e}")))?;
        let keys = match self.format {
            KeyFormat::Jwks => parse_jwks(&body, &self.allowed_algs),
            KeyFormat::X509Map => parse_x509_map(&body, &self.allowed_algs),
        };
        Ok((keys, max_age))
    }

    async fn key(&self, kid: &str) -> Result<Arc<Key>, ConnectorError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let stale = cache.fresh_until.is_none_or(|t| now >= t);
        let unknown = !cache.keys.contains_key(kid);
        let may_refetch = cache.last_fetch.is_none_or(|t| now.duration_since(t) >= self.min_refetch);
        if stale || (unknown && may_refetch) {
            match self.fetch().await {
                Ok((keys, ttl)) => {
                    cache.keys = keys;
                    cache.fresh_until = Some(now + ttl);
                    cache.last_fetch = Some(now);
                }
                // Keep serving cached keys through an upstream blip.
                Err(e) if !cache.keys.is_empty() && !unknown => {
                    tracing::warn!(error = %e, "refreshing signing keys failed; using cached keys")
                }
                Err(e) => return Err(e),
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| ConnectorError::InvalidResponse(format!("unknown signing key {kid:?}")))
    }
}

fn parse_jwks(body: &Value, allowed: &[String]) -> HashMap<String, Arc<Key>> {
    let mut out = HashMap::new();
    for k in body.get("keys").and_then(Value::as_array).into_iter().flatten() {
        let Some(obj) = k.as_object() else { continue };
        let Ok(jwk) = Jwk::from_map(obj.clone()) else { continue };
        let Some(kid) = jwk.key_id().map(str::to_owned) else { continue };
        if jwk.key_use().is_some_and(|u| u != "sig") {
            continue;
        }
        let alg = match (jwk.algorithm(), jwk.key_type(), jwk.curve()) {
            (Some(a), _, _) => a.to_owned(),
            (None, "RSA", _) => "RS256".into(),
            (None, "EC", Some("P-256")) => "ES256".into(),
            (None, "OKP", Some("Ed25519")) => "EdDSA".into(),
            _ => continue,
        };
        if !allowed.contains(&alg) {
            continue;
        }
        let verifier: Option<Box<dyn JwsVerifier>> = match alg.as_str() {
            "RS256" => josekit::jws::RS256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            "ES256" => josekit::jws::ES256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            "EdDSA" => josekit::jws::EdDSA.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            _ => None,
        };
        if let Some(verifier) = verifier {
            out.insert(kid, Arc::new(Key { alg, verifier }));
        }
    }
    out
}

fn parse_x509_map(body: &Value, allowed: &[String]) -> HashMap<String, Arc<Key>> {
    let mut out = HashMap::new();
    if !allowed.iter().any(|a| a == "RS256") {
        return out;
    }
    for (kid, cert) in body.as_object().into_iter().flatten() {
        let Some(pem) = cert.as_str() else { continue };
        let public = openssl::x509::X509::from_pem(pem.as_bytes())
            .and_then(|c| c.public_key())
            .and_then(|k| k.public_key_to_pem());
        let Ok(public) = public else { continue };
        if let Ok(v) = josekit::jws::RS256.verifier_from_pem(&public) {
            out.insert(kid.clone(), Arc::new(Key { alg: "RS256".into(), verifier: Box::new(v) }));
        }
    }
    out
}

/// A JWT's header fields that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`.
    pub alg: String,
    /// `kid`.
    pub kid: Option<String>,
    /// `typ`.
    pub typ: Option<String>,
}

/// The parts of a compact JWT.
pub struct Parts<'a> {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWT without verifying it.
pub fn decode(token: &str) -> Result<Parts<'_>, ConnectorError> {
    let bad = |why: &str| ConnectorError::InvalidResponse(format!("malformed token: {why}"));
    if token.len() > 16 * 1024 {
        return Err(bad("too long"));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad("not three parts"));
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| bad("header is not base64url"))?)
        .map_err(|_| bad("header is not JSON"))?;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|_| bad("payload is not base64url"))?)
            .map_err(|_| bad("payload is not JSON"))?;
    let Value::Object(claims) = claims else { return Err(bad("payload is not an object")) };
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad("signature is not base64url"))?;
    let header = Header {
        alg: header.get("alg").and_then(Value::as_str).unwrap_or_default().to_owned(),
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        typ: header.get("typ").and_then(Value::as_str).map(str::to_owned),
    };
    Ok(Parts { header, claims, signing_input: &token[..h.len() + 1 + p.len()], signature })
}

/// Verifies a JWT's signature against remote keys: `alg` must be allowed and equal the key's.
pub async fn verify_jwt(token: &str, keys: &RemoteKeys) -> Result<Map<String, Value>, ConnectorError> {
    let parts = decode(token)?;
    if parts.header.alg.eq_ignore_ascii_case("none") || !keys.allowed_algs.contains(&parts.header.alg) {
        return Err(ConnectorError::InvalidResponse(format!("token algorithm {:?} is not accepted", parts.header.alg)));
    }
    let kid = parts.header.kid.as_deref().ok_or_else(|| ConnectorError::InvalidResponse("token has no kid".into()))?;
    let key = keys.key(kid).await?;
    if key.alg != parts.header.alg {
        return Err(ConnectorError::InvalidResponse("token algorithm does not match its key".into()));
    }
    key.verifier
        .verify(parts.signing_input.as_bytes(), &parts.signature)
        .map_err(|_| ConnectorError::InvalidResponse("token signature is invalid".into()))?;
    Ok(parts.claims)
}

/// Verifies an HS256 JWT with a shared secret (Supabase's legacy JWT secret).
pub fn verify_hs256(token: &str, secret: &[u8]) -> Result<Map<String, Value>, ConnectorError> {
    let parts = decode(token)?;
    if parts.header.alg != "HS256" {
        return Err(ConnectorError::InvalidResponse(format!("token algorithm {:?} is not accepted", parts.header.alg)));
    }
    let verifier =
        josekit::jws::HS256.verifier_from_bytes(secret).map_err(|e| ConnectorError::Config(e.to_string()))?;
    verifier
        .verify(parts.signing_input.as_bytes(), &parts.signature)
        .map_err(|_| ConnectorError::InvalidResponse("token signature is invalid".into()))?;
    Ok(parts.claims)
}

/// What a verified token's claims must say.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// `iss`, exactly.
    pub issuer: &'a str,
    /// `aud`: a string equal to it, or an array containing it. `None` skips the check.
    pub audience: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: i64,
    /// Allowed clock skew, seconds.
    pub leeway: i64,
}

/// Checks `iss`, `aud`, `exp` (required), `nbf` and `iat`, and a non-empty `sub`.
pub fn check_claims(claims: &Map<String, Value>, e: &Expectations<'_>) -> Result<(), ConnectorError> {
    let invalid = |why: String| Err(ConnectorError::InvalidResponse(why));
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == e.issuer => {}
        other => return invalid(format!("token issuer {other:?} is not {:?}", e.issuer)),
    }
    if let Some(aud) = e.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(s)) => s == aud,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud)),
            _ => false,
        };
        if !ok {
            return invalid(format!("token audience does not include {aud:?}"));
        }
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp + e.leeway > e.now => {}
        Some(_) => return invalid("token has expired".into()),
        None => return invalid("token has no exp".into()),
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf - e.leeway > e.now
    {
        return invalid("token is not valid yet".into());
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat - e.leeway > e.now
    {
        return invalid("token was issued in the future".into());
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(()),
        _ => invalid("token has no subject".into()),
    }
}

/// Looks up a claim by a dotted path (`app_metadata.roles`). A key that itself contains dots
/// (Auth0's namespaced claims, `https://example.com/roles`) is tried whole first.
pub fn claim_path<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut cur = claims;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

/// A claim as a list of strings: an array of strings, or one string.
pub fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use josekit::jws::{JwsHeader, RS256};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Upstream {
        jwks: std::sync::Mutex<String>,
        hits: AtomicUsize,
    }

    async fn serve(up: Arc<Upstream>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = web::Data::from(up);
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route(
                "/jwks",
                web::get().to(|d: web::Data<Upstream>| async move {
                    d.hits.fetch_add(1, Ordering::SeqCst);
                    HttpResponse::Ok()
                        .insert_header(("Cache-Control", "public, max-age=3600"))
                        .body(d.jwks.lock().unwrap().clone())
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        format!("http://{addr}/jwks")
    }

    fn keypair(kid: &str) -> (josekit::jws::alg::rsassa::RsassaJwsSigner, Jwk) {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id(kid);
        (RS256.signer_from_der(pair.to_der_private_key()).unwrap(), jwk)
    }

    fn sign(signer: &dyn josekit::jws::JwsSigner, kid: &str, claims: &Value) -> String {
        let mut h = JwsHeader::new();
        h.set_key_id(kid);
        h.set_token_type("JWT");
        josekit::jws::serialize_compact(&serde_json::to_vec(claims).unwrap(), &h, signer).unwrap()
    }

    fn jwks(keys: &[&Jwk]) -> String {
        serde_json::json!({"keys": keys.iter().map(|k| Value::Object(k.as_ref().clone())).collect::<Vec<_>>()})
            .to_string()
    }

    #[tokio::test]
    async fn verifies_caches_and_refetches_once_on_an_unknown_kid() {
        let (s1, k1) = keypair("k1");
        let (s2, k2) = keypair("k2");
        let up = Arc::new(Upstream { jwks: std::sync::Mutex::new(jwks(&[&k1])), hits: AtomicUsize::new(0) });
        let url = serve(up.clone()).await;
        let keys = RemoteKeys::new(url, KeyFormat::Jwks, http_client(DEFAULT_TIMEOUT).unwrap(), &["RS256"])
            .with_min_refetch(Duration::ZERO);
        let claims = serde_json::json!({"sub": "u1", "iss": "https://up", "exp": 4_000_000_000i64});
        let t1 = sign(&s1, "k1", &claims);
        assert_eq!(verify_jwt(&t1, &keys).await.unwrap()["sub"], "u1");
        assert_eq!(verify_jwt(&t1, &keys).await.unwrap()["sub"], "u1");
        assert_eq!(up.hits.load(Ordering::SeqCst), 1, "cached for max-age");
        // Rotation upstream: a new kid triggers exactly one refetch.
        *up.jwks.lock().unwrap() = jwks(&[&k1, &k2]);
        let t2 = sign(&s2, "k2", &claims);
        assert!(verify_jwt(&t2, &keys).await.is_ok());
        assert_eq!(up.hits.load(Ordering::SeqCst), 2);
        // An unknown kid after that fails, after one more fetch.
        let t3 = sign(&s2, "k9", &claims);
        assert!(matches!(verify_jwt(&t3, &keys).await, Err(ConnectorError::InvalidResponse(_))));
        assert_eq!(up.hits.load(Ordering::SeqCst), 3);
        // Tampered signature.
        let mut bad = t1.clone();
        bad.replace_range(bad.len() - 4.., "AAAA");
        assert!(matches!(verify_jwt(&bad, &keys).await, Err(ConnectorError::InvalidResponse(_))));
        // alg none and algorithms not allowed.
        let none =
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#), t1.split('.').nth(1).unwrap());
        assert!(verify_jwt(&none, &keys).await.is_err());
        let hs = josekit::jws::HS256.signer_from_bytes(b"secret-secret-secret-secret-secret").unwrap();
        assert!(verify_jwt(&sign(&hs, "k1", &claims), &keys).await.is_err());
    }

    #[test]
    fn claims_checks() {
        let e = Expectations { issuer: "https://up", audience: Some("proj"), now: 1000, leeway: 30 };
        let ok = serde_json::json!({"iss": "https://up", "aud": "proj", "exp": 1100, "iat": 990, "sub": "u"});
        assert!(check_claims(ok.as_object().unwrap(), &e).is_ok());
        let arr = serde_json::json!({"iss": "https://up", "aud": ["x", "proj"], "exp": 1100, "sub": "u"});
        assert!(check_claims(arr.as_object().unwrap(), &e).is_ok());
        for bad in [
            serde_json::json!({"iss": "https://other", "aud": "proj", "exp": 1100, "sub": "u"}),
            serde_json::json!({"iss": "https://up", "aud": "other", "exp": 1100, "sub": "u"}),
            serde_json::json!({"iss": "https://up", "aud": "proj", "exp": 900, "sub": "u"}),
            serde_json::json!({"iss": "https://up", "aud": "proj", "sub": "u"}),
            serde_json::json!({"iss": "https://up", "aud": "proj", "exp": 1100, "nbf": 1100, "sub": "u"}),
            serde_json::json!({"iss": "https://up", "aud": "proj", "exp": 1100, "sub": ""}),
        ] {
            assert!(check_claims(bad.as_object().unwrap(), &e).is_err(), "{bad}");
        }
    }

    #[test]
    fn claim_paths() {
        let v = serde_json::json!({"app_metadata": {"roles": ["a", "b"]}, "https://x.com/groups": ["g"]});
        assert_eq!(string_list(claim_path(&v, "app_metadata.roles")), vec!["a", "b"]);
        assert_eq!(string_list(claim_path(&v, "https://x.com/groups")), vec!["g"]);
        assert!(claim_path(&v, "missing.path").is_none());
    }
}
