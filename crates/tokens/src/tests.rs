//! Tests for key management, the JWKS, and signing and verifying.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::HS256;
use keybridge_core::signer::{JwtSigner, VerifyError};
use keybridge_core::store::{SigningKeyRecord, Store};
use keybridge_core::types::{ConnectorData, KeyId};
use serde_json::{Map, Value, json};

use crate::keys::{PreparedKey, generate_record};
use crate::test_store::TestStore;
use crate::{Algorithm, KeyManager, TokenError};

const NOW: i64 = 1_700_000_000;
const RETAIN: i64 = 3600;
const ALL: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

fn claims() -> Map<String, Value> {
    json!({
        "iss": "https://keybridge.example",
        "sub": "5f2a",
        "aud": ["client-a", "client-b"],
        "iat": NOW,
        "exp": NOW + 300,
        "groups": ["admins", "ünïcödé"],
        "nested": {"a": 1, "b": [true, null]},
    })
    .as_object()
    .unwrap()
    .clone()
}

async fn manager(store: &Arc<TestStore>, alg: Algorithm) -> Arc<KeyManager> {
    KeyManager::load_or_create(store.clone() as Arc<dyn Store>, alg, NOW, RETAIN).await.unwrap()
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn b64_json(v: &Value) -> String {
    b64(&serde_json::to_vec(v).unwrap())
}

fn parts(token: &str) -> (Map<String, Value>, Map<String, Value>, Vec<u8>) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "compact JWS has three parts: {token}");
    for part in &p {
        assert!(!part.contains('='), "no padding");
        assert!(part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "base64url");
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[0]).unwrap()).unwrap();
    let payload = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(p[2]).unwrap();
    (header, payload, sig)
}

fn jwks(km: &KeyManager) -> Vec<Map<String, Value>> {
    let doc: Value = serde_json::from_slice(&km.jwks_json()).unwrap();
    let obj = doc.as_object().unwrap();
    assert_eq!(obj.len(), 1, "only `keys`");
    obj["keys"].as_array().unwrap().iter().map(|k| k.as_object().unwrap().clone()).collect()
}

