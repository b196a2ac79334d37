//! `eventRecorded` over websocket (graphql-transport-ws): matching events of the subscriber's
//! own tenant arrive promptly, each once; nothing else does.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{event, TestApp};
use crate::ws::{assert_quiet, connect, next, send, subscribe, wait_subscribers};

/// The promise: a subscriber sees a matching event within a second of the answer.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_subscriber_gets_its_matching_events_once_and_nothing_else() {
    let app = TestApp::spawn().await;
    let mut socket = subscribe(
        &app,
        &app.key,
        json!({ "actions": ["invoice.*"], "minSeverity": "WARNING" }),
    )
    .await;
    let mut bystander = subscribe(&app, &app.key, json!({})).await;

    // Not matching: wrong action, too mild, or another tenant's.
    app.record(event("user.login")).await;
    let mut mild = event("invoice.update");
    mild["severity"] = json!("INFO");
    app.record(mild).await;
    let mut theirs = event("invoice.update");
    theirs["severity"] = json!("ERROR");
    app.record_as(&app.other_key, theirs.clone()).await;

    let receipt = app.record(theirs).await;
    let message = next(&mut socket, DELIVERY_DEADLINE)
        .await
        .expect("the matching event within a second");
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], "1");
    let delivered = &message["payload"]["data"]["eventRecorded"];
    assert_eq!(delivered["id"], receipt["id"]);
    assert_eq!(delivered["tenant"], crate::helpers::TENANT);
    assert_eq!(delivered["action"], "invoice.update");

    // Nothing more for the filtered subscriber...
    assert_quiet(&mut socket, Duration::from_millis(700)).await;
    // ...while the unfiltered one saw all three of its tenant's events, each once, in order.
    let mut actions = Vec::new();
    for _ in 0..3 {
        let message = next(&mut bystander, Duration::from_secs(2))
            .await
            .expect("event");
        actions.push(
            message["payload"]["data"]["eventRecorded"]["action"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(actions, ["user.login", "invoice.update", "invoice.update"]);
    assert_quiet(&mut bystander, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_websocket_with_a_bad_key_is_refused() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, json!({ "apiKey": "tlk_unknown" })).await;
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("the server answers a bad key")
        .expect("a message")
        .expect("a readable message");
    let Message::Close(Some(closed)) = message else {
        panic!("the server answered a bad key with {message:?}");
    };
    assert_eq!(u16::from(closed.code), 1002, "{closed:?}");
    assert!(closed.reason.starts_with("UNAUTHENTICATED: "), "{closed:?}");
    assert!(closed.reason.contains("API key"), "{closed:?}");
}

#[tokio::test]
async fn the_authorization_form_of_connection_init_works() {
    let app = TestApp::spawn().await;
    let mut socket = connect(
        &app,
        json!({ "Authorization": format!("Bearer {}", app.key) }),
    )
    .await;
    let ack = next(&mut socket, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["type"], "connection_ack");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_holds_up_nobody() {
    let app = TestApp::spawn().await;
    // It subscribes to everything, whole messages included, and then reads nothing more.
    let mut stalled = connect(&app, json!({ "apiKey": app.key })).await;
    let ack = next(&mut stalled, Duration::from_secs(5)).await;
    assert_eq!(
        ack.map(|a| a["type"].clone()),
        Some(json!("connection_ack"))
    );
    send(
        &mut stalled,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": "subscription { eventRecorded { id action message } }" },
        }),
    )
    .await;
    wait_subscribers(&app, 1).await;
    let mut attentive = subscribe(&app, &app.key, json!({ "actions": ["flood.done"] })).await;

    // Far more than the stalled socket's buffers hold (3 × 1000 events of 8 KB: 24 MB).
    let mut big = event("flood.wave");
    big["message"] = json!("x".repeat(8000));
    let wave = vec![big; 1000];
    for _ in 0..3 {
        app.record_all(&wave).await;
    }
    let receipt = app.record(event("flood.done")).await;
    let message = next(&mut attentive, DELIVERY_DEADLINE)
        .await
        .expect("the attentive subscriber's event within a second");
    assert_eq!(
        message["payload"]["data"]["eventRecorded"]["id"],
        receipt["id"]
    );
    drop(stalled);
}
