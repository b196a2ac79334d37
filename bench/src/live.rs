//! Live subscriptions: many websocket subscribers (graphql-transport-ws) to `eventRecorded`;
//! delivery latency from the moment `recordEvent` answered to each subscriber's receipt, and the
//! API's resident memory with all of them connected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures::{stream, SinkExt, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::ApiProcess;
use crate::cpu::{CpuSample, CpuUse};
use crate::harness::{progress, BenchEnv, Client};
use crate::latency::Latency;
use crate::sizes::Sizes;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const TENANT: &str = "live";
const CONNECT_CONCURRENCY: usize = 50;
const ACK_DEADLINE: Duration = Duration::from_secs(10);
/// How long the subscribers may take to all see a warm-up event (their subscriptions are
/// registered asynchronously after `subscribe`).
const READY_DEADLINE: Duration = Duration::from_secs(30);
const WARM_UP_INTERVAL: Duration = Duration::from_millis(200);
/// How long after the last measured event every subscriber must have had every event.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);
const WARM_UP_ACTION: &str = "bench.warmup";
const MEASURED_ACTION: &str = "bench.measured";
const SUBSCRIPTION: &str = "subscription { eventRecorded { id action } }";
const RECORD_EVENT: &str =
    "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id } }";

pub struct LiveResult {
    pub subscribers: usize,
    pub events: usize,
    /// From the mutation's answer to receipt.
    pub latency: Latency,
    /// From sending the mutation to receipt: includes the mutation itself.
    pub from_request: Latency,
    /// Receipts that arrived before the client had read the mutation's answer (counted as 0 ms).
    pub before_answer: usize,
    pub idle_rss_mib: f64,
    pub connected_rss_mib: f64,
    pub cpu: CpuUse,
}

/// One event received by one subscriber.
struct Receipt {
    id: String,
    at: Instant,
}

pub async fn run(env: &BenchEnv, api: &ApiProcess, sizes: &Sizes) -> anyhow::Result<LiveResult> {
    let key = env.key(TENANT).await?;
    let client = Client::new(api.addr, key.clone());
    let idle_rss_mib = api.resident_mib()?;

    let bar = progress("websocket subscribers", sizes.subscribers);
    let sockets: Vec<Socket> = stream::iter(0..sizes.subscribers)
        .map(|_| open_subscription(api.addr, &key, SUBSCRIPTION))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .inspect(|_| bar.inc(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();

    let (receipts, mut received) = mpsc::unbounded_channel();
    let ready = Arc::new(AtomicUsize::new(0));
    let listeners: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            tokio::spawn(listen(
                socket,
                receipts.clone(),
                Arc::clone(&ready),
                sizes.live_events,
            ))
        })
        .collect();
    drop(receipts);

    // Every subscriber has seen a warm-up event: every subscription is registered.
    let give_up = Instant::now() + READY_DEADLINE;
    while ready.load(Ordering::Relaxed) < sizes.subscribers {
        ensure!(
            Instant::now() < give_up,
            "only {} of {} subscribers registered",
            ready.load(Ordering::Relaxed),
            sizes.subscribers
        );
        client
            .gql(RECORD_EVENT, json!({ "input": input(WARM_UP_ACTION) }))
            .await?;
        tokio::time::sleep(WARM_UP_INTERVAL).await;
    }

    let bar = progress("live events", sizes.live_events);
    let cpu_before = CpuSample::take(api.pid());
    let mut answered = HashMap::new();
    for _ in 0..sizes.live_events {
        let sent = Instant::now();
        let data = client
            .gql(RECORD_EVENT, json!({ "input": input(MEASURED_ACTION) }))
            .await?;
        let id = data["recordEvent"]["id"]
            .as_str()
            .context("recordEvent answered no id")?
            .to_owned();
        answered.insert(id, (sent, Instant::now()));
        bar.inc(1);
        tokio::time::sleep(sizes.live_interval).await;
    }
    let connected_rss_mib = api.resident_mib()?;
    bar.set_message("waiting for every delivery");
    for listener in listeners {
        tokio::time::timeout(DELIVERY_DEADLINE, listener)
            .await
            .context("a subscriber did not get every event in time")???;
    }
    let cpu = CpuSample::take(api.pid()).since(&cpu_before);
    bar.finish_and_clear();

    let mut latency = Latency::default();
    let mut from_request = Latency::default();
    let mut before_answer = 0;
    while let Some(receipt) = received.recv().await {
        let (sent, answer) = answered
            .get(&receipt.id)
            .with_context(|| format!("a subscriber got event {} nobody recorded", receipt.id))?;
        if receipt.at < *answer {
            before_answer += 1;
        }
        latency.record(receipt.at.saturating_duration_since(*answer));
        from_request.record(receipt.at.saturating_duration_since(*sent));
    }
    let expected = sizes.subscribers * sizes.live_events;
    ensure!(
        latency.count() as usize == expected,
        "{} deliveries, {expected} expected",
        latency.count()
    );
    Ok(LiveResult {
        subscribers: sizes.subscribers,
        events: sizes.live_events,
        latency,
        from_request,
        before_answer,
        idle_rss_mib,
        connected_rss_mib,
        cpu,
    })
}

