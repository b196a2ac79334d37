//! A graphql-transport-ws client for the tests: connect, subscribe, read the next message.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
pub(crate) async fn subscribers(app: &TestApp) -> u64 {
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
pub(crate) async fn wait_subscribers(app: &TestApp, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while subscribers(app).await < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription was never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
