//! The command line (clap). Command and flag names are a contract: extend them, never rename them.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keybridge_core::client::Client;

use crate::app::{self, Deps};
use crate::config::{self, Config};
use crate::connectors::ConnectorKind;

/// Keybridge: an OAuth 2.0 / OpenID Connect federation broker.
#[derive(Debug, Parser)]
#[command(name = "keybridge", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the broker.
    Serve {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 with a summary, or list every problem and exit 1.
    CheckConfig {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Read a password from stdin and print its argon2id PHC string.
    HashPassword,
    /// Manage signing keys in shared storage.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage users and their linked identities (shared storage).
    Users {
        /// What to do.
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Revoke refresh tokens in bulk (shared storage).
    Tokens {
        /// What to do.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Apply pending database migrations (PostgreSQL), then exit.
    Migrate {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Print what to type into a GPT editor's OAuth form for a client.
    GptSetup {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
        /// The client's id.
        #[arg(long)]
        client: String,
    },
}

/// `keybridge keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the signing key now: every replica publishes the new key, which signs after the publish delay.
    Rotate {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// List the signing keys (no private material).
    List {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
}

/// `keybridge users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Pre-link identities from a file (CSV with a header, or JSON): all rows or none.
    Import {
        /// The file: columns connector_id, upstream_id, and sub or email.
        file: PathBuf,
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Print every linked identity as JSON lines (importable as they are).
    Export {
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Show a user, by sub or by email.
    Show {
        /// A sub or an email.
        who: String,
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Link an upstream identity to an existing user.
    Link {
        /// The user.
        #[arg(long)]
        sub: String,
        /// The connector.
        #[arg(long)]
        connector: String,
        /// The user's id at that connector.
        #[arg(long)]
        upstream_id: String,
        /// The identity's email, if known.
        #[arg(long)]
        email: Option<String>,
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Remove a link (the user stays; that identity's next login makes or finds another user).
    Unlink {
        /// The connector.
        #[arg(long)]
        connector: String,
        /// The user's id at that connector.
        #[arg(long)]
        upstream_id: String,
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
}

/// `keybridge tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Revoke every grant (refresh tokens, and access tokens at /userinfo) of a user, connector or client.
    Revoke {
        /// A user's sub.
        #[arg(long, group = "which")]
        user: Option<String>,
        /// A connector id.
        #[arg(long, group = "which")]
        connector: Option<String>,
        /// A client id.
        #[arg(long, group = "which")]
        client: Option<String>,
        /// The YAML config file.
        #[arg(long, env = "KEYBRIDGE_CONFIG")]
        config: PathBuf,
    },
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => match config::load(&config) {
            Ok(cfg) => {
                println!("{}: OK", config.display());
                print!("{}", summary(&cfg));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::FAILURE
            }
        },
        Command::HashPassword => hash_password(),
        Command::Migrate { config } => migrate(&config),
        Command::Keys { command } => keys(command),
        Command::Users { command } => admin(users_config(&command), |store| users(command, store)),
        Command::Tokens { command } => {
            let TokensCommand::Revoke { config, .. } = &command;
            let config = config.clone();
            admin(config, |store| tokens(command, store))
        }
        Command::GptSetup { config, client } => gpt_setup(&config, &client),
    }
}

fn load_or_report(path: &Path) -> Option<Config> {
    match config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            None
        }
    }
}

/// A short description of a valid config.
pub fn summary(cfg: &Config) -> String {
    let mut s = format!(
        "  issuer:     {}\n  listen:     {}\n  storage:    {:?}\n  signing:    {}\n  clients:    {}\n  connectors: {}\n",
        cfg.settings.issuer,
        cfg.listen,
        cfg.storage,
        cfg.signing_alg,
        cfg.clients.iter().map(|c| c.id.to_string()).collect::<Vec<_>>().join(", "),
        cfg.connectors.iter().map(|c| format!("{} ({})", c.id, c.type_name())).collect::<Vec<_>>().join(", "),
    );
    if cfg.clients.is_empty() {
        s.push_str("  note: no clients are registered, so nobody can log in through an application yet\n");
    }
    s
}

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cfg.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(path: &Path) -> ExitCode {
    let Some(cfg) = load_or_report(path) else {
        return ExitCode::FAILURE;
    };
    init_tracing(&cfg);
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let banner = banner(&cfg);
    let result = runtime.block_on(async move {
        let running = app::start(cfg, Deps::default()).await?;
        println!("{banner}");
        running.server.await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keybridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `serve` prints once it listens: where it is and how to log in.
pub fn banner(cfg: &Config) -> String {
    let iss = &cfg.settings.issuer;
    let mut s = format!(
        "Keybridge is listening on {} as issuer {iss}\n  discovery: {iss}/.well-known/openid-configuration\n",
        cfg.listen
    );
    for c in &cfg.connectors {
        #[allow(irrefutable_let_patterns)] // more connector kinds are coming
        if let ConnectorKind::Local(l) = &c.kind {
            s.push_str(&format!("  connector {:?} (local) users: {}\n", c.id, l.emails().join(", ")));
        }
    }
    if let Some(c) = cfg.clients.first()
        && let Some(uri) = c.redirect_uris.first()
    {
        {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("response_type", "code")
                .append_pair("client_id", c.id.as_str())
                .append_pair("redirect_uri", uri)
                .append_pair("scope", "openid email profile")
                .append_pair("state", "try-it")
                .finish();
            s.push_str(&format!("To log in, open {iss}/authorize?{q}\n"));
        }
    }
    s
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            None
        }
    }
}

fn migrate(path: &Path) -> ExitCode {
    let Some(cfg) = load_or_report(path) else { return ExitCode::FAILURE };
    let config::StorageConfig::Postgres { url, max_connections } = &cfg.storage else {
        println!("storage kind is memory: there is nothing to migrate");
        return ExitCode::SUCCESS;
    };
    let Some(rt) = runtime() else { return ExitCode::FAILURE };
    let result = rt.block_on(async {
        let pg = keybridge_store_postgres::PgStore::connect(url, *max_connections).map_err(|e| e.to_string())?;
        pg.migrate().await
    });
    match result {
        Ok(applied) if applied.is_empty() => {
            println!("the database is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            println!("applied migrations: {applied:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keybridge migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keys(command: KeysCommand) -> ExitCode {
    let (path, rotate) = match &command {
        KeysCommand::Rotate { config } => (config.clone(), true),
        KeysCommand::List { config } => (config.clone(), false),
    };
    let Some(cfg) = load_or_report(&path) else { return ExitCode::FAILURE };
    if matches!(cfg.storage, config::StorageConfig::Memory) {
        eprintln!(
            "keybridge keys: storage kind is memory, whose keys live inside the running server; use kind: postgres to manage keys from here"
        );
        return ExitCode::FAILURE;
    }
    let Some(rt) = runtime() else { return ExitCode::FAILURE };
    let result = rt.block_on(async {
        let (store, _) = app::open_store(&cfg.storage).await?;
        let now = keybridge_core::clock::Clock::now(&keybridge_core::clock::SystemClock);
        let km = keybridge_tokens::KeyManager::load_or_create_with(store, app::key_options(&cfg), now).await?;
        if rotate {
            let kid = km.rotate(now).await?;
            println!("rotated: new key {kid} is published now and signs after {}s", cfg.keys.publish_delay);
        }
        println!("{:<34} {:<6} {:<8} {:<12} {:<12} {:<12}", "kid", "alg", "state", "created", "retired", "expires");
        for k in km.keys() {
            let state = if k.active {
                "newest"
            } else if k.published {
                "retired"
            } else {
                "expired"
            };
            let t = |v: Option<i64>| v.map_or("-".to_string(), |s| s.to_string());
            println!(
                "{:<34} {:<6} {:<8} {:<12} {:<12} {:<12}",
                k.kid,
                k.alg,
                state,
                k.created_at,
                t(k.retired_at),
                t(k.expires_at)
            );
        }
        println!("signing now: {}", km.active_kid());
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keybridge keys: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn users_config(c: &UsersCommand) -> PathBuf {
    match c {
        UsersCommand::Import { config, .. }
        | UsersCommand::Export { config }
        | UsersCommand::Show { config, .. }
        | UsersCommand::Link { config, .. }
        | UsersCommand::Unlink { config, .. } => config.clone(),
    }
}

/// Runs an admin command against shared storage.
fn admin<F, Fut>(path: PathBuf, run: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<dyn keybridge_core::store::Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let Some(cfg) = load_or_report(&path) else { return ExitCode::FAILURE };
    if matches!(cfg.storage, config::StorageConfig::Memory) {
        eprintln!(
            "keybridge: storage kind is memory, which lives inside the running server; use kind: postgres to manage users and tokens from here"
        );
        return ExitCode::FAILURE;
    }
    let Some(rt) = runtime() else { return ExitCode::FAILURE };
    match rt.block_on(async {
        let (store, _) = app::open_store(&cfg.storage).await?;
        run(store).await
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keybridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn now() -> i64 {
    keybridge_core::clock::Clock::now(&keybridge_core::clock::SystemClock)
}

async fn users(command: UsersCommand, store: std::sync::Arc<dyn keybridge_core::store::Store>) -> anyhow::Result<()> {
    use keybridge_core::store::{IdentityLink, StorageError};
    use keybridge_core::types::{ConnectorId, Subject};
    use keybridge_core::users;
    match command {
        UsersCommand::Import { file, .. } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let rows = users::parse(&text)
                .map_err(|p| anyhow::anyhow!("{} was not imported:\n  - {}", file.display(), p.join("\n  - ")))?;
            let links = users::plan(store.as_ref(), &rows, now()).await.map_err(|p| {
                anyhow::anyhow!("{} was not imported (nothing was changed):\n  - {}", file.display(), p.join("\n  - "))
            })?;
            store
                .import(&[], &links)
                .await
                .map_err(|e| anyhow::anyhow!("{} was not imported (nothing was changed): {e}", file.display()))?;
            println!("imported {} link(s)", links.len());
        }
        UsersCommand::Export { .. } => {
            for row in users::export(store.as_ref()).await? {
                println!("{}", serde_json::to_string(&row)?);
            }
        }
        UsersCommand::Show { who, .. } => {
            let subjects: Vec<Subject> = if who.contains('@') {
                let mut s: Vec<Subject> =
                    store.find_links_by_email(&who).await?.into_iter().map(|l| l.subject).collect();
                s.sort();
                s.dedup();
                s
            } else {
                vec![Subject::new(&who)]
            };
            if subjects.is_empty() {
                anyhow::bail!("no user with email {who:?}");
            }
            for sub in subjects {
                let user = match store.get_user(&sub).await {
                    Ok(u) => u,
                    Err(StorageError::NotFound) => anyhow::bail!("no user with sub {sub:?}"),
                    Err(e) => return Err(e.into()),
                };
                println!("sub: {}  (created {})", user.subject, user.created_at);
                for l in store.list_links(&user.subject).await? {
                    println!(
                        "  {}/{}  email: {}{}",
                        l.connector_id,
                        l.upstream_id,
                        l.claims.email.as_deref().unwrap_or("-"),
                        if l.claims.email_verified { " (verified)" } else { "" }
                    );
                }
            }
        }
        UsersCommand::Link { sub, connector, upstream_id, email, .. } => {
            let link = IdentityLink {
                connector_id: ConnectorId::new(&connector),
                upstream_id: upstream_id.clone(),
                subject: Subject::new(&sub),
                claims: keybridge_core::identity::Claims { email, ..Default::default() },
                updated_at: now(),
            };
            match store.create_link(&link).await {
                Ok(()) => println!("linked {connector}/{upstream_id} to {sub}"),
                Err(StorageError::NotFound) => anyhow::bail!("no user with sub {sub:?}"),
                Err(StorageError::AlreadyExists) => {
                    anyhow::bail!("{connector}/{upstream_id} is already linked; unlink it first")
                }
                Err(e) => return Err(e.into()),
            }
        }
        UsersCommand::Unlink { connector, upstream_id, .. } => {
            match store.delete_link(&ConnectorId::new(&connector), &upstream_id).await {
                Ok(()) => println!("unlinked {connector}/{upstream_id}"),
                Err(StorageError::NotFound) => anyhow::bail!("{connector}/{upstream_id} is not linked"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn tokens(command: TokensCommand, store: std::sync::Arc<dyn keybridge_core::store::Store>) -> anyhow::Result<()> {
    use keybridge_core::store::GrantFilter;
    use keybridge_core::types::{ClientId, ConnectorId, Subject};
    let TokensCommand::Revoke { user, connector, client, .. } = command;
    let filter = match (user, connector, client) {
        (Some(u), None, None) => GrantFilter::Subject(Subject::new(u)),
        (None, Some(c), None) => GrantFilter::Connector(ConnectorId::new(c)),
        (None, None, Some(c)) => GrantFilter::Client(ClientId::new(c)),
        _ => anyhow::bail!("name exactly one of --user, --connector or --client"),
    };
    let n = store.revoke_grants(&filter).await?;
    println!("revoked {n} grant(s)");
    Ok(())
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = input.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&input);
    if password.is_empty() {
        eprintln!("the password is empty; pipe one in, e.g. `echo -n 'secret' | keybridge hash-password`");
        return ExitCode::FAILURE;
    }
    match keybridge_connector_local::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gpt_setup(path: &Path, client_id: &str) -> ExitCode {
    let Some(cfg) = load_or_report(path) else {
        return ExitCode::FAILURE;
    };
    let Some(client) = cfg.clients.iter().find(|c| c.id.as_str() == client_id) else {
        let known: Vec<String> = cfg.clients.iter().map(|c| c.id.to_string()).collect();
        eprintln!("no client {client_id:?} in {} (clients: {})", path.display(), known.join(", "));
        return ExitCode::FAILURE;
    };
    print!("{}", gpt_setup_text(&cfg, client));
    ExitCode::SUCCESS
}

/// The text `gpt-setup` prints.
pub fn gpt_setup_text(cfg: &Config, client: &Client) -> String {
    let iss = &cfg.settings.issuer;
    let secret = match (cfg.secret_env.get(client.id.as_str()), client.secrets.first()) {
        (Some(var), _) => {
            format!("the value of the environment variable {var} on the Keybridge host")
        }
        (None, Some(s)) => s.secret().to_owned(),
        (None, None) => "(none: this is a public client; GPT Actions need a confidential client with a secret)".into(),
    };
    let host = url::Url::parse(iss).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let mut s = format!(
        "In the GPT editor: Configure > Actions > Authentication > OAuth, enter:\n\n\
  Client ID:              {id}\n\
  Client Secret:          {secret}\n\
  Authorization URL:      {iss}/authorize\n\
  Token URL:              {iss}/token\n\
  Scope:                  {scope}\n\
  Token Exchange Method:  Default (POST request)   (\"Basic authorization header\" works too)\n\n\
Rule: the Authorization URL, the Token URL and your API's server URL must share one root domain\n\
(for example auth.example.com for Keybridge beside api.example.com for the API). Keybridge's host here is {host:?}.\n\n\
After saving, copy the Callback URL the editor shows into redirect_uris for client {id:?}, in both forms:\n\
  https://chatgpt.com/aip/<g-id>/oauth/callback and https://chat.openai.com/aip/<g-id>/oauth/callback\n\
It can change when you edit the action: check it again after every edit.\n",
        id = client.id,
        scope = client.default_scopes,
    );
    s.push_str(&format!("Registered redirect URIs now: {}\n", client.redirect_uris.join(", ")));
    let api_note = match &client.audience {
        Some(aud) => format!("Your API validates tokens with aud {aud:?} against {iss}/.well-known/jwks.json\n"),
        None => format!(
            "Your API validates tokens with aud {:?} (set audience: to change it) against {iss}/.well-known/jwks.json\n",
            client.id.as_str()
        ),
    };
    s.push_str(&api_note);
    if !iss.starts_with("https://") {
        s.push_str(
            "Warning: ChatGPT requires https on port 443 with a public certificate; this issuer is not https.\n",
        );
    }
    s
}
