//! `keybridge-bench`: measures Keybridge's token endpoint, logins, discovery and JWKS, with the
//! memory store and PostgreSQL, RS256 and ES256, against the signing ceiling of the same cores
//! and against node-oidc-provider (a certified OpenID provider), and writes `BENCHMARKS.md`.
//!
//! Every load is bounded in time and request count and goes to loopback only.
//! `--smoke` runs every scenario for a moment, in-process, as the test suite does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flows;
mod load;
mod report;
mod servers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use flows::Target;
use load::{Bounds, Stats};
use tokio::sync::Mutex;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "keybridge-bench", about = "Benchmarks Keybridge and writes BENCHMARKS.md")]
struct Args {
    /// A CI-sized run: a moment per scenario, servers in-process, no report file.
    #[arg(long)]
    smoke: bool,
    /// The `keybridge` release binary to measure (full runs).
    #[arg(long, default_value = "target/release/keybridge")]
    keybridge_bin: PathBuf,
    /// Seconds per time-bounded scenario.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Connections for request scenarios.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Codes minted (through real logins) and then redeemed, per configuration.
    #[arg(long, default_value_t = 3000)]
    codes: usize,
    /// Storage kinds to measure (default: both).
    #[arg(long, value_delimiter = ',', default_value = "memory,postgres")]
    storage: Vec<String>,
    /// Algorithms to measure (default: both).
    #[arg(long, value_delimiter = ',', default_value = "RS256,ES256")]
    algs: Vec<String>,
    /// Skip the node-oidc-provider peer.
    #[arg(long)]
    no_peer: bool,
    /// Where the report goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Who: `keybridge` or `oidc-provider`.
    pub server: &'static str,
    /// What.
    pub scenario: &'static str,
    /// `memory`, `postgres`, or `-`.
    pub storage: &'static str,
    /// `RS256`, `ES256`, or `-`.
    pub alg: &'static str,
    /// Connections.
    pub connections: usize,
    /// The numbers.
    pub stats: Stats,
    /// JWT signatures per successful response (for the ceiling fraction).
    pub signatures: u32,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Results {
    /// Rows.
    pub rows: Vec<Row>,
    /// Signatures per second on all cores, by algorithm.
    pub ceiling: Vec<(&'static str, f64)>,
    /// (server, storage, idle MiB, peak MiB).
    pub rss: Vec<(String, Option<f64>, Option<f64>)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let results = run(&args).await?;
    let text = report::render(&args_summary(&args), &results);
    if args.smoke {
        println!("{text}");
    } else {
        std::fs::write(&args.out, &text)?;
        println!("wrote {}", args.out.display());
    }
    let failed: Vec<&Row> = results.rows.iter().filter(|r| r.stats.ok == 0).collect();
    if !failed.is_empty() {
        for r in &failed {
            eprintln!(
                "{} {} {} {}: no request succeeded: {:?}",
                r.server, r.scenario, r.storage, r.alg, r.stats.first_error
            );
        }
        anyhow::bail!("{} scenario(s) failed", failed.len());
    }
    Ok(())
}

fn args_summary(a: &Args) -> String {
    if a.smoke {
        "keybridge-bench --smoke".into()
    } else {
        format!("keybridge-bench --seconds {} --connections {} --codes {}", a.seconds, a.connections, a.codes)
    }
}

/// Runs everything.
async fn run(a: &Args) -> anyhow::Result<Results> {
    let mut res = Results::default();
    let seconds = if a.smoke { Duration::from_millis(400) } else { Duration::from_secs(a.seconds) };
    let connections = if a.smoke { 4 } else { a.connections };
    let codes = if a.smoke { 8 } else { a.codes };

    for alg in ["RS256", "ES256"] {
        res.ceiling.push((
            alg,
            signing_ceiling(alg, if a.smoke { Duration::from_millis(200) } else { Duration::from_secs(3) }).await,
        ));
    }

    let pg = tokio::task::spawn_blocking(keybridge_testkit::pg::PgCluster::start_durable).await?;
    for storage in ["memory", "postgres"] {
        for alg in ["RS256", "ES256"] {
            if !a.storage.iter().any(|s| s == storage) || !a.algs.iter().any(|x| x == alg) {
                continue;
            }
            let db = if storage == "postgres" { Some(pg.migrated_database().await) } else { None };
            let server = if a.smoke {
                servers::Keybridge::in_process(db.as_deref(), alg).await?
            } else {
                servers::Keybridge::binary(&a.keybridge_bin, db.as_deref(), alg).await?
            };
            let idle = server.rss();
            let t = server.target();
            let (rows, peak) = load::with_peak_rss(server.pid(), async {
                let mut rows = Vec::new();
                if storage == "memory" && alg == "RS256" {
                    // The load generator's own ceiling: a two-byte response with no work behind it.
                    rows.push(
                        gets(&t, "healthz (load-generator ceiling)", "/healthz", connections, seconds, "keybridge")
                            .await,
                    );
                    rows.push(gets(&t, "discovery", t.discovery_path, connections, seconds, "keybridge").await);
                    rows.push(gets(&t, "jwks", t.jwks_path, connections, seconds, "keybridge").await);
                }
                let (redeem, refresh_tokens) = code_redemption(&t, codes, connections, true).await;
                rows.push(Row {
                    server: "keybridge",
                    scenario: "authorization_code",
                    storage,
                    alg,
                    connections,
                    stats: redeem,
                    signatures: 2,
                });
                let refresh = refresh_chains(&t, refresh_tokens, connections, seconds).await;
                rows.push(Row {
                    server: "keybridge",
                    scenario: "refresh_token",
                    storage,
                    alg,
                    connections,
                    stats: refresh,
                    signatures: 2,
                });
                let login = full_logins(&t, 8, seconds).await;
                rows.push(Row {
                    server: "keybridge",
                    scenario: "login (authorize, form, code, token)",
                    storage,
                    alg,
                    connections: 8,
                    stats: login,
                    signatures: 2,
                });
                rows
            })
            .await;
            for mut r in rows {
                r.storage = storage;
                r.alg = if r.signatures == 0 { "-" } else { alg };
                res.rows.push(r);
            }
            res.rss.push((format!("keybridge ({storage}, {alg})"), idle, peak));
            server.stop().await;
        }
    }
    pg.stop();
    if a.no_peer {
        return Ok(res);
    }

    let peer = servers::Peer::start().await?;
    let t = peer.target();
    let idle = peer.rss();
    let (rows, peak) = load::with_peak_rss(peer.pid(), async {
        let mut rows = vec![
            gets(&t, "discovery", t.discovery_path, connections, seconds, "oidc-provider").await,
            gets(&t, "jwks", t.jwks_path, connections, seconds, "oidc-provider").await,
        ];
        let (redeem, rts) = code_redemption(&t, codes, connections, false).await;
        rows.push(Row {
            server: "oidc-provider",
            scenario: "authorization_code",
            storage: "memory",
            alg: "RS256",
            connections,
            stats: redeem,
            signatures: 1,
        });
        let refresh = refresh_chains(&t, rts, connections, seconds).await;
        rows.push(Row {
            server: "oidc-provider",
            scenario: "refresh_token",
            storage: "memory",
            alg: "RS256",
            connections,
            stats: refresh,
            signatures: 1,
        });
        rows
    })
    .await;
    res.rows.extend(rows);
    res.rss.push(("oidc-provider (memory, RS256)".into(), idle, peak));
    peer.stop().await;
    Ok(res)
}

async fn gets(
    t: &Target,
    scenario: &'static str,
    path: &str,
    connections: usize,
    seconds: Duration,
    server: &'static str,
) -> Row {
    let url = Arc::new(format!("{}{path}", t.base));
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..connections).map(|_| load::client()).collect());
    let stats = load::run(Bounds { workers: connections, duration: seconds, max_requests: 5_000_000 }, move |w, _| {
        let (url, clients) = (url.clone(), clients.clone());
        async move { flows::get_ok(&clients[w], &url).await }
    })
    .await;
    Row { server, scenario, storage: "-", alg: "-", connections, stats, signatures: 0 }
}

