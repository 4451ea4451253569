//! The storage conformance suite: one `async fn` per behaviour the [`Store`] trait documents.
//!
//! Every backend runs all of it through [`conformance_tests!`](crate::conformance_tests), which
//! expands to one `#[test]` per case (so a failure names the case):
//!
//! ```ignore
//! async fn make_store() -> std::sync::Arc<dyn keybridge_core::store::Store> {
//!     std::sync::Arc::new(keybridge_store::MemoryStore::new())
//! }
//! keybridge_store::conformance_tests!(make_store);
//! ```
//!
//! **Contract for the constructor:** each call returns a fresh, *empty* store that no other case
//! shares (for PostgreSQL: a fresh database or schema per call). Cases run in parallel; the signing
//! key and purge cases observe global state. The crate invoking the macro needs no `tokio`
//! dependency: each test builds its own multi-threaded runtime through [`run_case`].
//!
//! Times are plain numbers passed as `now`; no case reads a clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;

use keybridge_core::clock::UnixTime;
use keybridge_core::identity::Claims;
use keybridge_core::scope::Scopes;
use keybridge_core::store::{
    AuthCodeRecord, AuthRequest, Grant, GrantData, GrantFilter, IdentityLink, RedeemOutcome, RefreshOutcome,
    RefreshTokenRecord, SigningKeyRecord, StorageError, Store, User,
};
use keybridge_core::types::{
    AuthRequestId, ClientId, ConnectorData, ConnectorId, GrantId, KeyId, Sha256Digest, Subject,
};

/// Expands to one `#[test]` per conformance case, each calling `$make().await` for a fresh store.
///
/// `$make` is a path to an `async fn() -> Arc<dyn Store>` (an `Arc` of the concrete store works
/// too; it coerces). Each call must return a fresh, empty store.
///
/// ```ignore
/// async fn make_store() -> std::sync::Arc<dyn keybridge_core::store::Store> {
///     std::sync::Arc::new(PgStore::connect_fresh_schema().await.unwrap())
/// }
/// keybridge_store::conformance_tests!(make_store);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(async {
                    $crate::conformance::$case($make().await).await;
                });
            }
        )*
    };
    ($make:path $(,)?) => {
        $crate::conformance_tests!(@cases $make;
            ping,
            auth_request_round_trip,
            auth_request_duplicate_put_is_already_exists,
            auth_request_expires,
            auth_request_update_replaces,
            auth_request_update_missing_is_not_found,
            auth_request_take_is_single_use,
            auth_request_take_expired_is_not_found,
            auth_request_concurrent_take_has_one_winner,
            auth_code_round_trip,
            auth_code_expires,
            auth_code_redeems_once,
            auth_code_replay_returns_the_code_grant_id,
            auth_code_wrong_client_does_not_consume,
            auth_code_concurrent_redeem_has_one_winner,
            grant_missing_is_not_found,
            grant_revoke_blocks_refresh,
            grant_revoke_missing_is_ok,
            grant_update_data_replaces,
            refresh_rotates,
            refresh_reuse_within_grace_rotates,
            refresh_reuse_after_grace_revokes_the_family,
            refresh_concurrent_use_within_grace_both_rotate,
            refresh_wrong_client_changes_nothing,
            refresh_expired_is_not_found,
            link_create_find_update,
            link_duplicate_create_is_already_exists,
            link_concurrent_create_has_one_winner,
            link_update_missing_is_not_found,
            link_lookup_by_email_ignores_case,
            link_create_needs_the_user_and_is_unique,
            link_delete_and_list,
            users_get_and_list,
            import_is_all_or_nothing,
            revoke_grants_by_user_connector_and_client,
            signing_key_rotation_is_compare_and_swap,
            signing_key_concurrent_rotation_has_one_winner,
            purge_removes_expired_and_keeps_live,
            purge_respects_batch,
        );
    };
}

/// Runs one case on a fresh two-worker multi-threaded runtime, so spawned racers run in parallel.
pub fn run_case<F: Future<Output = ()>>(case: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(case);
}

// ----- fixtures -------------------------------------------------------------------------------

/// The "current time" most cases use.
pub const NOW: UnixTime = 1_700_000_000;

/// How often each race is repeated, to give a broken backend a chance to lose one.
const RACE_ROUNDS: usize = 8;

fn client(id: &str) -> ClientId {
    ClientId::new(id)
}

fn digest(secret: &str) -> Sha256Digest {
    Sha256Digest::of(secret)
}

fn claims(email: &str) -> Claims {
    Claims { email: Some(email.to_owned()), email_verified: true, ..Claims::default() }
}

fn auth_request(id: &str, expires_at: UnixTime) -> AuthRequest {
    AuthRequest {
        id: AuthRequestId::new(id),
        client_id: client("app"),
        redirect_uri: "https://app.example/cb".to_owned(),
        redirect_uri_sent: true,
        state: Some(format!("state-{id}")),
        scopes: Scopes::from_list(&["openid", "email"]),
        nonce: Some("n-0S6_WzA2Mj".to_owned()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
        connector_id: None,
        csrf_digest: digest(&format!("csrf-{id}")),
        connector_state: None,
        login_hint: None,
        prompt: None,
        expires_at,
    }
}

fn grant_data(subject: &str) -> GrantData {
    GrantData {
        subject: Subject::new(subject),
        connector_id: ConnectorId::new("local"),
        upstream_id: format!("upstream-{subject}"),
        claims: claims(&format!("{subject}@example.com")),
        connector_data: Some(ConnectorData::new("upstream-refresh")),
        scopes: Scopes::from_list(&["openid", "email", "offline_access"]),
        auth_time: NOW - 10,
    }
}

fn code(secret: &str, grant_id: &str, client_id: &str, expires_at: UnixTime) -> AuthCodeRecord {
    AuthCodeRecord {
        code_digest: digest(secret),
        grant_id: GrantId::new(grant_id),
        client_id: client(client_id),
        redirect_uri: "https://app.example/cb".to_owned(),
        redirect_uri_sent: true,
        code_challenge: None,
        nonce: Some("nonce".to_owned()),
        grant: grant_data("alice"),
        expires_at,
        redeemed: false,
    }
}

fn grant(id: &str, client_id: &str, created_at: UnixTime) -> Grant {
    Grant { id: GrantId::new(id), client_id: client(client_id), data: grant_data("alice"), created_at, revoked: false }
}

fn refresh(secret: &str, grant_id: &str, client_id: &str, expires_at: UnixTime) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_digest: digest(secret),
        grant_id: GrantId::new(grant_id),
        client_id: client(client_id),
        expires_at,
        used_at: None,
    }
}

/// Creates grant `grant_id` of `client_id` with first refresh token `token`, the way the token
/// endpoint does: by redeeming a code at `now`.
async fn start_grant(
    store: &Arc<dyn Store>,
    grant_id: &str,
    client_id: &str,
    token: &str,
    token_expires_at: UnixTime,
    now: UnixTime,
) {
    let code_secret = format!("code-for-{grant_id}");
    store.put_auth_code(&code(&code_secret, grant_id, client_id, now + 60)).await.unwrap();
    let outcome = store
        .redeem_auth_code(
            &digest(&code_secret),
            &client(client_id),
            &grant(grant_id, client_id, now),
            &refresh(token, grant_id, client_id, token_expires_at),
            now,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::Redeemed), "setup redeem of {grant_id}: {outcome:?}");
}

