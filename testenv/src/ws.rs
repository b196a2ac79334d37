//! The graphql-transport-ws client the tests share: connect, subscribe, and read what arrives.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TestApp;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The upgrade request for the app's GraphQL websocket (graphql-transport-ws).
pub fn upgrade_request(
    app: &TestApp,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    upgrade_request_to(app.addr)
}

/// The same for an instance at `addr` (a `serve` process of the test's own).
pub fn upgrade_request_to(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    request
}

pub async fn connect(app: &TestApp, init: Value) -> Socket {
    connect_to(app.addr, init).await
}

pub async fn connect_to(addr: std::net::SocketAddr, init: Value) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(upgrade_request_to(addr))
        .await
        .expect("websocket");
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": init }),
    )
    .await;
    socket
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// What the server did next on a socket.
#[derive(Debug, PartialEq)]
pub enum Received {
    Message(Value),
    /// The server closed the socket, with this code and reason.
    Closed(u16, String),
    /// Nothing within the wait, and the socket is still open.
    Quiet,
    /// The connection failed or ended without a close frame.
    Broken(String),
}

/// The next protocol message (skipping pings), the close, or silence until `wait` passed.
pub async fn receive(socket: &mut Socket, wait: Duration) -> Received {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Received::Quiet,
            Ok(None) => return Received::Broken("the stream ended".into()),
            Ok(Some(Err(e))) => return Received::Broken(e.to_string()),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return Received::Message(value);
            }
            Message::Close(frame) => {
                return match frame {
                    Some(frame) => Received::Closed(frame.code.into(), frame.reason.to_string()),
                    None => Received::Closed(1005, String::new()),
                }
            }
            _ => continue,
        }
    }
}

/// The next protocol message, skipping pings; `None` if the socket closed, failed or `wait`
/// passed (use `receive` or `assert_quiet` where it matters which).
pub async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    match receive(socket, wait).await {
        Received::Message(value) => Some(value),
        _ => None,
    }
}

/// Asserts that nothing arrives within `wait` and the socket stays open: a server that dropped
/// the connection does not pass for a quiet one.
pub async fn assert_quiet(socket: &mut Socket, wait: Duration) {
    let received = receive(socket, wait).await;
    assert_eq!(
        received,
        Received::Quiet,
        "expected silence on an open socket"
    );
}

/// Asserts that the server closes the socket next (within `wait`), and returns code and reason.
pub async fn assert_closed(socket: &mut Socket, wait: Duration) -> (u16, String) {
    match receive(socket, wait).await {
        Received::Closed(code, reason) => (code, reason),
        other => panic!("expected the server to close the socket, got {other:?}"),
    }
}

/// Subscribes with `key` and waits until the server has registered the subscription.
pub async fn subscribe(app: &TestApp, key: &str, filter: Value) -> Socket {
    let before = subscribers(app).await;
    let socket = start_subscription(app, key, filter).await;
    wait_subscribers(app, before + 1).await;
    socket
}

/// Opens a socket with `key` and sends the subscription, without waiting for it to be taken.
pub async fn start_subscription(app: &TestApp, key: &str, filter: Value) -> Socket {
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
pub async fn subscribers(app: &TestApp) -> u64 {
    app.ready().await["subscribers"]
        .as_u64()
        .expect("subscriber count")
}

/// Waits until the server has registered `count` subscriptions, so no event is recorded before
/// a subscriber is listening.
pub async fn wait_subscribers(app: &TestApp, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while subscribers(app).await < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription was never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
