//! The ledger at the reads scenario's stored events, all in one tenant (a million in a full
//! run): `inclusionProof` latency, an export with proofs, and how fast `verify --export` and
//! `verify --online` check them. (How soon checkpoints follow commits is measured during the
//! ingest scenarios.)

use std::io::{BufReader, Write};
use std::time::Instant;

use anyhow::{ensure, Context};
use serde_json::json;
use uuid::Uuid;

use traceledger::app::verify::{verify_export, verify_online};

use crate::api::ApiProcess;
use crate::harness::{drive, progress, BenchEnv, Client};
use crate::latency::Latency;
use crate::reads::TENANT;
use crate::sizes::Sizes;

const PROOF: &str = "query($id: ID!) { inclusionProof(eventId: $id) { treeSize hashes } }";

pub struct LedgerResult {
    pub leaves: u64,
    pub proofs: Latency,
    pub proof_requests: usize,
    pub proof_seconds: f64,
    pub export_rows: usize,
    pub export_seconds: f64,
    pub export_mib: f64,
    pub verify_export_seconds: f64,
    pub verify_online_seconds: f64,
}

pub async fn run(
    env: &BenchEnv,
    api: &ApiProcess,
    sizes: &Sizes,
    ids: &[Uuid],
) -> anyhow::Result<LedgerResult> {
    let key = env.key(TENANT).await?;
    let client = Client::new(api.addr, key.clone());
    let leaves = sizes.stored_events as u64;

    // inclusionProof at the whole tree, one client: what an auditor's tool sees.
    let proof_requests = sizes.read_requests;
    ensure!(!ids.is_empty(), "no sampled ids to prove");
    let ids: std::sync::Arc<[Uuid]> = ids.into();
    let started = Instant::now();
    let proofs = drive(1, proof_requests, move |i| {
        let client = client.clone();
        let id = ids[i % ids.len()];
        async move {
            let started = Instant::now();
            let data = client.gql(PROOF, json!({ "id": id })).await?;
            ensure!(
                data["inclusionProof"]["treeSize"].as_u64() >= Some(leaves),
                "{data}"
            );
            Ok(started.elapsed())
        }
    })
    .await
    .context("inclusionProof")?;
    let proof_seconds = started.elapsed().as_secs_f64();

    // The whole tenant exported with proofs, to a file.
    let path = std::env::temp_dir().join(format!("traceledger-bench-{}.ndjson", Uuid::now_v7()));
    let bar = progress("export with proofs", sizes.stored_events);
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    let mut response = reqwest::Client::new()
        .get(format!("http://{}/export?proofs=true", api.addr))
        .bearer_auth(&key)
        .send()
        .await?
        .error_for_status()?;
    let mut rows = 0usize;
    let mut bytes = 0usize;
    while let Some(chunk) = response.chunk().await? {
        let lines = chunk.iter().filter(|b| **b == b'\n').count();
        rows += lines;
        bytes += chunk.len();
        bar.inc(lines as u64);
        file.write_all(&chunk)?;
    }
    file.flush()?;
    let export_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Every event and the checkpoint line (later events, such as the exports' own, are not
    // covered yet).
    ensure!(rows > sizes.stored_events, "{rows} lines exported");

    let verifier = reqwest::get(format!("http://{}/ledger/key", api.addr))
        .await?
        .text()
        .await?
        .trim()
        .to_owned();
    let started = Instant::now();
    let verdict = verify_export(
        BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?),
        vec![verifier.clone()],
        |_| {},
    )?;
    let verify_export_seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    ensure!(
        verdict.holds(),
        "the export does not verify: {:?}",
        verdict.findings.first()
    );

    let started = Instant::now();
    let report = verify_online(&env.store, TENANT, Some(vec![verifier]), |_, _| {}).await?;
    let verify_online_seconds = started.elapsed().as_secs_f64();
    ensure!(
        report.verdict.holds(),
        "the stored ledger does not verify: {:?}",
        report.verdict.findings.first()
    );
    Ok(LedgerResult {
        leaves,
        proofs,
        proof_requests,
        proof_seconds,
        export_rows: rows - 1,
        export_seconds,
        export_mib: bytes as f64 / (1024.0 * 1024.0),
        verify_export_seconds,
        verify_online_seconds,
    })
}
