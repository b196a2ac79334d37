//! What every scenario shares: the run's own database, exchange, queues and cache prefix (removed
//! afterwards), a GraphQL client, API keys, and progress bars.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

use traceledger::bus::Topology;
use traceledger::config::Config;
use traceledger::store::{DatabaseSettings, Store};

use crate::latency::Latency;

const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Connections the benchmark itself holds (seeding, counting), besides the API's own pool.
const BENCH_POOL_SIZE: u32 = 4;
/// How often the benchmark looks whether the worker has committed everything.
const COMMIT_POLL: Duration = Duration::from_millis(50);

/// A per-key limit high enough never to bind in a benchmark.
const UNLIMITED: u32 = 1_000_000;

/// One run's isolated resources: `tl_bench_<run>` database, `tl.bench.<run>.*` exchange and
/// queues, `tl-bench-<run>` cache prefix. The run id lets two runs (a developer's and CI's) share
/// the local services without meeting.
pub struct BenchEnv {
    pub config: Config,
    pub store: Store,
    /// The raw publish scenario's own durable fanout exchange and queue, no retry queues.
    raw_topology: Topology,
}

impl BenchEnv {
    pub async fn create() -> anyhow::Result<Self> {
        // The random tail of a UUIDv7 (its head is the time, shared by runs started together).
        let id = Uuid::now_v7().simple().to_string();
        let run = id[id.len() - 12..].to_owned();
        let mut config = Config::from_env().context("configuration")?;
        config.database.url = format!("postgres://postgres@127.0.0.1:5432/tl_bench_{run}");
        config.broker.exchange = format!("tl.bench.{run}.events");
        config.broker.worker_queue = format!("tl.bench.{run}.worker");
        config.broker.dead_letter_queue = format!("tl.bench.{run}.dead-letter");
        config.redis.prefix = format!("tl-bench-{run}");
        let store = Store::connect(&DatabaseSettings::simple(
            &config.database.url,
            BENCH_POOL_SIZE,
        ))
        .await
        .context("PostgreSQL")?;
        store.migrate().await.context("migrations")?;
        Ok(Self {
            raw_topology: Topology {
                exchange: format!("tl.bench.{run}.raw"),
                worker_queue: format!("tl.bench.{run}.raw"),
                dead_letter_queue: format!("tl.bench.{run}.raw.dead-letter"),
                retry_delays: Vec::new(),
            },
            config,
            store,
        })
    }

    pub fn raw_topology(&self) -> &Topology {
        &self.raw_topology
    }

    /// The environment the API child process reads its configuration from.
    pub fn api_env(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        vec![
            ("TRACELEDGER_DATABASE_URL", c.database.url.clone()),
            ("TRACELEDGER_EXCHANGE", c.broker.exchange.clone()),
            ("TRACELEDGER_WORKER_QUEUE", c.broker.worker_queue.clone()),
            (
                "TRACELEDGER_DEAD_LETTER_QUEUE",
                c.broker.dead_letter_queue.clone(),
            ),
            ("TRACELEDGER_CACHE_PREFIX", c.redis.prefix.clone()),
            // The load comes from one key per scenario: lift the per-key limits meant for
            // abusive clients, so what is measured is the pipeline, not the rate limiter.
            ("TRACELEDGER_WRITE_RATE_PER_SEC", UNLIMITED.to_string()),
            ("TRACELEDGER_READ_RATE_PER_SEC", UNLIMITED.to_string()),
            ("TRACELEDGER_MAX_SOCKETS_PER_KEY", UNLIMITED.to_string()),
            (
                "TRACELEDGER_MAX_SUBSCRIPTIONS_PER_KEY",
                UNLIMITED.to_string(),
            ),
        ]
    }

    /// A key for a tenant of its own, so each scenario counts only its own events.
    pub async fn key(&self, tenant: &str) -> anyhow::Result<String> {
        Ok(
            traceledger::access::auth::create_api_key(&self.store, tenant, "bench")
                .await?
                .secret,
        )
    }

