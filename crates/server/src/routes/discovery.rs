//! OpenID Connect Discovery 1.0 and RFC 8414 metadata, and the JWKS. All pre-serialised: they
//! change only when keys rotate.

use actix_web::{HttpResponse, web};
use keybridge_core::grants::GRANT_TYPES;
use keybridge_core::provider::Provider;
use keybridge_core::scope::STANDARD_SCOPES;
use serde_json::json;

use crate::app::AppState;

/// The JWKS path below the issuer.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Builds the metadata document, advertising only what works.
pub fn document(p: &Provider, alg: &str, any_public_client: bool) -> Vec<u8> {
    let iss = &p.settings.issuer;
    let mut auth_methods = vec!["client_secret_basic", "client_secret_post"];
    if any_public_client {
        auth_methods.push("none");
    }
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}{JWKS_PATH}"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "userinfo_signing_alg_values_supported": ["none"],
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid",
            "email", "email_verified", "name", "preferred_username", "picture", "groups"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    });
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

/// Routes below the issuer path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/openid-configuration", web::get().to(metadata));
    cfg.route(JWKS_PATH, web::get().to(jwks));
}

/// RFC 8414 §3: the metadata URL inserts `/.well-known/oauth-authorization-server` before the
/// issuer's path.
pub fn configure_root(cfg: &mut web::ServiceConfig, base: &str) {
    cfg.route(&format!("/.well-known/oauth-authorization-server{base}"), web::get().to(metadata));
}

async fn metadata(st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(st.discovery.clone())
}

async fn jwks(st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(web::Bytes::copy_from_slice(&st.keys.jwks_json()))
}
