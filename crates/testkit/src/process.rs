//! Real upstreams for tests: Node.js programs (npm `oidc-provider`, the Firebase Auth Emulator)
//! and in-process fake servers. A test that needs Node fails loudly when Node cannot start;
//! it never skips.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
pub struct ChildGuard {
    /// The process.
    pub child: tokio::process::Child,
    /// What it printed before it was ready.
    pub output: String,
}

impl ChildGuard {
    /// Kills it now, the way `kill -9` does.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Starts `node script args...` in `dir` (a folder under `tests/upstreams/` with its own
/// `package.json` and `node_modules`) and waits until it prints a line containing `ready_marker`.
/// Panics, with what the program printed, if Node is missing, `npm ci` was not run, or it does
/// not become ready within `timeout`.
pub async fn spawn_node(
    dir: &Path,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    ready_marker: &str,
    timeout: Duration,
) -> ChildGuard {
    assert!(
        dir.join("node_modules").is_dir(),
        "{} has no node_modules: run ./scripts/test.sh (it runs `npm ci` there) or `npm ci --prefix {}`",
        dir.display(),
        dir.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script).args(args).current_dir(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node (is Node.js installed? ./scripts/test.sh installs it): {e}"));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let wait = async {
        loop {
            tokio::select! {
                line = out.next_line() => match line {
                    Ok(Some(l)) => { seen.push_str(&l); seen.push('\n'); if l.contains(ready_marker) { return true; } }
                    _ => return false,
                },
                line = err.next_line() => match line {
                    Ok(Some(l)) => { seen.push_str(&l); seen.push('\n'); if l.contains(ready_marker) { return true; } }
                    _ => return false,
                },
            }
        }
    };
    let ready = tokio::time::timeout(timeout, wait).await.unwrap_or(false);
    assert!(ready, "node {script} in {} did not become ready ({ready_marker:?}); it printed:\n{seen}", dir.display());
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                l = out.next_line() => if !matches!(l, Ok(Some(_))) { break },
                l = err.next_line() => if !matches!(l, Ok(Some(_))) { break },
            }
        }
    });
    ChildGuard { child, output: seen }
}

/// Serves routes on a free loopback port (for fake upstreams); returns the address.
pub fn serve<F>(configure: F) -> SocketAddr
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        HttpServer::new(move || App::new().configure(configure.clone())).workers(1).listen(listener).unwrap().run();
    tokio::spawn(server);
    addr
}

/// Polls `url` until it answers, or panics after `timeout`.
pub async fn wait_for_http(url: &str, timeout: Duration) {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if http.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer within {timeout:?}");
}