fn jwks_kids(km: &KeyManager) -> Vec<String> {
    jwks(km).iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

fn invalid(result: Result<Map<String, Value>, VerifyError>) -> String {
    match result {
        Ok(c) => panic!("verified, but should not have: {c:?}"),
        Err(VerifyError::Invalid(msg)) => msg,
    }
}

#[test]
fn algorithm_names_round_trip() {
    for alg in ALL {
        assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
        assert_eq!(alg.to_string(), alg.as_str());
        assert_eq!(serde_json::to_value(alg).unwrap(), json!(alg.as_str()));
    }
    for bad in ["rs256", "none", "HS256", "", "EDDSA", "PS256"] {
        assert!(matches!(bad.parse::<Algorithm>(), Err(TokenError::UnsupportedAlgorithm(_))), "{bad}");
    }
}

#[tokio::test]
async fn sign_verify_round_trip_for_every_algorithm() {
    for alg in ALL {
        let store = Arc::new(TestStore::new());
        let km = manager(&store, alg).await;
        assert_eq!(km.algorithm(), alg.as_str());
        assert_eq!(km.active_algorithm(), alg);

        for typ in ["JWT", "at+jwt"] {
            let token = km.sign(typ, &claims()).unwrap();
            assert_eq!(km.verify(&token, typ).unwrap(), claims(), "{alg} {typ}");
        }

        // A normal compact JWT: header is exactly {alg, kid, typ}, payload the claims as JSON.
        let token = km.sign("JWT", &claims()).unwrap();
        let (header, payload, sig) = parts(&token);
        let order: Vec<&str> = header.keys().map(String::as_str).collect();
        assert_eq!(order, ["alg", "kid", "typ"]);
        assert!(
            token.starts_with(&b64(format!(r#"{{"alg":"{alg}","kid":"{}","typ":"JWT"}}"#, km.active_kid()).as_bytes()))
        );
        assert_eq!(Value::Object(header), json!({"alg": alg.as_str(), "kid": km.active_kid().as_str(), "typ": "JWT"}));
        assert_eq!(payload, claims());
        let expected_sig_len = match alg {
            Algorithm::RS256 => 256,
            Algorithm::ES256 => 64, // raw r || s (RFC 7518 §3.4), not DER
            Algorithm::EdDSA => 64,
        };
        assert_eq!(sig.len(), expected_sig_len, "{alg}");

        // The stored key is PKCS#8 PEM, as promised.
        let records = store.records();
        assert_eq!(records.len(), 1);
        assert!(records[0].private_pem.secret().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(records[0].alg, alg.as_str());
    }
}

#[tokio::test]
async fn empty_claims_and_large_numbers_round_trip() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    let empty = Map::new();
    assert_eq!(km.verify(&km.sign("JWT", &empty).unwrap(), "JWT").unwrap(), empty);
    // Claims josekit's JwtPayload would refuse (negative iat) still sign: Keybridge signs raw JWS.
    let odd = json!({"iat": -1, "n": u64::MAX}).as_object().unwrap().clone();
    assert_eq!(km.verify(&km.sign("JWT", &odd).unwrap(), "JWT").unwrap(), odd);
}

#[tokio::test]
async fn verify_rejects_tampering() {
    for alg in ALL {
        let store = Arc::new(TestStore::new());
        let km = manager(&store, alg).await;
        let token = km.sign("JWT", &claims()).unwrap();
        let p: Vec<&str> = token.split('.').collect();

        // Signature bytes flipped.
        let mut sig = URL_SAFE_NO_PAD.decode(p[2]).unwrap();
        sig[10] ^= 0x01;
        let bad = format!("{}.{}.{}", p[0], p[1], b64(&sig));
        assert_eq!(invalid(km.verify(&bad, "JWT")), "invalid signature", "{alg}");

        // Truncated signature, empty signature.
        let bad = format!("{}.{}.{}", p[0], p[1], b64(&sig[..sig.len() - 1]));
        assert_eq!(invalid(km.verify(&bad, "JWT")), "invalid signature", "{alg}");
        let bad = format!("{}.{}.", p[0], p[1]);
        assert_eq!(invalid(km.verify(&bad, "JWT")), "invalid signature", "{alg}");

        // Payload changed, signature kept.
        let mut evil = claims();
        evil.insert("sub".into(), json!("admin"));
        let bad = format!("{}.{}.{}", p[0], b64_json(&Value::Object(evil)), p[2]);
        assert_eq!(invalid(km.verify(&bad, "JWT")), "invalid signature", "{alg}");
    }
}

#[tokio::test]
async fn verify_rejects_garbage() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::EdDSA).await;
    for bad in ["", ".", "..", "a.b", "a.b.c", "a.b.c.d", "a.b.c.d.e", "ey.ey.ey", "🙂.🙂.🙂"] {
        invalid(km.verify(bad, "JWT"));
    }
    let long = "a".repeat(100_000);
    assert_eq!(invalid(km.verify(&long, "JWT")), "token too long");

    // A correctly signed token whose payload is not a JSON object.
    let key = &km.keys.load().active;
    let header = json!({"typ": "JWT"});
    let header = josekit::jws::JwsHeader::from_map(header.as_object().unwrap().clone()).unwrap();
    let token = josekit::jws::serialize_compact(b"[1,2,3]", &header, &*key.signer).unwrap();
    assert_eq!(invalid(km.verify(&token, "JWT")), "claims are not a JSON object");
}

#[tokio::test]
async fn verify_rejects_wrong_typ() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    let id_token = km.sign("JWT", &claims()).unwrap();
    assert_eq!(invalid(km.verify(&id_token, "at+jwt")), "wrong typ");
    let at = km.sign("at+jwt", &claims()).unwrap();
    assert_eq!(invalid(km.verify(&at, "JWT")), "wrong typ");
    // Exact comparison.
    assert_eq!(invalid(km.verify(&at, "AT+JWT")), "wrong typ");

    // No typ at all.
    let key = &km.keys.load().active;
    let token = josekit::jws::serialize_compact(
        &serde_json::to_vec(&claims()).unwrap(),
        &josekit::jws::JwsHeader::new(),
        &*key.signer,
    )
    .unwrap();
    assert_eq!(invalid(km.verify(&token, "JWT")), "wrong typ");
}

#[tokio::test]
async fn verify_rejects_unknown_or_missing_kid() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::RS256).await;
    let token = km.sign("JWT", &claims()).unwrap();
    let p: Vec<&str> = token.split('.').collect();

    let header = json!({"alg": "RS256", "kid": "no-such-key", "typ": "JWT"});
    let bad = format!("{}.{}.{}", b64_json(&header), p[1], p[2]);
    assert_eq!(invalid(km.verify(&bad, "JWT")), "unknown kid");

    let header = json!({"alg": "RS256", "typ": "JWT"});
    let bad = format!("{}.{}.{}", b64_json(&header), p[1], p[2]);
    assert_eq!(invalid(km.verify(&bad, "JWT")), "missing kid");

    // A non-string kid is malformed.
    let header = json!({"alg": "RS256", "kid": 7, "typ": "JWT"});
    let bad = format!("{}.{}.{}", b64_json(&header), p[1], p[2]);
    invalid(km.verify(&bad, "JWT"));
}