/// Mints `codes` codes through real logins (8 at a time), then redeems them all with
/// `connections` workers; returns the redemption stats and the refresh tokens it got.
async fn code_redemption(t: &Target, codes: usize, connections: usize, keybridge: bool) -> (Stats, Vec<String>) {
    let minted = Arc::new(Mutex::new(Vec::with_capacity(codes)));
    let mint_t = Arc::new(t.clone());
    let mint_clients: Arc<Vec<reqwest::Client>> = Arc::new((0..8).map(|_| load::client()).collect());
    let m = minted.clone();
    let mint =
        load::run(Bounds { workers: 8, duration: Duration::from_secs(50), max_requests: codes as u64 }, move |w, _| {
            let (t, clients, m) = (mint_t.clone(), mint_clients.clone(), m.clone());
            async move {
                let code = if keybridge {
                    flows::keybridge_code(&clients[w], &t, servers::EMAIL, servers::PASSWORD).await?
                } else {
                    flows::peer_code(&t).await?
                };
                m.lock().await.push(code);
                Ok(true)
            }
        })
        .await;
    if mint.ok == 0 {
        return (mint, Vec::new());
    }
    let queue = Arc::new(Mutex::new(std::mem::take(&mut *minted.lock().await)));
    let rts = Arc::new(Mutex::new(Vec::new()));
    let redeem_t = Arc::new(t.clone());
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..connections).map(|_| load::client()).collect());
    let r = rts.clone();
    let stats = load::run(
        Bounds { workers: connections, duration: Duration::from_secs(60), max_requests: codes as u64 },
        move |w, _| {
            let (t, clients, queue, r) = (redeem_t.clone(), clients.clone(), queue.clone(), r.clone());
            async move {
                let Some(code) = queue.lock().await.pop() else { return Ok(false) };
                let body = flows::redeem(&clients[w], &t, &code).await?;
                if let Some(rt) = body["refresh_token"].as_str() {
                    r.lock().await.push(rt.to_owned());
                }
                Ok(true)
            }
        },
    )
    .await;
    let rts = std::mem::take(&mut *rts.lock().await);
    (stats, rts)
}