/// `use_refresh_token` with the usual client "app".
async fn use_token(
    store: &Arc<dyn Store>,
    token: &str,
    new: &str,
    new_expires_at: UnixTime,
    grace: i64,
    now: UnixTime,
) -> RefreshOutcome {
    store.use_refresh_token(&digest(token), &client("app"), &digest(new), new_expires_at, grace, now).await.unwrap()
}

#[track_caller]
fn assert_rotated(outcome: RefreshOutcome, grant_id: &str) -> Grant {
    match outcome {
        RefreshOutcome::Rotated(g) => {
            assert_eq!(g.id.as_str(), grant_id, "rotated into the wrong grant");
            assert!(!g.revoked, "a Rotated outcome carries a revoked grant");
            g
        }
        other => panic!("expected Rotated({grant_id}), got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StorageError>, what: &str) {
    match r {
        Err(StorageError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn signing_key(kid: &str, created_at: UnixTime) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: KeyId::new(kid),
        alg: "ES256".to_owned(),
        private_pem: ConnectorData::new(format!("-----BEGIN PRIVATE KEY-----{kid}")),
        created_at,
        retired_at: None,
        expires_at: None,
    }
}

fn active_kids(keys: &[SigningKeyRecord]) -> Vec<&str> {
    keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.kid.as_str()).collect()
}

fn key<'a>(keys: &'a [SigningKeyRecord], kid: &str) -> &'a SigningKeyRecord {
    keys.iter().find(|k| k.kid.as_str() == kid).unwrap_or_else(|| panic!("signing key {kid} is missing"))
}

fn link(upstream_id: &str, subject: &str, email: &str) -> IdentityLink {
    IdentityLink {
        connector_id: ConnectorId::new("local"),
        upstream_id: upstream_id.to_owned(),
        subject: Subject::new(subject),
        claims: claims(email),
        updated_at: NOW,
    }
}

fn user(subject: &str) -> User {
    User { subject: Subject::new(subject), created_at: NOW }
}

// ----- misc -----------------------------------------------------------------------------------

/// `ping` answers `Ok` on a working store.
pub async fn ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ----- authorization requests -----------------------------------------------------------------

/// A stored request reads back field for field.
pub async fn auth_request_round_trip(store: Arc<dyn Store>) {
    let mut req = auth_request("req-1", NOW + 600);
    req.connector_id = Some(ConnectorId::new("github"));
    req.connector_state = Some(ConnectorData::new("upstream-state"));
    store.put_auth_request(&req).await.unwrap();
    let got = store.get_auth_request(&req.id, NOW).await.unwrap();
    assert_eq!(got.id, req.id);
    assert_eq!(got.client_id, req.client_id);
    assert_eq!(got.redirect_uri, req.redirect_uri);
    assert_eq!(got.redirect_uri_sent, req.redirect_uri_sent);
    assert_eq!(got.state, req.state);
    assert_eq!(got.scopes, req.scopes);
    assert_eq!(got.nonce, req.nonce);
    assert_eq!(got.code_challenge, req.code_challenge);
    assert_eq!(got.connector_id, req.connector_id);
    assert_eq!(got.csrf_digest, req.csrf_digest);
    assert_eq!(got.connector_state.as_ref().map(ConnectorData::secret), Some("upstream-state"));
    assert_eq!(got.expires_at, req.expires_at);
    assert_not_found(store.get_auth_request(&AuthRequestId::new("nope"), NOW).await, "missing request");
}

/// Storing a request under an id already stored is `AlreadyExists` and leaves the first intact.
pub async fn auth_request_duplicate_put_is_already_exists(store: Arc<dyn Store>) {
    store.put_auth_request(&auth_request("req-dup", NOW + 600)).await.unwrap();
    let mut other = auth_request("req-dup", NOW + 900);
    other.state = Some("other".to_owned());
    assert!(matches!(store.put_auth_request(&other).await, Err(StorageError::AlreadyExists)));
    let got = store.get_auth_request(&AuthRequestId::new("req-dup"), NOW).await.unwrap();
    assert_eq!(got.state.as_deref(), Some("state-req-dup"));
}

/// A request is readable until `expires_at` and gone from then on (`expires_at <= now`).
pub async fn auth_request_expires(store: Arc<dyn Store>) {
    let req = auth_request("req-exp", NOW + 10);
    store.put_auth_request(&req).await.unwrap();
    store.get_auth_request(&req.id, NOW + 9).await.unwrap();
    assert_not_found(store.get_auth_request(&req.id, NOW + 10).await, "request at expires_at");
    assert_not_found(store.get_auth_request(&req.id, NOW + 11).await, "request after expires_at");
}

/// `update_auth_request` replaces the stored request.
pub async fn auth_request_update_replaces(store: Arc<dyn Store>) {
    let mut req = auth_request("req-upd", NOW + 600);
    store.put_auth_request(&req).await.unwrap();
    req.connector_id = Some(ConnectorId::new("github"));
    req.connector_state = Some(ConnectorData::new("pkce-verifier"));
    store.update_auth_request(&req).await.unwrap();
    let got = store.get_auth_request(&req.id, NOW).await.unwrap();
    assert_eq!(got.connector_id, Some(ConnectorId::new("github")));
    assert_eq!(got.connector_state.as_ref().map(ConnectorData::secret), Some("pkce-verifier"));
    assert_eq!(got.csrf_digest, req.csrf_digest);
}

/// Updating a request that was never stored (or was taken) is `NotFound` and stores nothing.
pub async fn auth_request_update_missing_is_not_found(store: Arc<dyn Store>) {
    let req = auth_request("req-ghost", NOW + 600);
    assert_not_found(store.update_auth_request(&req).await, "update of a missing request");
    assert_not_found(store.get_auth_request(&req.id, NOW).await, "request after a failed update");

    let taken = auth_request("req-taken", NOW + 600);
    store.put_auth_request(&taken).await.unwrap();
    store.take_auth_request(&taken.id, NOW).await.unwrap();
    assert_not_found(store.update_auth_request(&taken).await, "update of a taken request");
    assert_not_found(store.get_auth_request(&taken.id, NOW).await, "taken request after a failed update");
}

/// `take_auth_request` returns the request once; afterwards it is gone for take and get.
pub async fn auth_request_take_is_single_use(store: Arc<dyn Store>) {
    let req = auth_request("req-take", NOW + 600);
    store.put_auth_request(&req).await.unwrap();
    let got = store.take_auth_request(&req.id, NOW).await.unwrap();
    assert_eq!(got.id, req.id);
    assert_eq!(got.state, req.state);
    assert_not_found(store.take_auth_request(&req.id, NOW).await, "second take");
    assert_not_found(store.get_auth_request(&req.id, NOW).await, "get after take");
    assert_not_found(store.take_auth_request(&AuthRequestId::new("nope"), NOW).await, "take of a missing request");
}

/// An expired request cannot be taken.
pub async fn auth_request_take_expired_is_not_found(store: Arc<dyn Store>) {
    let req = auth_request("req-take-exp", NOW + 10);
    store.put_auth_request(&req).await.unwrap();
    assert_not_found(store.take_auth_request(&req.id, NOW + 10).await, "take at expires_at");
    assert_not_found(store.take_auth_request(&req.id, NOW + 100).await, "take after expires_at");
}

/// Two concurrent takes of one request: exactly one gets it.
pub async fn auth_request_concurrent_take_has_one_winner(store: Arc<dyn Store>) {
    for round in 0..RACE_ROUNDS {
        let req = auth_request(&format!("req-race-{round}"), NOW + 600);
        store.put_auth_request(&req).await.unwrap();
        let (s1, s2) = (store.clone(), store.clone());
        let (id1, id2) = (req.id.clone(), req.id.clone());
        let a = tokio::spawn(async move { s1.take_auth_request(&id1, NOW).await });
        let b = tokio::spawn(async move { s2.take_auth_request(&id2, NOW).await });
        let results = [a.await.unwrap(), b.await.unwrap()];
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(StorageError::NotFound))), "round {round}: {results:?}");
    }
}