#[tokio::test]
async fn verify_rejects_alg_none_and_alg_confusion() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::RS256).await;
    let kid = km.active_kid();
    let payload = b64_json(&Value::Object(claims()));

    // alg "none", with and without a signature part.
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": kid.as_str(), "typ": "JWT"});
        let unsigned = format!("{}.{}.", b64_json(&header), payload);
        assert_eq!(invalid(km.verify(&unsigned, "JWT")), "alg does not match the key");
    }
    let header = json!({"kid": kid.as_str(), "typ": "JWT"});
    assert_eq!(invalid(km.verify(&format!("{}.{}.", b64_json(&header), payload), "JWT")), "alg does not match the key");

    // HS256 keyed with the published public key (the classic confusion attack).
    let jwk = &jwks(&km)[0];
    for secret in [serde_json::to_vec(jwk).unwrap(), URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap()] {
        let mut signer = HS256.signer_from_bytes(&secret).unwrap();
        signer.set_key_id(kid.as_str());
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type("JWT");
        let forged =
            josekit::jws::serialize_compact(&serde_json::to_vec(&claims()).unwrap(), &header, &signer).unwrap();
        assert_eq!(Value::Object(parts(&forged).0), json!({"alg": "HS256", "kid": kid.as_str(), "typ": "JWT"}));
        assert_eq!(invalid(km.verify(&forged, "JWT")), "alg does not match the key");
    }

    // A real signature, but the header names another asymmetric alg.
    let token = km.sign("JWT", &claims()).unwrap();
    let p: Vec<&str> = token.split('.').collect();
    for alg in ["ES256", "PS256", "RS512", "EdDSA"] {
        let header = json!({"alg": alg, "kid": kid.as_str(), "typ": "JWT"});
        let bad = format!("{}.{}.{}", b64_json(&header), p[1], p[2]);
        assert_eq!(invalid(km.verify(&bad, "JWT")), "alg does not match the key");
    }
}

#[tokio::test]
async fn verify_rejects_unsupported_crit() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    let key = &km.keys.load().active;
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type("JWT");
    header.set_critical(&vec!["exp"]);
    header.set_claim("exp", Some(json!(1))).unwrap();
    let token =
        josekit::jws::serialize_compact(&serde_json::to_vec(&claims()).unwrap(), &header, &*key.signer).unwrap();
    assert_eq!(invalid(km.verify(&token, "JWT")), "invalid token");
}

#[tokio::test]
async fn verify_rejects_tokens_from_keys_not_in_the_store() {
    for alg in ALL {
        let store_a = Arc::new(TestStore::new());
        let store_b = Arc::new(TestStore::new());
        let a = manager(&store_a, alg).await;
        let b = manager(&store_b, alg).await;
        let foreign = b.sign("JWT", &claims()).unwrap();
        assert_eq!(invalid(a.verify(&foreign, "JWT")), "unknown kid", "{alg}");

        // Same kid as a's key, different key material: the signature must fail.
        let other = generate_record(alg, NOW).await.unwrap();
        let impostor = PreparedKey::from_pem(&a.active_kid(), alg, other.private_pem.secret().as_bytes()).unwrap();
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type("JWT");
        let forged =
            josekit::jws::serialize_compact(&serde_json::to_vec(&claims()).unwrap(), &header, &*impostor.signer)
                .unwrap();
        assert_eq!(parts(&forged).0["kid"], json!(a.active_kid().as_str()));
        assert_eq!(invalid(a.verify(&forged, "JWT")), "invalid signature", "{alg}");
    }
}

