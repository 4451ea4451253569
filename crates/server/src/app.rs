//! Building and starting the HTTP server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use keybridge_core::client::ClientRegistry;
use keybridge_core::clock::{Clock, SystemClock};
use keybridge_core::provider::Provider;
use keybridge_core::signer::JwtSigner as _;
use keybridge_core::store::Store;
use keybridge_store::MemoryStore;
use keybridge_store_postgres::PgStore;
use keybridge_tokens::{KeyManager, KeyOptions};
use tracing_actix_web::TracingLogger;
use url::Url;

use crate::config::{Config, StorageConfig};
use crate::routes;

/// Shared state of every worker.
pub struct AppState {
    /// The broker.
    pub provider: Arc<Provider>,
    /// Signing keys and JWKS.
    pub keys: Arc<KeyManager>,
    /// The discovery document, serialised once.
    pub discovery: web::Bytes,
    /// The issuer's path ("" or "/tenant"), under which every endpoint is mounted.
    pub base_path: String,
    /// Cookies get `Secure` when the issuer is https.
    pub secure_cookies: bool,
    /// The PostgreSQL pool, when that is the store (for `/metrics`).
    pub pg: Option<PgStore>,
    /// Prometheus metrics.
    pub metrics: crate::observe::Metrics,
}

/// What [`start`] needs besides the config; tests inject their own.
pub struct Deps {
    /// Storage; built from the config when `None`.
    pub store: Option<Arc<dyn Store>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// A bound listener; the config's `listen` is bound when `None`.
    pub listener: Option<TcpListener>,
    /// HTTP worker threads; the number of cores when `None`.
    pub workers: Option<usize>,
    /// Connectors built in code, added after the configured ones (tests use this).
    pub extra_connectors: Vec<keybridge_core::connector::Connector>,
}

impl Default for Deps {
    fn default() -> Self {
        Self { store: None, clock: Arc::new(SystemClock), listener: None, workers: None, extra_connectors: Vec::new() }
    }
}

/// A started server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Stops it.
    pub handle: ServerHandle,
    /// Its state.
    pub state: web::Data<AppState>,
    /// Resolves when it stops.
    pub server: actix_web::dev::Server,
}

/// Opens storage. PostgreSQL is migrated first (`keybridge migrate` does the same on its own).
pub async fn open_store(cfg: &StorageConfig) -> anyhow::Result<(Arc<dyn Store>, Option<PgStore>)> {
    match cfg {
        StorageConfig::Memory => Ok((Arc::new(MemoryStore::new()), None)),
        StorageConfig::Postgres { url, max_connections } => {
            let pg = PgStore::connect(url, *max_connections).map_err(|e| anyhow::anyhow!("{e}"))?;
            let applied = pg.migrate().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if !applied.is_empty() {
                tracing::info!(?applied, "database migrated");
            }
            Ok((Arc::new(pg.clone()), Some(pg)))
        }
    }
}

/// The key manager's options from the config.
pub fn key_options(config: &Config) -> KeyOptions {
    let s = &config.settings;
    KeyOptions {
        alg: config.signing_alg,
        retain_secs: s.access_token_ttl.max(s.id_token_ttl),
        publish_delay: config.keys.publish_delay,
        sealer: config.keys.sealer.clone(),
    }
}

/// Builds the state: storage, keys, connectors, the discovery document.
pub async fn build_state(config: &Config, deps: &Deps) -> anyhow::Result<AppState> {
    let (store, pg) = match deps.store.clone() {
        Some(s) => (s, None),
        None => open_store(&config.storage).await?,
    };
    let settings = config.settings.clone();
    if pg.is_some() && !config.keys.sealer.is_sealing() {
        tracing::warn!("signing keys are stored unencrypted: set keys.encryption_key_env or keys.encryption_key_file");
    }
    let keys = KeyManager::load_or_create_with(store.clone(), key_options(config), deps.clock.now()).await?;
    let mut connectors: Vec<_> = config.connectors.iter().map(|c| c.open()).collect();
    connectors.extend(deps.extra_connectors.iter().cloned());
    let provider = Arc::new(Provider {
        settings,
        clients: ClientRegistry::new(config.clients.clone()),
        connectors,
        store,
        signer: keys.clone(),
        clock: deps.clock.clone(),
    });
    let issuer = Url::parse(&provider.settings.issuer)?;
    let base_path = issuer.path().trim_end_matches('/').to_owned();
    let discovery = web::Bytes::from(routes::discovery::document(
        &provider,
        keys.algorithm(),
        config.clients.iter().any(|c| c.is_public()),
    ));
    Ok(AppState {
        provider,
        keys,
        discovery,
        base_path,
        secure_cookies: issuer.scheme() == "https",
        pg,
        metrics: crate::observe::Metrics::new()?,
    })
}

/// Registers every route, under the issuer's path.
pub fn configure(base: &str) -> impl Fn(&mut web::ServiceConfig) + Clone + use<> {
    let base = base.to_owned();
    move |cfg: &mut web::ServiceConfig| {
        routes::health::configure(cfg);
        routes::discovery::configure_root(cfg, &base);
        cfg.service(
            web::scope(&base)
                .configure(routes::discovery::configure)
                .configure(routes::authorize::configure)
                .configure(routes::login::configure)
                .configure(routes::token::configure)
                .configure(routes::userinfo::configure),
        );
    }
}

/// Starts the server and the background housekeeping.
pub async fn start(config: Config, deps: Deps) -> anyhow::Result<Running> {
    let state = web::Data::new(build_state(&config, &deps).await?);
    let listener = match deps.listener {
        Some(l) => l,
        None => {
            TcpListener::bind(config.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?
        }
    };
    let addr = listener.local_addr()?;
    let routes = configure(&state.base_path);
    let app_state = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .wrap(
                DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer")),
            )
            .wrap(actix_web::middleware::from_fn(crate::observe::track))
            .wrap(TracingLogger::<crate::observe::KeybridgeRootSpan>::new())
            .configure(routes.clone())
    })
    .shutdown_timeout(20)
    .listen(listener)?;
    if let Some(w) = deps.workers {
        server = server.workers(w);
    }
    let server = server.run();
    let handle = server.handle();
    spawn_housekeeping(state.provider.clone());
    spawn_key_maintenance(
        state.keys.clone(),
        state.provider.clone(),
        config.keys.rotation_period,
        config.keys.publish_delay,
    );
    Ok(Running { addr, handle, state, server })
}

/// Reloads the keys (another replica may have rotated) and rotates when the period is up. Runs
/// at least twice per publish delay, so every replica publishes a new key before it signs.
fn spawn_key_maintenance(
    keys: Arc<KeyManager>,
    provider: Arc<Provider>,
    rotation_period: Option<i64>,
    publish_delay: i64,
) {
    let every = Duration::from_secs((publish_delay / 2).clamp(1, 30) as u64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = provider.now();
            let due = rotation_period.is_some_and(|p| keys.newest_key_created_at().saturating_add(p) <= now);
            let result = if due {
                keys.rotate(now).await.map(|kid| tracing::info!(%kid, "signing key rotated on schedule"))
            } else {
                keys.reload_at(now).await
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "signing key maintenance failed; will retry");
            }
        }
    });
}

/// Deletes expired records in bounded batches, every minute.
fn spawn_housekeeping(provider: Arc<Provider>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            loop {
                match provider.store.purge_expired(provider.now(), 1000).await {
                    Ok(n) if n >= 1000 => continue,
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(purged = n, "expired records deleted");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "purging expired records failed");
                        break;
                    }
                }
            }
        }
    });
}