// ----- authorization codes --------------------------------------------------------------------

/// A stored code reads back unredeemed; storing the same digest again is `AlreadyExists`.
pub async fn auth_code_round_trip(store: Arc<dyn Store>) {
    let rec = code("code-1", "grant-1", "app", NOW + 60);
    store.put_auth_code(&rec).await.unwrap();
    let got = store.get_auth_code(&digest("code-1"), NOW).await.unwrap();
    assert_eq!(got.code_digest, rec.code_digest);
    assert_eq!(got.grant_id, rec.grant_id);
    assert_eq!(got.client_id, rec.client_id);
    assert_eq!(got.redirect_uri, rec.redirect_uri);
    assert_eq!(got.redirect_uri_sent, rec.redirect_uri_sent);
    assert_eq!(got.code_challenge, rec.code_challenge);
    assert_eq!(got.nonce, rec.nonce);
    assert_eq!(got.grant.subject, rec.grant.subject);
    assert_eq!(got.grant.claims, rec.grant.claims);
    assert_eq!(got.grant.scopes, rec.grant.scopes);
    assert_eq!(got.expires_at, rec.expires_at);
    assert!(!got.redeemed);

    let again = code("code-1", "grant-other", "app", NOW + 60);
    assert!(matches!(store.put_auth_code(&again).await, Err(StorageError::AlreadyExists)));
    assert_eq!(store.get_auth_code(&digest("code-1"), NOW).await.unwrap().grant_id.as_str(), "grant-1");
    assert_not_found(store.get_auth_code(&digest("nope"), NOW).await, "missing code");
}

/// A code lapses at `expires_at`: it can neither be read nor redeemed, and redeeming it stores nothing.
pub async fn auth_code_expires(store: Arc<dyn Store>) {
    store.put_auth_code(&code("code-exp", "grant-exp", "app", NOW + 10)).await.unwrap();
    store.get_auth_code(&digest("code-exp"), NOW + 9).await.unwrap();
    assert_not_found(store.get_auth_code(&digest("code-exp"), NOW + 10).await, "code at expires_at");
    let outcome = store
        .redeem_auth_code(
            &digest("code-exp"),
            &client("app"),
            &grant("grant-exp", "app", NOW + 10),
            &refresh("rt-exp", "grant-exp", "app", NOW + 1000),
            NOW + 10,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::NotFound), "redeem at expires_at: {outcome:?}");
    assert_not_found(store.get_grant(&GrantId::new("grant-exp")).await, "grant of an expired code");
    assert!(matches!(use_token(&store, "rt-exp", "rt-exp-2", NOW + 2000, 0, NOW + 20).await, RefreshOutcome::NotFound));

    let outcome = store
        .redeem_auth_code(
            &digest("never-issued"),
            &client("app"),
            &grant("grant-x", "app", NOW),
            &refresh("rt-x", "grant-x", "app", NOW + 1000),
            NOW,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::NotFound), "redeem of a missing code: {outcome:?}");
    assert_not_found(store.get_grant(&GrantId::new("grant-x")).await, "grant of a missing code");
}

/// Redeeming stores the grant and its first refresh token and marks the code redeemed (still
/// readable); a second redemption is `AlreadyRedeemed` and stores nothing.
pub async fn auth_code_redeems_once(store: Arc<dyn Store>) {
    store.put_auth_code(&code("code-once", "grant-once", "app", NOW + 60)).await.unwrap();
    let g = grant("grant-once", "app", NOW);
    let outcome = store
        .redeem_auth_code(
            &digest("code-once"),
            &client("app"),
            &g,
            &refresh("rt-once", "grant-once", "app", NOW + 3600),
            NOW,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::Redeemed), "{outcome:?}");

    let stored = store.get_grant(&g.id).await.unwrap();
    assert_eq!(stored.id, g.id);
    assert_eq!(stored.client_id, g.client_id);
    assert_eq!(stored.created_at, NOW);
    assert!(!stored.revoked);
    assert_eq!(stored.data.subject, g.data.subject);
    assert_eq!(stored.data.claims, g.data.claims);
    assert_eq!(stored.data.scopes, g.data.scopes);
    assert_eq!(stored.data.connector_data.as_ref().map(ConnectorData::secret), Some("upstream-refresh"));
    assert!(
        store.get_auth_code(&digest("code-once"), NOW + 1).await.unwrap().redeemed,
        "a redeemed code stays readable, marked redeemed"
    );

    let outcome = store
        .redeem_auth_code(
            &digest("code-once"),
            &client("app"),
            &g,
            &refresh("rt-twice", "grant-once", "app", NOW + 3600),
            NOW + 1,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::AlreadyRedeemed(ref id) if id == &g.id), "{outcome:?}");
    assert!(
        matches!(use_token(&store, "rt-twice", "rt-twice-2", NOW + 7200, 0, NOW + 2).await, RefreshOutcome::NotFound),
        "a failed redemption stored its refresh token"
    );
    assert_rotated(use_token(&store, "rt-once", "rt-once-2", NOW + 7200, 0, NOW + 2).await, "grant-once");
}

/// A replay answers with the grant id decided when the code was issued, whichever grant the replay
/// passes, and whichever client presents it.
pub async fn auth_code_replay_returns_the_code_grant_id(store: Arc<dyn Store>) {
    start_grant(&store, "grant-replay", "app", "rt-replay", NOW + 3600, NOW).await;
    let replay = |c: &'static str, gid: &'static str, rt: &'static str| {
        let store = store.clone();
        async move {
            store
                .redeem_auth_code(
                    &digest("code-for-grant-replay"),
                    &client(c),
                    &grant(gid, c, NOW + 5),
                    &refresh(rt, gid, c, NOW + 3600),
                    NOW + 5,
                )
                .await
                .unwrap()
        }
    };
    let outcome = replay("app", "grant-attacker", "rt-attacker").await;
    assert!(matches!(outcome, RedeemOutcome::AlreadyRedeemed(ref id) if id.as_str() == "grant-replay"), "{outcome:?}");
    let outcome = replay("other-app", "grant-other", "rt-other").await;
    assert!(
        matches!(outcome, RedeemOutcome::AlreadyRedeemed(ref id) if id.as_str() == "grant-replay"),
        "replay by another client: {outcome:?}"
    );
    assert_not_found(store.get_grant(&GrantId::new("grant-attacker")).await, "grant of a replay");
    assert_not_found(store.get_grant(&GrantId::new("grant-other")).await, "grant of a replay");
}

