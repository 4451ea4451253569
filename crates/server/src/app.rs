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
use keybridge_tokens::KeyManager;
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

/// Builds the state: storage, keys, connectors, the discovery document.
pub async fn build_state(config: &Config, deps: &Deps) -> anyhow::Result<AppState> {
    let (store, pg) = match deps.store.clone() {
        Some(s) => (s, None),
        None => open_store(&config.storage).await?,
    };
    let settings = config.settings.clone();
    let retain = settings.access_token_ttl.max(settings.id_token_ttl);
    let keys = KeyManager::load_or_create(store.clone(), config.signing_alg, deps.clock.now(), retain).await?;
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
    Ok(AppState { provider, keys, discovery, base_path, secure_cookies: issuer.scheme() == "https", pg })
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
            .wrap(TracingLogger::default())
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
    Ok(Running { addr, handle, state, server })
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
