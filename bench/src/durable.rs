//! Durable subscriptions (`eventRecorded(after:)`): many subscribers across many tenants on one
//! API while events are recorded at a steady rate — how long after its commit each event reaches
//! each subscriber, the API's memory, and how many queries its readers ran for how many commits —
//! then how fast one client replays stored history.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::Utc;
use futures::{stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use traceledger::store::{Heard, SearchBacklog};
use traceledger_testenv::stored_event;

use crate::api::ApiProcess;
use crate::cpu::{CpuSample, CpuUse};
use crate::harness::{progress, BenchEnv, Client};
use crate::latency::Latency;
use crate::live::{next_message, next_text, open_subscription, Socket};
use crate::sizes::Sizes;

const CONNECT_CONCURRENCY: usize = 50;
const READY_DEADLINE: Duration = Duration::from_secs(60);
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
const WARM_UP_ACTION: &str = "bench.warmup";
const MEASURED_ACTION: &str = "bench.measured";
const FOLLOW: &str =
    "subscription { eventRecorded(after: \"now\") { id action ledger { index } } }";
const REPLAY: &str = "subscription { eventRecorded(after: \"beginning\") { id occurredAt action \
                      actor { id } ledger { index } streamCursor } }";
const RECORD_EVENTS: &str =
    "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id } }";
/// Events per `recordEvents` call while recording at the scenario's rate.
const BATCH: usize = 10;
/// Calls in flight at most, so that a slow answer does not slow the rate down.
const RECORDERS: usize = 16;
const REPLAY_TENANT: &str = "replay";

pub struct DurableResult {
    pub tenants: usize,
    pub subscribers: usize,
    pub events: usize,
    pub rate: f64,
    /// From when the benchmark heard the commit notice to receipt.
    pub beyond_commit: Latency,
    /// From the mutation's answer to receipt (the worker's commit lag included).
    pub from_answer: Latency,
    pub rss_mib: f64,
    pub reader_queries: f64,
    pub commit_notices: usize,
    pub cpu: CpuUse,
    pub replay_events: usize,
    pub replay_seconds: f64,
}

/// Per tenant, each head it was heard to reach and when.
type Notices = Mutex<HashMap<String, Vec<(u64, Instant)>>>;

/// One event received by one subscriber.
struct Receipt {
    id: String,
    index: u64,
    at: Instant,
}

pub async fn run(env: &BenchEnv, api: &ApiProcess, sizes: &Sizes) -> anyhow::Result<DurableResult> {
    let tenants: Vec<String> = (0..sizes.durable_tenants)
        .map(|t| format!("durable-{t}"))
        .collect();
    let mut keys = Vec::new();
    for tenant in &tenants {
        keys.push(env.key(tenant).await?);
    }
    let clients: Vec<Client> = keys
        .iter()
        .map(|key| Client::new(api.addr, key.clone()))
        .collect();

    // Commit notices as the benchmark hears them: when each tenant's head passed each index.
    let notices: Arc<Notices> = Arc::default();
    let mut listener = env.store.listen_for_commits().await?;
    let heard = Arc::clone(&notices);
    let listening = tokio::spawn(async move {
        while let Ok(heard_next) = listener.next().await {
            if let Heard::Commit(notice) = heard_next {
                let at = Instant::now();
                heard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(notice.tenant)
                    .or_default()
                    .push((notice.head, at));
            }
        }
    });

    let subscribers = sizes.durable_tenants * sizes.durable_per_tenant;
    let bar = progress("durable subscribers", subscribers);
    let sockets: Vec<(usize, Socket)> = stream::iter(0..subscribers)
        .map(|i| {
            let tenant = i % sizes.durable_tenants;
            let key = keys[tenant].clone();
            async move { anyhow::Ok((tenant, open_subscription(api.addr, &key, FOLLOW).await?)) }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .inspect(|_| bar.inc(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();

    let ready = Arc::new(AtomicUsize::new(0));
    // Tells the listeners that recording is over: each then stops once it has all of its tenant's.
    let (done, finished) = watch::channel(false);
    let recorded: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..sizes.durable_tenants)
            .map(|_| AtomicUsize::new(0))
            .collect(),
    );
    let listeners: Vec<_> = sockets
        .into_iter()
        .map(|(tenant, socket)| {
            let (ready, finished, recorded) =
                (Arc::clone(&ready), finished.clone(), Arc::clone(&recorded));
            tokio::spawn(async move {
                let receipts = listen(socket, &ready, finished, &recorded[tenant]).await?;
                anyhow::Ok((tenant, receipts))
            })
        })
        .collect();

    // Every subscriber has seen a warm-up event of its tenant: every subscription is in place.
    let give_up = Instant::now() + READY_DEADLINE;
    while ready.load(Ordering::Relaxed) < subscribers {
        ensure!(
            Instant::now() < give_up,
            "only {} of {subscribers} durable subscribers saw a warm-up event",
            ready.load(Ordering::Relaxed)
        );
        for client in &clients {
            client
                .gql(RECORD_EVENTS, json!({ "inputs": [input(WARM_UP_ACTION)] }))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Recording at the scenario's rate, a batch per tick, tenants in turn.
    let metrics_before = api.metrics().await?;
    let cpu_before = CpuSample::take(api.pid());
    let notices_before: usize = count_notices(&notices, &tenants);
    let batches = sizes.durable_events / BATCH;
    let tick = Duration::from_secs_f64(BATCH as f64 / sizes.durable_rate);
    let bar = progress("events at a steady rate", batches * BATCH);
    let answers: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let in_flight = Arc::new(Semaphore::new(RECORDERS));
    let mut interval = tokio::time::interval(tick);
    let started = Instant::now();
    let mut sent = Vec::with_capacity(batches);
    for b in 0..batches {
        interval.tick().await;
        let tenant = b % sizes.durable_tenants;
        let (client, answers, recorded) = (
            clients[tenant].clone(),
            Arc::clone(&answers),
            Arc::clone(&recorded),
        );
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        sent.push(tokio::spawn(async move {
            let inputs: Vec<Value> = (0..BATCH).map(|_| input(MEASURED_ACTION)).collect();
            let data = client
                .gql(RECORD_EVENTS, json!({ "inputs": inputs }))
                .await?;
            let at = Instant::now();
            drop(permit);
            let ids = data["recordEvents"].as_array().context("no ids")?;
            let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                answers.insert(id["id"].as_str().context("an id")?.to_owned(), at);
            }
            recorded[tenant].fetch_add(ids.len(), Ordering::Relaxed);
            anyhow::Ok(())
        }));
        bar.inc(BATCH as u64);
    }
    for call in sent {
        call.await??;
    }
    let rate = (batches * BATCH) as f64 / started.elapsed().as_secs_f64();
    let rss_mib = api.resident_mib()?;
    done.send_replace(true);
    bar.set_message("waiting for every delivery");
    let mut receipts = Vec::new();
    for listener in listeners {
        receipts.push(
            tokio::time::timeout(DELIVERY_DEADLINE, listener)
                .await
                .context("a durable subscriber did not get every event in time")???,
        );
    }
    let cpu = CpuSample::take(api.pid()).since(&cpu_before);
    let reader_queries = api
        .metrics()
        .await?
        .delta(&metrics_before, "traceledger_feed_reader_queries_total");
    let commit_notices = count_notices(&notices, &tenants) - notices_before;
    bar.finish_and_clear();
    listening.abort();

    let notices = notices.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let answers = answers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut beyond_commit = Latency::default();
    let mut from_answer = Latency::default();
    for (tenant, receipts) in receipts {
        let heard = notices
            .get(&tenants[tenant])
            .with_context(|| format!("no commit notice for {}", tenants[tenant]))?;
        for receipt in receipts {
            // The first notice whose head covers the event.
            let at = heard
                .iter()
                .find(|(head, _)| *head > receipt.index)
                .map(|(_, at)| *at)
                .with_context(|| format!("no notice covers index {}", receipt.index))?;
            beyond_commit.record(receipt.at.saturating_duration_since(at));
            let answered = answers.get(&receipt.id).with_context(|| {
                format!("a subscriber got event {} nobody recorded", receipt.id)
            })?;
            from_answer.record(receipt.at.saturating_duration_since(*answered));
        }
    }
    let expected = sizes.durable_per_tenant * batches * BATCH;
    ensure!(
        beyond_commit.count() as usize == expected,
        "{} deliveries, {expected} expected",
        beyond_commit.count()
    );

    let (replay_events, replay_seconds) = replay(env, api, sizes).await?;
    Ok(DurableResult {
        tenants: sizes.durable_tenants,
        subscribers,
        events: batches * BATCH,
        rate,
        beyond_commit,
        from_answer,
        rss_mib,
        reader_queries,
        commit_notices,
        cpu,
        replay_events,
        replay_seconds,
    })
}

fn count_notices(notices: &Notices, tenants: &[String]) -> usize {
    let notices = notices.lock().unwrap_or_else(|e| e.into_inner());
    tenants
        .iter()
        .map(|t| notices.get(t).map_or(0, Vec::len))
        .sum()
}

fn input(action: &str) -> Value {
    json!({ "action": action, "service": "bench", "actor": { "id": "bench" } })
}

/// Reads measured events until the tenant's recording is done and all of it arrived, each once
/// and in ledger order.
async fn listen(
    mut socket: Socket,
    ready: &AtomicUsize,
    mut finished: watch::Receiver<bool>,
    recorded: &AtomicUsize,
) -> anyhow::Result<Vec<Receipt>> {
    let mut warmed_up = false;
    let mut receipts: Vec<Receipt> = Vec::new();
    let mut last: Option<u64> = None;
    loop {
        let over = *finished.borrow();
        if over && receipts.len() >= recorded.load(Ordering::Relaxed) {
            break;
        }
        // No timer per message: 10,000 listeners would cost the machine more than the service.
        let text = tokio::select! {
            text = next_text(&mut socket) => text?,
            _ = finished.changed(), if !over => continue,
        };
        let at = Instant::now();
        let message: Frame = serde_json::from_str(&text)
            .with_context(|| format!("unexpected subscription message: {text}"))?;
        if message.kind != "next" {
            bail!("unexpected subscription message: {text}");
        }
        let event = message.payload.data.event_recorded;
        let index = event.ledger.index;
        ensure!(
            last.is_none_or(|l| index > l),
            "index {index} after {last:?}"
        );
        last = Some(index);
        if event.action == WARM_UP_ACTION {
            if !warmed_up {
                warmed_up = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        receipts.push(Receipt {
            id: event.id,
            index,
            at,
        });
    }
    ensure!(
        receipts.len() == recorded.load(Ordering::Relaxed),
        "{} events for {} recorded",
        receipts.len(),
        recorded.load(Ordering::Relaxed)
    );
    Ok(receipts)
}

/// A `next` message of the subscription, only the fields the listeners take.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "eventRecorded")]
    event_recorded: Delivered,
}

#[derive(Deserialize)]
struct Delivered {
    id: String,
    action: String,
    ledger: Ledger,
}

#[derive(Deserialize)]
struct Ledger {
    index: u64,
}

/// One client replays a tenant's stored history from the beginning: events per second.
async fn replay(env: &BenchEnv, api: &ApiProcess, sizes: &Sizes) -> anyhow::Result<(usize, f64)> {
    let now = Utc::now();
    let bar = progress("history to replay", sizes.replay_events);
    for start in (0..sizes.replay_events).step_by(1000) {
        let count = 1000.min(sizes.replay_events - start);
        let batch: Vec<_> = (0..count)
            .map(|_| stored_event(REPLAY_TENANT, now))
            .collect();
        env.store.insert_events(&batch, SearchBacklog::Skip).await?;
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    let key = env.key(REPLAY_TENANT).await?;
    let bar = progress("replay from the beginning", sizes.replay_events);
    let started = Instant::now();
    let mut socket = open_subscription(api.addr, &key, REPLAY).await?;
    let mut expected = 0u64;
    while (expected as usize) < sizes.replay_events {
        let message = next_message(&mut socket).await?;
        let index = message["payload"]["data"]["eventRecorded"]["ledger"]["index"]
            .as_u64()
            .with_context(|| format!("not an event: {message}"))?;
        ensure!(index == expected, "index {index}, {expected} expected");
        expected += 1;
        bar.inc(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok((sizes.replay_events, seconds))
}