    pub async fn stored(&self, tenant: &str) -> anyhow::Result<usize> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant = $1")
            .bind(tenant)
            .fetch_one(self.store.pool())
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Waits until the worker has committed exactly `expected` events of `tenant`.
    pub async fn wait_committed(
        &self,
        tenant: &str,
        expected: usize,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            let stored = self.stored(tenant).await?;
            if stored > expected {
                bail!("{stored} events stored for {tenant}, {expected} accepted");
            }
            if stored == expected {
                return Ok(());
            }
            if tokio::time::Instant::now() > give_up {
                bail!("only {stored} of {expected} accepted events committed for {tenant}");
            }
            tokio::time::sleep(COMMIT_POLL).await;
        }
    }

    /// Accept-to-commit (`recorded_at − received_at`) p50 and p99 in ms over `tenant`'s events.
    pub async fn accept_to_commit_ms(&self, tenant: &str) -> anyhow::Result<(f64, f64)> {
        let (p50, p99): (Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) \
             FROM (SELECT (extract(epoch FROM recorded_at - received_at) * 1000)::float8 AS lag_ms \
                   FROM audit_events WHERE tenant = $1) AS lags",
        )
        .bind(tenant)
        .fetch_one(self.store.pool())
        .await?;
        Ok((p50.unwrap_or(0.0), p99.unwrap_or(0.0)))
    }

    /// Removes the run's database, queues, exchanges and cache keys; best effort, so a failed
    /// run still leaves nothing behind that it can remove.
    pub async fn cleanup(&self) {
        if let Err(e) = self.cleanup_broker().await {
            tracing::warn!(error = %e, "could not remove the run's exchanges and queues");
        }
        if let Err(e) = self.cleanup_cache().await {
            tracing::warn!(error = %e, "could not remove the run's cache keys");
        }
        self.store.pool().close().await;
        if let Err(e) = self.cleanup_database().await {
            tracing::warn!(error = %e, "could not drop the run's database");
        }
    }

    async fn cleanup_broker(&self) -> anyhow::Result<()> {
        let connection =
            traceledger::bus::connect(&self.config.broker.url, "bench-cleanup").await?;
        let channel = connection.create_channel().await?;
        let topologies = [self.config.broker.topology(), self.raw_topology.clone()];
        for queue in topologies.iter().flat_map(Topology::queues) {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in topologies.iter().map(|t| &t.exchange) {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        connection.close(200, "done".into()).await?;
        Ok(())
    }

    async fn cleanup_cache(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.config.redis.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let pattern = format!("{}:*", self.config.redis.prefix);
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

    async fn cleanup_database(&self) -> anyhow::Result<()> {
        let database = self
            .config
            .database
            .url
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}

/// GraphQL over HTTP as one tenant.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    pub fn new(addr: std::net::SocketAddr, key: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("http://{addr}/graphql"),
            key,
        }
    }

    /// Runs one operation and returns its `data`; any error (HTTP or GraphQL) fails.
    pub async fn gql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        Ok(self.gql_with_extensions(query, variables).await?.0)
    }

    /// The same, with the response's `extensions`.
    pub async fn gql_with_extensions(
        &self,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<(Value, Value)> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        let status = response.status();
        let mut body: Value = response.json().await?;
        if !status.is_success() || body.get("errors").is_some() {
            bail!("GraphQL answered {status}: {body}");
        }
        Ok((body["data"].take(), body["extensions"].take()))
    }
}

/// Runs `request(i)` for every `i` in `0..requests` from `clients` concurrent tasks, each taking
/// the next `i` when its last request is done, and gathers the latencies the requests report.
/// The first error stops the run.
pub async fn drive<F, Fut>(clients: usize, requests: usize, request: F) -> anyhow::Result<Latency>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Duration>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, request) = (Arc::clone(&next), request.clone());
            tokio::spawn(async move {
                let mut latency = Latency::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return anyhow::Ok(latency);
                    }
                    latency.record(request(i).await?);
                }
            })
        })
        .collect();
    let mut latency = Latency::default();
    for task in tasks {
        latency.merge(&task.await??);
    }
    Ok(latency)
}

/// A progress bar of `len` steps named `label` (hidden when stderr is not a terminal).
pub fn progress(label: &str, len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}