#[tokio::test]
async fn jwks_has_only_public_members() {
    for alg in ALL {
        let store = Arc::new(TestStore::new());
        let km = manager(&store, alg).await;
        let keys = jwks(&km);
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            assert!(!k.contains_key(private), "{alg}: {private} in {k:?}");
        }
        assert_eq!(k["kid"], json!(km.active_kid().as_str()));
        assert_eq!(k["alg"], json!(alg.as_str()));
        assert_eq!(k["use"], json!("sig"));
        let members: BTreeSet<&str> = k.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = match alg {
            Algorithm::RS256 => ["kty", "kid", "alg", "use", "n", "e"].into(),
            Algorithm::ES256 => ["kty", "kid", "alg", "use", "crv", "x", "y"].into(),
            Algorithm::EdDSA => ["kty", "kid", "alg", "use", "crv", "x"].into(),
        };
        assert_eq!(members, expected, "{alg}");
        match alg {
            Algorithm::RS256 => {
                assert_eq!(k["kty"], "RSA");
                assert_eq!(URL_SAFE_NO_PAD.decode(k["n"].as_str().unwrap()).unwrap().len(), 256);
            }
            Algorithm::ES256 => {
                assert_eq!(k["kty"], "EC");
                assert_eq!(k["crv"], "P-256");
            }
            Algorithm::EdDSA => {
                assert_eq!(k["kty"], "OKP");
                assert_eq!(k["crv"], "Ed25519");
            }
        }
        // The published JWK verifies our tokens with an independent josekit verifier.
        let jwk = josekit::jwk::Jwk::from_map(k.clone()).unwrap();
        let token = km.sign("JWT", &claims()).unwrap();
        let verifier: Box<dyn josekit::jws::JwsVerifier> = match alg {
            Algorithm::RS256 => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()),
            Algorithm::ES256 => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
            Algorithm::EdDSA => Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jwk).unwrap()),
        };
        let (payload, header) = josekit::jwt::decode_with_verifier(&token, &*verifier).unwrap();
        assert_eq!(header.token_type(), Some("JWT"));
        assert_eq!(payload.claims_set(), &claims());
        // Cheap to clone: the same allocation.
        assert!(Arc::ptr_eq(&km.jwks_json(), &km.jwks_json()));
    }
}

