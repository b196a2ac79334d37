//! PostgreSQL, the source of truth: connecting (creating the database if needed), migrations,
//! the queries for events, full-text search, statistics and API keys, and retention by monthly
//! partition. Speaks domain types only.

mod api_keys;
mod events;
mod filter;
mod outbox;
mod retention;
mod search;
mod stats;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use api_keys::ApiKeyRecord;
pub use outbox::OutboxEntry;
pub use retention::DroppedPartition;
pub use search::{ScoredHit, FRAGMENT_BREAK, MATCH_END, MATCH_START};

/// How long a caller waits for a pooled connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLSTATE for "database already exists", from a concurrent creator.
const DUPLICATE_DATABASE: &str = "42P04";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row {id} is not a valid event: {reason}")]
    Corrupt { id: uuid::Uuid, reason: String },
}

impl StoreError {
    /// Whether the database itself is out of reach (down, restarting, refusing connections):
    /// nothing is wrong with the work, it has to wait.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                // 08 connection exceptions; 57P01-57P03 shutdown, crash, cannot connect now.
                let code = db.code().unwrap_or_default();
                code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
            }
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        }
    }

    /// Whether trying again later may succeed (the database is out of reach, or the statement hit
    /// a conflict, a timeout or a resource limit), as opposed to a row it will never accept.
    pub fn is_transient(&self) -> bool {
        if self.is_unavailable() {
            return true;
        }
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                let code = db.code().unwrap_or_default();
                // 40 rollback (serialization, deadlock), 53 resources, 55P03 lock not
                // available, 57014 statement timeout or cancel, 58 system errors.
                ["40", "53", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
                    || matches!(&*code, "55P03" | "57014")
            }
            StoreError::Database(sqlx::Error::Protocol(_)) => true,
            _ => false,
        }
    }
}

/// How the store's connections are shared out, and how long one statement may run.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    /// For everything interactive: reads, writes, the worker, the outbox.
    pub max_connections: u32,
    /// For long readers (exports), apart: however many of them stall, they cannot take what
    /// interactive reads need.
    pub stream_connections: u32,
    /// Statements on the interactive connections; `None`: the server's default.
    pub statement_timeout: Option<Duration>,
    /// Statements on the stream connections (an export is one long statement).
    pub stream_statement_timeout: Option<Duration>,
}

impl PoolSettings {
    /// `max_connections` for everything, one connection for streams, no statement timeouts: what
    /// the operator's commands and tests use.
    pub fn simple(max_connections: u32) -> Self {
        Self {
            max_connections,
            stream_connections: 1,
            statement_timeout: None,
            stream_statement_timeout: None,
        }
    }
}

/// Pools of connections to the events database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Long readers' own pool (see `PoolSettings::stream_connections`).
    streams: PgPool,
    /// Whether inserted events are queued for the Elasticsearch indexer.
    search_backlog: bool,
}

impl Store {
    /// Connects, creating the database first if the server does not have it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_with(url, PoolSettings::simple(max_connections)).await
    }

    /// Connects with the pools `settings` describe.
    pub async fn connect_with(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(with_statement_timeout(
                options.clone(),
                settings.statement_timeout,
            ))
            .await?;
        // Opened on first use: most processes never export.
        let streams = PgPoolOptions::new()
            .max_connections(settings.stream_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(with_statement_timeout(
                options,
                settings.stream_statement_timeout,
            ));
        Ok(Self {
            pool,
            streams,
            search_backlog: false,
        })
    }

    /// Applies the migrations in `migrations/` that this database has not seen.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Why the connection's role can do more than the service needs (it is a superuser, who
    /// can switch the append-only triggers off, or it owns the events, which grants do not
    /// bind), or `None` when it cannot.
    pub async fn excess_privilege(&self) -> Result<Option<&'static str>, StoreError> {
        let (superuser, owner): (bool, bool) = sqlx::query_as(
            "SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') \
             FROM pg_roles r, pg_class c \
             WHERE r.rolname = current_user AND c.oid = 'audit_events'::regclass",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(if superuser {
            Some("a PostgreSQL superuser")
        } else if owner {
            Some("the owner of the event tables")
        } else {
            None
        })
    }

    /// Makes `role` (created as a login role if it does not exist) a member of
    /// `traceledger_runtime`: what the service needs, and no more. `role` must be a plain
    /// lowercase identifier.
    pub async fn grant_runtime_role(&self, role: &str) -> Result<(), StoreError> {
        let quoted = format!("\"{}\"", role.replace('"', "\"\""));
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(&self.pool)
                .await?;
        if !exists {
            sqlx::query(&format!("CREATE ROLE {quoted} LOGIN"))
                .execute(&self.pool)
                .await?;
        }
        sqlx::query(&format!("GRANT traceledger_runtime TO {quoted}"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Queues every event this store inserts for the search indexer (`search_backlog`).
    pub fn with_search_backlog(mut self, on: bool) -> Self {
        self.search_backlog = on;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn with_statement_timeout(
    options: PgConnectOptions,
    timeout: Option<Duration>,
) -> PgConnectOptions {
    match timeout {
        Some(timeout) => {
            options.options([("statement_timeout", format!("{}ms", timeout.as_millis()))])
        }
        None => options,
    }
}

async fn ensure_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if exists {
        return Ok(());
    }
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match sqlx::query(&create).execute(&mut admin).await {
        Ok(_) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(DUPLICATE_DATABASE) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
