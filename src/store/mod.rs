//! PostgreSQL, the source of truth: connecting (creating the database if needed), migrations,
//! the queries for events, full-text search, statistics and API keys, and retention by monthly
//! partition. Speaks domain types only.

mod api_keys;
mod display_templates;
mod events;
mod filter;
mod full_text;
mod ledger;
mod notices;
mod outbox;
mod retention;
mod stats;
mod viewer_keys;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use api_keys::ApiKeyRecord;
pub use display_templates::StoredTemplate;
pub use events::MatchCount;
pub use full_text::{ScoredHit, FRAGMENT_BREAK, MATCH_END, MATCH_START};
pub use ledger::{ProofStart, Sealing, StoredCheckpoint};
pub use notices::{CommitListener, CommitNotice, Heard};
pub use outbox::OutboxEntry;
pub use retention::DroppedPartition;

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

/// Where PostgreSQL is, how this process shares out its connections, and how long one
/// statement may run.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "PostgreSQL")]
pub struct DatabaseSettings {
    /// PostgreSQL, the source of truth. The database is created if it does not exist.
    #[arg(
        value_name = "URL",
        id = "database-url",
        long = "database-url",
        env = "TRACELEDGER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/traceledger"
    )]
    pub url: String,

    /// Connections for interactive work (reads, writes, the worker) per process.
    #[arg(
        value_name = "MAX_CONNECTIONS",
        id = "database-max-connections",
        long = "database-max-connections",
        env = "TRACELEDGER_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub max_connections: u32,

    /// Connections for exports, apart from the interactive ones: stalled exports cannot take
    /// what reads need.
    #[arg(
        value_name = "STREAM_CONNECTIONS",
        id = "database-stream-connections",
        long = "database-stream-connections",
        env = "TRACELEDGER_DATABASE_STREAM_CONNECTIONS",
        default_value_t = 4
    )]
    pub stream_connections: u32,

    /// The longest an interactive statement may run (PostgreSQL `statement_timeout`); 0: no limit.
    #[arg(
        value_name = "STATEMENT_TIMEOUT_MS",
        id = "database-statement-timeout-ms",
        long = "database-statement-timeout-ms",
        env = "TRACELEDGER_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub statement_timeout_ms: u64,

    /// The longest one export's query may run; 0: no limit.
    #[arg(
        value_name = "STREAM_STATEMENT_TIMEOUT_MS",
        id = "export-statement-timeout-ms",
        long = "export-statement-timeout-ms",
        env = "TRACELEDGER_EXPORT_STATEMENT_TIMEOUT_MS",
        default_value_t = 3_600_000
    )]
    pub stream_statement_timeout_ms: u64,
}

impl DatabaseSettings {
    /// The local defaults for `url`, with `max_connections` for everything and no statement
    /// timeouts: what tests and benchmarks seed and inspect the store with.
    pub fn simple(url: &str, max_connections: u32) -> Self {
        Self {
            url: url.to_owned(),
            max_connections,
            stream_connections: 1,
            statement_timeout_ms: 0,
            stream_statement_timeout_ms: 0,
        }
    }
}

/// Whether the new rows of an insert are queued for the Elasticsearch indexer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchBacklog {
    Queue,
    Skip,
}

/// Pools of connections to the events database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Long readers' own pool (see `DatabaseSettings::stream_connections`).
    streams: PgPool,
}

impl Store {
    /// Connects, creating the database first if the server does not have it.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let limit = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        let options = PgConnectOptions::from_str(&settings.url)?;
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(with_statement_timeout(
                options.clone(),
                limit(settings.statement_timeout_ms),
            ))
            .await?;
        // Opened on first use: most processes never export.
        let streams = PgPoolOptions::new()
            .max_connections(settings.stream_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(with_statement_timeout(
                options,
                limit(settings.stream_statement_timeout_ms),
            ));
        Ok(Self { pool, streams })
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