/// Another client presenting an unredeemed code gets `NotFound` and does not consume it.
pub async fn auth_code_wrong_client_does_not_consume(store: Arc<dyn Store>) {
    store.put_auth_code(&code("code-wc", "grant-wc", "app", NOW + 60)).await.unwrap();
    let outcome = store
        .redeem_auth_code(
            &digest("code-wc"),
            &client("evil"),
            &grant("grant-wc", "evil", NOW),
            &refresh("rt-evil", "grant-wc", "evil", NOW + 3600),
            NOW,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::NotFound), "{outcome:?}");
    assert!(
        !store.get_auth_code(&digest("code-wc"), NOW).await.unwrap().redeemed,
        "the wrong client consumed the code"
    );
    assert_not_found(store.get_grant(&GrantId::new("grant-wc")).await, "grant after a wrong-client redeem");

    let outcome = store
        .redeem_auth_code(
            &digest("code-wc"),
            &client("app"),
            &grant("grant-wc", "app", NOW),
            &refresh("rt-wc", "grant-wc", "app", NOW + 3600),
            NOW + 1,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, RedeemOutcome::Redeemed), "{outcome:?}");
    assert_eq!(store.get_grant(&GrantId::new("grant-wc")).await.unwrap().client_id.as_str(), "app");
    assert!(matches!(
        store
            .use_refresh_token(&digest("rt-evil"), &client("evil"), &digest("rt-evil-2"), NOW + 7200, 0, NOW + 2)
            .await
            .unwrap(),
        RefreshOutcome::NotFound
    ));
}

/// Two concurrent redemptions of one code: exactly one `Redeemed`, the other `AlreadyRedeemed`
/// with the code's grant id, and only the winner's refresh token exists.
pub async fn auth_code_concurrent_redeem_has_one_winner(store: Arc<dyn Store>) {
    for round in 0..RACE_ROUNDS {
        let secret = format!("code-race-{round}");
        let gid = format!("grant-race-{round}");
        store.put_auth_code(&code(&secret, &gid, "app", NOW + 60)).await.unwrap();
        let racer = |rt: String| {
            let (store, secret, gid) = (store.clone(), secret.clone(), gid.clone());
            tokio::spawn(async move {
                let outcome = store
                    .redeem_auth_code(
                        &digest(&secret),
                        &client("app"),
                        &grant(&gid, "app", NOW),
                        &refresh(&rt, &gid, "app", NOW + 3600),
                        NOW,
                    )
                    .await
                    .unwrap();
                (outcome, rt)
            })
        };
        let a = racer(format!("rt-race-{round}-a"));
        let b = racer(format!("rt-race-{round}-b"));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let winners: Vec<&String> =
            results.iter().filter(|(o, _)| matches!(o, RedeemOutcome::Redeemed)).map(|(_, rt)| rt).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results.iter().any(|(o, _)| matches!(o, RedeemOutcome::AlreadyRedeemed(id) if id.as_str() == gid)),
            "round {round}: {results:?}"
        );
        for (_, rt) in &results {
            let outcome = use_token(&store, rt, &format!("{rt}-next"), NOW + 7200, 0, NOW + 1).await;
            if rt == winners[0] {
                assert_rotated(outcome, &gid);
            } else {
                assert!(
                    matches!(outcome, RefreshOutcome::NotFound),
                    "round {round}: the loser's refresh token exists: {outcome:?}"
                );
            }
        }
    }
}

// ----- grants ---------------------------------------------------------------------------------

/// Reading a grant that does not exist is `NotFound`.
pub async fn grant_missing_is_not_found(store: Arc<dyn Store>) {
    assert_not_found(store.get_grant(&GrantId::new("nope")).await, "missing grant");
}

/// Revoking marks the grant revoked, and every token of its family (used or not) then answers
/// `Revoked`; revoking again is fine.
pub async fn grant_revoke_blocks_refresh(store: Arc<dyn Store>) {
    start_grant(&store, "grant-rev", "app", "rt-rev-1", NOW + 3600, NOW).await;
    assert_rotated(use_token(&store, "rt-rev-1", "rt-rev-2", NOW + 3600, 30, NOW + 1).await, "grant-rev");
    start_grant(&store, "grant-bystander", "app", "rt-bystander", NOW + 3600, NOW).await;

    store.revoke_grant(&GrantId::new("grant-rev")).await.unwrap();
    assert!(store.get_grant(&GrantId::new("grant-rev")).await.unwrap().revoked);
    assert!(
        matches!(use_token(&store, "rt-rev-2", "rt-rev-3", NOW + 3600, 30, NOW + 2).await, RefreshOutcome::Revoked),
        "the live token of a revoked grant"
    );
    assert!(
        matches!(use_token(&store, "rt-rev-1", "rt-rev-4", NOW + 3600, 30, NOW + 2).await, RefreshOutcome::Revoked),
        "a used token of a revoked grant, within grace"
    );
    assert!(
        matches!(use_token(&store, "rt-rev-3", "rt-rev-5", NOW + 3600, 30, NOW + 3).await, RefreshOutcome::NotFound),
        "a refused refresh stored its new token"
    );
    store.revoke_grant(&GrantId::new("grant-rev")).await.unwrap();
    assert!(store.get_grant(&GrantId::new("grant-rev")).await.unwrap().revoked);

    assert!(!store.get_grant(&GrantId::new("grant-bystander")).await.unwrap().revoked);
    assert_rotated(
        use_token(&store, "rt-bystander", "rt-bystander-2", NOW + 3600, 30, NOW + 4).await,
        "grant-bystander",
    );
}

/// Revoking a grant that does not exist is not an error (and creates nothing).
pub async fn grant_revoke_missing_is_ok(store: Arc<dyn Store>) {
    store.revoke_grant(&GrantId::new("nope")).await.unwrap();
    assert_not_found(store.get_grant(&GrantId::new("nope")).await, "revoked missing grant");
}

/// `update_grant_data` replaces the grant's data (seen by `get_grant` and by the next rotation);
/// a missing grant is `NotFound`.
pub async fn grant_update_data_replaces(store: Arc<dyn Store>) {
    start_grant(&store, "grant-upd", "app", "rt-upd", NOW + 3600, NOW).await;
    let mut data = grant_data("alice");
    data.claims = claims("alice@new.example");
    data.claims.groups = vec!["admins".to_owned()];
    data.connector_data = Some(ConnectorData::new("upstream-refresh-2"));
    store.update_grant_data(&GrantId::new("grant-upd"), &data).await.unwrap();

    let got = store.get_grant(&GrantId::new("grant-upd")).await.unwrap();
    assert_eq!(got.data.claims, data.claims);
    assert_eq!(got.data.connector_data.as_ref().map(ConnectorData::secret), Some("upstream-refresh-2"));
    assert_eq!(got.client_id.as_str(), "app");
    assert!(!got.revoked);
    let rotated = assert_rotated(use_token(&store, "rt-upd", "rt-upd-2", NOW + 3600, 0, NOW + 1).await, "grant-upd");
    assert_eq!(rotated.data.claims, data.claims);

    assert_not_found(store.update_grant_data(&GrantId::new("nope"), &data).await, "update of a missing grant");
    assert_not_found(store.get_grant(&GrantId::new("nope")).await, "grant after a failed update");
}

// ----- refresh tokens -------------------------------------------------------------------------

/// An unused token rotates: the outcome carries the grant, the new token is live, bound to the
/// same grant and client, and lapses at `new_expires_at`.
pub async fn refresh_rotates(store: Arc<dyn Store>) {
    start_grant(&store, "grant-rot", "app", "rt-a", NOW + 3600, NOW).await;
    let g = assert_rotated(use_token(&store, "rt-a", "rt-b", NOW + 500, 30, NOW + 10).await, "grant-rot");
    assert_eq!(g.client_id.as_str(), "app");
    assert_eq!(g.data.subject.as_str(), "alice");

    // The new token belongs to the same client...
    assert!(matches!(
        store
            .use_refresh_token(&digest("rt-b"), &client("other-app"), &digest("rt-x"), NOW + 900, 30, NOW + 20)
            .await
            .unwrap(),
        RefreshOutcome::WrongClient
    ));
    // ...lapses at new_expires_at...
    assert!(matches!(use_token(&store, "rt-b", "rt-c", NOW + 900, 30, NOW + 500).await, RefreshOutcome::NotFound));
    // ...and rotates in the same grant before that.
    assert_rotated(use_token(&store, "rt-b", "rt-c", NOW + 900, 30, NOW + 499).await, "grant-rot");
    assert_rotated(use_token(&store, "rt-c", "rt-d", NOW + 900, 30, NOW + 500).await, "grant-rot");
    assert!(!store.get_grant(&GrantId::new("grant-rot")).await.unwrap().revoked);
}

