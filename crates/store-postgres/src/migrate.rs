//! Numbered plain-SQL migrations from the top-level `migrations/`, each run in its own transaction
//! and recorded (with a checksum) in `schema_migrations`. An advisory lock keeps two replicas
//! starting at once from migrating together.

use sha2::{Digest as _, Sha256};
use tokio_postgres::Client;

/// The migrations, in order. A shipped migration is never edited: the checksum catches it.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_init", include_str!("../../../migrations/0001_init.sql")),
    (2, "0002_link_emails", include_str!("../../../migrations/0002_link_emails.sql")),
];

const LOCK_KEY: i64 = 0x6b65_7962_7269_6467; // "keybridg"

/// Why migrating failed.
#[derive(Debug)]
pub enum MigrateError {
    /// The database failed.
    Db(tokio_postgres::Error),
    /// A migration already applied differs from the one shipped.
    Edited(i32, String),
    /// The database is newer than this binary.
    TooNew(i32),
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "migration failed: {e}"),
            Self::Edited(v, name) => write!(
                f,
                "migration {v} ({name}) was applied with different contents: a shipped migration must never be edited"
            ),
            Self::TooNew(v) => {
                write!(f, "the database has migration {v}, which this keybridge does not know: upgrade keybridge")
            }
        }
    }
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies every pending migration; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, MigrateError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = migrate_locked(client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<Vec<i32>, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INT PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let rows = client.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version", &[]).await?;
    let mut applied = Vec::new();
    for row in &rows {
        let (version, name, sum): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
        match MIGRATIONS.iter().find(|(v, _, _)| *v == version) {
            Some((_, _, sql)) if checksum(sql) == sum => applied.push(version),
            Some(_) => return Err(MigrateError::Edited(version, name)),
            None => return Err(MigrateError::TooNew(version)),
        }
    }
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[version, name, &checksum(sql)],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "migration applied");
        done.push(*version);
    }
    Ok(done)
}

impl std::error::Error for MigrateError {}
