//! Stable subjects and account linking: switching providers keeps each person's `sub`.

use std::sync::Arc;

use keybridge_core::store::Store;
use keybridge_testkit::{
    GPT_CLIENT, GPT_REDIRECT, Options, TestApp, password_hash, query_param, spawn_app_with, yaml_with_connectors,
};
use serde_json::Value;

const EMAIL: &str = "alice@example.com";

/// A `local` connector standing in for an upstream provider: one user, `alice`, with this
/// provider's own user id, password and email verification.
fn provider(id: &str, upstream_id: &str, password: &str, verified: bool, policy: &str) -> String {
    format!(
        "  - id: {id}\n    type: local\n    name: {id}\n{policy}    config:\n      users:\n        - email: {EMAIL}\n          id: {upstream_id}\n          password_hash: \"{}\"\n          email_verified: {verified}\n",
        password_hash(password)
    )
}

async fn app(store: Arc<dyn Store>, connectors: String) -> TestApp {
    spawn_app_with(Options {
        yaml: Some(Box::new(move |iss, listen| yaml_with_connectors(iss, listen, &connectors))),
        store: Some(store),
        ..Default::default()
    })
    .await
}

/// Logs in through `connector` and redeems the code; returns the token response.
async fn login(app: &TestApp, connector: &str, password: &str) -> Value {
    let redirect = app
        .authorize_and_login(
            &[
                ("response_type", "code"),
                ("client_id", GPT_CLIENT),
                ("redirect_uri", GPT_REDIRECT),
                ("state", "s"),
                ("scope", "openid email"),
                ("connector_id", connector),
            ],
            (EMAIL, password),
        )
        .await;
    app.redeem_gpt_code(&query_param(&redirect, "code").unwrap()).await
}

fn sub(tokens: &Value) -> String {
    crate::jwt_claims(tokens["access_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn switching_providers_across_a_restart_keeps_the_sub_and_the_refresh_token() {
    // Each broker process has its own pool on the one database.
    let db = keybridge_testkit::pg::test_database().await;
    let pool = || -> Arc<dyn Store> { Arc::new(keybridge_store_postgres::PgStore::connect(&db, 4).unwrap()) };
    // Before: the team runs on provider A.
    let before = app(pool(), provider("supabase", "sb-111", "pw-a", true, "")).await;
    let t1 = login(&before, "supabase", "pw-a").await;
    let s = sub(&t1);
    assert!(!s.contains("sb-111"), "sub reveals no upstream id");
    drop(before);
    // After: the config switches to provider B, and the broker restarts on the same database.
    let store = pool();
    let after = app(store.clone(), provider("clerk", "user_2abc", "pw-b", true, "")).await;
    let t2 = login(&after, "clerk", "pw-b").await;
    assert_eq!(sub(&t2), s, "the same person keeps the same sub");
    // The refresh token issued through A keeps working, from the stored identity.
    let res =
        after.token(&[("grant_type", "refresh_token"), ("refresh_token", t1["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(res.status(), 200);
    let t3: Value = res.json().await.unwrap();
    assert_eq!(sub(&t3), s);
    // Both identities now belong to one user.
    let links = store.list_links(&keybridge_core::types::Subject::new(&s)).await.unwrap();
    assert_eq!(links.iter().map(|l| l.connector_id.as_str()).collect::<Vec<_>>(), vec!["clerk", "supabase"]);
}

#[tokio::test]
async fn an_unverified_email_never_links() {
    let store: Arc<dyn Store> = Arc::new(keybridge_store::MemoryStore::new());
    let connectors = format!("{}{}", provider("a", "a-1", "pw-a", true, ""), provider("b", "b-1", "pw-b", false, ""));
    let app = app(store.clone(), connectors).await;
    let s = sub(&login(&app, "a", "pw-a").await);
    // Same email, but provider B does not vouch for it: a new user, not Alice's account.
    let other = sub(&login(&app, "b", "pw-b").await);
    assert_ne!(other, s, "an unverified email must not take over an account");
}

#[tokio::test]
async fn an_unverified_email_conflict_can_be_refused_with_a_page() {
    let store: Arc<dyn Store> = Arc::new(keybridge_store::MemoryStore::new());
    let connectors = format!(
        "{}{}",
        provider("a", "a-1", "pw-a", true, ""),
        provider("b", "b-1", "pw-b", false, "    on_email_conflict: deny\n")
    );
    let app = app(store, connectors).await;
    login(&app, "a", "pw-a").await;
    let browser = app.browser();
    let form = browser
        .open_login_form(&[
            ("response_type", "code"),
            ("client_id", GPT_CLIENT),
            ("redirect_uri", GPT_REDIRECT),
            ("state", "s"),
            ("connector_id", "b"),
        ])
        .await;
    let res = browser.submit(&form, (EMAIL, "pw-b")).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("An account with this email address already exists"));
}

#[tokio::test]
async fn link_by_none_always_makes_a_new_user_and_trust_email_links_without_the_flag() {
    let store: Arc<dyn Store> = Arc::new(keybridge_store::MemoryStore::new());
    let connectors = format!(
        "{}{}{}",
        provider("a", "a-1", "pw-a", true, ""),
        provider("b", "b-1", "pw-b", true, "    link_by: none\n"),
        provider("c", "c-1", "pw-c", false, "    trust_email: true\n"),
    );
    let app = app(store, connectors).await;
    let s = sub(&login(&app, "a", "pw-a").await);
    let c = login(&app, "c", "pw-c").await;
    assert_eq!(sub(&c), s, "trust_email: the provider verifies every email");
    assert_eq!(crate::jwt_claims(c["id_token"].as_str().unwrap())["email_verified"], true);
    assert_ne!(sub(&login(&app, "b", "pw-b").await), s, "link_by: none");
}

#[tokio::test]
async fn upstream_identity_claims_are_opt_in() {
    let store: Arc<dyn Store> = Arc::new(keybridge_store::MemoryStore::new());
    let plain = app(store.clone(), provider("a", "a-1", "pw-a", true, "")).await;
    let t = login(&plain, "a", "pw-a").await;
    let claims = crate::jwt_claims(t["access_token"].as_str().unwrap());
    assert!(claims.get("upstream_sub").is_none());
    let connectors = provider("a", "a-1", "pw-a", true, "");
    let opted = spawn_app_with(Options {
        yaml: Some(Box::new(move |iss, listen| {
            yaml_with_connectors(iss, listen, &connectors).replacen(
                "    audience: https://api.example.com\n",
                "    audience: https://api.example.com\n    upstream_identity_claims: true\n",
                1,
            )
        })),
        store: Some(store),
        ..Default::default()
    })
    .await;
    let t = login(&opted, "a", "pw-a").await;
    let claims = crate::jwt_claims(t["access_token"].as_str().unwrap());
    assert_eq!(claims["upstream_connector"], "a");
    assert_eq!(claims["upstream_sub"], "a-1");
    let id = crate::jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(id["upstream_sub"], "a-1");
}