/// A used token presented again within `grace` seconds of its first use (inclusive) rotates again;
/// the grace window counts from the first use, not from later in-grace reuses.
pub async fn refresh_reuse_within_grace_rotates(store: Arc<dyn Store>) {
    start_grant(&store, "grant-grace", "app", "rt-g", NOW + 3600, NOW).await;
    assert_rotated(use_token(&store, "rt-g", "rt-g1", NOW + 3600, 30, NOW + 100).await, "grant-grace");
    assert_rotated(use_token(&store, "rt-g", "rt-g2", NOW + 3600, 30, NOW + 100).await, "grant-grace");
    assert_rotated(use_token(&store, "rt-g", "rt-g3", NOW + 3600, 30, NOW + 130).await, "grant-grace");
    // Every token minted in the window is live.
    for t in ["rt-g1", "rt-g2", "rt-g3"] {
        assert_rotated(use_token(&store, t, &format!("{t}-next"), NOW + 3600, 30, NOW + 131).await, "grant-grace");
    }
    // One second past the window of the first use (not of the reuse at +130) is reuse.
    let outcome = use_token(&store, "rt-g", "rt-g4", NOW + 3600, 30, NOW + 131).await;
    assert!(matches!(outcome, RefreshOutcome::ReuseDetected(ref id) if id.as_str() == "grant-grace"), "{outcome:?}");
}

/// A used token presented after the grace window revokes the grant: the outcome names the grant,
/// the grant reads revoked, and every token of the family (the child, the reused token itself)
/// then answers `Revoked`. Other grants are untouched.
pub async fn refresh_reuse_after_grace_revokes_the_family(store: Arc<dyn Store>) {
    start_grant(&store, "grant-reuse", "app", "rt-r1", NOW + 3600, NOW).await;
    start_grant(&store, "grant-safe", "app", "rt-s1", NOW + 3600, NOW).await;
    assert_rotated(use_token(&store, "rt-r1", "rt-r2", NOW + 3600, 30, NOW + 10).await, "grant-reuse");
    assert_rotated(use_token(&store, "rt-r2", "rt-r3", NOW + 3600, 30, NOW + 20).await, "grant-reuse");

    let outcome = use_token(&store, "rt-r1", "rt-evil", NOW + 3600, 30, NOW + 41).await;
    assert!(matches!(outcome, RefreshOutcome::ReuseDetected(ref id) if id.as_str() == "grant-reuse"), "{outcome:?}");
    assert!(store.get_grant(&GrantId::new("grant-reuse")).await.unwrap().revoked);
    assert!(
        matches!(use_token(&store, "rt-evil", "rt-evil-2", NOW + 3600, 30, NOW + 42).await, RefreshOutcome::NotFound),
        "reuse detection minted a token"
    );
    assert!(
        matches!(use_token(&store, "rt-r3", "rt-r4", NOW + 3600, 30, NOW + 42).await, RefreshOutcome::Revoked),
        "the family's live token"
    );
    assert!(
        matches!(use_token(&store, "rt-r2", "rt-r5", NOW + 3600, 30, NOW + 42).await, RefreshOutcome::Revoked),
        "a used token of the family, within its grace"
    );
    assert!(
        matches!(use_token(&store, "rt-r1", "rt-r6", NOW + 3600, 30, NOW + 43).await, RefreshOutcome::Revoked),
        "the reused token itself, again"
    );

    assert!(!store.get_grant(&GrantId::new("grant-safe")).await.unwrap().revoked);
    assert_rotated(use_token(&store, "rt-s1", "rt-s2", NOW + 3600, 30, NOW + 44).await, "grant-safe");
}

/// Two concurrent refreshes of one token within the grace window both rotate, and both new tokens
/// are live; the old token's reuse after the window is then detected.
pub async fn refresh_concurrent_use_within_grace_both_rotate(store: Arc<dyn Store>) {
    for round in 0..RACE_ROUNDS {
        let gid = format!("grant-crace-{round}");
        let rt = format!("rt-crace-{round}");
        start_grant(&store, &gid, "app", &rt, NOW + 3600, NOW).await;
        let racer = |new: String| {
            let (store, rt) = (store.clone(), rt.clone());
            tokio::spawn(async move { (use_token(&store, &rt, &new, NOW + 3600, 30, NOW + 5).await, new) })
        };
        let a = racer(format!("{rt}-a"));
        let b = racer(format!("{rt}-b"));
        for (outcome, new) in [a.await.unwrap(), b.await.unwrap()] {
            assert_rotated(outcome, &gid);
            assert_rotated(use_token(&store, &new, &format!("{new}-next"), NOW + 3600, 30, NOW + 6).await, &gid);
        }
        let outcome = use_token(&store, &rt, &format!("{rt}-late"), NOW + 3600, 30, NOW + 36).await;
        assert!(
            matches!(outcome, RefreshOutcome::ReuseDetected(ref id) if id == &GrantId::new(&gid)),
            "round {round}: {outcome:?}"
        );
    }
}

/// A token presented by another client is `WrongClient` and changes nothing: it stays unused, no
/// new token is stored, and the grant is not revoked (also for a used token after its grace).
pub async fn refresh_wrong_client_changes_nothing(store: Arc<dyn Store>) {
    start_grant(&store, "grant-wrong", "app", "rt-w1", NOW + 3600, NOW).await;
    let evil = |token: &'static str, new: &'static str, now: UnixTime| {
        let store = store.clone();
        async move {
            store.use_refresh_token(&digest(token), &client("evil"), &digest(new), NOW + 3600, 30, now).await.unwrap()
        }
    };
    assert!(matches!(evil("rt-w1", "rt-evil-1", NOW + 10).await, RefreshOutcome::WrongClient));
    assert!(
        matches!(use_token(&store, "rt-evil-1", "rt-evil-x", NOW + 3600, 30, NOW + 11).await, RefreshOutcome::NotFound),
        "a wrong-client call stored a token"
    );
    // Still unused: a first use long after the wrong-client attempt rotates (a used token would be reuse).
    assert_rotated(use_token(&store, "rt-w1", "rt-w2", NOW + 3600, 30, NOW + 1000).await, "grant-wrong");

    // A used token presented by another client after the grace window does not revoke the grant.
    assert!(matches!(evil("rt-w1", "rt-evil-2", NOW + 2000).await, RefreshOutcome::WrongClient));
    assert!(!store.get_grant(&GrantId::new("grant-wrong")).await.unwrap().revoked);
    assert_rotated(use_token(&store, "rt-w2", "rt-w3", NOW + 3600, 30, NOW + 2001).await, "grant-wrong");
}

