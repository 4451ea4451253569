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
        eprintln!("keybridge keys: storage kind is memory, whose keys live inside the running server; use kind: postgres to manage keys from here");
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
            let state = if k.active { "newest" } else if k.published { "retired" } else { "expired" };
            let t = |v: Option<i64>| v.map_or("-".to_string(), |s| s.to_string());
            println!("{:<34} {:<6} {:<8} {:<12} {:<12} {:<12}", k.kid, k.alg, state, k.created_at, t(k.retired_at), t(k.expires_at));
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
