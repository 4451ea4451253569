//! Config validation and the claim checks, on emulator-style unsigned tokens (no network).
//! Signed tokens against a fake of Google's certificate endpoint, and the real emulator, are in
//! `tests/it/firebase.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_core::clock::FixedClock;
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_800_000_000;

fn config(yaml: Value) -> Config {
    serde_json::from_value(yaml).unwrap()
}

fn emulator_config() -> Value {
    json!({
        "project_id": "demo-keybridge",
        "api_key": "fake-api-key",
        "password": true,
        "emulator": true,
        "identity_toolkit_url": "http://127.0.0.1:9099/identitytoolkit.googleapis.com",
        "securetoken_url": "http://127.0.0.1:9099/securetoken.googleapis.com",
    })
}

fn open(v: Value) -> FirebaseConnector {
    FirebaseConnector::open(config(v)).unwrap().with_clock(Arc::new(FixedClock::new(NOW)))
}

fn problems(v: Value) -> Vec<String> {
    FirebaseConnector::open(config(v)).unwrap_err()
}

fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    )
}

fn claims() -> Value {
    json!({
        "iss": "https://securetoken.google.com/demo-keybridge",
        "aud": "demo-keybridge",
        "sub": "uid-1",
        "user_id": "uid-1",
        "iat": NOW - 10,
        "auth_time": NOW - 10,
        "exp": NOW + 3590,
        "email": "ann@example.com",
        "email_verified": true,
        "name": "Ann",
        "firebase": {"sign_in_provider": "password", "identities": {"email": ["ann@example.com"]}},
    })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c.as_object_mut().unwrap().insert(key.into(), v);
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

#[tokio::test]
async fn emulator_mode_accepts_unsigned_tokens_and_maps_claims() {
    let c = open(emulator_config());
    let v = c.verify_id_token(&unsigned(&claims())).await.unwrap();
    assert_eq!(v.uid, "uid-1");
    assert_eq!(v.claims.email.as_deref(), Some("ann@example.com"));
    assert!(v.claims.email_verified);
    assert_eq!(v.claims.name.as_deref(), Some("Ann"));
    assert_eq!(v.sign_in_provider.as_deref(), Some("password"));
    let unverified = c.verify_id_token(&unsigned(&with(claims(), "email_verified", json!(false)))).await.unwrap();
    assert!(!unverified.claims.email_verified);
}

#[tokio::test]
async fn every_claim_is_still_checked_in_emulator_mode() {
    let c = open(emulator_config());
    let cases = [
        (with(claims(), "exp", json!(NOW - 31)), "expired"),
        (with(claims(), "aud", json!("other-project")), "audience"),
        (with(claims(), "aud", json!(["demo-keybridge"])), "single string"),
        (with(claims(), "iss", json!("https://securetoken.google.com/other-project")), "issuer"),
        (with(claims(), "iat", json!(NOW + 120)), "future"),
        (without(claims(), "iat"), "no iat"),
        (with(claims(), "auth_time", json!(NOW + 120)), "auth_time"),
        (without(claims(), "auth_time"), "no auth_time"),
        (with(claims(), "sub", json!("")), "subject"),
        (with(claims(), "sub", json!("x".repeat(129))), "128"),
        (
            with(
                claims(),
                "aud",
                json!("https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"),
            ),
            "custom token",
        ),
    ];
    for (cl, why) in cases {
        match c.verify_id_token(&unsigned(&cl)).await {
            Err(ConnectorError::InvalidResponse(m)) => assert!(m.contains(why), "{why:?} not in {m:?}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    // Small skew is tolerated.
    assert!(c.verify_id_token(&unsigned(&with(claims(), "exp", json!(NOW - 5)))).await.is_ok());
    // An "unsigned" token that carries a signature is not the emulator's.
    let signed_none = format!("{}c2lnbmF0dXJl", unsigned(&claims()));
    assert!(matches!(c.verify_id_token(&signed_none).await, Err(ConnectorError::InvalidResponse(_))));
}

#[tokio::test]
async fn alg_none_is_refused_outside_emulator_mode() {
    let mut cfg = emulator_config();
    cfg["emulator"] = json!(false);
    let c = open(cfg);
    match c.verify_id_token(&unsigned(&claims())).await {
        Err(ConnectorError::InvalidResponse(m)) => assert!(m.contains("alg none"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Case games do not help.
    let upper = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"NONE"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
    );
    assert!(c.verify_id_token(&upper).await.is_err());
}

#[tokio::test]
async fn the_sign_in_provider_allow_list_is_enforced() {
    let mut cfg = emulator_config();
    cfg["allowed_sign_in_providers"] = json!(["password", "google.com"]);
    let c = open(cfg);
    assert!(c.verify_id_token(&unsigned(&claims())).await.is_ok());
    let gh = with(claims(), "firebase", json!({"sign_in_provider": "github.com"}));
    match c.verify_id_token(&unsigned(&gh)).await {
        Err(ConnectorError::Denied(m)) => assert!(m.contains("GitHub"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.verify_id_token(&unsigned(&without(claims(), "firebase"))).await,
        Err(ConnectorError::Denied(_))
    ));
}

#[tokio::test]
async fn by_default_only_the_offered_ways_in_are_accepted() {
    // password: true and no hand-off: password tokens only.
    let c = open(emulator_config());
    for provider in ["anonymous", "custom", "phone", "google.com"] {
        let t = with(claims(), "firebase", json!({"sign_in_provider": provider}));
        assert!(matches!(c.verify_id_token(&unsigned(&t)).await, Err(ConnectorError::Denied(_))), "{provider}");
    }
    // With a hand-off for Google, Google tokens too.
    let mut cfg = emulator_config();
    cfg["handoff"] = json!({"providers": ["google.com"]});
    let c = open(cfg);
    let g = with(claims(), "firebase", json!({"sign_in_provider": "google.com"}));
    assert!(c.verify_id_token(&unsigned(&g)).await.is_ok());
    assert!(c.verify_id_token(&unsigned(&claims())).await.is_ok());
    // Identity Platform tenants have their own uid spaces: refused.
    let t = with(claims(), "firebase", json!({"sign_in_provider": "password", "tenant": "t-1"}));
    match c.verify_id_token(&unsigned(&t)).await {
        Err(ConnectorError::Denied(m)) => assert!(m.contains("tenant"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn emulator_mode_needs_loopback_hosts() {
    let mut cfg = emulator_config();
    cfg["identity_toolkit_url"] = json!("https://identitytoolkit.googleapis.com");
    let p = problems(cfg.clone());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("emulator: ") && p[0].contains("identity_toolkit_url"), "{p:?}");
    // The defaults are Google's hosts, so emulator mode must name its URLs.
    let p = problems(json!({"project_id": "demo-x", "api_key": "k", "password": true, "emulator": true}));
    assert_eq!(p.len(), 2, "{p:?}");
    cfg["identity_toolkit_url"] = json!("http://localhost:9099/identitytoolkit.googleapis.com");
    cfg["securetoken_url"] = json!("http://[::1]:9099/securetoken.googleapis.com");
    assert!(FirebaseConnector::open(config(cfg)).unwrap().emulator());
}

#[test]
fn bad_configs_list_every_problem() {
    let p = problems(json!({
        "project_id": "My Project",
        "api_key": "k",
        "api_key_env": "SOME_VAR",
        "identity_toolkit_url": "http://identitytoolkit.example.com",
        "securetoken_url": "https://securetoken.googleapis.com/v1",
        "allowed_sign_in_providers": ["google.com", "myspace.com"],
        "password": true,
        "handoff": {
            "sdk_url": "https://cdn.example/firebase-app-compat.js",
            "auth_domain": "x.firebaseapp.com",
            "providers": ["github.com", "phone"],
        },
        "timeout": "5m",
    }));
    let expect = [
        "project_id:",
        "api_key: set either",
        "identity_toolkit_url: \"http://identitytoolkit.example.com\" must use https",
        "securetoken_url: \"https://securetoken.googleapis.com/v1\" ends with /v1",
        "allowed_sign_in_providers[1]:",
        "allowed_sign_in_providers: password: true needs",
        "handoff.sdk_url:",
        "handoff.providers[0]: \"github.com\" is not in allowed_sign_in_providers",
        "handoff.providers[1]: \"phone\" is not a provider",
        "timeout:",
    ];
    assert_eq!(p.len(), expect.len(), "{p:#?}");
    for (got, want) in p.iter().zip(expect) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    let p = problems(json!({"project_id": "p"}));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("api_key: required"));
    assert!(p[1].starts_with("password: no sign-in method"));
}

#[test]
fn the_handoff_page_names_the_sdk_and_origins_and_carries_no_secret() {
    let c = Arc::new(
        FirebaseConnector::open(config(json!({
            "project_id": "my-project",
            "api_key": "AIza-public-web-key",
            "handoff": {"providers": ["google.com", "oidc.corp"]},
            "refresh_upstream": true,
        })))
        .unwrap(),
    );
    let conn = c.connector("fb", "Firebase");
    assert!(conn.password.is_none() && conn.handoff.is_some() && conn.refresher.is_some());
    let page = c.page();
    assert_eq!(
        page.scripts,
        vec![
            format!("{DEFAULT_SDK_URL}/firebase-app-compat.js"),
            format!("{DEFAULT_SDK_URL}/firebase-auth-compat.js"),
            GAPI_SCRIPT_URL.to_owned(),
        ]
    );
    assert_eq!(
        page.origins,
        vec![
            "https://identitytoolkit.googleapis.com",
            "https://securetoken.googleapis.com",
            "https://my-project.firebaseapp.com"
        ]
    );
    assert_eq!(page.config["authDomain"], "my-project.firebaseapp.com");
    assert_eq!(page.config["providers"][0]["label"], "Continue with Google");
    assert_eq!(page.config["providers"][1]["id"], "oidc.corp");
    assert!(page.config.get("emulatorUrl").is_none());
    assert!(!page.glue_js.is_empty() && !page.glue_js.contains("<script"));
    assert!(!format!("{c:?}").contains("AIza"), "the API key stays out of Debug");
}

#[tokio::test]
async fn handoff_without_refresh_upstream_needs_only_the_id_token() {
    let mut cfg = emulator_config();
    cfg["handoff"] = json!({"providers": ["google.com"]});
    let c = open(cfg);
    let g = with(claims(), "firebase", json!({"sign_in_provider": "google.com"}));
    let id = c.verify(&Scopes::default(), &unsigned(&g)).await.unwrap();
    assert_eq!(id.upstream_id, "uid-1");
    assert!(id.connector_data.is_none());
    let wrapped = json!({"idToken": unsigned(&g), "refreshToken": "rt"}).to_string();
    assert_eq!(c.verify(&Scopes::default(), &wrapped).await.unwrap().upstream_id, "uid-1");
    assert!(c.verify(&Scopes::default(), "{not json").await.is_err());
    assert!(c.page().config["emulatorUrl"] == "http://127.0.0.1:9099");
}
