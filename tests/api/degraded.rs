//! Degrading instead of failing: recording through the outbox while the broker is unreachable,
//! serving without Redis, and saying so on /ready; /metrics in Prometheus format.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TENANT};

/// Nothing listens here: a dependency that is down.
const DEAD_PORT_AMQP: &str = "amqp://guest:guest@127.0.0.1:1/%2f";
const DEAD_PORT_REDIS: &str = "redis://127.0.0.1:1";

async fn ready(app: &TestApp) -> (u16, Value) {
    let response = reqwest::get(app.url("/ready")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_healthy_service_is_ready() {
    let app = TestApp::spawn().await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "up", "{body}");
    for dependency in ["postgres", "redis", "rabbitmq"] {
        assert_eq!(body[dependency]["status"], "up", "{body}");
    }
    assert_eq!(body["outbox_depth"], 0);
}

#[tokio::test]
async fn events_accepted_while_the_broker_is_unreachable_are_relayed_from_the_outbox() {
    let cut_off = TestApp::spawn_with(|config| config.broker.url = DEAD_PORT_AMQP.into()).await;
    let mut accepted = HashSet::new();
    for i in 0..5 {
        let receipt = cut_off
            .record(event(&format!("while.broker_down_{i}")))
            .await;
        assert_eq!(receipt["status"], "ACCEPTED");
        accepted.insert(receipt["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = ready(&cut_off).await;
    assert_eq!(status, 200, "still serving: {body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["rabbitmq"]["status"], "down", "{body}");
    // The five batches, and the service's own audit of those requests (in tenant
    // `_traceledger`, batched as they queue up) parked beside them.
    let depth = body["outbox_depth"].as_i64().unwrap();
    assert!((5..=10).contains(&depth), "{body}");

    // Another instance of the same deployment that reaches the broker relays them.
    let database_url = cut_off.config.database.url.clone();
    let relay = TestApp::spawn_with(|config| config.database.url = database_url).await;
    relay.wait_stored(TENANT, 5).await;
    let body = relay
        .gql("{ auditEvents { edges { node { id } } } }", json!({}))
        .await;
    let stored: HashSet<String> = body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, accepted);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ready(&relay).await.1["outbox_depth"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The audit of those five requests was relayed too.
    let audited = "SELECT count(*) FROM audit_events WHERE tenant = '_traceledger' \
                   AND action = 'api.request' AND target_id = 'recordEvent'";
    loop {
        let count: i64 = sqlx::query_scalar(audited)
            .fetch_one(relay.store.pool())
            .await
            .unwrap();
        assert!(count <= 5, "{count} requests audited, 5 made");
        if count == 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline + Duration::from_secs(10),
            "only {count} of the 5 requests audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_neither_broker_nor_outbox_an_event_is_refused_with_a_retry_hint() {
    let app = TestApp::spawn_with(|config| config.broker.url = DEAD_PORT_AMQP.into()).await;
    // The outbox cannot take anything either.
    sqlx::query("ALTER TABLE outbox RENAME TO outbox_unreachable")
        .execute(app.store.pool())
        .await
        .unwrap();
    let record = || {
        app.post(
            Some(&app.key),
            "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id status } }",
            json!({ "input": event("while.everything_down") }),
        )
    };
    let (_, body) = record().await;
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "UNAVAILABLE", "{body}");
    assert!(
        error["extensions"]["retryAfterSeconds"]
            .as_u64()
            .is_some_and(|s| s > 0),
        "{body}"
    );
    assert!(body["data"]["recordEvent"].is_null(), "{body}");

    // Refused means not kept: nothing of it waits in the outbox to be relayed later.
    sqlx::query("ALTER TABLE outbox_unreachable RENAME TO outbox")
        .execute(app.store.pool())
        .await
        .unwrap();
    let parked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE position('while.everything_down' IN convert_from(payload, 'UTF8')) > 0",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(parked, 0);
    // With the outbox back, the client's retry is accepted (into the outbox).
    let (_, body) = record().await;
    assert_eq!(body["data"]["recordEvent"]["status"], "ACCEPTED", "{body}");
}

#[tokio::test]
async fn without_redis_the_service_records_reads_and_still_answers_duplicates() {
    let app = TestApp::spawn_with(|config| config.redis.url = DEAD_PORT_REDIS.into()).await;
    let mut input = event("no.cache");
    input["idempotencyKey"] = json!("k-1");
    let first = app.record(input.clone()).await;
    assert_eq!(first["status"], "ACCEPTED");
    app.wait_stored(TENANT, 1).await;
    let second = app.record(input).await;
    assert_eq!(second["status"], "DUPLICATE");
    assert_eq!(second["id"], first["id"]);
    let body = app
        .gql(
            "query($id: ID!) { auditEvent(id: $id) { action } }",
            json!({ "id": first["id"] }),
        )
        .await;
    assert_eq!(body["data"]["auditEvent"]["action"], "no.cache", "{body}");

    let (status, body) = ready(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["redis"]["status"], "down", "{body}");
}

#[tokio::test]
async fn metrics_are_exposed_for_prometheus() {
    let app = TestApp::spawn().await;
    let receipt = app.record(event("metered.event")).await;
    app.wait_stored(TENANT, 1).await;
    // Read twice: a cache miss, then a hit.
    for _ in 0..2 {
        app.gql(
            "query($id: ID!) { auditEvent(id: $id) { id } }",
            json!({ "id": receipt["id"] }),
        )
        .await;
    }
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for metric in [
        "traceledger_events_accepted_total",
        "traceledger_events_stored_total",
        "traceledger_publish_confirm_seconds",
        "traceledger_worker_commit_seconds",
        "traceledger_accept_to_commit_seconds",
        "traceledger_subscribers",
        "traceledger_breaker_state{dependency=\"redis\"}",
        "traceledger_breaker_state{dependency=\"rabbitmq\"}",
        "traceledger_outbox_depth",
        "traceledger_worker_batch_events",
        "traceledger_cache_hits_total",
        "traceledger_cache_misses_total",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
    let worker_queue = format!(
        "traceledger_queue_depth{{queue=\"{}\"}}",
        app.config.broker.worker_queue
    );
    assert!(
        text.contains(&worker_queue),
        "{worker_queue} missing from:\n{text}"
    );
}
