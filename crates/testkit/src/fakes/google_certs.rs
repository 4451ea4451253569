//! A fake of Google's certificate endpoint for Firebase ID tokens
//! (`https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com`,
//! upstreams.md §2.1): a JSON map of `kid` to a self-signed X.509 certificate PEM, served with
//! `Cache-Control: public, max-age=…`. RSA keys are made per test run and never leave the test.
//! [`GoogleCerts::sign`] mints RS256 ID tokens the way securetoken.google.com does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};

/// One signing key and its certificate.
struct Key {
    kid: String,
    private: PKey<Private>,
    cert_pem: String,
}

struct State {
    keys: Mutex<Vec<Key>>,
    hits: AtomicUsize,
    /// Keys made so far (kids are `key-1`, `key-2`, ...).
    made: AtomicUsize,
    max_age: u64,
}

/// A running fake certificate endpoint.
pub struct GoogleCerts {
    /// The certificate map's URL (a connector's `certs_url`).
    pub url: String,
    state: Arc<State>,
}

fn make_key(kid: &str) -> Key {
    let rsa = Rsa::generate(2048).unwrap();
    let private = PKey::from_rsa(rsa).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "securetoken.system.gserviceaccount.com").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_serial()).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&private).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
    b.sign(&private, MessageDigest::sha256()).unwrap();
    let cert_pem = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    Key { kid: kid.to_owned(), private, cert_pem }
}

fn rand_serial() -> u32 {
    let mut buf = [0u8; 4];
    openssl::rand::rand_bytes(&mut buf).unwrap();
    u32::from_be_bytes(buf) | 1
}

impl GoogleCerts {
    /// Starts the endpoint with one key, cached for an hour.
    pub fn start() -> Self {
        Self::start_with_max_age(3600)
    }

    /// Starts the endpoint with one key and this `max-age`.
    pub fn start_with_max_age(max_age: u64) -> Self {
        let state = Arc::new(State {
            keys: Mutex::new(vec![make_key("key-1")]),
            hits: AtomicUsize::new(0),
            made: AtomicUsize::new(1),
            max_age,
        });
        let st = state.clone();
        let addr = crate::process::serve(move |cfg: &mut web::ServiceConfig| {
            let st = st.clone();
            cfg.route(
                "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com",
                web::get().to(move || {
                    let st = st.clone();
                    async move {
                        st.hits.fetch_add(1, Ordering::SeqCst);
                        let map: serde_json::Map<String, Value> = st
                            .keys
                            .lock()
                            .unwrap()
                            .iter()
                            .map(|k| (k.kid.clone(), Value::String(k.cert_pem.clone())))
                            .collect();
                        HttpResponse::Ok()
                            .insert_header((
                                "Cache-Control",
                                format!("public, max-age={}, must-revalidate, no-transform", st.max_age),
                            ))
                            .json(map)
                    }
                }),
            );
        });
        Self { url: format!("http://{addr}/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"), state }
    }

    /// How many times the certificates were fetched.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The newest key's `kid`.
    pub fn current_kid(&self) -> String {
        self.state.keys.lock().unwrap().last().unwrap().kid.clone()
    }

    /// Rotates as Google does: publishes a new key beside the old ones and signs with it from now
    /// on. Returns the new `kid`.
    pub fn rotate(&self) -> String {
        let kid = format!("key-{}", self.state.made.fetch_add(1, Ordering::SeqCst) + 1);
        let key = make_key(&kid);
        self.state.keys.lock().unwrap().push(key);
        kid
    }

    /// Stops publishing a key.
    pub fn retire(&self, kid: &str) {
        self.state.keys.lock().unwrap().retain(|k| k.kid != kid);
    }

    /// An RS256 token signed with the newest key, header `{"alg":"RS256","kid":…,"typ":"JWT"}`.
    pub fn sign(&self, claims: &Value) -> String {
        let kid = self.current_kid();
        self.sign_with_header(&kid, &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), claims)
    }

    /// A token signed (RS256) with key `kid` under any header.
    pub fn sign_with_header(&self, kid: &str, header: &Value, claims: &Value) -> String {
        let keys = self.state.keys.lock().unwrap();
        let key = keys.iter().find(|k| k.kid == kid).unwrap_or_else(|| panic!("no key {kid}"));
        sign_rs256(&key.private, header, claims)
    }

    /// A signing key that is not published (for forged tokens).
    pub fn unpublished_key() -> PKey<Private> {
        make_key("unpublished").private
    }
}

/// Signs `header.claims` with RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub fn sign_rs256(key: &PKey<Private>, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).unwrap();
    signer.update(input.as_bytes()).unwrap();
    let sig = signer.sign_to_vec().unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The claims of a typical Firebase ID token for `uid` in `project`, issued `now`.
pub fn id_token_claims(project: &str, uid: &str, email: &str, now: i64) -> Value {
    json!({
        "iss": format!("https://securetoken.google.com/{project}"),
        "aud": project,
        "auth_time": now - 5,
        "user_id": uid,
        "sub": uid,
        "iat": now - 5,
        "exp": now + 3595,
        "email": email,
        "email_verified": true,
        "name": "Signed User",
        "picture": "https://example.com/p.png",
        "firebase": {"identities": {"google.com": ["1098"], "email": [email]}, "sign_in_provider": "google.com"},
    })
}
