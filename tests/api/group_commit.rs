//! Group commit: concurrent `recordEvent` calls share broker messages, and still every accepted
//! event is stored once, reaches its own tenant's subscribers once, and duplicates stay duplicates.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{event, TestApp, OTHER_TENANT, TENANT};
use crate::ws::{assert_quiet, next, subscribe};
use traceledger::domain::AuditEvent;

const CALLS: usize = 200;
/// Calls that repeat an idempotency key of another call in flight at the same time.
const REPEATS: usize = 20;

#[tokio::test]
async fn concurrent_calls_share_messages_and_each_event_arrives_once() {
    let app = TestApp::spawn().await;
    let (_connection, channel, tap) = tap(&app).await;
    let mut sockets = HashMap::from([
        (TENANT, subscribe(&app, &app.key, json!({})).await),
        (
            OTHER_TENANT,
            subscribe(&app, &app.other_key, json!({})).await,
        ),
    ]);

    // Half the calls for each tenant. In the first 2 × REPEATS calls each tenant uses each of its
    // keys twice: REPEATS pairs of calls racing for a key.
    let calls = (0..CALLS).map(|i| {
        let (tenant, key) = if i % 2 == 0 {
            (TENANT, &app.key)
        } else {
            (OTHER_TENANT, &app.other_key)
        };
        let mut input = event(&format!("grouped.{i}"));
        if i < 2 * REPEATS {
            input["idempotencyKey"] = json!(format!("repeat-{}", i / 4));
        }
        let app = &app;
        async move {
            let receipt = app.record_as(key, input.clone()).await;
            (tenant, input, receipt)
        }
    });
    let answers: Vec<(&str, Value, Value)> = join_all(calls).await;

    let mut accepted: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut by_key: HashMap<(&str, String), Vec<(String, String)>> = HashMap::new();
    for (tenant, input, receipt) in &answers {
        let (id, status) = (
            receipt["id"].as_str().unwrap(),
            receipt["status"].as_str().unwrap(),
        );
        if status == "ACCEPTED" {
            assert!(accepted.entry(tenant).or_default().insert(id.to_owned()));
        }
        if let Some(key) = input["idempotencyKey"].as_str() {
            by_key
                .entry((tenant, key.to_owned()))
                .or_default()
                .push((id.to_owned(), status.to_owned()));
        }
    }
    // Each repeated key: one call accepted, the other told it is a duplicate of that one.
    assert_eq!(by_key.len(), REPEATS);
    for (key, receipts) in &by_key {
        let statuses: HashSet<&str> = receipts.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            statuses,
            HashSet::from(["ACCEPTED", "DUPLICATE"]),
            "{key:?}"
        );
        assert_eq!(receipts[0].0, receipts[1].0, "{key:?}");
    }
    let per_tenant = (CALLS - REPEATS) / 2;
    for tenant in [TENANT, OTHER_TENANT] {
        assert_eq!(accepted[tenant].len(), per_tenant, "{tenant}");
    }

    // Stored exactly once each, under its tenant.
    for tenant in [TENANT, OTHER_TENANT] {
        app.wait_stored(tenant, per_tenant as i64).await;
        let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
        let stored: HashSet<String> = stored.iter().map(Uuid::to_string).collect();
        assert_eq!(stored, accepted[tenant], "{tenant}");
    }

    // Each subscriber saw its own tenant's events, each once, and nothing else.
    for (tenant, socket) in &mut sockets {
        let mut seen = Vec::new();
        while seen.len() < per_tenant {
            let message = next(socket, Duration::from_secs(5)).await.expect("event");
            let delivered = &message["payload"]["data"]["eventRecorded"];
            assert_eq!(delivered["tenant"], *tenant, "{message}");
            seen.push(delivered["id"].as_str().unwrap().to_owned());
        }
        assert_quiet(socket, Duration::from_millis(500)).await;
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{tenant} saw an event twice");
        assert_eq!(unique, accepted[tenant], "{tenant}");
    }

    // The broker got fewer messages than events, and each accepted event in exactly one (beside
    // them travel the self-audit trail's events, of tenant `_traceledger`).
    let messages = published(&channel, &tap).await;
    let published: Vec<String> = messages
        .iter()
        .flatten()
        .filter(|e| e.tenant == TENANT || e.tenant == OTHER_TENANT)
        .map(|e| e.id.to_string())
        .collect();
    let expected: HashSet<String> = accepted.values().flatten().cloned().collect();
    assert_eq!(
        published.len(),
        expected.len(),
        "an event was published twice"
    );
    assert_eq!(published.into_iter().collect::<HashSet<_>>(), expected);
    let sizes: Vec<usize> = messages.iter().map(Vec::len).collect();
    assert!(
        messages.len() <= expected.len() / 2,
        "{} events in {} messages: {sizes:?}",
        expected.len(),
        messages.len()
    );
}

#[tokio::test]
async fn a_message_carries_at_most_the_configured_number_of_events() {
    const MAX_EVENTS: usize = 8;
    let app = TestApp::spawn_with(|config| config.publish.group_max_events = MAX_EVENTS).await;
    let (_connection, channel, tap) = tap(&app).await;
    let inputs: Vec<Value> = (0..3 * MAX_EVENTS)
        .map(|i| event(&format!("bounded.{i}")))
        .collect();
    join_all(inputs.iter().map(|input| app.record(input.clone()))).await;
    // A recordEvents call larger than the bound still travels, alone.
    app.record_all(&inputs[..2 * MAX_EVENTS]).await;
    app.wait_stored(TENANT, 5 * MAX_EVENTS as i64).await;

    // Only messages carrying the test's events: the self-audit trail records its own batches.
    let messages: Vec<Vec<AuditEvent>> = published(&channel, &tap)
        .await
        .into_iter()
        .filter(|events| events.iter().any(|e| e.tenant == TENANT))
        .collect();
    let ours = messages.iter().flatten().filter(|e| e.tenant == TENANT);
    assert_eq!(ours.count(), 5 * MAX_EVENTS);
    let sizes: Vec<usize> = messages.iter().map(Vec::len).collect();
    let oversized: Vec<usize> = sizes.iter().copied().filter(|&n| n > MAX_EVENTS).collect();
    assert_eq!(oversized, [2 * MAX_EVENTS], "{sizes:?}");
}

/// A queue of our own on the app's exchange: it gets a copy of every message the API publishes.
async fn tap(app: &TestApp) -> (lapin::Connection, lapin::Channel, ShortString) {
    let (connection, channel) = app.broker().await;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            app.config.broker.exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, channel, queue.name().clone())
}

/// Every message in the tap so far, decoded.
async fn published(channel: &lapin::Channel, tap: &ShortString) -> Vec<Vec<AuditEvent>> {
    let mut messages = Vec::new();
    while let Some(message) = channel
        .basic_get(tap.clone(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        messages.push(traceledger::bus::decode_batch(&message.delivery.data).unwrap());
    }
    messages
}
