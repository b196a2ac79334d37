//! `GET /export` of every event the reads scenario stored: rows/s, and the API's resident
//! memory while it streams, to show an export of a million rows takes constant memory.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use crate::api::ApiProcess;
use crate::cpu::{CpuSample, CpuUse};
use crate::harness::{progress, BenchEnv};
use crate::reads::TENANT;
use crate::sizes::Sizes;

/// How often the API's memory is read while it exports.
const RSS_SAMPLE: Duration = Duration::from_millis(20);

pub struct ExportResult {
    pub rows: usize,
    pub seconds: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    pub cpu: CpuUse,
}

pub async fn run(env: &BenchEnv, api: &ApiProcess, sizes: &Sizes) -> anyhow::Result<ExportResult> {
    let key = env.key(TENANT).await?;
    let rss_before_mib = api.resident_mib()?;
    let bar = progress("export ndjson", sizes.stored_events);
    let cpu_before = CpuSample::take(api.pid());
    let started = Instant::now();
    let download = async {
        let mut response = reqwest::Client::new()
            .get(format!("http://{}/export?format=ndjson", api.addr))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?;
        let mut rows = 0;
        while let Some(chunk) = response.chunk().await? {
            let lines = chunk.iter().filter(|b| **b == b'\n').count();
            rows += lines;
            bar.inc(lines as u64);
        }
        anyhow::Ok(rows)
    };
    let mut peak = rss_before_mib;
    tokio::pin!(download);
    let rows = loop {
        tokio::select! {
            rows = &mut download => break rows.context("exporting")?,
            _ = tokio::time::sleep(RSS_SAMPLE) => peak = peak.max(api.resident_mib()?),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuSample::take(api.pid()).since(&cpu_before);
    bar.finish_and_clear();
    ensure!(
        rows == sizes.stored_events,
        "the export held {rows} rows, {} were stored",
        sizes.stored_events
    );
    Ok(ExportResult {
        rows,
        seconds,
        rss_before_mib,
        rss_peak_mib: peak,
        cpu,
    })
}