/// A missing token, or one at or past `expires_at`, is `NotFound` and changes nothing.
pub async fn refresh_expired_is_not_found(store: Arc<dyn Store>) {
    assert!(matches!(use_token(&store, "rt-never", "rt-never-2", NOW + 3600, 30, NOW).await, RefreshOutcome::NotFound));

    start_grant(&store, "grant-lapse", "app", "rt-l1", NOW + 100, NOW).await;
    assert!(matches!(use_token(&store, "rt-l1", "rt-l2", NOW + 3600, 30, NOW + 100).await, RefreshOutcome::NotFound));
    assert!(matches!(use_token(&store, "rt-l1", "rt-l3", NOW + 3600, 30, NOW + 101).await, RefreshOutcome::NotFound));
    assert!(
        matches!(use_token(&store, "rt-l2", "rt-l4", NOW + 3600, 30, NOW + 101).await, RefreshOutcome::NotFound),
        "an expired token minted a new one"
    );
    assert!(!store.get_grant(&GrantId::new("grant-lapse")).await.unwrap().revoked);
    // And it was not marked used: one second before expiry it still rotates as an unused token would.
    assert_rotated(use_token(&store, "rt-l1", "rt-l5", NOW + 3600, 0, NOW + 99).await, "grant-lapse");
}

// ----- users and identity links ---------------------------------------------------------------

/// `create_user` stores the link, `find_link` finds it by (connector, upstream id) only, and
/// `update_link` replaces its claims.
pub async fn link_create_find_update(store: Arc<dyn Store>) {
    let connector = ConnectorId::new("local");
    assert!(store.find_link(&connector, "u-1").await.unwrap().is_none());
    store.create_user(&user("sub-1"), &link("u-1", "sub-1", "one@example.com")).await.unwrap();

    let found = store.find_link(&connector, "u-1").await.unwrap().expect("link");
    assert_eq!(found.subject.as_str(), "sub-1");
    assert_eq!(found.upstream_id, "u-1");
    assert_eq!(found.connector_id, connector);
    assert_eq!(found.claims, claims("one@example.com"));
    assert_eq!(found.updated_at, NOW);
    assert!(store.find_link(&ConnectorId::new("github"), "u-1").await.unwrap().is_none(), "links are per connector");
    assert!(store.find_link(&connector, "u-2").await.unwrap().is_none());

    let mut updated = found.clone();
    updated.claims = claims("one@new.example");
    updated.claims.name = Some("One".to_owned());
    updated.updated_at = NOW + 60;
    store.update_link(&updated).await.unwrap();
    let found = store.find_link(&connector, "u-1").await.unwrap().expect("link");
    assert_eq!(found.claims, updated.claims);
    assert_eq!(found.updated_at, NOW + 60);
    assert_eq!(found.subject.as_str(), "sub-1");

    // The same upstream id at another connector is another identity.
    let mut elsewhere = link("u-1", "sub-2", "two@example.com");
    elsewhere.connector_id = ConnectorId::new("github");
    store.create_user(&user("sub-2"), &elsewhere).await.unwrap();
    assert_eq!(
        store.find_link(&ConnectorId::new("github"), "u-1").await.unwrap().expect("link").subject.as_str(),
        "sub-2"
    );
    assert_eq!(store.find_link(&connector, "u-1").await.unwrap().expect("link").subject.as_str(), "sub-1");
}

/// Creating a user for a link that exists is `AlreadyExists` and keeps the first user's link.
pub async fn link_duplicate_create_is_already_exists(store: Arc<dyn Store>) {
    store.create_user(&user("sub-first"), &link("u-dup", "sub-first", "a@example.com")).await.unwrap();
    let err = store.create_user(&user("sub-second"), &link("u-dup", "sub-second", "b@example.com")).await;
    assert!(matches!(err, Err(StorageError::AlreadyExists)), "{err:?}");
    let found = store.find_link(&ConnectorId::new("local"), "u-dup").await.unwrap().expect("link");
    assert_eq!(found.subject.as_str(), "sub-first");
    assert_eq!(found.claims, claims("a@example.com"));
}

/// Two concurrent first logins of one upstream identity: exactly one `create_user` wins, the
/// other gets `AlreadyExists`, and the link names the winner.
pub async fn link_concurrent_create_has_one_winner(store: Arc<dyn Store>) {
    for round in 0..RACE_ROUNDS {
        let upstream = format!("u-race-{round}");
        let racer = |sub: String| {
            let (store, upstream) = (store.clone(), upstream.clone());
            tokio::spawn(async move {
                let r = store.create_user(&user(&sub), &link(&upstream, &sub, "race@example.com")).await;
                (r, sub)
            })
        };
        let a = racer(format!("sub-race-{round}-a"));
        let b = racer(format!("sub-race-{round}-b"));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let winners: Vec<&String> = results.iter().filter(|(r, _)| r.is_ok()).map(|(_, s)| s).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results.iter().any(|(r, _)| matches!(r, Err(StorageError::AlreadyExists))),
            "round {round}: {results:?}"
        );
        let found = store.find_link(&ConnectorId::new("local"), &upstream).await.unwrap().expect("link");
        assert_eq!(found.subject.as_str(), winners[0].as_str(), "round {round}");
    }
}

/// Updating a link that does not exist is `NotFound` and creates nothing.
pub async fn link_update_missing_is_not_found(store: Arc<dyn Store>) {
    let ghost = link("u-ghost", "sub-ghost", "ghost@example.com");
    assert_not_found(store.update_link(&ghost).await, "update of a missing link");
    assert!(store.find_link(&ConnectorId::new("local"), "u-ghost").await.unwrap().is_none());
}

// ----- signing keys ---------------------------------------------------------------------------

/// `rotate_signing_key` is a compare-and-swap on the active key (`None` = no key yet): a stale or
/// wrong expectation is `Conflict` and changes nothing; a win retires the old key at `now` with
/// `expires_at = old_expires_at` and makes the new one the only active key.
pub async fn signing_key_rotation_is_compare_and_swap(store: Arc<dyn Store>) {
    assert!(store.list_signing_keys().await.unwrap().is_empty());
    let err = store.rotate_signing_key(Some(&KeyId::new("k0")), &signing_key("k1", NOW), NOW, NOW + 10).await;
    assert!(matches!(err, Err(StorageError::Conflict(_))), "expected an active key when there is none: {err:?}");
    assert!(store.list_signing_keys().await.unwrap().is_empty());

    store.rotate_signing_key(None, &signing_key("k1", NOW), NOW, NOW + 10).await.unwrap();
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(active_kids(&keys), ["k1"]);
    let k1 = key(&keys, "k1");
    assert_eq!(k1.alg, "ES256");
    assert_eq!(k1.private_pem.secret(), "-----BEGIN PRIVATE KEY-----k1");
    assert_eq!(k1.created_at, NOW);
    assert_eq!(k1.expires_at, None);

    for expected in [None, Some(KeyId::new("k-wrong"))] {
        let err = store.rotate_signing_key(expected.as_ref(), &signing_key("k2", NOW + 5), NOW + 5, NOW + 3600).await;
        assert!(matches!(err, Err(StorageError::Conflict(_))), "expected {expected:?}: {err:?}");
    }
    assert_eq!(store.list_signing_keys().await.unwrap().len(), 1, "a lost swap stored its key");

    store.rotate_signing_key(Some(&KeyId::new("k1")), &signing_key("k2", NOW + 5), NOW + 5, NOW + 3600).await.unwrap();
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(active_kids(&keys), ["k2"]);
    let k1 = key(&keys, "k1");
    assert_eq!(k1.retired_at, Some(NOW + 5));
    assert_eq!(k1.expires_at, Some(NOW + 3600));
    assert_eq!(key(&keys, "k2").expires_at, None);

    let err = store.rotate_signing_key(Some(&KeyId::new("k1")), &signing_key("k3", NOW + 6), NOW + 6, NOW + 3600).await;
    assert!(matches!(err, Err(StorageError::Conflict(_))), "stale expectation: {err:?}");
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(active_kids(&keys), ["k2"]);
    assert_eq!(key(&keys, "k1").retired_at, Some(NOW + 5), "a lost swap touched the retired key");
}