fn input(action: &str) -> Value {
    json!({ "action": action, "service": "bench", "actor": { "id": "bench" } })
}

/// Opens a websocket, authenticates, and starts `subscription`.
pub async fn open_subscription(
    addr: SocketAddr,
    key: &str,
    subscription: &str,
) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{addr}/graphql").into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "apiKey": key } }),
    )
    .await?;
    let ack = tokio::time::timeout(ACK_DEADLINE, next_message(&mut socket))
        .await
        .context("no connection_ack in time")??;
    ensure!(
        ack["type"] == "connection_ack",
        "expected connection_ack, got {ack}"
    );
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": subscription } }),
    )
    .await?;
    Ok(socket)
}

/// Reads events until `expected` measured ones arrived, reporting each with its time of receipt.
async fn listen(
    mut socket: Socket,
    receipts: mpsc::UnboundedSender<Receipt>,
    ready: Arc<AtomicUsize>,
    expected: usize,
) -> anyhow::Result<()> {
    let mut warmed_up = false;
    let mut measured = 0;
    while measured < expected {
        let message = next_message(&mut socket).await?;
        let at = Instant::now();
        if message["type"] != "next" {
            bail!("unexpected subscription message: {message}");
        }
        let event = &message["payload"]["data"]["eventRecorded"];
        if event["action"] == WARM_UP_ACTION {
            if !warmed_up {
                warmed_up = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let id = event["id"].as_str().context("an event without id")?;
        // The receiver outlives every listener; a send error cannot happen while it matters.
        let _ = receipts.send(Receipt {
            id: id.to_owned(),
            at,
        });
        measured += 1;
    }
    let _ = socket.close(None).await;
    Ok(())
}

async fn send(socket: &mut Socket, message: Value) -> anyhow::Result<()> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    Ok(())
}

/// The text of the next protocol message other than a ping (answered on the way), unparsed:
/// for readers that take only a few fields of many messages.
pub async fn next_text(socket: &mut Socket) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
    }
    loop {
        match socket.next().await.context("the websocket closed")?? {
            Message::Text(text) => {
                if serde_json::from_str::<Kind>(&text)?.kind == "ping" {
                    send(socket, json!({ "type": "pong" })).await?;
                    continue;
                }
                return Ok(text.as_str().to_owned());
            }
            Message::Close(frame) => bail!("the websocket closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The next protocol message, answering pings on the way.
pub async fn next_message(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await.context("the websocket closed")?? {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text)?;
                if value["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await?;
                    continue;
                }
                return Ok(value);
            }
            Message::Close(frame) => bail!("the websocket closed: {frame:?}"),
            _ => continue,
        }
    }
}