#[tokio::test]
async fn rotate_keeps_the_old_key_published() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    let old_kid = km.active_kid();
    let old_token = km.sign("JWT", &claims()).unwrap();

    let new_kid = km.rotate(NOW + 10).await.unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(km.active_kid(), new_kid);
    assert_eq!(jwks_kids(&km), vec![new_kid.as_str().to_string(), old_kid.as_str().to_string()], "active first");

    assert_eq!(km.verify(&old_token, "JWT").unwrap(), claims());
    let new_token = km.sign("JWT", &claims()).unwrap();
    assert_eq!(parts(&new_token).0["kid"], json!(new_kid.as_str()));
    assert_eq!(km.verify(&new_token, "JWT").unwrap(), claims());

    let infos = km.keys();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].kid, new_kid);
    assert!(infos[0].active && infos[0].published);
    assert_eq!((infos[0].retired_at, infos[0].expires_at), (None, None));
    assert_eq!(infos[1].kid, old_kid);
    assert!(!infos[1].active && infos[1].published);
    assert_eq!(infos[1].retired_at, Some(NOW + 10));
    assert_eq!(infos[1].expires_at, Some(NOW + 10 + RETAIN));
    assert_eq!(infos[1].alg, "ES256");
    assert_eq!(infos[1].created_at, NOW);
    assert_eq!(store.rotations.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn expired_keys_leave_the_jwks() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::EdDSA).await;
    let k1 = km.active_kid();
    let t1 = km.sign("JWT", &claims()).unwrap();

    let k2 = km.rotate(NOW + 100).await.unwrap(); // k1 expires at NOW + 100 + RETAIN
    let t2 = km.sign("JWT", &claims()).unwrap();
    km.reload_at(NOW + 100 + RETAIN - 1).await.unwrap();
    assert_eq!(jwks_kids(&km), vec![k2.as_str().to_string(), k1.as_str().to_string()]);
    km.verify(&t1, "JWT").unwrap();

    // Reload at the expiry instant: k1 goes.
    km.reload_at(NOW + 100 + RETAIN).await.unwrap();
    assert_eq!(jwks_kids(&km), vec![k2.as_str().to_string()]);
    assert_eq!(invalid(km.verify(&t1, "JWT")), "unknown kid");
    km.verify(&t2, "JWT").unwrap();
    // Still listed (it is still stored), but not published.
    let info = km.keys().into_iter().find(|i| i.kid == k1).unwrap();
    assert!(!info.published && !info.active);

    // A rotation at a later time drops k2 once it too has expired.
    let t3 = NOW + 100 + RETAIN + 10;
    let k3 = km.rotate(t3).await.unwrap(); // k2 expires at t3 + RETAIN
    assert_eq!(jwks_kids(&km), vec![k3.as_str().to_string(), k2.as_str().to_string()]);
    let k4 = km.rotate(t3 + RETAIN).await.unwrap();
    assert_eq!(jwks_kids(&km), vec![k4.as_str().to_string(), k3.as_str().to_string()]);
    assert_eq!(km.keys().len(), 4);

    // reload() uses the system clock, which is well past these times.
    km.reload().await.unwrap();
    assert_eq!(jwks_kids(&km), vec![k4.as_str().to_string()]);
}

#[tokio::test]
async fn load_or_create_reuses_the_stored_key() {
    for alg in ALL {
        let store = Arc::new(TestStore::new());
        let a = manager(&store, alg).await;
        let b = KeyManager::load_or_create(store.clone() as Arc<dyn Store>, alg, NOW + 50, RETAIN).await.unwrap();
        assert_eq!(a.active_kid(), b.active_kid());
        assert_eq!(store.records().len(), 1);
        assert_eq!(store.rotations.load(Ordering::SeqCst), 1);
        assert_eq!(&*a.jwks_json(), &*b.jwks_json());
        // Each replica verifies the other's tokens.
        b.verify(&a.sign("JWT", &claims()).unwrap(), "JWT").unwrap();
        a.verify(&b.sign("at+jwt", &claims()).unwrap(), "at+jwt").unwrap();
    }
}

#[tokio::test]
async fn switching_algorithm_creates_a_new_key_and_retires_the_old() {
    let store = Arc::new(TestStore::new());
    let rsa = manager(&store, Algorithm::RS256).await;
    let rsa_kid = rsa.active_kid();
    let rsa_token = rsa.sign("JWT", &claims()).unwrap();

    let ec =
        KeyManager::load_or_create(store.clone() as Arc<dyn Store>, Algorithm::ES256, NOW + 60, RETAIN).await.unwrap();
    assert_ne!(ec.active_kid(), rsa_kid);
    assert_eq!(ec.algorithm(), "ES256");
    assert_eq!(jwks_kids(&ec), vec![ec.active_kid().as_str().to_string(), rsa_kid.as_str().to_string()]);
    assert_eq!(ec.verify(&rsa_token, "JWT").unwrap(), claims());
    let old = ec.keys().into_iter().find(|k| k.kid == rsa_kid).unwrap();
    assert_eq!((old.alg.as_str(), old.retired_at, old.expires_at), ("RS256", Some(NOW + 60), Some(NOW + 60 + RETAIN)));

    // The RSA replica picks the switch up on reload, and signs with the new key from then on.
    let ec_token = ec.sign("JWT", &claims()).unwrap();
    assert_eq!(invalid(rsa.verify(&ec_token, "JWT")), "unknown kid");
    rsa.reload_at(NOW + 61).await.unwrap();
    rsa.verify(&ec_token, "JWT").unwrap();
    assert_eq!(rsa.active_kid(), ec.active_kid());
    assert_eq!(rsa.algorithm(), "ES256");
}