/// Two rotations racing from the same active key: exactly one wins, the other gets `Conflict`.
pub async fn signing_key_concurrent_rotation_has_one_winner(store: Arc<dyn Store>) {
    store.rotate_signing_key(None, &signing_key("k-0", NOW), NOW, NOW).await.unwrap();
    let mut current = "k-0".to_owned();
    for round in 0..RACE_ROUNDS {
        let now = NOW + 100 * (round as i64 + 1);
        let racer = |kid: String| {
            let (store, current) = (store.clone(), current.clone());
            tokio::spawn(async move {
                let r = store
                    .rotate_signing_key(Some(&KeyId::new(current)), &signing_key(&kid, now), now, now + 3600)
                    .await;
                (r, kid)
            })
        };
        let a = racer(format!("k-{round}-a"));
        let b = racer(format!("k-{round}-b"));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let winners: Vec<&String> = results.iter().filter(|(r, _)| r.is_ok()).map(|(_, k)| k).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(results.iter().any(|(r, _)| matches!(r, Err(StorageError::Conflict(_)))), "round {round}: {results:?}");

        let keys = store.list_signing_keys().await.unwrap();
        assert_eq!(keys.len(), round + 2, "round {round}: the loser's key was stored");
        assert_eq!(active_kids(&keys), [winners[0].as_str()], "round {round}");
        let old = key(&keys, &current);
        assert_eq!(old.retired_at, Some(now), "round {round}");
        assert_eq!(old.expires_at, Some(now + 3600), "round {round}");
        current = winners[0].clone();
    }
}

// ----- purge ----------------------------------------------------------------------------------

/// `purge_expired` deletes what lapsed (`expires_at <= now`): requests, codes (redeemed or not),
/// refresh tokens, grants whose every refresh token is gone, retired keys past `expires_at`; and
/// keeps everything live, including used-but-unexpired tokens (reuse detection needs them),
/// revoked grants with live tokens, and the active key. Run until it returns 0, the counts add up.
pub async fn purge_removes_expired_and_keeps_live(store: Arc<dyn Store>) {
    // A time well before every other case's, with room below it for "earlier" reads.
    const T: UnixTime = 1_000_000;
    const PAST: UnixTime = T - 10_000;

    // Authorization requests: 2 lapsed (one exactly at T), 1 live.
    for (id, exp) in [("ar-old", T - 1), ("ar-edge", T), ("ar-live", T + 100)] {
        store.put_auth_request(&auth_request(id, exp)).await.unwrap();
    }
    // Codes: an unredeemed lapsed one, an unredeemed live one...
    store.put_auth_code(&code("c-old", "g-unused-old", "app", T - 1)).await.unwrap();
    store.put_auth_code(&code("c-live", "g-unused-live", "app", T + 100)).await.unwrap();
    // ...and four redeemed at T-100 (each lapses at T-40), starting grants:
    //   g-old: its only token lapsed -> the token and the grant go.
    start_grant(&store, "g-old", "app", "rt-old", T - 10, T - 100).await;
    //   g-live: live token -> stays.
    start_grant(&store, "g-live", "app", "rt-live", T + 1000, T - 100).await;
    //   g-rot: rt-a (lapsed, used) -> rt-b (live, used) -> rt-c (live): only rt-a goes.
    start_grant(&store, "g-rot", "app", "rt-a", T - 5, T - 100).await;
    assert_rotated(use_token(&store, "rt-a", "rt-b", T + 50, 0, T - 90).await, "g-rot");
    assert_rotated(use_token(&store, "rt-b", "rt-c", T + 500, 0, T - 80).await, "g-rot");
    //   g-rev: revoked, live token -> stays (answers Revoked).
    start_grant(&store, "g-rev", "app", "rt-rev", T + 500, T - 100).await;
    store.revoke_grant(&GrantId::new("g-rev")).await.unwrap();
    // Signing keys: k1 retired and lapsed, k2 retired and live, k3 active.
    store.rotate_signing_key(None, &signing_key("k1", T - 1000), T - 1000, T - 1000).await.unwrap();
    store.rotate_signing_key(Some(&KeyId::new("k1")), &signing_key("k2", T - 500), T - 500, T - 1).await.unwrap();
    // (k3's record carries a lapsed expires_at: the active key is never purged all the same.)
    let k3 = SigningKeyRecord { expires_at: Some(T - 50), ..signing_key("k3", T - 100) };
    store.rotate_signing_key(Some(&KeyId::new("k2")), &k3, T - 100, T + 100).await.unwrap();

    // Expected: 2 requests + 5 codes (c-old and the 4 redeemed) + 2 tokens (rt-old, rt-a)
    // + 1 grant (g-old) + 1 key (k1).
    let mut total = 0;
    let mut rounds = 0;
    loop {
        let n = store.purge_expired(T, 1000).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        rounds += 1;
        assert!(rounds < 10, "purge_expired never reaches 0");
    }
    assert_eq!(total, 11, "records purged");

    // Gone: read them "from the past", when they were still valid.
    for id in ["ar-old", "ar-edge"] {
        assert_not_found(store.get_auth_request(&AuthRequestId::new(id), PAST).await, id);
    }
    for c in ["c-old", "code-for-g-old", "code-for-g-live", "code-for-g-rot", "code-for-g-rev"] {
        assert_not_found(store.get_auth_code(&digest(c), PAST).await, c);
    }
    assert_not_found(store.get_grant(&GrantId::new("g-old")).await, "g-old");
    for rt in ["rt-old", "rt-a"] {
        assert!(
            matches!(use_token(&store, rt, &format!("{rt}-x"), T + 5000, 0, PAST).await, RefreshOutcome::NotFound),
            "{rt}"
        );
    }
    let keys = store.list_signing_keys().await.unwrap();
    let mut kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["k2", "k3"]);
    assert_eq!(active_kids(&keys), ["k3"]);

    // Kept.
    store.get_auth_request(&AuthRequestId::new("ar-live"), T).await.unwrap();
    assert!(!store.get_auth_code(&digest("c-live"), T).await.unwrap().redeemed);
    assert!(store.get_grant(&GrantId::new("g-rev")).await.unwrap().revoked);
    assert!(matches!(use_token(&store, "rt-rev", "rt-rev-x", T + 5000, 0, T).await, RefreshOutcome::Revoked));
    assert!(!store.get_grant(&GrantId::new("g-live")).await.unwrap().revoked);
    assert_rotated(use_token(&store, "rt-live", "rt-live-x", T + 5000, 0, T).await, "g-live");
    assert_rotated(use_token(&store, "rt-c", "rt-c-x", T + 5000, 0, T).await, "g-rot");
    // The used token rt-b was kept, so its reuse is still detected.
    let outcome = use_token(&store, "rt-b", "rt-b-x", T + 5000, 0, T).await;
    assert!(matches!(outcome, RefreshOutcome::ReuseDetected(ref id) if id.as_str() == "g-rot"), "{outcome:?}");
}

