//! The `keybridge` command line, run as a user runs it.

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use argon2::password_hash::PasswordVerifier as _;

const BIN: &str = env!("CARGO_BIN_EXE_keybridge");

fn repo_file(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn write_config(yaml: &str) -> tempfile_path::TempFile {
    tempfile_path::TempFile::new(yaml)
}

/// A tiny self-deleting temp file, to avoid a dependency for one helper.
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);
    impl TempFile {
        pub fn new(contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("keybridge-cli-{}-{}.yaml", std::process::id(), rand_suffix()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    fn rand_suffix() -> u128 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    }
}

#[test]
fn check_config_accepts_the_dev_config_with_a_summary() {
    let out = Command::new(BIN).args(["check-config", "--config", &repo_file("config/dev.yaml")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("OK"));
    assert!(text.contains("issuer:     http://127.0.0.1:5556"));
    assert!(text.contains("connectors: local (local)"));
}

#[test]
fn check_config_lists_every_problem_and_fails() {
    let f = write_config(
        r#"
issuer: ftp://nowhere
listen: 127.0.0.1:5556
unknown_top: 1
clients:
  - id: c
    redirect_uris: [not-a-url]
  - id: c
    secret: s
    redirect_uris: [https://ok.example/cb]
connectors:
  - id: local
    type: local
    config:
      users:
        - email: a@example.com
          password_hash: plain
"#,
    );
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(&f.0).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "unknown_top: unknown key",
        "issuer: \"ftp://nowhere\" must use https",
        "clients[0]: missing secret",
        "clients[0].redirect_uris[0]: \"not-a-url\" is not an absolute URI",
        "clients[1].id: duplicate client id \"c\"",
        "connectors[0].config.users[0].password_hash: not an argon2id PHC string",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
}

#[test]
fn check_config_reports_a_missing_file_clearly() {
    let out = Command::new(BIN).args(["check-config", "--config", "/nonexistent/keybridge.yaml"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/keybridge.yaml"), "{err}");
}

#[test]
fn environment_variables_override_the_file() {
    let out = Command::new(BIN)
        .args(["check-config", "--config", &repo_file("config/dev.yaml")])
        .env("KEYBRIDGE__LISTEN", "127.0.0.1:7000")
        .env("KEYBRIDGE__TOKENS__SIGNING_ALG", "ES256")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen:     127.0.0.1:7000"), "{text}");
    assert!(text.contains("signing:    ES256"), "{text}");
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_string() {
    let mut child =
        Command::new(BIN).arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse battery staple\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let hash = argon2::PasswordHash::new(&phc).unwrap();
    assert!(argon2::Argon2::default().verify_password(b"correct horse battery staple", &hash).is_ok());
    assert!(argon2::Argon2::default().verify_password(b"correct horse battery staple\n", &hash).is_err());
}

#[test]
fn hash_password_refuses_an_empty_password() {
    let mut child =
        Command::new(BIN).arg("hash-password").stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("empty"));
}

#[test]
fn gpt_setup_prints_the_editor_fields() {
    let out = Command::new(BIN)
        .args(["gpt-setup", "--config", &repo_file("config/dev.yaml"), "--client", "demo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Client ID:              demo",
        "Client Secret:          demo-secret",
        "Authorization URL:      http://127.0.0.1:5556/authorize",
        "Token URL:              http://127.0.0.1:5556/token",
        "Scope:                  openid email profile",
        "Token Exchange Method:  Default (POST request)",
        "must share one root domain",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn gpt_setup_names_the_secret_variable_and_rejects_unknown_clients() {
    let dev = std::fs::read_to_string(repo_file("config/dev.yaml")).unwrap();
    let f = write_config(&dev.replace("secret: demo-secret", "secret_env: DEMO_CLIENT_SECRET"));
    let out = Command::new(BIN)
        .args(["gpt-setup", "--client", "demo", "--config"])
        .arg(&f.0)
        .env("DEMO_CLIENT_SECRET", "s3cret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("the value of the environment variable DEMO_CLIENT_SECRET"), "{text}");
    assert!(!text.contains("s3cret"));
    let out = Command::new(BIN)
        .args(["gpt-setup", "--config", &repo_file("config/dev.yaml"), "--client", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("no client \"nope\""));
}

/// The README's quick start: `serve --config config/dev.yaml`, then a login.
#[tokio::test]
async fn serve_starts_the_dev_config_and_a_login_completes() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config", &repo_file("config/dev.yaml")])
        .env("KEYBRIDGE__LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYBRIDGE__ISSUER", &issuer)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{issuer}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "keybridge serve did not come up");
    let auth = format!(
        "{issuer}/authorize?response_type=code&client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2Fcallback&state=xyz&scope=openid"
    );
    let res = http.get(auth).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login_url = res.headers()["location"].to_str().unwrap().to_owned();
    let html = http.get(&login_url).send().await.unwrap().text().await.unwrap();
    let grab = |name: &str| {
        let needle = format!("name=\"{name}\" value=\"");
        let start = html.find(&needle).unwrap() + needle.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let res = http
        .post(format!("{issuer}/login/local"))
        .form(&[
            ("req", grab("req")),
            ("csrf", grab("csrf")),
            ("login", "alice@example.com".into()),
            ("password", "keybridge-demo".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let back = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens: serde_json::Value = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:8000/callback"),
            ("client_id", "demo"),
            ("client_secret", "demo-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(banner.contains("alice@example.com"), "the banner says how to log in: {banner}");
    assert!(banner.contains("/authorize?"), "{banner}");
}

/// JSON logs carry a request id and never a secret; SIGTERM shuts down cleanly.
#[tokio::test]
async fn json_logs_have_request_ids_and_no_secrets_and_sigterm_exits_cleanly() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config", &repo_file("config/dev.yaml")])
        .env("KEYBRIDGE__LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYBRIDGE__ISSUER", &issuer)
        .env("KEYBRIDGE__LOGGING__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{issuer}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up);
    let res = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-secret-value"),
            ("client_id", "demo"),
            ("client_secret", "demo-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "graceful shutdown exits 0: {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l.to_string().contains("request_id")), "{logs}");
    assert!(lines.iter().any(|l| l.to_string().contains("\"client_id\":\"demo\"")), "{logs}");
    assert!(!logs.contains("demo-secret") && !logs.contains("rt-secret-value"), "no secrets in logs:\n{logs}");
}

#[test]
fn the_docker_config_validates() {
    let out = Command::new(BIN)
        .args(["check-config", "--config", &repo_file("docker/keybridge.yaml")])
        .env("KEYBRIDGE_DATABASE_URL", "postgres://keybridge:keybridge@postgres:5432/keybridge")
        .env("KEYBRIDGE_KEY_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .env("DEMO_CLIENT_SECRET", "x")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("storage:    postgres postgres://keybridge:***@postgres:5432/keybridge"),
        "the password is masked: {text}"
    );
}

#[test]
fn keys_commands_refuse_memory_storage_and_bad_encryption_keys_are_reported() {
    let out = Command::new(BIN).args(["keys", "list", "--config", &repo_file("config/dev.yaml")]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("storage kind is memory"));
    let out = Command::new(BIN)
        .args(["check-config", "--config", &repo_file("docker/keybridge.yaml")])
        .env("KEYBRIDGE_DATABASE_URL", "postgres://k@h/db")
        .env("KEYBRIDGE_KEY_ENCRYPTION_KEY", "too-short")
        .env("DEMO_CLIENT_SECRET", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("keys.encryption_key_env: the key"), "{err}");
}
