//! `keybridge users ...` and `keybridge tokens revoke` against a shared PostgreSQL database, as an
//! operator moving a GPT's users from one provider to another runs them.

use std::process::Command;
use std::sync::Arc;

use keybridge_core::store::Store;
use keybridge_testkit::{
    GPT_CLIENT, GPT_REDIRECT, Options, TestApp, password_hash, query_param, spawn_app_with, yaml_with_connectors,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_keybridge");
const EMAIL: &str = "alice@example.com";

fn provider(id: &str, upstream_id: &str, password: &str, verified: bool) -> String {
    format!(
        "  - id: {id}\n    type: local\n    config:\n      users:\n        - email: {EMAIL}\n          id: {upstream_id}\n          password_hash: \"{}\"\n          email_verified: {verified}\n",
        password_hash(password)
    )
}

async fn app(db: &str, connectors: String) -> TestApp {
    let store: Arc<dyn Store> = Arc::new(keybridge_store_postgres::PgStore::connect(db, 4).unwrap());
    spawn_app_with(Options {
        yaml: Some(Box::new(move |i, l| yaml_with_connectors(i, l, &connectors))),
        store: Some(store),
        ..Default::default()
    })
    .await
}

async fn login(app: &TestApp, connector: &str, password: &str) -> Value {
    let redirect = app
        .authorize_and_login(
            &[
                ("response_type", "code"),
                ("client_id", GPT_CLIENT),
                ("redirect_uri", GPT_REDIRECT),
                ("state", "s"),
                ("connector_id", connector),
            ],
            (EMAIL, password),
        )
        .await;
    app.redeem_gpt_code(&query_param(&redirect, "code").unwrap()).await
}

fn sub(t: &Value) -> String {
    use base64::Engine as _;
    let p = t["access_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

struct Cli {
    config: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Cli {
    fn new(db: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "keybridge-users-cli-{}-{}",
            std::process::id(),
            keybridge_testkit::process::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml =
            yaml_with_connectors("http://127.0.0.1:5556", "127.0.0.1:5556", &provider("supabase", "sb-1", "pw", true))
                .replacen("storage:\n  kind: memory\n", &format!("storage:\n  kind: postgres\n  url: {db}\n"), 1);
        let config = dir.join("keybridge.yaml");
        std::fs::write(&config, yaml).unwrap();
        Self { config, dir }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN).args(args).arg("--config").arg(&self.config).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn moving_users_from_one_provider_to_another_with_an_import() {
    let db = keybridge_testkit::pg::test_database().await;
    let before = app(&db, provider("supabase", "sb-1", "pw-a", true)).await;
    let t1 = login(&before, "supabase", "pw-a").await;
    let s = sub(&t1);
    drop(before);
    let cli = Cli::new(&db);

    // A malformed file is refused whole, every problem with its line.
    let bad = cli.file(
        "bad.csv",
        &format!("connector_id,upstream_id,email,sub\nclerk,user_2abc,{EMAIL},\nclerk,user_3,,no-such-sub\nclerk,,x@example.com,\nclerk,user_4,nobody@example.com,\n"),
    );
    let (ok, _, err) = cli.run(&["users", "import", &bad]);
    assert!(!ok);
    for needle in [
        "line 3: no user with sub \"no-such-sub\"",
        "line 4: connector_id and upstream_id are required",
        "line 5: no user has the verified email",
        "nothing was changed",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    let (ok, out, _) = cli.run(&["users", "export"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "nothing was half-imported: {out}");

    // A good file pre-links the new provider's identity to the existing user, by email.
    let good = cli.file("good.csv", &format!("connector_id,upstream_id,email\nclerk,user_2abc,{EMAIL}\n"));
    let (ok, out, err) = cli.run(&["users", "import", &good]);
    assert!(ok, "{err}");
    assert!(out.contains("imported 1 link(s)"));

    // After the switch, the person logs in through the new provider and keeps the same sub, even
    // though this provider does not assert a verified email: the operator linked it.
    let after = app(&db, provider("clerk", "user_2abc", "pw-b", false)).await;
    assert_eq!(sub(&login(&after, "clerk", "pw-b").await), s);

    let (ok, out, _) = cli.run(&["users", "export"]);
    assert!(ok);
    let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["sub"] == s.as_str()));
    let (ok, out, _) = cli.run(&["users", "show", EMAIL]);
    assert!(ok);
    assert!(out.contains(&s) && out.contains("clerk/user_2abc") && out.contains("supabase/sb-1"), "{out}");

    // Revoking the user's tokens kills the refresh token issued before the switch.
    let (ok, out, _) = cli.run(&["tokens", "revoke", "--user", &s]);
    assert!(ok);
    assert!(out.contains("revoked 2 grant(s)"), "{out}");
    let res =
        after.token(&[("grant_type", "refresh_token"), ("refresh_token", t1["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(res.status(), 400);

    // Unlink and link by hand.
    let (ok, _, _) = cli.run(&["users", "unlink", "--connector", "clerk", "--upstream-id", "user_2abc"]);
    assert!(ok);
    let (ok, _, err) = cli.run(&["users", "unlink", "--connector", "clerk", "--upstream-id", "user_2abc"]);
    assert!(!ok && err.contains("is not linked"));
    let (ok, _, err) = cli.run(&["users", "link", "--sub", &s, "--connector", "clerk", "--upstream-id", "user_2abc"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli.run(&["users", "link", "--sub", "nobody", "--connector", "auth0", "--upstream-id", "x"]);
    assert!(!ok && err.contains("no user with sub"));
    let (ok, _, err) = cli.run(&["tokens", "revoke", "--user", &s, "--client", GPT_CLIENT]);
    assert!(!ok, "exactly one filter: {err}");
}
