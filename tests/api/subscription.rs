//! `eventRecorded` over websocket (graphql-transport-ws): matching events of the subscriber's
//! own tenant arrive promptly, each once; nothing else does.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{event, TestApp};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The promise: a subscriber sees a matching event within a second of the answer.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(1);

pub(crate) async fn connect(app: &TestApp, init: Value) -> Socket {
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": init }),
    )
    .await;
    socket
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message, skipping pings; `None` if the socket closed or `wait` passed.
pub(crate) async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return Some(value);
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Subscribes with `key` and waits until the server has registered the subscription.
pub(crate) async fn subscribe(app: &TestApp, key: &str, filter: Value) -> Socket {
    let before = subscribers(app).await;
    let socket = start_subscription(app, key, filter).await;
    wait_subscribers(app, before + 1).await;
    socket
}

/// Opens a socket with `key` and sends the subscription, without waiting for it to be taken.
pub(crate) async fn start_subscription(app: &TestApp, key: &str, filter: Value) -> Socket {
    let mut socket = connect(app, json!({ "apiKey": key })).await;
    let ack = next(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        ack.as_ref().map(|a| a["type"].clone()),
        Some(json!("connection_ack")),
        "{ack:?}"
    );
    send(
        &mut socket,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription($f: AuditEventFilter) { eventRecorded(filter: $f) { id tenant action severity } }",
                "variables": { "f": filter },
            },
        }),
    )
    .await;
    socket
}

/// The live subscriptions this instance serves, as operators see them on /ready.
async fn subscribers(app: &TestApp) -> u64 {
    let ready: Value = reqwest::get(app.url("/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ready["subscribers"].as_u64().expect("subscriber count")
}

/// Waits until the server has registered `count` subscriptions, so no event is recorded before
/// a subscriber is listening.
async fn wait_subscribers(app: &TestApp, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while subscribers(app).await < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription was never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    let answered = tokio::time::Instant::now();
    let message = next(&mut socket, DELIVERY_DEADLINE)
        .await
        .expect("the matching event within a second");
    assert!(answered.elapsed() <= DELIVERY_DEADLINE);
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], "1");
    let delivered = &message["payload"]["data"]["eventRecorded"];
    assert_eq!(delivered["id"], receipt["id"]);
    assert_eq!(delivered["tenant"], crate::helpers::TENANT);
    assert_eq!(delivered["action"], "invoice.update");

    // Nothing more for the filtered subscriber...
    assert_eq!(next(&mut socket, Duration::from_millis(700)).await, None);
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
    assert_eq!(next(&mut bystander, Duration::from_millis(500)).await, None);
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
    let answered = tokio::time::Instant::now();
    let message = next(&mut attentive, DELIVERY_DEADLINE)
        .await
        .expect("the attentive subscriber's event within a second");
    assert!(answered.elapsed() <= DELIVERY_DEADLINE);
    assert_eq!(
        message["payload"]["data"]["eventRecorded"]["id"],
        receipt["id"]
    );
    drop(stalled);
}
