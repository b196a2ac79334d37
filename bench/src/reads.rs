//! Reads at many stored events: `auditEvents(first: 50)` with and without filters, and
//! `auditEvent(id)` from a warm and a cold cache. The events are seeded through the store's own
//! `insert_events` (the worker's write path) in big batches, not through the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::Utc;
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use uuid::Uuid;

use traceledger::domain::{Actor, AuditEvent, Outcome, Severity, Target};

use crate::api::ApiProcess;
use crate::cpu::{CpuSample, CpuUse};
use crate::elastic::SearchServer;
use crate::harness::{drive, progress, BenchEnv, Client};
use crate::latency::Latency;
use crate::sizes::Sizes;

/// The tenant whose events the reads (and the export) are measured on.
pub const TENANT: &str = "reads";
const SEED_BATCH: usize = 5_000;
/// Seeding batches in flight: one per core.
const SEED_CONCURRENCY: usize = 2;
/// The seeded events spread over this many days before now.
const SEED_DAYS: i64 = 30;
const SERVICES: [&str; 8] = [
    "billing", "auth", "storage", "search", "mail", "admin", "reports", "api",
];
const ACTIONS: [&str; 8] = [
    "invoice.create",
    "invoice.update",
    "invoice.delete",
    "user.login",
    "user.logout",
    "user.update",
    "file.read",
    "file.delete",
];
const ACTORS: usize = 1_000;
/// osmem-server, the stand-in for Elasticsearch (see `crate::elastic`), is given one event in
/// this many, and asked this many times the PostgreSQL searches' count.
const ELASTIC_SHARE: i64 = 100;
const ELASTIC_REQUESTS_PER_HEAVY: usize = 2;
/// Every this many seeded events, one id is kept for the `auditEvent(id)` scenarios.
const ID_SAMPLE_EVERY: usize = 7;

const LIST: &str = "query($filter: AuditEventFilter) { auditEvents(first: 50, filter: $filter) { \
    edges { cursor node { id occurredAt action service severity actor { id } } } \
    pageInfo { hasNextPage endCursor } } }";
/// The same page's fields, forwards after a cursor and backwards before one.
const LIST_AFTER: &str = "query($c: String) { auditEvents(first: 50, after: $c) { \
    edges { cursor node { id occurredAt action service severity actor { id } } } \
    pageInfo { hasNextPage endCursor } } }";
const LIST_BEFORE: &str = "query($c: String) { auditEvents(last: 50, before: $c) { \
    edges { cursor node { id occurredAt action service severity actor { id } } } \
    pageInfo { hasPreviousPage startCursor } } }";
const LIST_TOTAL: &str = "query { auditEvents(first: 50) { totalCount totalCountIsEstimate \
    edges { cursor node { id occurredAt action service severity actor { id } } } \
    pageInfo { hasNextPage endCursor } } }";
/// Cursors this many pages deep, taken in turn by the paging-by-cursor rows.
const DEEP_PAGES: usize = 40;
pub const FORWARD_FROM_CURSOR: &str = "auditEvents(first: 50, after: …)";
pub const BACKWARD_FROM_CURSOR: &str = "auditEvents(last: 50, before: …)";
pub const NEWEST_PAGE: &str = "auditEvents(first: 50)";
pub const WITH_TOTAL: &str = "auditEvents(first: 50) with totalCount";
const ONE: &str = "query($id: ID!) { auditEvent(id: $id) { id occurredAt action service \
    severity actor { id } target { id type } message } }";
const SEARCH: &str = "query($q: String!) { search(query: $q, first: 20) { total \
    hits { score event { id } } } }";
const STATS_BY_DAY: &str = "query($f: AuditEventFilter) { eventStats(filter: $f, \
    groupBy: [SERVICE], interval: DAY) { totalCount buckets { start count } } }";
const STATS: &str = "query($f: AuditEventFilter) { eventStats(filter: $f, groupBy: [SERVICE], \
    interval: HOUR) { totalCount buckets { start count } } }";

pub struct ReadResult {
    pub name: &'static str,
    pub requests: usize,
    pub clients: usize,
    pub per_s: f64,
    pub latency: Latency,
    pub cpu: CpuUse,
}