#[tokio::test]
async fn load_or_create_conflict_uses_the_winner() {
    let store = Arc::new(TestStore::new());
    let winner = generate_record(Algorithm::EdDSA, NOW).await.unwrap();
    store.race_next_rotation(winner.clone());

    let km = manager(&store, Algorithm::EdDSA).await;
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 1);
    assert_eq!(km.active_kid(), winner.kid);
    assert_eq!(store.records().len(), 1, "our key was never stored");
    assert_eq!(jwks_kids(&km), vec![winner.kid.as_str().to_string()]);
    let token = km.sign("JWT", &claims()).unwrap();
    assert_eq!(parts(&token).0["kid"], json!(winner.kid.as_str()));

    // Same while switching algorithms: the winner (which switched too) is used.
    let winner2 = generate_record(Algorithm::RS256, NOW + 5).await.unwrap();
    store.race_next_rotation(winner2.clone());
    let km2 =
        KeyManager::load_or_create(store.clone() as Arc<dyn Store>, Algorithm::RS256, NOW + 5, RETAIN).await.unwrap();
    assert_eq!(km2.active_kid(), winner2.kid);
    assert_eq!(jwks_kids(&km2), vec![winner2.kid.as_str().to_string(), winner.kid.as_str().to_string()]);
    km2.verify(&token, "JWT").unwrap();

    // A winner of another algorithm is still used (with a warning).
    let winner3 = generate_record(Algorithm::ES256, NOW + 6).await.unwrap();
    store.race_next_rotation(winner3.clone());
    let km3 =
        KeyManager::load_or_create(store.clone() as Arc<dyn Store>, Algorithm::EdDSA, NOW + 6, RETAIN).await.unwrap();
    assert_eq!(km3.active_kid(), winner3.kid);
    assert_eq!(km3.algorithm(), "ES256");
}

#[tokio::test]
async fn rotate_retries_after_a_conflict() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    let first = km.active_kid();
    let winner = generate_record(Algorithm::ES256, NOW + 1).await.unwrap();
    store.race_next_rotation(winner.clone());

    let ours = km.rotate(NOW + 1).await.unwrap();
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 1);
    assert_ne!(ours, winner.kid);
    assert_eq!(km.active_kid(), ours);
    assert_eq!(
        jwks_kids(&km),
        vec![ours.as_str().to_string(), winner.kid.as_str().to_string(), first.as_str().to_string()]
    );
}

#[tokio::test]
async fn reload_picks_up_another_replicas_rotation() {
    let store = Arc::new(TestStore::new());
    let a = manager(&store, Algorithm::RS256).await;
    let b = manager(&store, Algorithm::RS256).await;
    let old = Arc::clone(&b.keys.load().active);
    let new = a.rotate(NOW + 30).await.unwrap();
    assert_ne!(b.active_kid(), new);
    b.reload_at(NOW + 30).await.unwrap();
    assert_eq!(b.active_kid(), new);
    assert_eq!(&*a.jwks_json(), &*b.jwks_json());
    // b reused its parsed copy of the old key rather than parsing it again.
    assert!(Arc::ptr_eq(&old, &b.keys.load().published[old.kid.as_str()]));
    a.verify(&b.sign("JWT", &claims()).unwrap(), "JWT").unwrap();
}

