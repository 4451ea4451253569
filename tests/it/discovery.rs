//! Discovery (OIDC and RFC 8414) and the JWKS.

use keybridge_testkit::spawn_app;
use serde_json::Value;

#[tokio::test]
async fn both_metadata_documents_carry_the_exact_issuer_and_only_what_works() {
    let app = spawn_app().await;
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json");
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["issuer"], app.issuer.as_str(), "{path}");
        assert_eq!(doc["authorization_endpoint"], app.url("/authorize"));
        assert_eq!(doc["token_endpoint"], app.url("/token"));
        assert_eq!(doc["userinfo_endpoint"], app.url("/userinfo"));
        assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(doc["grant_types_supported"], serde_json::json!(["authorization_code", "refresh_token"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        // The test config has a public client, so `none` is advertised too.
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    }
}

#[tokio::test]
async fn jwks_has_public_keys_with_kid_and_alg_and_a_cache_lifetime() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cc = res.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cc.contains("max-age="), "{cc}");
    let jwks: Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for k in keys {
        assert!(k["kid"].is_string());
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "private member {private} published");
        }
    }
}

#[tokio::test]
async fn healthz_answers() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
