//! What every scenario shares: the run's own database, exchange, queues and cache prefix (removed
//! afterwards), a GraphQL client, API keys, and progress bars.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use traceledger::bus::Topology;
use traceledger::config::Config;
use traceledger::store::{DatabaseSettings, Store};
use traceledger_testenv::{service_env, Isolated};

use crate::latency::Latency;

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
    isolated: Isolated,
}

impl BenchEnv {
    pub async fn create() -> anyhow::Result<Self> {
        let isolated = Isolated::new("bench");
        let config = isolated.config.clone();
        let store = Store::connect(&DatabaseSettings::simple(
            &config.database.url,
            BENCH_POOL_SIZE,
        ))
        .await
        .context("PostgreSQL")?;
        store.migrate().await.context("migrations")?;
        let stem = isolated.exchange_stem().to_owned();
        Ok(Self {
            raw_topology: Topology {
                exchange: format!("{stem}.raw"),
                worker_queue: format!("{stem}.raw"),
                dead_letter_queue: format!("{stem}.raw.dead-letter"),
                retry_delays: Vec::new(),
            },
            config,
            store,
            isolated,
        })
    }

    pub fn raw_topology(&self) -> &Topology {
        &self.raw_topology
    }

    /// The environment the API child process reads its configuration from.
    pub fn api_env(&self) -> Vec<(&'static str, String)> {
        let mut env = service_env(&self.config);
        env.extend([
            // The load comes from one key per scenario: lift the per-key limits meant for
            // abusive clients, so what is measured is the pipeline, not the rate limiter.
            ("TRACELEDGER_WRITE_RATE_PER_SEC", UNLIMITED.to_string()),
            ("TRACELEDGER_READ_RATE_PER_SEC", UNLIMITED.to_string()),
            ("TRACELEDGER_MAX_SOCKETS_PER_KEY", UNLIMITED.to_string()),
            (
                "TRACELEDGER_MAX_SUBSCRIPTIONS_PER_KEY",
                UNLIMITED.to_string(),
            ),
        ]);
        env
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

    /// Waits until the sealer has a checkpoint over every event of `tenant`.
    pub async fn wait_sealed(&self, tenant: &str, deadline: Duration) -> anyhow::Result<()> {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            let head = self.store.ledger_head(tenant).await?;
            let latest = self.store.latest_checkpoint(tenant).await?;
            if latest.is_some_and(|c| c.size >= head) {
                return Ok(());
            }
            if tokio::time::Instant::now() > give_up {
                bail!("the ledger of {tenant} was not sealed in {deadline:?}");
            }
            tokio::time::sleep(COMMIT_POLL).await;
        }
    }

    /// Starts watching `tenant`'s ledger head: when each size was first seen committed.
    pub fn watch_head(&self, tenant: &str) -> HeadWatch {
        let (store, tenant) = (self.store.clone(), tenant.to_owned());
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: Vec<(i64, chrono::DateTime<chrono::Utc>)> = Vec::new();
            while !stopped.is_cancelled() {
                // The database's clock, as the sealer's checkpoints are stamped on this machine.
                let row: Option<(i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                    "SELECT size, clock_timestamp() FROM ledger_heads WHERE tenant = $1",
                )
                .bind(&tenant)
                .fetch_optional(store.pool())
                .await
                .ok()
                .flatten();
                if let Some((size, at)) = row {
                    if seen.last().is_none_or(|(last, _)| size > *last) {
                        seen.push((size, at));
                    }
                }
                tokio::time::sleep(HEAD_WATCH_EVERY).await;
            }
            seen
        });
        HeadWatch { task, stop }
    }

    /// Removes the run's database, queues, exchanges and cache keys; best effort, so a failed
    /// run still leaves nothing behind that it can remove.
    pub async fn cleanup(&self) {
        self.store.pool().close().await;
        self.isolated
            .remove_with(std::slice::from_ref(&self.raw_topology))
            .await;
    }
}

/// How often a head watch looks.
const HEAD_WATCH_EVERY: Duration = Duration::from_millis(50);

/// A tenant's ledger head, watched during a scenario.
pub struct HeadWatch {
    task: tokio::task::JoinHandle<Vec<(i64, chrono::DateTime<chrono::Utc>)>>,
    stop: tokio_util::sync::CancellationToken,
}

impl HeadWatch {
    /// Commit-to-checkpoint p50 and p99 in ms: for each head size seen committed, from when it
    /// was seen (within the watch's 50 ms) to the signing of the first checkpoint covering it.
    /// Call once the tenant is sealed.
    pub async fn commit_to_checkpoint_ms(
        self,
        env: &BenchEnv,
        tenant: &str,
    ) -> anyhow::Result<(f64, f64)> {
        self.stop.cancel();
        let seen = self.task.await?;
        let checkpoints: Vec<(i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT size, signed_at FROM ledger_checkpoints WHERE tenant = $1 ORDER BY size",
        )
        .bind(tenant)
        .fetch_all(env.store.pool())
        .await?;
        let mut lags: Vec<f64> = seen
            .iter()
            .filter_map(|(size, at)| {
                let first = checkpoints.iter().find(|(covers, _)| covers >= size)?;
                Some(((first.1 - *at).num_microseconds()? as f64 / 1000.0).max(0.0))
            })
            .collect();
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| {
            lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Ok((at(0.5), at(0.99)))
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