#[tokio::test]
async fn unusable_retired_keys_are_skipped_but_a_broken_active_key_is_an_error() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    store.insert_raw(SigningKeyRecord {
        kid: KeyId::new("broken"),
        alg: "ES256".into(),
        private_pem: ConnectorData::new("not a pem"),
        created_at: NOW - 10,
        retired_at: Some(NOW - 5),
        expires_at: Some(NOW + 1000),
    });
    store.insert_raw(SigningKeyRecord {
        kid: KeyId::new("hmac"),
        alg: "HS256".into(),
        private_pem: ConnectorData::new("secret"),
        created_at: NOW - 10,
        retired_at: Some(NOW - 5),
        expires_at: Some(NOW + 1000),
    });
    // An ES256 record holding an RSA key.
    let rsa = generate_record(Algorithm::RS256, NOW).await.unwrap();
    store.insert_raw(SigningKeyRecord {
        kid: KeyId::new("mislabelled"),
        alg: "ES256".into(),
        retired_at: Some(NOW - 5),
        expires_at: Some(NOW + 1000),
        ..rsa
    });
    km.reload_at(NOW).await.unwrap();
    assert_eq!(jwks_kids(&km), vec![km.active_kid().as_str().to_string()]);
    assert_eq!(km.keys().len(), 4);

    let broken = Arc::new(TestStore::new());
    broken.insert_raw(SigningKeyRecord {
        kid: KeyId::new("broken"),
        alg: "EdDSA".into(),
        private_pem: ConnectorData::new("not a pem"),
        created_at: NOW,
        retired_at: None,
        expires_at: None,
    });
    let err = KeyManager::load_or_create(broken as Arc<dyn Store>, Algorithm::EdDSA, NOW, RETAIN).await.unwrap_err();
    assert!(matches!(err, TokenError::Crypto(_)), "{err:?}");
}

#[tokio::test]
async fn debug_output_has_no_private_key() {
    let store = Arc::new(TestStore::new());
    let km = manager(&store, Algorithm::ES256).await;
    let dbg = format!("{km:?} {:?} {:?}", km.keys(), store.records());
    assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
    assert!(dbg.contains(km.active_kid().as_str()));
}

fn header_kid(token: &str) -> String {
    parts(token).0["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_new_key_is_published_before_it_signs() {
    let store = Arc::new(TestStore::default());
    let opts = crate::KeyOptions { publish_delay: 300, ..crate::KeyOptions::new(Algorithm::ES256, RETAIN) };
    let km = KeyManager::load_or_create_with(store.clone() as Arc<dyn Store>, opts, NOW).await.unwrap();
    let first = km.active_kid();
    // The very first key signs at once: there is nothing to overlap with.
    assert_eq!(header_kid(&km.sign("JWT", &claims()).unwrap()), first.as_str());
    let new = km.rotate(NOW + 10).await.unwrap();
    assert!(jwks_kids(&km).contains(&new.as_str().to_owned()), "published at once");
    assert_eq!(header_kid(&km.sign("JWT", &claims()).unwrap()), first.as_str(), "the old key signs during the delay");
    km.reload_at(NOW + 10 + 300).await.unwrap();
    let token = km.sign("JWT", &claims()).unwrap();
    assert_eq!(header_kid(&token), new.as_str(), "the new key signs after the delay");
    // The old key outlives the delay plus every token it signed.
    let old = store.list_signing_keys().await.unwrap().into_iter().find(|k| k.kid == first).unwrap();
    assert_eq!(old.expires_at, Some(NOW + 10 + 300 + RETAIN));
}

#[tokio::test]
async fn private_keys_are_sealed_at_rest() {
    let store = Arc::new(TestStore::default());
    let sealer = Arc::new(crate::Sealer::new(Some([3u8; 32]), vec![]));
    let opts = crate::KeyOptions { sealer: sealer.clone(), ..crate::KeyOptions::new(Algorithm::RS256, RETAIN) };
    let km = KeyManager::load_or_create_with(store.clone() as Arc<dyn Store>, opts.clone(), NOW).await.unwrap();
    let stored = store.list_signing_keys().await.unwrap();
    assert!(
        stored
            .iter()
            .all(|k| k.private_pem.secret().starts_with("kbenc1:") && !k.private_pem.secret().contains("PRIVATE"))
    );
    let token = km.sign("JWT", &claims()).unwrap();
    // Another replica with the same encryption key loads and verifies.
    let other = KeyManager::load_or_create_with(store.clone() as Arc<dyn Store>, opts, NOW).await.unwrap();
    assert!(other.verify(&token, "JWT").is_ok());
    // Without it, loading fails loudly instead of minting a second active key.
    let err =
        KeyManager::load_or_create(store.clone() as Arc<dyn Store>, Algorithm::RS256, NOW, RETAIN).await.unwrap_err();
    assert!(err.to_string().contains("not configured"), "{err}");
}