/// `purge_expired` deletes at most `batch` records per call, and reports exactly what it deleted.
pub async fn purge_respects_batch(store: Arc<dyn Store>) {
    const T: UnixTime = 2_000_000;
    for i in 0..3 {
        store.put_auth_request(&auth_request(&format!("ar-b{i}"), T - 1 - i)).await.unwrap();
    }
    for i in 0..2 {
        store.put_auth_code(&code(&format!("c-b{i}"), &format!("g-b{i}"), "app", T - 1 - i)).await.unwrap();
    }
    store.put_auth_request(&auth_request("ar-b-live", T + 1)).await.unwrap();

    assert_eq!(store.purge_expired(T, 0).await.unwrap(), 0, "batch 0");
    assert_eq!(store.purge_expired(T, 2).await.unwrap(), 2);
    assert_eq!(store.purge_expired(T, 2).await.unwrap(), 2);
    assert_eq!(store.purge_expired(T, 2).await.unwrap(), 1);
    assert_eq!(store.purge_expired(T, 2).await.unwrap(), 0);
    store.get_auth_request(&AuthRequestId::new("ar-b-live"), T).await.unwrap();
    assert_eq!(store.purge_expired(T + 1, 2).await.unwrap(), 1, "the live request, once it lapses");
}

// ----- account linking ------------------------------------------------------------------------

/// Links are found by their last-known email, whatever its case.
pub async fn link_lookup_by_email_ignores_case(store: Arc<dyn Store>) {
    store.create_user(&user("s1"), &link("u1", "s1", "Alice@Example.com")).await.unwrap();
    store.create_user(&user("s2"), &link("u2", "s2", "bob@example.com")).await.unwrap();
    let found = store.find_links_by_email("alice@EXAMPLE.com").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject.as_str(), "s1");
    assert!(store.find_links_by_email("carol@example.com").await.unwrap().is_empty());
    // An email changed upstream is found under its new value only.
    let mut l = found[0].clone();
    l.claims.email = Some("alice@new.example".into());
    store.update_link(&l).await.unwrap();
    assert!(store.find_links_by_email("alice@example.com").await.unwrap().is_empty());
    assert_eq!(store.find_links_by_email("ALICE@new.example").await.unwrap().len(), 1);
}

/// A second identity can be linked to an existing user, once; not to a user that does not exist.
pub async fn link_create_needs_the_user_and_is_unique(store: Arc<dyn Store>) {
    store.create_user(&user("s1"), &link("u1", "s1", "a@example.com")).await.unwrap();
    let mut other = link("u9", "s1", "a@example.com");
    other.connector_id = ConnectorId::new("clerk");
    store.create_link(&other).await.unwrap();
    assert!(matches!(store.create_link(&other).await, Err(StorageError::AlreadyExists)));
    let mut orphan = link("u10", "nobody", "x@example.com");
    orphan.connector_id = ConnectorId::new("clerk");
    assert!(matches!(store.create_link(&orphan).await, Err(StorageError::NotFound)));
    let found = store.find_link(&ConnectorId::new("clerk"), "u9").await.unwrap().unwrap();
    assert_eq!(found.subject.as_str(), "s1");
}

/// Links can be listed per user and deleted.
pub async fn link_delete_and_list(store: Arc<dyn Store>) {
    store.create_user(&user("s1"), &link("u1", "s1", "a@example.com")).await.unwrap();
    let mut second = link("u2", "s1", "a@example.com");
    second.connector_id = ConnectorId::new("auth0");
    store.create_link(&second).await.unwrap();
    let links = store.list_links(&Subject::new("s1")).await.unwrap();
    assert_eq!(links.iter().map(|l| l.connector_id.as_str()).collect::<Vec<_>>(), vec!["auth0", "local"]);
    store.delete_link(&ConnectorId::new("auth0"), "u2").await.unwrap();
    assert!(matches!(store.delete_link(&ConnectorId::new("auth0"), "u2").await, Err(StorageError::NotFound)));
    assert_eq!(store.list_links(&Subject::new("s1")).await.unwrap().len(), 1);
    // The user stays.
    assert_eq!(store.get_user(&Subject::new("s1")).await.unwrap().subject.as_str(), "s1");
}

/// Users read back and list oldest first.
pub async fn users_get_and_list(store: Arc<dyn Store>) {
    assert!(matches!(store.get_user(&Subject::new("s1")).await, Err(StorageError::NotFound)));
    let mut late = user("s0");
    late.created_at = NOW + 5;
    store.create_user(&late, &link("u0", "s0", "z@example.com")).await.unwrap();
    store.create_user(&user("s1"), &link("u1", "s1", "a@example.com")).await.unwrap();
    let all = store.list_users().await.unwrap();
    assert_eq!(all.iter().map(|u| u.subject.as_str()).collect::<Vec<_>>(), vec!["s1", "s0"]);
}

/// An import lands whole or not at all.
pub async fn import_is_all_or_nothing(store: Arc<dyn Store>) {
    store.create_user(&user("s1"), &link("u1", "s1", "a@example.com")).await.unwrap();
    let mut pre = link("clerk-1", "s1", "a@example.com");
    pre.connector_id = ConnectorId::new("clerk");
    let mut fresh = link("clerk-2", "s2", "b@example.com");
    fresh.connector_id = ConnectorId::new("clerk");
    // One link collides with an existing one: nothing is imported.
    let clash = link("u1", "s2", "b@example.com");
    assert!(matches!(
        store.import(&[user("s2")], &[pre.clone(), fresh.clone(), clash]).await,
        Err(StorageError::AlreadyExists)
    ));
    assert!(store.find_link(&ConnectorId::new("clerk"), "clerk-1").await.unwrap().is_none());
    assert!(matches!(store.get_user(&Subject::new("s2")).await, Err(StorageError::NotFound)));
    // A link to a user that exists nowhere: nothing is imported.
    let mut dangling = link("clerk-3", "ghost", "g@example.com");
    dangling.connector_id = ConnectorId::new("clerk");
    assert!(matches!(store.import(&[], &[pre.clone(), dangling]).await, Err(StorageError::NotFound)));
    assert!(store.find_link(&ConnectorId::new("clerk"), "clerk-1").await.unwrap().is_none());
    // A clean import lands whole.
    store.import(&[user("s2")], &[pre, fresh]).await.unwrap();
    assert_eq!(store.find_link(&ConnectorId::new("clerk"), "clerk-1").await.unwrap().unwrap().subject.as_str(), "s1");
    assert_eq!(store.find_link(&ConnectorId::new("clerk"), "clerk-2").await.unwrap().unwrap().subject.as_str(), "s2");
}

/// Bulk revocation by user, connector or client touches exactly the matching grants.
pub async fn revoke_grants_by_user_connector_and_client(store: Arc<dyn Store>) {
    start_grant(&store, "g-app", "app", "t-app", NOW + 3600, NOW).await;
    start_grant(&store, "g-other", "other", "t-other", NOW + 3600, NOW).await;
    assert_eq!(store.revoke_grants(&GrantFilter::Client(client("app"))).await.unwrap(), 1);
    assert!(store.get_grant(&GrantId::new("g-app")).await.unwrap().revoked);
    assert!(!store.get_grant(&GrantId::new("g-other")).await.unwrap().revoked);
    assert_eq!(store.revoke_grants(&GrantFilter::Connector(ConnectorId::new("github"))).await.unwrap(), 0);
    assert_eq!(store.revoke_grants(&GrantFilter::Subject(Subject::new("bob"))).await.unwrap(), 0);
    assert_eq!(store.revoke_grants(&GrantFilter::Subject(Subject::new("alice"))).await.unwrap(), 1);
    assert!(store.get_grant(&GrantId::new("g-other")).await.unwrap().revoked);
    assert_eq!(
        store.revoke_grants(&GrantFilter::Connector(ConnectorId::new("local"))).await.unwrap(),
        0,
        "already revoked"
    );
}
