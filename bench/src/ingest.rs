//! Ingest end to end: events/s from the first request until the worker has committed every
//! accepted event to PostgreSQL, for `recordEvents` batches and for single `recordEvent` calls at
//! several concurrencies; the mutation's latency and accept-to-commit (`recorded_at −
//! received_at`).

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{json, Value};

use crate::api::{ApiProcess, Metrics};
use crate::cpu::{CpuSample, CpuUse};
use crate::harness::{drive, progress, BenchEnv, Client};
use crate::latency::Latency;
use crate::sizes::Sizes;

const BATCH_SIZES: [usize; 2] = [100, 1000];
const SINGLE_CONCURRENCIES: [usize; 3] = [1, 32, 128];
const RECORD_EVENTS: &str =
    "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id status } }";
const RECORD_EVENT: &str =
    "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id status } }";

#[derive(Clone, Copy)]
pub enum Shape {
    /// `recordEvents` with this many events per call.
    Batch(usize),
    /// `recordEvent` with this many calls in flight.
    Single(usize),
}

/// Where the time went, from the API's own metrics over the scenario.
pub struct Breakdown {
    /// Mean wait for the broker's confirm per published message, and mean events per message
    /// (concurrent calls share messages).
    pub publish_confirm_ms: f64,
    pub message_events: f64,
    /// The worker's batches: mean events per INSERT, mean INSERT time, and the share of the
    /// scenario's wall time the worker spent inside INSERTs.
    pub batch_events: f64,
    pub commit_ms: f64,
    pub commit_busy: f64,
}

impl Breakdown {
    fn between(before: &Metrics, after: &Metrics, elapsed: Duration) -> Self {
        let mean = |series: &str| {
            let count = after.delta(before, &format!("{series}_count"));
            let sum = after.delta(before, &format!("{series}_sum"));
            if count > 0.0 {
                sum / count
            } else {
                0.0
            }
        };
        let commit_seconds = after.delta(before, "traceledger_worker_commit_seconds_sum");
        Self {
            publish_confirm_ms: mean("traceledger_publish_confirm_seconds") * 1000.0,
            message_events: mean("traceledger_publish_group_events"),
            batch_events: mean("traceledger_worker_batch_events"),
            commit_ms: mean("traceledger_worker_commit_seconds") * 1000.0,
            commit_busy: commit_seconds / elapsed.as_secs_f64(),
        }
    }
}

pub struct IngestResult {
    pub shape: Shape,
    pub events: usize,
    pub clients: usize,
    pub events_per_s: f64,
    pub mutation: Latency,
    pub accept_to_commit_ms: (f64, f64),
    /// From commit to the first signed checkpoint that covers the event.
    pub commit_to_checkpoint_ms: (f64, f64),
    pub breakdown: Breakdown,
    pub cpu: CpuUse,
}

pub async fn run(
    env: &BenchEnv,
    api: &ApiProcess,
    sizes: &Sizes,
) -> anyhow::Result<Vec<IngestResult>> {
    let batches =
        BATCH_SIZES.map(|size| (Shape::Batch(size), sizes.batch_events, sizes.batch_clients));
    let singles = SINGLE_CONCURRENCIES.map(|concurrency| {
        let events = if concurrency == 1 {
            sizes.single_events_serial
        } else {
            sizes.single_events
        };
        (Shape::Single(concurrency), events, concurrency)
    });
    let mut results = Vec::new();
    for (shape, events, clients) in batches.into_iter().chain(singles) {
        results.push(measure(env, api, sizes, shape, events, clients).await?);
    }
    Ok(results)
}

async fn measure(
    env: &BenchEnv,
    api: &ApiProcess,
    sizes: &Sizes,
    shape: Shape,
    events: usize,
    clients: usize,
) -> anyhow::Result<IngestResult> {
    let (label, tenant, per_request) = match shape {
        Shape::Batch(size) => (
            format!("recordEvents x{size}"),
            format!("ingest-batch-{size}"),
            size,
        ),
        Shape::Single(concurrency) => (
            format!("recordEvent c{concurrency}"),
            format!("ingest-single-c{concurrency}"),
            1,
        ),
    };
    let client = Client::new(api.addr, env.key(&tenant).await?);
    let requests = events.div_ceil(per_request);
    let bar = progress(&label, requests * per_request);
    let before = api.metrics().await?;
    let heads = env.watch_head(&tenant);
    let cpu_before = CpuSample::take(api.pid());
    let started = Instant::now();
    let progress_bar = bar.clone();
    let mutation = drive(clients, requests, move |request| {
        let (client, bar) = (client.clone(), progress_bar.clone());
        async move {
            let first = request * per_request;
            let (query, variables, field) = match shape {
                Shape::Batch(size) => {
                    let inputs: Vec<Value> = (first..first + size).map(input).collect();
                    (RECORD_EVENTS, json!({ "inputs": inputs }), "recordEvents")
                }
                Shape::Single(_) => (
                    RECORD_EVENT,
                    json!({ "input": input(first) }),
                    "recordEvent",
                ),
            };
            let sent = Instant::now();
            let data = client.gql(query, variables).await?;
            let elapsed = sent.elapsed();
            let accepted = accepted_count(&data[field]);
            ensure!(
                accepted == per_request,
                "{accepted} of {per_request} events accepted"
            );
            bar.inc(per_request as u64);
            Ok(elapsed)
        }
    })
    .await?;
    let total = requests * per_request;
    bar.set_message("waiting for the worker's commits");
    env.wait_committed(&tenant, total, sizes.commit_deadline)
        .await?;
    let elapsed = started.elapsed();
    let events_per_s = total as f64 / elapsed.as_secs_f64();
    let cpu = CpuSample::take(api.pid()).since(&cpu_before);
    let breakdown = Breakdown::between(&before, &api.metrics().await?, elapsed);
    bar.set_message("waiting for the ledger's checkpoint");
    env.wait_sealed(&tenant, sizes.commit_deadline).await?;
    bar.finish_and_clear();
    Ok(IngestResult {
        shape,
        events: total,
        clients,
        events_per_s,
        mutation,
        accept_to_commit_ms: env.accept_to_commit_ms(&tenant).await?,
        commit_to_checkpoint_ms: heads.commit_to_checkpoint_ms(env, &tenant).await?,
        breakdown,
        cpu,
    })
}

/// Accepted events in a `recordEvents` list or a single `recordEvent` payload.
fn accepted_count(payloads: &Value) -> usize {
    let accepted = |p: &Value| p["status"] == "ACCEPTED";
    match payloads.as_array() {
        Some(all) => all.iter().filter(|p| accepted(p)).count(),
        None => usize::from(accepted(payloads)),
    }
}

/// The `n`th event of a scenario: an audit-shaped input of about 500 bytes.
fn input(n: usize) -> Value {
    json!({
        "action": "invoice.update",
        "service": "billing",
        "actor": { "id": format!("user-{}", n % 1000), "ip": "203.0.113.7" },
        "target": { "id": format!("invoice-{n}"), "type": "invoice" },
        "severity": "NOTICE",
        "message": "Invoice total changed after a manual correction by the billing team.",
        "metadata": { "previousTotal": 1200, "newTotal": 1250, "currency": "EUR" },
        "requestId": format!("req-{n}"),
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    })
}
