//! What traceledger's integration tests and its benchmark share: an [`Isolated`] run on the
//! local services (its own database, exchange and queues, cache prefix and search indices, all
//! removed afterwards), the environment that points a `traceledger` process at it, and, for the
//! tests, a running app with its clients ([`app`], [`ws`]).

pub mod app;
pub mod ws;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use sqlx::Connection;
use uuid::Uuid;

use traceledger::bus::Topology;
use traceledger::config::Config;
use traceledger::domain::ledger::LedgerSigner;

pub use app::*;

/// Where the local PostgreSQL takes `CREATE`/`DROP DATABASE`.
const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A run's own names on the shared services, from the local defaults and `TRACELEDGER_*`: the
/// database `tl_<kind>_<id>`, exchange and queues `tl.<kind>.<id>.*`, cache prefix
/// `tl-<kind>-<id>` and indices `tl-<kind>-<id>-events-*`. Removed when dropped (or by
/// [`Isolated::remove_with`]), even when the run failed; runs started together never meet.
pub struct Isolated {
    pub config: Config,
    removed: AtomicBool,
}

impl Isolated {
    /// `kind` (`test`, `bench`) says in every name whose resources these are.
    pub fn new(kind: &str) -> Self {
        let id = Uuid::now_v7().simple().to_string();
        let mut config = Config::from_env().expect("TRACELEDGER_* configuration");
        config.database.url = format!("postgres://postgres@127.0.0.1:5432/tl_{kind}_{id}");
        config.broker.exchange = format!("tl.{kind}.{id}.events");
        config.broker.worker_queue = format!("tl.{kind}.{id}.worker");
        config.broker.dead_letter_queue = format!("tl.{kind}.{id}.dead-letter");
        config.redis.prefix = format!("tl-{kind}-{id}");
        config.search.index_prefix = format!("tl-{kind}-{id}-events");
        // A key of the run's own, so no run writes a key file or signs with another's key.
        let (_, private) =
            LedgerSigner::generate(&format!("tl.{kind}.{id}")).expect("a ledger signing key");
        config.ledger.key = Some(private);
        Self {
            config,
            removed: AtomicBool::new(false),
        }
    }

    /// The run's tag in names (`tl.<kind>.<id>`), for resources a run adds of its own.
    pub fn exchange_stem(&self) -> &str {
        self.config
            .broker
            .exchange
            .strip_suffix(".events")
            .unwrap_or(&self.config.broker.exchange)
    }

    /// Removes the run's queues and exchange (and those of `extra`), cache keys and database;
    /// best effort, so a failed run still leaves nothing behind that it can remove.
    pub async fn remove_with(&self, extra: &[Topology]) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        let config = &self.config;
        if let Ok(connection) = traceledger::bus::connect(&config.broker.url, "cleanup").await {
            if let Ok(channel) = connection.create_channel().await {
                let own = config.broker.topology();
                for topology in std::iter::once(&own).chain(extra) {
                    for queue in topology.queues() {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                    let _ = channel
                        .exchange_delete(
                            topology.exchange.as_str().into(),
                            ExchangeDeleteOptions::default(),
                        )
                        .await;
                }
            }
            let _ = connection
                .close(traceledger::bus::CLOSE_NORMAL, "done".into())
                .await;
        }
        let _ = remove_cache_keys(config).await;
        let database = config
            .database
            .url
            .rsplit('/')
            .next()
            .and_then(|tail| tail.split('?').next())
            .unwrap_or_default()
            .to_owned();
        if let Ok(mut admin) = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if self.removed.load(Ordering::SeqCst) {
            return;
        }
        // Drop cannot await, and may run inside a runtime: remove from a thread of its own.
        let isolated = Isolated {
            config: self.config.clone(),
            removed: AtomicBool::new(false),
        };
        self.removed.store(true, Ordering::SeqCst);
        let cleanup = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(isolated.remove_with(&[]));
            }
        });
        let _ = cleanup.join();
    }
}

async fn remove_cache_keys(config: &Config) -> redis::RedisResult<()> {
    let client = redis::Client::open(config.redis.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{}:*", config.redis.prefix);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The `TRACELEDGER_*` variables that point a `traceledger` process at what `config` names.
pub fn service_env(c: &Config) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TRACELEDGER_DATABASE_URL", c.database.url.clone()),
        ("TRACELEDGER_AMQP_URL", c.broker.url.clone()),
        ("TRACELEDGER_EXCHANGE", c.broker.exchange.clone()),
        ("TRACELEDGER_WORKER_QUEUE", c.broker.worker_queue.clone()),
        (
            "TRACELEDGER_DEAD_LETTER_QUEUE",
            c.broker.dead_letter_queue.clone(),
        ),
        ("TRACELEDGER_CACHE_PREFIX", c.redis.prefix.clone()),
        (
            "TRACELEDGER_LEDGER_KEY_FILE",
            c.ledger.key_file.display().to_string(),
        ),
        (
            "TRACELEDGER_CHECKPOINT_INTERVAL_MS",
            c.ledger.checkpoint_interval_ms.to_string(),
        ),
        (
            "TRACELEDGER_ELASTICSEARCH_INDEX_PREFIX",
            c.search.index_prefix.clone(),
        ),
        (
            "TRACELEDGER_RETRY_DELAYS_MS",
            c.broker
                .retry_delays_ms
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    if let Some(key) = &c.ledger.key {
        env.push(("TRACELEDGER_LEDGER_KEY", key.clone()));
    }
    env
}

/// The `traceledger` binary cargo built beside the running test (`target/<profile>/`), as
/// `CARGO_BIN_EXE_traceledger` names it for the package's own tests.
pub fn traceledger_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/traceledger
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary under target/<profile>/deps");
    profile.join("traceledger")
}
