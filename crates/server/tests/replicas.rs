//! Several `keybridge serve` processes on one PostgreSQL database, as behind a load balancer:
//! a flow spread over replicas, key rotation, a replica killed mid-flow, racing refreshes, and
//! a PostgreSQL outage.

use std::process::Stdio;
use std::time::Duration;

use keybridge_testkit::pg::{PgCluster, test_database};
use keybridge_testkit::process::free_port;
use serde_json::Value;
use url::Url;

const BIN: &str = env!("CARGO_BIN_EXE_keybridge");
const CLIENT: &str = "gpt";
const SECRET: &str = "gpt-secret";
const REDIRECT: &str = "https://chatgpt.com/aip/g-1/oauth/callback";
const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "alice-password";

fn config(issuer: &str, db_url: &str, extra: &str) -> String {
    use argon2::password_hash::PasswordHasher as _;
    let hash = argon2::Argon2::default().hash_password(PASSWORD.as_bytes()).unwrap().to_string();
    format!(
        r#"
issuer: {issuer}
listen: 127.0.0.1:1
storage:
  kind: postgres
  url: {db_url}
  max_connections: 4
tokens:
  refresh_reuse_grace: 2s
clients:
  - id: {CLIENT}
    secret: {SECRET}
    redirect_uris: [{REDIRECT}]
connectors:
  - id: local
    type: local
    config:
      users:
        - email: {EMAIL}
          password_hash: "{hash}"
          email_verified: true
{extra}"#
    )
}

struct Replica {
    base: String,
    child: tokio::process::Child,
}

struct Fleet {
    issuer: String,
    config_path: std::path::PathBuf,
    replicas: Vec<Replica>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config_path);
    }
}

async fn wait_ready(base: &str, timeout: Duration) -> bool {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn start_replica(config_path: &std::path::Path, issuer: &str) -> Replica {
    let port = free_port();
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config_path)
        .env("KEYBRIDGE__LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYBRIDGE__ISSUER", issuer)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert!(wait_ready(&base, Duration::from_secs(30)).await, "replica on {base} did not become ready");
    Replica { base, child }
}

async fn fleet(n: usize, db_url: &str, extra: &str) -> Fleet {
    // One issuer, as a load balancer in front of the replicas would present.
    let issuer = "http://127.0.0.1:8443".to_string();
    let config_path =
        std::env::temp_dir().join(format!("keybridge-replicas-{}-{}.yaml", std::process::id(), free_port()));
    std::fs::write(&config_path, config(&issuer, db_url, extra)).unwrap();
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(start_replica(&config_path, &issuer).await);
    }
    Fleet { issuer, config_path, replicas }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

/// Rewrites a URL on the issuer to the same path on a replica.
fn on(replica: &Replica, fleet: &Fleet, url: &str) -> String {
    url.replacen(&fleet.issuer, &replica.base, 1)
}

struct Form {
    req: String,
    csrf: String,
}

