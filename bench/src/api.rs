//! The API under test, in a process of its own: the benchmark starts itself again as
//! `traceledger-bench api`, which builds the real `traceledger::startup::App` with its embedded worker
//! (what `traceledger serve` runs). A separate process keeps the load generator's work and
//! memory out of the API's numbers: its resident memory is read from /proc/<pid>/status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use traceledger::config::Config;
use traceledger::startup::App;

use crate::harness::BenchEnv;

/// What the child prints on stdout once it serves, followed by its address.
const READY_LINE: &str = "LISTENING ";
const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A snapshot of the API's `/metrics`.
pub struct Metrics(HashMap<String, f64>);

impl Metrics {
    /// How much `series` grew since `earlier` (0 when the API never recorded it).
    pub fn delta(&self, earlier: &Metrics, series: &str) -> f64 {
        let value = |m: &Metrics| m.0.get(series).copied().unwrap_or(0.0);
        value(self) - value(earlier)
    }
}

pub struct ApiProcess {
    pub addr: SocketAddr,
    child: Child,
}

impl ApiProcess {
    pub async fn spawn(env: &BenchEnv) -> anyhow::Result<Self> {
        Self::spawn_with(env, Vec::new()).await
    }

    /// The same, with more configuration (`TRACELEDGER_*` variables) on top.
    pub async fn spawn_with(
        env: &BenchEnv,
        extra: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the benchmark binary")?;
        let mut child = Command::new(exe)
            .arg("api")
            .envs(env.api_env())
            .envs(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the API process")?;
        let stdout = child.stdout.take().context("the API's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_DEADLINE, lines.next_line())
            .await
            .context("the API did not start in time")??;
        let Some(addr) = first.as_deref().and_then(|l| l.strip_prefix(READY_LINE)) else {
            bail!("the API exited before serving: {first:?}");
        };
        Ok(Self {
            addr: addr.parse().context("the API's address")?,
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The API process's resident memory (VmRSS) in MiB.
    pub fn resident_mib(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the API process has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .context("VmRSS missing from /proc/<pid>/status")?
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// The API's own counters and histogram sums from `/metrics`, to tell where the time went.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await?
            .error_for_status()?
            .text()
            .await?;
        // Prometheus text format: `name value`, or `name{labels} value`; only unlabelled
        // series are needed here.
        let values = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once(' '))
            .filter_map(|(name, value)| Some((name.to_owned(), value.trim().parse().ok()?)))
            .collect();
        Ok(Metrics(values))
    }

    /// Closes the child's stdin, which it takes as the signal to shut down, and waits for it.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(STOP_DEADLINE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The child side: serve on a free loopback port until stdin closes (the benchmark finished,
/// or died).
pub async fn serve_child() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    traceledger::telemetry::init(config.log);
    let shutdown = CancellationToken::new();
    let app = App::build(config, shutdown.clone()).await?;
    let pipeline = app.spawn_pipeline().await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{READY_LINE}{}", listener.local_addr()?);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
        stop.cancel();
    });
    app.serve(listener).await?;
    pipeline.join().await;
    Ok(())
}
