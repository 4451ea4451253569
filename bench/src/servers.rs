//! Starting what is measured: Keybridge (in-process for smoke runs, the release binary for real
//! runs, so its RSS is its own) and node-oidc-provider.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::flows::Target;

/// The benchmark user.
pub const EMAIL: &str = "bench@example.com";
/// Its password.
pub const PASSWORD: &str = "bench-password";
const CLIENT: &str = "bench";
const SECRET: &str = "bench-secret";
const REDIRECT: &str = "https://bench.example/callback";

fn config(issuer: &str, listen: &str, db: Option<&str>, alg: &str) -> String {
    let storage = match db {
        Some(url) => format!("kind: postgres\n  url: {url}\n  max_connections: 16"),
        None => "kind: memory".into(),
    };
    format!(
        r#"issuer: {issuer}
listen: {listen}
storage:
  {storage}
tokens:
  signing_alg: {alg}
logging:
  level: warn
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
"#,
        hash = keybridge_testkit::password_hash(PASSWORD)
    )
}

enum Running {
    InProcess(actix_web::dev::ServerHandle),
    Process(tokio::process::Child),
}

/// A Keybridge under test.
pub struct Keybridge {
    base: String,
    running: Running,
}

impl Keybridge {
    /// In this process (smoke runs).
    pub async fn in_process(db: Option<&str>, alg: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let cfg = keybridge_server::config::from_yaml(&config(&base, &addr.to_string(), db, alg))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let running = keybridge_server::app::start(
            cfg,
            keybridge_server::app::Deps { listener: Some(listener), workers: Some(2), ..Default::default() },
        )
        .await?;
        let keybridge_server::app::Running { handle, server, .. } = running;
        tokio::spawn(server);
        Ok(Self { base, running: Running::InProcess(handle) })
    }

    /// The release binary, as its own process.
    pub async fn binary(bin: &Path, db: Option<&str>, alg: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            bin.exists(),
            "{} does not exist: build it with `cargo build --release -p keybridge-server`",
            bin.display()
        );
        let port = keybridge_testkit::process::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let path = std::env::temp_dir().join(format!("keybridge-bench-{}-{port}.yaml", std::process::id()));
        std::fs::write(&path, config(&base, &format!("127.0.0.1:{port}"), db, alg))?;
        let child = tokio::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        keybridge_testkit::process::wait_for_http(&format!("{base}/readyz"), Duration::from_secs(30)).await;
        Ok(Self { base, running: Running::Process(child) })
    }

    /// Its process id, when it runs in its own process.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(c) => c.id(),
            Running::InProcess(_) => None,
        }
    }

    /// Its RSS now.
    pub fn rss(&self) -> Option<f64> {
        self.pid().and_then(crate::load::rss_mib)
    }

    /// What to point the load at.
    pub fn target(&self) -> Target {
        Target {
            base: self.base.clone(),
            authorize_path: "/authorize",
            token_path: "/token",
            discovery_path: "/.well-known/openid-configuration",
            jwks_path: "/.well-known/jwks.json",
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
            redirect_uri: REDIRECT.into(),
        }
    }

    /// Stops it.
    pub async fn stop(self) {
        match self.running {
            Running::InProcess(h) => h.stop(true).await,
            Running::Process(mut c) => {
                let _ = c.kill().await;
            }
        }
    }
}

/// node-oidc-provider, from `tests/upstreams/oidc-provider` (its own process).
pub struct Peer {
    base: String,
    child: keybridge_testkit::process::ChildGuard,
}

impl Peer {
    /// Starts it on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let port = keybridge_testkit::process::free_port();
        let dir = keybridge_testkit::process::repo_root().join("tests/upstreams/oidc-provider");
        let port_s = port.to_string();
        let child = keybridge_testkit::process::spawn_node(
            &dir,
            "server.mjs",
            &[],
            &[
                ("PORT", &port_s),
                ("CLIENT_ID", CLIENT),
                ("CLIENT_SECRET", SECRET),
                ("REDIRECT_URI", REDIRECT),
                ("NODE_ENV", "production"),
            ],
            "ready on",
            Duration::from_secs(30),
        )
        .await;
        Ok(Self { base: format!("http://127.0.0.1:{port}"), child })
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.child.id()
    }

    /// Its RSS now.
    pub fn rss(&self) -> Option<f64> {
        self.pid().and_then(crate::load::rss_mib)
    }

    /// What to point the load at.
    pub fn target(&self) -> Target {
        Target {
            base: self.base.clone(),
            authorize_path: "/auth",
            token_path: "/token",
            discovery_path: "/.well-known/openid-configuration",
            jwks_path: "/jwks",
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
            redirect_uri: REDIRECT.into(),
        }
    }

    /// Stops it.
    pub async fn stop(mut self) {
        self.child.kill().await;
    }
}