async fn open_form(b: &reqwest::Client, fleet: &Fleet, r: &Replica) -> Form {
    let res = b
        .get(format!("{}/authorize", r.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("state", "s1"),
            ("scope", "openid email"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    let html = b.get(on(r, fleet, &login)).send().await.unwrap().text().await.unwrap();
    let grab = |name: &str| {
        let needle = format!("name=\"{name}\" value=\"");
        let start = html.find(&needle).unwrap() + needle.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    Form { req: grab("req"), csrf: grab("csrf") }
}

async fn submit(b: &reqwest::Client, r: &Replica, form: &Form) -> String {
    let res = b
        .post(format!("{}/login/local", r.base))
        .form(&[("req", form.req.as_str()), ("csrf", form.csrf.as_str()), ("login", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.query_pairs().find(|(k, _)| k == "state").unwrap().1, "s1");
    back.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
}

async fn token(r: &Replica, form: &[(&str, &str)]) -> (u16, Value) {
    let mut body = form.to_vec();
    body.push(("client_id", CLIENT));
    body.push(("client_secret", SECRET));
    let res = reqwest::Client::new().post(format!("{}/token", r.base)).form(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn redeem(r: &Replica, code: &str) -> Value {
    let (status, body) =
        token(r, &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn authorize_on_a_redeem_on_b_refresh_on_c() {
    let db = test_database().await;
    let f = fleet(3, &db, "").await;
    let (a, b, c) = (&f.replicas[0], &f.replicas[1], &f.replicas[2]);
    let br = browser();
    let form = open_form(&br, &f, a).await;
    let code = submit(&br, a, &form).await;
    let tokens = redeem(b, &code).await;
    let (status, refreshed) =
        token(c, &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
            .await;
    assert_eq!(status, 200, "{refreshed}");
    // Every replica serves the same keys, so an access token from one is good at another's /userinfo.
    let at = refreshed["access_token"].as_str().unwrap();
    let userinfo = |r: &Replica| reqwest::Client::new().get(format!("{}/userinfo", r.base)).bearer_auth(at).send();
    assert_eq!(userinfo(a).await.unwrap().status(), 200);
    // The code is spent everywhere, and replaying it on C revokes the grant for every replica.
    let (status, err) =
        token(c, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(userinfo(a).await.unwrap().status(), 401);
    assert_eq!(userinfo(b).await.unwrap().status(), 401);
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine as _;
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

async fn jwks(r: &Replica) -> Value {
    reqwest::get(format!("{}/.well-known/jwks.json", r.base)).await.unwrap().json().await.unwrap()
}

fn verify_with_jwks(jwt: &str, jwks: &Value) -> bool {
    let kid = kid_of(jwt);
    let Some(jwk) = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()) else { return false };
    let jwk = josekit::jwk::Jwk::from_map(jwk.as_object().unwrap().clone()).unwrap();
    let verifier = josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap();
    josekit::jws::deserialize_compact(jwt, &verifier).is_ok()
}

#[tokio::test]
async fn a_key_rotated_through_one_replica_verifies_against_another() {
    let db = test_database().await;
    let f = fleet(2, &db, "keys:\n  publish_delay: 2s\n").await;
    let (a, b) = (&f.replicas[0], &f.replicas[1]);
    let first = jwks(a).await["keys"][0]["kid"].as_str().unwrap().to_owned();
    let out = tokio::process::Command::new(BIN)
        .args(["keys", "rotate", "--config"])
        .arg(&f.config_path)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Both replicas publish the new key within the publish delay...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let new_kid = loop {
        let kids: Vec<String> =
            jwks(b).await["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        if let Some(k) = kids.iter().find(|k| **k != first) {
            assert!(kids.contains(&first), "the old key stays published");
            break k.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "replica B never published the rotated key");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // ...and then A signs with it, and B's JWKS verifies it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let br = browser();
        let form = open_form(&br, &f, a).await;
        let code = submit(&br, a, &form).await;
        let t = redeem(a, &code).await;
        let at = t["access_token"].as_str().unwrap().to_owned();
        if kid_of(&at) == new_kid {
            assert!(verify_with_jwks(&at, &jwks(b).await), "a token signed with the new key verifies against B's JWKS");
            break;
        }
        assert!(verify_with_jwks(&at, &jwks(b).await), "tokens signed with the old key keep verifying");
        assert!(tokio::time::Instant::now() < deadline, "A never switched to the new key");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_replica_killed_mid_flow_does_not_lose_the_login() {
    let db = test_database().await;
    let mut f = fleet(2, &db, "").await;
    let br = browser();
    let form = open_form(&br, &f, &f.replicas[0]).await;
    f.replicas[0].child.kill().await.unwrap(); // SIGKILL
    let b = &f.replicas[1];
    let code = submit(&br, b, &form).await;
    let t = redeem(b, &code).await;
    assert!(t["access_token"].is_string());
}

#[tokio::test]
async fn racing_refreshes_on_two_replicas_follow_the_rotation_rules() {
    let db = test_database().await;
    let f = fleet(2, &db, "").await;
    let (a, b) = (&f.replicas[0], &f.replicas[1]);
    let br = browser();
    let form = open_form(&br, &f, a).await;
    let t = redeem(a, &submit(&br, a, &form).await).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let (ra, rb) = tokio::join!(token(a, &form), token(b, &form));
    assert_eq!(ra.0, 200, "{}", ra.1);
    assert_eq!(rb.0, 200, "within the grace window both succeed: {}", rb.1);
    assert_ne!(ra.1["refresh_token"], rb.1["refresh_token"]);
    // One family, not two.
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let grants: i64 = client.query_one("SELECT count(*) FROM grants", &[]).await.unwrap().get(0);
    assert_eq!(grants, 1);
    let family: i64 = client.query_one("SELECT count(*) FROM refresh_tokens", &[]).await.unwrap().get(0);
    assert_eq!(family, 3, "the original and one child per racer");
    // After the grace window, the reused token revokes the family everywhere.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, err) = token(b, &form).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) =
        token(a, &[("grant_type", "refresh_token"), ("refresh_token", ra.1["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(status, 400, "the racer's child is revoked too");
}

#[tokio::test]
async fn a_postgres_outage_answers_503_and_service_returns_by_itself() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start_new).await.unwrap();
    let db = cluster.migrated_database().await;
    let f = fleet(1, &db, "").await;
    let r = &f.replicas[0];
    let br = browser();
    let form = open_form(&br, &f, r).await;
    let before = redeem(r, &submit(&br, r, &form).await).await;

    tokio::task::spawn_blocking({
        let c = cluster.clone_handle();
        move || c.stop()
    })
    .await
    .unwrap();
    let (status, err) =
        token(r, &[("grant_type", "refresh_token"), ("refresh_token", before["refresh_token"].as_str().unwrap())])
            .await;
    assert_eq!((status, err["error"].as_str()), (503, Some("temporarily_unavailable")), "{err}");
    let page = br
        .get(format!("{}/authorize", r.base))
        .query(&[("response_type", "code"), ("client_id", CLIENT), ("redirect_uri", REDIRECT), ("state", "s1")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(reqwest::get(format!("{}/readyz", r.base)).await.unwrap().status(), 503);
    assert_eq!(reqwest::get(format!("{}/healthz", r.base)).await.unwrap().status(), 200, "alive, just not ready");

    tokio::task::spawn_blocking({
        let c = cluster.clone_handle();
        move || c.start()
    })
    .await
    .unwrap();
    assert!(wait_ready(&r.base, Duration::from_secs(30)).await, "service came back by itself");
    // Nothing committed before the outage was lost.
    let (status, body) =
        token(r, &[("grant_type", "refresh_token"), ("refresh_token", before["refresh_token"].as_str().unwrap())])
            .await;
    assert_eq!(status, 200, "{body}");
    let form = open_form(&br, &f, r).await;
    redeem(r, &submit(&br, r, &form).await).await;
}