pub async fn run(
    env: &BenchEnv,
    api: &ApiProcess,
    sizes: &Sizes,
) -> anyhow::Result<(Vec<ReadResult>, Vec<Uuid>)> {
    let ids = seed(env, sizes.stored_events).await?;
    // The sealer keeps up with the seeding; what it has left is done before anything is
    // measured, so the reads meet a quiet service.
    env.wait_sealed(TENANT, sizes.commit_deadline * 4).await?;
    let sampled = ids.clone();
    let client = Client::new(api.addr, env.key(TENANT).await?);
    let n = sizes.read_requests;
    ensure!(
        ids.len() >= 2 * n,
        "{} sampled ids, {} needed: seed more events",
        ids.len(),
        2 * n
    );
    // Warm: a small set, each loaded once before measuring; cold: ids never asked for before.
    let warm: Vec<Uuid> = ids[..n.min(1_000)].to_vec();
    let cold: Vec<Uuid> = ids[n..2 * n].to_vec();
    for id in &warm {
        one_event(&client, *id).await?;
    }
    let light = (sizes.read_requests, sizes.read_clients);
    // Search and statistics read thousands of rows a request: fewer of them, fewer at once.
    let heavy = (sizes.heavy_read_requests, sizes.heavy_read_clients);
    let mut results = Vec::new();
    let now = Utc::now();
    let warm = Arc::new(warm);
    // Under load (queueing on 2 cores shows) and one client alone (the service time).
    for shape in [light, (sizes.read_requests, 1)] {
        results.push(
            measure(NEWEST_PAGE, shape, api, &client, |client, _| async move {
                page(&client, Value::Null).await
            })
            .await?,
        );
        results.push(
            measure(
                "auditEvents(first: 50) filtered",
                shape,
                api,
                &client,
                move |client, i| async move { page(&client, filter(i, now)).await },
            )
            .await?,
        );
        let warm = Arc::clone(&warm);
        results.push(
            measure(
                "auditEvent(id) warm",
                shape,
                api,
                &client,
                move |client, i| {
                    let id = warm[i % warm.len()];
                    async move { one_event(&client, id).await }
                },
            )
            .await?,
        );
    }
    // Pages by cursor both ways, and the newest page with its total, one client (service time).
    let cursors = Arc::new(deep_cursors(&client).await?);
    for (name, query) in [
        (FORWARD_FROM_CURSOR, LIST_AFTER),
        (BACKWARD_FROM_CURSOR, LIST_BEFORE),
    ] {
        let cursors = Arc::clone(&cursors);
        results.push(
            measure(name, (n, 1), api, &client, move |client, i| {
                let cursor = cursors[i % cursors.len()].clone();
                async move { page_from(&client, query, cursor).await }
            })
            .await?,
        );
    }
    results.push(
        measure(WITH_TOTAL, (n, 1), api, &client, |client, _| async move {
            let data = client.gql(LIST_TOTAL, json!({})).await?;
            ensure!(
                data["auditEvents"]["totalCount"]
                    .as_u64()
                    .is_some_and(|t| t > 0),
                "no total: {data}"
            );
            Ok(())
        })
        .await?,
    );
    let cold = Arc::new(cold);
    results.push(
        measure(
            "auditEvent(id) cold",
            light,
            api,
            &client,
            move |client, i| {
                let id = cold[i];
                async move { one_event(&client, id).await }
            },
        )
        .await?,
    );
    // Full-text search from PostgreSQL (no Elasticsearch URL is configured for this API).
    results.push(
        measure(
            "search (PostgreSQL)",
            heavy,
            api,
            &client,
            |client, i| async move { search(&client, i, "postgres").await },
        )
        .await?,
    );
    for shape in [heavy, (sizes.heavy_read_requests, 1)] {
        results.push(
            measure(
                "eventStats(HOUR, by SERVICE), one day",
                shape,
                api,
                &client,
                move |client, i| async move { stats(&client, i, now).await },
            )
            .await?,
        );
    }
    results.push(
        measure(
            "eventStats(DAY, by SERVICE), all 30 days",
            (sizes.heavy_read_requests, 1),
            api,
            &client,
            move |client, _| async move { stats_of_everything(&client, now).await },
        )
        .await?,
    );
    // A stand-in that fails (see `crate::elastic`) costs this row, not the whole run.
    match search_on_elasticsearch(env, sizes, heavy.1, now).await {
        Ok(Some(result)) => results.push(result),
        Ok(None) => {}
        Err(e) => eprintln!("search on the Elasticsearch backend (osmem-server) skipped: {e:#}"),
    }
    Ok((results, sampled))
}