/// Each worker refreshes its own token chain (every refresh returns the next token).
async fn refresh_chains(t: &Target, tokens: Vec<String>, connections: usize, seconds: Duration) -> Stats {
    let workers = connections.min(tokens.len()).max(1);
    let chains: Arc<Vec<Mutex<String>>> = Arc::new(tokens.into_iter().take(workers).map(Mutex::new).collect());
    let t = Arc::new(t.clone());
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..workers).map(|_| load::client()).collect());
    load::run(Bounds { workers, duration: seconds, max_requests: 5_000_000 }, move |w, _| {
        let (t, clients, chains) = (t.clone(), clients.clone(), chains.clone());
        async move {
            let Some(slot) = chains.get(w) else { return Ok(false) };
            let mut rt = slot.lock().await;
            let body = flows::refresh(&clients[w], &t, &rt).await?;
            *rt = body["refresh_token"].as_str().ok_or("no refresh_token")?.to_owned();
            Ok(true)
        }
    })
    .await
}

/// Whole browser-less logins: authorize, login form (argon2), code, token.
async fn full_logins(t: &Target, workers: usize, seconds: Duration) -> Stats {
    let t = Arc::new(t.clone());
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..workers).map(|_| load::client()).collect());
    load::run(Bounds { workers, duration: seconds, max_requests: 1_000_000 }, move |w, _| {
        let (t, clients) = (t.clone(), clients.clone());
        async move {
            let code = flows::keybridge_code(&clients[w], &t, servers::EMAIL, servers::PASSWORD).await?;
            flows::redeem(&clients[w], &t, &code).await?;
            Ok(true)
        }
    })
    .await
}

/// JWT signatures per second with Keybridge's own signing code, on every core at once.
async fn signing_ceiling(alg: &str, duration: Duration) -> f64 {
    use keybridge_core::signer::JwtSigner as _;
    let store: Arc<dyn keybridge_core::store::Store> = Arc::new(keybridge_store::MemoryStore::new());
    let km =
        keybridge_tokens::KeyManager::load_or_create(store, alg.parse().unwrap(), 1_700_000_000, 3600).await.unwrap();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:5556", "sub": "0123456789abcdef0123456789abcdef", "aud": "https://api.example.com",
        "exp": 1_700_003_600, "iat": 1_700_000_000, "jti": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",
        "client_id": "bench", "scope": "openid email", "auth_time": 1_700_000_000, "sid": "0123456789abcdef0123456789abcdef",
    });
    let claims = claims.as_object().unwrap().clone();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (km, claims) = (km.clone(), claims.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < duration {
                    let _ = km.sign("at+jwt", &claims);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}
