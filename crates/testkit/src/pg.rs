//! Throwaway PostgreSQL for tests (after crates.io's `crates_io_test_db`): one cluster per test
//! process, started with `initdb` into a temporary directory (as the `postgres` user when running
//! as root, since `initdb` refuses root), on a free port with its socket in that directory. One
//! template database is migrated once; each test gets its own clone. A watchdog stops the cluster
//! and deletes it when the test process exits. If PostgreSQL cannot start, the test fails with the
//! reason; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use keybridge_store_postgres::PgStore;
use tokio::sync::{Mutex, OnceCell};

/// A running cluster.
pub struct PgCluster {
    /// Its data directory (also the socket directory).
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
    durable: bool,
}

static SHARED: OnceCell<PgCluster> = OnceCell::const_new();
static TEMPLATE: OnceCell<()> = OnceCell::const_new();
static CLONE_LOCK: Mutex<()> = Mutex::const_new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// PostgreSQL's server binaries: `/usr/lib/postgresql/<newest>/bin`, else `$PATH`.
fn find_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    if let Some(bin) = versions.pop() {
        return bin;
    }
    let out = Command::new("sh").args(["-c", "command -v initdb"]).output().ok();
    match out.and_then(|o| String::from_utf8(o.stdout).ok()).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(p) => Path::new(&p).parent().map(Path::to_path_buf).unwrap_or_default(),
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found: ./scripts/test.sh installs them (apt-get install postgresql)"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl PgCluster {
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Starts a new cluster of its own (for tests that stop and start PostgreSQL), tuned for
    /// tests: no fsync.
    pub fn start_new() -> PgCluster {
        Self::start_inner(false)
    }

    /// Starts a new cluster with PostgreSQL's default durability (fsync, synchronous commit), as
    /// production runs it: for benchmarks.
    pub fn start_durable() -> PgCluster {
        Self::start_inner(true)
    }

    fn start_inner(durable: bool) -> PgCluster {
        let bin = find_bin();
        let as_postgres = is_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "keybridge-pg-{}-{n}-{}",
            std::process::id(),
            crate::process::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot hand {} to the postgres user (initdb refuses to run as root)", dir.display());
        }
        let cluster = PgCluster { dir: dir.clone(), port: crate::process::free_port(), bin, as_postgres, durable };
        let out = cluster
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
            .arg(dir.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start();
        cluster.spawn_watchdog();
        cluster
    }

    /// Another handle on the same cluster (for moving into a blocking task).
    pub fn clone_handle(&self) -> PgCluster {
        PgCluster {
            dir: self.dir.clone(),
            port: self.port,
            bin: self.bin.clone(),
            as_postgres: self.as_postgres,
            durable: self.durable,
        }
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start(&self) {
        let tuning = if self.durable {
            "-c shared_buffers=256MB"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let opts = format!("-k {} -p {} -h 127.0.0.1 {tuning} -c max_connections=400", self.dir.display(), self.port);
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "PostgreSQL did not start:\n{}{}\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (fast shutdown), as an outage would.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .output();
    }

    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {} -D {}/data -m immediate stop", pg_ctl.display(), self.dir.display())
        } else {
            format!("{} -D {}/data -m immediate stop", pg_ctl.display(), self.dir.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    async fn admin(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"));
        tokio::spawn(conn);
        client
    }

    /// Creates an empty, migrated database and returns its URL.
    pub async fn migrated_database(&self) -> String {
        let name = format!("kb_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        self.admin().await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let url = self.url(&name);
        PgStore::connect(&url, 2).unwrap().migrate().await.unwrap_or_else(|e| panic!("{e}"));
        url
    }
}

/// The shared cluster of this test process.
pub async fn cluster() -> &'static PgCluster {
    SHARED.get_or_init(|| async { tokio::task::spawn_blocking(PgCluster::start_new).await.unwrap() }).await
}

/// A fresh database for one test, cloned from the migrated template; returns its URL.
pub async fn test_database() -> String {
    let c = cluster().await;
    TEMPLATE
        .get_or_init(|| async {
            c.admin().await.batch_execute("CREATE DATABASE kb_template").await.unwrap();
            PgStore::connect(&c.url("kb_template"), 1).unwrap().migrate().await.unwrap_or_else(|e| panic!("{e}"));
        })
        .await;
    let name = format!("kb_test_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
    {
        let _guard = CLONE_LOCK.lock().await;
        c.admin().await.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE kb_template")).await.unwrap();
    }
    c.url(&name)
}

/// A [`PgStore`] on a fresh database.
pub async fn test_store() -> PgStore {
    PgStore::connect(&test_database().await, 8).unwrap()
}
