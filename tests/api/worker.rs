//! The worker against the real broker: a redelivered message is stored once, and a poison message
//! goes to the dead-letter queue without stopping the events behind it.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::types::AMQPValue;
use lapin::BasicProperties;
use serde_json::json;

use crate::helpers::{event, TestApp, TENANT};
use traceledger::domain::{ActorDraft, AuditEvent, EventDraft, NewEvent};

async fn publish(app: &TestApp, channel: &lapin::Channel, payload: &[u8]) {
    channel
        .basic_publish(
            app.config.broker.exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            payload,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

/// An event of `TENANT` as the API would have accepted it (and published it) just now.
fn accepted_event(action: &str, idempotency_key: Option<&str>) -> AuditEvent {
    let now = chrono::Utc::now();
    let draft = EventDraft {
        action: action.into(),
        service: "billing".into(),
        actor: ActorDraft {
            id: "alice".into(),
            kind: "user".into(),
            ..Default::default()
        },
        idempotency_key: idempotency_key.map(str::to_owned),
        ..Default::default()
    };
    NewEvent::parse(draft, now)
        .unwrap()
        .accept(TENANT, uuid::Uuid::now_v7(), now)
}

#[tokio::test]
async fn the_same_message_delivered_twice_is_stored_once() {
    let app = TestApp::spawn().await;
    let accepted = accepted_event("twice.delivered", None);
    let payload = traceledger::bus::encode_batch(std::slice::from_ref(&accepted)).unwrap();
    let (_connection, channel) = app.broker().await;
    publish(&app, &channel, &payload).await;
    publish(&app, &channel, &payload).await;
    // A marker behind both copies: once it is stored, both copies have been processed.
    app.record(event("marker.after")).await;
    app.wait_stored(TENANT, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = app
        .gql(
            "{ auditEvents { edges { node { id action } } } }",
            json!({}),
        )
        .await;
    let edges = body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let twice: Vec<_> = edges
        .iter()
        .filter(|e| e["node"]["action"] == "twice.delivered")
        .collect();
    assert_eq!(twice.len(), 1, "{body}");
    assert_eq!(twice[0]["node"]["id"], accepted.id.to_string());
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_pipeline_goes_on() {
    let app = TestApp::spawn().await;
    let (_connection, channel) = app.broker().await;
    publish(&app, &channel, b"{ this is not an event batch").await;
    // Well-formed JSON carrying an event no database row may hold (NUL in the message).
    let invalid = json!({ "v": 1, "events": [{
        "id": uuid::Uuid::now_v7(), "tenant": TENANT, "occurredAt": "2026-11-01T00:00:00Z",
        "receivedAt": "2026-11-01T00:00:00Z", "action": "bad.event", "outcome": "SUCCESS",
        "severity": "INFO", "service": "s", "actor": { "id": "a", "type": "user" },
        "message": "nul \u{0} inside",
    }]});
    publish(&app, &channel, invalid.to_string().as_bytes()).await;
    app.record(event("after.poison")).await;
    app.wait_stored(TENANT, 1).await;

    let mut reasons = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reasons.len() < 2 && tokio::time::Instant::now() < deadline {
        let got = channel
            .basic_get(
                app.config.broker.dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        match got {
            Some(message) => {
                let headers = message
                    .delivery
                    .properties
                    .headers()
                    .clone()
                    .unwrap_or_default();
                let reason = match headers.inner().get(traceledger::bus::REASON_HEADER) {
                    Some(AMQPValue::LongString(s)) => s.to_string(),
                    other => panic!("dead letter without a reason: {other:?}"),
                };
                reasons.push(reason);
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("not a traceledger batch"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("must not contain NUL"), "{reasons:?}");
    let body = app
        .gql("{ auditEvents { edges { node { action } } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["auditEvents"]["edges"],
        json!([{ "node": { "action": "after.poison" } }])
    );
}

#[tokio::test]
async fn a_redelivered_message_with_an_idempotency_key_is_stored_once() {
    let app = TestApp::spawn().await;
    let keyed = |action: &str| accepted_event(action, Some("k-redelivered"));
    // Two events with the same key in one message: the first is stored, the second is not.
    let first = keyed("first.with.key");
    let second = keyed("second.with.key");
    let payload = traceledger::bus::encode_batch(&[first.clone(), second.clone()]).unwrap();
    let (_connection, channel) = app.broker().await;
    publish(&app, &channel, &payload).await;
    publish(&app, &channel, &payload).await;
    app.record(event("marker.after")).await;
    app.wait_stored(TENANT, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_stored(TENANT, 2).await;
    let keys = app
        .store
        .ids_by_idempotency_keys(TENANT, &["k-redelivered".to_owned()])
        .await
        .unwrap();
    assert_eq!(keys.get("k-redelivered"), Some(&first.id));

    // Both ids were handed out as accepted (as when the API's fast duplicate check is down);
    // a later message with the key again. Every one of them finds the event stored under it.
    let third = keyed("third.with.key");
    publish(
        &app,
        &channel,
        &traceledger::bus::encode_batch(std::slice::from_ref(&third)).unwrap(),
    )
    .await;
    app.record(event("marker.after_third")).await;
    app.wait_stored(TENANT, 3).await;
    for id in [first.id, second.id, third.id] {
        let body = app
            .gql(
                "query($id: ID!) { auditEvent(id: $id) { id action } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            body["data"]["auditEvent"]["id"],
            first.id.to_string(),
            "{body}"
        );
        assert_eq!(body["data"]["auditEvent"]["action"], "first.with.key");
    }
    // Not for another tenant.
    let body = app
        .gql_as(
            &app.other_key,
            "query($id: ID!) { auditEvent(id: $id) { id } }",
            json!({ "id": second.id }),
        )
        .await;
    assert!(body["data"]["auditEvent"].is_null(), "{body}");
}
