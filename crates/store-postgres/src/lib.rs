//! Keybridge's PostgreSQL store: what several replicas behind a load balancer share.
//!
//! Every method that must be atomic is one statement or one transaction with row locks, so two
//! replicas can never both redeem a code, both rotate a refresh token past the rules, or both
//! install a signing key. Connection failures answer [`StorageError::Unavailable`], which the
//! server turns into `503 temporarily_unavailable`; the pool reconnects by itself.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

pub mod migrate;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use keybridge_core::clock::UnixTime;
use keybridge_core::store::{
    AuthCodeRecord, AuthRequest, Grant, GrantData, GrantFilter, IdentityLink, RedeemOutcome, RefreshOutcome,
    RefreshTokenRecord, SigningKeyRecord, StorageError, StorageResult, Store, User,
};
use keybridge_core::types::{
    AuthRequestId, ClientId, ConnectorData, ConnectorId, GrantId, KeyId, Sha256Digest, Subject,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::{NoTls, Row};

/// A PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.pool.status();
        f.debug_struct("PgStore").field("size", &s.size).field("available", &s.available).finish()
    }
}

/// Pool use, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Connections idle.
    pub available: usize,
    /// The pool's limit.
    pub max_size: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

fn db_error(e: tokio_postgres::Error) -> StorageError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StorageError::AlreadyExists,
        Some(c)
            if c.code().starts_with("08") || c.code().starts_with("57P") || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StorageError::Unavailable(e.to_string())
        }
        Some(_) => StorageError::Backend(e.to_string()),
        // No SQLSTATE: the connection itself failed.
        None => StorageError::Unavailable(e.to_string()),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StorageError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => StorageError::Unavailable(other.to_string()),
    }
}

fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> StorageResult<T> {
    serde_json::from_value(v).map_err(|e| StorageError::Backend(format!("stored record does not parse: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> StorageResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StorageError::Backend(e.to_string()))
}

impl PgStore {
    /// Connects a pool of at most `max_connections` to `url`. Requests wait at most 5 s for a
    /// connection, so an outage answers 503 quickly instead of hanging.
    pub fn connect(url: &str, max_connections: usize) -> StorageResult<Self> {
        let pg: tokio_postgres::Config =
            url.parse().map_err(|e| StorageError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        let mut pg = pg;
        pg.connect_timeout(Duration::from_secs(5));
        let mgr = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<Vec<i32>, String> {
        let mut client = self.pool.get().await.map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        migrate::migrate(&mut client).await.map_err(|e| e.to_string())
    }

    /// Pool use.
    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus { size: s.size, available: s.available, max_size: s.max_size, waiting: s.waiting }
    }

    async fn client(&self) -> StorageResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Prepares a statement once per connection (cached by deadpool), so every later use is one
/// round trip instead of two.
trait Prepare {
    async fn prep(&self, sql: &str) -> StorageResult<tokio_postgres::Statement>;
}

impl Prepare for deadpool_postgres::ClientWrapper {
    async fn prep(&self, sql: &str) -> StorageResult<tokio_postgres::Statement> {
        self.prepare_cached(sql).await.map_err(db_error)
    }
}

impl Prepare for deadpool_postgres::Transaction<'_> {
    async fn prep(&self, sql: &str) -> StorageResult<tokio_postgres::Statement> {
        self.prepare_cached(sql).await.map_err(db_error)
    }
}

fn grant_from_row(row: &Row) -> StorageResult<Grant> {
    Ok(Grant {
        id: GrantId::new(row.get::<_, String>("id")),
        client_id: ClientId::new(row.get::<_, String>("client_id")),
        data: json::<GrantData>(row.get::<_, Json<serde_json::Value>>("data").0)?,
        created_at: row.get("created_at"),
        revoked: row.get("revoked"),
    })
}

fn key_from_row(row: &Row) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: KeyId::new(row.get::<_, String>("kid")),
        alg: row.get("alg"),
        private_pem: ConnectorData::new(row.get::<_, String>("private_key")),
        created_at: row.get("created_at"),
        retired_at: row.get("retired_at"),
        expires_at: row.get("expires_at"),
    }
}

const GRANT_COLUMNS: &str = "id, client_id, data, created_at, revoked";
const INSERT_LINK: &str = "INSERT INTO identity_links (connector_id, upstream_id, subject, claims, updated_at, email) VALUES ($1, $2, $3, $4, $5, $6)";
const LINK_COLUMNS: &str = "connector_id, upstream_id, subject, claims, updated_at";

fn email_key(link: &IdentityLink) -> Option<String> {
    link.claims.email.as_deref().map(str::to_lowercase)
}

fn link_from_row(r: &Row) -> StorageResult<IdentityLink> {
    Ok(IdentityLink {
        connector_id: ConnectorId::new(r.get::<_, String>(0)),
        upstream_id: r.get(1),
        subject: Subject::new(r.get::<_, String>(2)),
        claims: json(r.get::<_, Json<serde_json::Value>>(3).0)?,
        updated_at: r.get(4),
    })
}

#[async_trait]
impl Store for PgStore {
    async fn put_auth_request(&self, req: &AuthRequest) -> StorageResult<()> {
        let c = self.client().await?;
        c.execute(
            &c.prep("INSERT INTO auth_requests (id, data, expires_at) VALUES ($1, $2, $3)").await?,
            &[&req.id.as_str(), &Json(to_json(req)?), &req.expires_at],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_auth_request(&self, id: &AuthRequestId, now: UnixTime) -> StorageResult<AuthRequest> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &c.prep("SELECT data FROM auth_requests WHERE id = $1 AND expires_at > $2").await?,
                &[&id.as_str(), &now],
            )
            .await
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        json(row.get::<_, Json<serde_json::Value>>(0).0)
    }

    async fn update_auth_request(&self, req: &AuthRequest) -> StorageResult<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                &c.prep("UPDATE auth_requests SET data = $2, expires_at = $3 WHERE id = $1").await?,
                &[&req.id.as_str(), &Json(to_json(req)?), &req.expires_at],
            )
            .await
            .map_err(db_error)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    async fn take_auth_request(&self, id: &AuthRequestId, now: UnixTime) -> StorageResult<AuthRequest> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &c.prep("DELETE FROM auth_requests WHERE id = $1 AND expires_at > $2 RETURNING data").await?,
                &[&id.as_str(), &now],
            )
            .await
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        json(row.get::<_, Json<serde_json::Value>>(0).0)
    }

    async fn put_auth_code(&self, code: &AuthCodeRecord) -> StorageResult<()> {
        let c = self.client().await?;
        c.execute(&c.prep("INSERT INTO auth_codes (code_digest, grant_id, client_id, redeemed, data, expires_at) VALUES ($1, $2, $3, $4, $5, $6)").await?,
            &[&code.code_digest.as_str(), &code.grant_id.as_str(), &code.client_id.as_str(), &code.redeemed, &Json(to_json(code)?), &code.expires_at],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_auth_code(&self, digest: &Sha256Digest, now: UnixTime) -> StorageResult<AuthCodeRecord> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &c.prep("SELECT data, redeemed FROM auth_codes WHERE code_digest = $1 AND expires_at > $2").await?,
                &[&digest.as_str(), &now],
            )
            .await
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        let mut rec: AuthCodeRecord = json(row.get::<_, Json<serde_json::Value>>(0).0)?;
        rec.redeemed = row.get(1);
        Ok(rec)
    }

    async fn redeem_auth_code(
        &self,
        digest: &Sha256Digest,
        client_id: &ClientId,
        grant: &Grant,
        refresh: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StorageResult<RedeemOutcome> {
        let c = self.client().await?;
        // One statement, so one round trip and one implicit transaction: mark the code redeemed
        // (only if it is unredeemed, unexpired and this client's), then create the grant and its
        // first refresh token from that row. Two replicas racing: one UPDATE wins.
        let stmt = c
            .prepare_cached(
                "WITH won AS (
                     UPDATE auth_codes SET redeemed = TRUE
                     WHERE code_digest = $1 AND client_id = $2 AND NOT redeemed AND expires_at > $3
                     RETURNING grant_id),
                 g AS (
                     INSERT INTO grants (id, client_id, subject, connector_id, data, created_at, revoked)
                     SELECT $4, $5, $6, $7, $8, $9, $10 FROM won RETURNING id),
                 r AS (
                     INSERT INTO refresh_tokens (token_digest, grant_id, client_id, expires_at, used_at)
                     SELECT $11, g.id, $12, $13, $14 FROM g RETURNING token_digest)
                 SELECT count(*) FROM r",
            )
            .await
            .map_err(db_error)?;
        let row = c
            .query_one(
                &stmt,
                &[
                    &digest.as_str(),
                    &client_id.as_str(),
                    &now,
                    &grant.id.as_str(),
                    &grant.client_id.as_str(),
                    &grant.data.subject.as_str(),
                    &grant.data.connector_id.as_str(),
                    &Json(to_json(&grant.data)?),
                    &grant.created_at,
                    &grant.revoked,
                    &refresh.token_digest.as_str(),
                    &refresh.client_id.as_str(),
                    &refresh.expires_at,
                    &refresh.used_at,
                ],
            )
            .await
            .map_err(db_error)?;
        if row.get::<_, i64>(0) == 1 {
            return Ok(RedeemOutcome::Redeemed);
        }
        let stmt =
            c.prep("SELECT grant_id, redeemed FROM auth_codes WHERE code_digest = $1 AND expires_at > $2").await?;
        let row = c.query_opt(&stmt, &[&digest.as_str(), &now]).await.map_err(db_error)?;
        Ok(match row {
            Some(r) if r.get::<_, bool>(1) => RedeemOutcome::AlreadyRedeemed(GrantId::new(r.get::<_, String>(0))),
            _ => RedeemOutcome::NotFound,
        })
    }

    async fn get_grant(&self, id: &GrantId) -> StorageResult<Grant> {
        let c = self.client().await?;
        let row = c
            .query_opt(&c.prep(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1")).await?, &[&id.as_str()])
            .await
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        grant_from_row(&row)
    }

    async fn revoke_grant(&self, id: &GrantId) -> StorageResult<()> {
        let c = self.client().await?;
        c.execute(&c.prep("UPDATE grants SET revoked = TRUE WHERE id = $1").await?, &[&id.as_str()])
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn use_refresh_token(
        &self,
        digest: &Sha256Digest,
        client_id: &ClientId,
        new_digest: &Sha256Digest,
        new_expires_at: UnixTime,
        grace: i64,
        now: UnixTime,
    ) -> StorageResult<RefreshOutcome> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        // Lock the token row: concurrent refreshes of one token, on any replica, serialise here.
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT t.grant_id, t.client_id, t.used_at, g.{}
                 FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id
                 WHERE t.token_digest = $1 AND t.expires_at > $2
                 FOR UPDATE OF t",
                GRANT_COLUMNS.replace(", ", ", g.")
            ))
            .await
            .map_err(db_error)?;
        let Some(row) = tx.query_opt(&stmt, &[&digest.as_str(), &now]).await.map_err(db_error)? else {
            // A token whose grant is gone (purged) answers like an unknown one.
            return Ok(RefreshOutcome::NotFound);
        };
        let (token_client, used_at): (String, Option<i64>) = (row.get(1), row.get(2));
        if token_client != client_id.as_str() {
            return Ok(RefreshOutcome::WrongClient);
        }
        let grant = Grant {
            id: GrantId::new(row.get::<_, String>(3)),
            client_id: ClientId::new(row.get::<_, String>(4)),
            data: json::<GrantData>(row.get::<_, Json<serde_json::Value>>(5).0)?,
            created_at: row.get(6),
            revoked: row.get(7),
        };
        if grant.revoked {
            return Ok(RefreshOutcome::Revoked);
        }
        if let Some(used) = used_at
            && now.saturating_sub(used) > grace
        {
            let stmt = tx.prep("UPDATE grants SET revoked = TRUE WHERE id = $1").await?;
            tx.execute(&stmt, &[&grant.id.as_str()]).await.map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            return Ok(RefreshOutcome::ReuseDetected(grant.id));
        }
        // Mark the presented token used (the first time) and store its successor, in one statement.
        let stmt = tx
            .prep(
                "WITH used AS (
                     UPDATE refresh_tokens SET used_at = $2 WHERE token_digest = $1 AND used_at IS NULL)
                 INSERT INTO refresh_tokens (token_digest, grant_id, client_id, expires_at, used_at)
                 VALUES ($3, $4, $5, $6, NULL)",
            )
            .await?;
        tx.execute(
            &stmt,
            &[&digest.as_str(), &now, &new_digest.as_str(), &grant.id.as_str(), &token_client, &new_expires_at],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(RefreshOutcome::Rotated(grant))
    }

    async fn update_grant_data(&self, id: &GrantId, data: &GrantData) -> StorageResult<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                &c.prep("UPDATE grants SET data = $2 WHERE id = $1").await?,
                &[&id.as_str(), &Json(to_json(data)?)],
            )
            .await
            .map_err(db_error)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    async fn find_link(&self, connector_id: &ConnectorId, upstream_id: &str) -> StorageResult<Option<IdentityLink>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &c.prep("SELECT subject, claims, updated_at FROM identity_links WHERE connector_id = $1 AND upstream_id = $2").await?,
                &[&connector_id.as_str(), &upstream_id],
            )
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(IdentityLink {
                connector_id: connector_id.clone(),
                upstream_id: upstream_id.to_owned(),
                subject: Subject::new(r.get::<_, String>(0)),
                claims: json(r.get::<_, Json<serde_json::Value>>(1).0)?,
                updated_at: r.get(2),
            })
        })
        .transpose()
    }

    async fn create_user(&self, user: &User, link: &IdentityLink) -> StorageResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        tx.execute(
            &tx.prep("INSERT INTO users (subject, created_at) VALUES ($1, $2)").await?,
            &[&user.subject.as_str(), &user.created_at],
        )
        .await
        .map_err(db_error)?;
        tx.execute(
            &tx.prep(INSERT_LINK).await?,
            &[
                &link.connector_id.as_str(),
                &link.upstream_id,
                &link.subject.as_str(),
                &Json(to_json(&link.claims)?),
                &link.updated_at,
                &email_key(link),
            ],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn update_link(&self, link: &IdentityLink) -> StorageResult<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                &c.prep(
                    "UPDATE identity_links SET subject = $3, claims = $4, updated_at = $5, email = $6
                 WHERE connector_id = $1 AND upstream_id = $2",
                )
                .await?,
                &[
                    &link.connector_id.as_str(),
                    &link.upstream_id,
                    &link.subject.as_str(),
                    &Json(to_json(&link.claims)?),
                    &link.updated_at,
                    &email_key(link),
                ],
            )
            .await
            .map_err(db_error)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    async fn find_links_by_email(&self, email: &str) -> StorageResult<Vec<IdentityLink>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prep(&format!("SELECT {LINK_COLUMNS} FROM identity_links WHERE email = $1 ORDER BY updated_at, connector_id, upstream_id")).await?,
                &[&email.to_lowercase()],
            )
            .await
            .map_err(db_error)?;
        rows.iter().map(link_from_row).collect()
    }

    async fn list_links(&self, subject: &Subject) -> StorageResult<Vec<IdentityLink>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &c.prep(&format!(
                    "SELECT {LINK_COLUMNS} FROM identity_links WHERE subject = $1 ORDER BY connector_id, upstream_id"
                ))
                .await?,
                &[&subject.as_str()],
            )
            .await
            .map_err(db_error)?;
        rows.iter().map(link_from_row).collect()
    }

    async fn create_link(&self, link: &IdentityLink) -> StorageResult<()> {
        let c = self.client().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &link.connector_id.as_str(),
            &link.upstream_id,
            &link.subject.as_str(),
            &Json(to_json(&link.claims)?),
            &link.updated_at,
            &email_key(link),
        ];
        match c.execute(&c.prep(INSERT_LINK).await?, &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Err(StorageError::NotFound),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn delete_link(&self, connector_id: &ConnectorId, upstream_id: &str) -> StorageResult<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                &c.prep("DELETE FROM identity_links WHERE connector_id = $1 AND upstream_id = $2").await?,
                &[&connector_id.as_str(), &upstream_id],
            )
            .await
            .map_err(db_error)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    async fn get_user(&self, subject: &Subject) -> StorageResult<User> {
        let c = self.client().await?;
        let row = c
            .query_opt(&c.prep("SELECT subject, created_at FROM users WHERE subject = $1").await?, &[&subject.as_str()])
            .await
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        Ok(User { subject: Subject::new(row.get::<_, String>(0)), created_at: row.get(1) })
    }

    async fn list_users(&self) -> StorageResult<Vec<User>> {
        let c = self.client().await?;
        let rows = c
            .query(&c.prep("SELECT subject, created_at FROM users ORDER BY created_at, subject").await?, &[])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| User { subject: Subject::new(r.get::<_, String>(0)), created_at: r.get(1) }).collect())
    }

    async fn import(&self, users: &[User], links: &[IdentityLink]) -> StorageResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        for u in users {
            tx.execute(
                &tx.prep("INSERT INTO users (subject, created_at) VALUES ($1, $2)").await?,
                &[&u.subject.as_str(), &u.created_at],
            )
            .await
            .map_err(db_error)?;
        }
        for link in links {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &link.connector_id.as_str(),
                &link.upstream_id,
                &link.subject.as_str(),
                &Json(to_json(&link.claims)?),
                &link.updated_at,
                &email_key(link),
            ];
            match tx.execute(&tx.prep(INSERT_LINK).await?, &params).await {
                Ok(_) => {}
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => return Err(StorageError::NotFound),
                Err(e) => return Err(db_error(e)),
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn revoke_grants(&self, filter: &GrantFilter) -> StorageResult<u64> {
        let c = self.client().await?;
        let (column, value) = match filter {
            GrantFilter::Subject(s) => ("subject", s.as_str()),
            GrantFilter::Connector(id) => ("connector_id", id.as_str()),
            GrantFilter::Client(id) => ("client_id", id.as_str()),
        };
        c.execute(
            &c.prep(&format!("UPDATE grants SET revoked = TRUE WHERE {column} = $1 AND NOT revoked")).await?,
            &[&value],
        )
        .await
        .map_err(db_error)
    }

    async fn list_signing_keys(&self) -> StorageResult<Vec<SigningKeyRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(&c.prep("SELECT kid, alg, private_key, created_at, retired_at, expires_at FROM signing_keys ORDER BY created_at, kid").await?, &[])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn rotate_signing_key(
        &self,
        expected_active: Option<&KeyId>,
        key: &SigningKeyRecord,
        now: UnixTime,
        old_expires_at: UnixTime,
    ) -> StorageResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        // Serialise rotations across replicas.
        tx.execute(&tx.prep("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE").await?, &[])
            .await
            .map_err(db_error)?;
        let active: Option<String> = tx
            .query_opt(&tx.prep("SELECT kid FROM signing_keys WHERE retired_at IS NULL").await?, &[])
            .await
            .map_err(db_error)?
            .map(|r| r.get(0));
        if active.as_deref() != expected_active.map(KeyId::as_str) {
            return Err(StorageError::Conflict(format!(
                "active signing key is {}, expected {}",
                active.as_deref().unwrap_or("none"),
                expected_active.map_or("none", KeyId::as_str)
            )));
        }
        tx.execute(
            &tx.prep("UPDATE signing_keys SET retired_at = $1, expires_at = $2 WHERE retired_at IS NULL").await?,
            &[&now, &old_expires_at],
        )
        .await
        .map_err(db_error)?;
        tx.execute(&tx.prep("INSERT INTO signing_keys (kid, alg, private_key, created_at, retired_at, expires_at) VALUES ($1, $2, $3, $4, NULL, $5)").await?,
            &[&key.kid.as_str(), &key.alg, &key.private_pem.secret(), &key.created_at, &key.expires_at],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime, batch: usize) -> StorageResult<usize> {
        let c = self.client().await?;
        let mut left = batch as i64;
        // (statement, whether it compares against now)
        let statements = [
            (
                "DELETE FROM auth_requests WHERE ctid IN (SELECT ctid FROM auth_requests WHERE expires_at <= $1 LIMIT $2)",
                true,
            ),
            (
                "DELETE FROM auth_codes WHERE ctid IN (SELECT ctid FROM auth_codes WHERE expires_at <= $1 LIMIT $2)",
                true,
            ),
            (
                "DELETE FROM refresh_tokens WHERE ctid IN (SELECT ctid FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
                true,
            ),
            // A grant lives as long as a refresh token refers to it.
            (
                "DELETE FROM grants WHERE ctid IN (SELECT g.ctid FROM grants g
                 WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = g.id) LIMIT $1)",
                false,
            ),
            (
                "DELETE FROM signing_keys WHERE ctid IN (SELECT ctid FROM signing_keys
                 WHERE retired_at IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2)",
                true,
            ),
        ];
        for (sql, uses_now) in statements {
            if left <= 0 {
                break;
            }
            let n = if uses_now {
                c.execute(&c.prep(sql).await?, &[&now, &left]).await.map_err(db_error)?
            } else {
                c.execute(&c.prep(sql).await?, &[&left]).await.map_err(db_error)?
            };
            left -= n as i64;
        }
        Ok(batch - left.max(0) as usize)
    }

    async fn ping(&self) -> StorageResult<()> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map_err(db_error)?;
        Ok(())
    }
}
