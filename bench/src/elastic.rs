//! The Elasticsearch backend of `search`, at the reads' stored events. No Elasticsearch can run
//! on this machine kind, so the backend is measured against `osmem-server` (PyPI), the
//! in-memory OpenSearch-compatible server the tests use: the numbers are our backend's code and
//! round trips against that stand-in, not what an Elasticsearch cluster would answer in.
//! osmem-server keeps everything in memory and was not built for volume: holding the full
//! million it grew past 17 GB and its searches outlasted the API's 2 s Elasticsearch timeout;
//! with a tenth it took 7 GB and over a second a search. It is given the newest hundredth.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use traceledger::search::ElasticSearch;
use traceledger::tasks::indexer;

use crate::harness::{progress, BenchEnv};

const START_DEADLINE: Duration = Duration::from_secs(30);
/// Events a `_bulk` request of the reindex carries, and how long one may take.
const INDEX_BATCH: usize = 1_000;
const INDEX_TIMEOUT_MS: u64 = 120_000;

/// An `osmem-server` child on a free port, stopped when dropped.
pub struct SearchServer {
    pub url: String,
    _child: Child,
}

impl SearchServer {
    /// Starts it: `OSMEM_SERVER_BIN` names the binary, otherwise the one the PyPI package
    /// bundles. None when neither is there (the scenario is then skipped, and says so).
    pub async fn start() -> anyhow::Result<Option<Self>> {
        let Some(binary) = binary() else {
            return Ok(None);
        };
        let mut child = Command::new(&binary)
            .args(["--addr", "127.0.0.1:0", "--no-ja"])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let stdout = child.stdout.take().context("osmem-server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // Its first line is JSON naming where it listens: {"url": "http://127.0.0.1:PORT", …}.
        let line = tokio::time::timeout(START_DEADLINE, lines.next_line())
            .await
            .context("osmem-server did not start in time")??
            .context("osmem-server exited before it served")?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("osmem-server's first line: {line}"))?;
        let Some(url) = ready["url"].as_str() else {
            bail!("osmem-server did not say where it listens: {line}");
        };
        Ok(Some(Self {
            url: url.to_owned(),
            _child: child,
        }))
    }

    /// Indexes the events that occurred since `since`, as `traceledger reindex --since` does,
    /// under `prefix`.
    pub async fn index_since(
        &self,
        env: &BenchEnv,
        prefix: &str,
        since: DateTime<Utc>,
        count: usize,
    ) -> anyhow::Result<u64> {
        let mut config = env.config.clone();
        config.search.elasticsearch_url = Some(self.url.clone());
        config.search.index_prefix = prefix.to_owned();
        config.search.timeout_ms = INDEX_TIMEOUT_MS;
        let elastic = ElasticSearch::connect(&config.search)?.context("an Elasticsearch URL")?;
        let bar = progress("indexing into osmem-server", count);
        let sent = indexer::reindex(&env.store, &elastic, Some(since), INDEX_BATCH, |n| {
            bar.inc(n)
        })
        .await
        .context("indexing")?;
        bar.finish_and_clear();
        Ok(sent)
    }
}

fn binary() -> Option<String> {
    if let Ok(path) = std::env::var("OSMEM_SERVER_BIN") {
        return Some(path);
    }
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