/// The same searches through an API whose search backend is Elasticsearch, here `osmem-server`
/// (see `crate::elastic`) holding the newest hundredth of the stored events (all of them in a
/// quick run); None when osmem-server is not installed.
async fn search_on_elasticsearch(
    env: &BenchEnv,
    sizes: &Sizes,
    clients: usize,
    seeded_at: chrono::DateTime<Utc>,
) -> anyhow::Result<Option<ReadResult>> {
    let Some(server) = SearchServer::start().await? else {
        eprintln!("osmem-server is not installed (scripts/test installs it): search on the Elasticsearch backend skipped");
        return Ok(None);
    };
    let prefix = format!("{}-search", env.config.redis.prefix);
    // The newest hundredth (all of a quick run's few): the seeded events are spread evenly over
    // SEED_DAYS before `seeded_at`.
    let share = if sizes.quick { 1 } else { ELASTIC_SHARE };
    let since = seeded_at - chrono::Duration::milliseconds(SEED_DAYS * 86_400_000 / share);
    server
        .index_since(env, &prefix, since, sizes.stored_events / share as usize)
        .await?;
    let api = ApiProcess::spawn_with(
        env,
        vec![
            ("TRACELEDGER_ELASTICSEARCH_URL", server.url.clone()),
            ("TRACELEDGER_ELASTICSEARCH_INDEX_PREFIX", prefix),
            // Measure the stand-in's answers, however slow, rather than fall back to PostgreSQL.
            ("TRACELEDGER_ELASTICSEARCH_TIMEOUT_MS", "30000".to_owned()),
        ],
    )
    .await?;
    let client = Client::new(api.addr, env.key(TENANT).await?);
    // What was indexed becomes searchable once the server refreshes (Elasticsearch: every second).
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = search(&client, 0, "elasticsearch").await {
        ensure!(Instant::now() < deadline, "never searchable: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = measure(
        if sizes.quick {
            "search (Elasticsearch backend on osmem-server)"
        } else {
            "search (Elasticsearch backend on osmem-server, newest 1 % of the events)"
        },
        (
            sizes.heavy_read_requests * ELASTIC_REQUESTS_PER_HEAVY,
            clients,
        ),
        &api,
        &client,
        |client, i| async move { search(&client, i, "elasticsearch").await },
    )
    .await;
    api.stop().await;
    result.map(Some)
}

/// The `i`th search: a word narrowed by a field term, a phrase within a service, or words and an
/// action prefix for one actor, in turn; each matches a different share of the events.
async fn search(client: &Client, i: usize, backend: &str) -> anyhow::Result<()> {
    let query = match i % 3 {
        0 => format!("correction actor:user-{}", i % ACTORS),
        1 => format!("\"total changed\" service:{}", SERVICES[i % SERVICES.len()]),
        // Actor k acts on every event i ≡ k (mod 1000); with k ≡ 0 (mod 8) those are invoice.create.
        _ => format!("manual action:invoice.* actor:user-{}", 8 * (i % 125)),
    };
    let (data, extensions) = client
        .gql_with_extensions(SEARCH, json!({ "q": query }))
        .await?;
    ensure!(
        extensions["searchBackend"] == backend,
        "search {query:?} answered from {} instead of {backend}",
        extensions["searchBackend"]
    );
    ensure!(
        data["search"]["hits"]
            .as_array()
            .is_some_and(|hits| !hits.is_empty()),
        "search {query:?} found nothing: {data}"
    );
    Ok(())
}

/// Hourly counts by service over one of the seeded days, a different one each request.
async fn stats(client: &Client, i: usize, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let day = (i % SEED_DAYS as usize) as i64;
    let before = now - chrono::Duration::days(day);
    stats_between(client, STATS, before - chrono::Duration::days(1), before).await
}

/// Daily counts by service over every seeded event (the whole month, all stored rows).
async fn stats_of_everything(client: &Client, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let after = now - chrono::Duration::days(SEED_DAYS + 1);
    stats_between(
        client,
        STATS_BY_DAY,
        after,
        now + chrono::Duration::minutes(1),
    )
    .await
}

/// One `eventStats` `query` over [after, before), which must count something.
async fn stats_between(
    client: &Client,
    query: &str,
    after: chrono::DateTime<Utc>,
    before: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let filter =
        json!({ "occurredAfter": after.to_rfc3339(), "occurredBefore": before.to_rfc3339() });
    let data = client.gql(query, json!({ "f": filter })).await?;
    ensure!(
        data["eventStats"]["totalCount"]
            .as_i64()
            .is_some_and(|n| n > 0),
        "eventStats counted nothing: {data}"
    );
    Ok(())
}

/// Inserts `count` events of `TENANT` through `Store::insert_events` and returns a sample of their
/// ids, in random order.
async fn seed(env: &BenchEnv, count: usize) -> anyhow::Result<Vec<Uuid>> {
    let bar = progress("seeding events", count);
    let now = Utc::now();
    let step_ms = SEED_DAYS * 86_400_000 / count.max(1) as i64;
    let batches = (0..count).step_by(SEED_BATCH).map(|first| {
        let events: Vec<AuditEvent> = (first..count.min(first + SEED_BATCH))
            .map(|i| seeded_event(i, now - chrono::Duration::milliseconds(step_ms * i as i64)))
            .collect();
        (events, env.store.clone(), bar.clone())
    });
    let mut ids: Vec<Uuid> = stream::iter(batches)
        .map(|(events, store, bar)| async move {
            let inserted = store
                .insert_events(&events, traceledger::store::SearchBacklog::Skip)
                .await?;
            ensure!(
                inserted as usize == events.len(),
                "{inserted} of {} seeded events inserted",
                events.len()
            );
            bar.inc(events.len() as u64);
            anyhow::Ok(
                events
                    .iter()
                    .step_by(ID_SAMPLE_EVERY)
                    .map(|e| e.id)
                    .collect::<Vec<_>>(),
            )
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_concat()
        .await?;
    bar.set_message("VACUUM ANALYZE");
    // What autovacuum does soon after a bulk load: statistics for the planner, and the
    // visibility map that lets eventStats answer from its covering index alone.
    sqlx::query("VACUUM (ANALYZE) audit_events")
        .execute(env.store.pool())
        .await?;
    bar.finish_and_clear();
    ensure!(
        env.stored(TENANT).await? == count,
        "the seeded count does not match"
    );
    // Spread the sample over time and keys, so neighbouring requests do not share pages.
    ids.sort_unstable_by_key(|id| id.as_u128().reverse_bits());
    Ok(ids)
}

fn seeded_event(i: usize, occurred_at: chrono::DateTime<Utc>) -> AuditEvent {
    let severity = [
        Severity::Debug,
        Severity::Info,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ][i % 7];
    AuditEvent {
        id: Uuid::now_v7(),
        tenant: TENANT.to_owned(),
        occurred_at,
        received_at: occurred_at,
        action: ACTIONS[i % ACTIONS.len()].to_owned(),
        outcome: if i.is_multiple_of(10) {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        severity,
        service: SERVICES[(i / 3) % SERVICES.len()].to_owned(),
        actor: Actor {
            id: format!("user-{}", i % ACTORS),
            kind: "user".to_owned(),
            name: None,
            ip: Some("203.0.113.7".to_owned()),
            href: None,
        },
        target: Some(Target {
            id: format!("object-{}", i % 50_000),
            kind: "invoice".to_owned(),
            name: None,
            href: None,
        }),
        message: Some("Invoice total changed after a manual correction.".to_owned()),
        metadata: Some(json!({ "previousTotal": 1200, "newTotal": 1250 })),
        idempotency_key: None,
        request_id: Some(format!("req-{i}")),
        trace_id: None,
        recorded_by: None,
        group: None,
        crud: None,
    }
}

/// The `i`th request's filter: by service and minimum severity, by actor, by action prefix, or
/// by a day's time range, in turn.
fn filter(i: usize, now: chrono::DateTime<Utc>) -> Value {
    match i % 4 {
        0 => json!({ "services": [SERVICES[i % SERVICES.len()]], "minSeverity": "WARNING" }),
        1 => json!({ "actorIds": [format!("user-{}", i % ACTORS)] }),
        2 => json!({ "actions": ["invoice.*"] }),
        _ => {
            let day = (i % SEED_DAYS as usize) as i64;
            let before = now - chrono::Duration::days(day);
            let after = before - chrono::Duration::days(1);
            json!({ "occurredAfter": after.to_rfc3339(), "occurredBefore": before.to_rfc3339() })
        }
    }
}

async fn page(client: &Client, filter: Value) -> anyhow::Result<()> {
    let data = client.gql(LIST, json!({ "filter": filter })).await?;
    let connection = &data["auditEvents"];
    let edges = connection["edges"].as_array().map_or(0, Vec::len);
    let more = connection["pageInfo"]["hasNextPage"] == json!(true);
    // Every filter matches events; a page is full unless it is the last one.
    ensure!(
        edges == 50 || (edges > 0 && !more),
        "a page of {edges} events: {data}"
    );
    Ok(())
}

/// The end cursors of the first [`DEEP_PAGES`] pages, newest first.
async fn deep_cursors(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut cursors = Vec::with_capacity(DEEP_PAGES);
    let mut after = Value::Null;
    for _ in 0..DEEP_PAGES {
        let data = client.gql(LIST_AFTER, json!({ "c": after })).await?;
        let Some(end) = data["auditEvents"]["pageInfo"]["endCursor"].as_str() else {
            break;
        };
        cursors.push(end.to_owned());
        after = json!(end);
    }
    ensure!(!cursors.is_empty(), "no page to take cursors from");
    Ok(cursors)
}

/// A page forwards or backwards from `cursor`: never empty, since every cursor is inside.
async fn page_from(client: &Client, query: &str, cursor: String) -> anyhow::Result<()> {
    let data = client.gql(query, json!({ "c": cursor })).await?;
    let edges = data["auditEvents"]["edges"].as_array().map_or(0, Vec::len);
    ensure!(edges > 0, "an empty page: {data}");
    Ok(())
}

async fn one_event(client: &Client, id: Uuid) -> anyhow::Result<()> {
    let data = client.gql(ONE, json!({ "id": id })).await?;
    ensure!(
        data["auditEvent"]["id"] == json!(id),
        "auditEvent({id}) answered {data}"
    );
    Ok(())
}

/// Runs `request(client, i)` for i in 0..requests from `clients` concurrent clients.
async fn measure<F, Fut>(
    name: &'static str,
    (requests, clients): (usize, usize),
    api: &ApiProcess,
    client: &Client,
    request: F,
) -> anyhow::Result<ReadResult>
where
    F: Fn(Client, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let bar = progress(name, requests);
    let cpu_before = CpuSample::take(api.pid());
    let started = Instant::now();
    let (client, progress_bar) = (client.clone(), bar.clone());
    let latency = drive(clients, requests, move |i| {
        let (client, bar, request) = (client.clone(), progress_bar.clone(), request.clone());
        async move {
            let sent = Instant::now();
            request(client, i).await?;
            bar.inc(1);
            Ok(sent.elapsed())
        }
    })
    .await?;
    let elapsed: Duration = started.elapsed();
    let cpu = CpuSample::take(api.pid()).since(&cpu_before);
    bar.finish_and_clear();
    Ok(ReadResult {
        name,
        requests,
        clients,
        per_s: requests as f64 / elapsed.as_secs_f64(),
        latency,
        cpu,
    })
}
