//! Durable `eventRecorded(after:)`: stored events from a cursor on, then live as they are
//! committed; a consumer that disconnects (its socket cut, its server restarted, or on another
//! instance) and comes back with its last cursor gets every event exactly once, in ledger order,
//! as the store holds them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{event, stored_event, TestApp, TENANT};
use crate::ws::{connect_to, next, receive, send, Received, Socket};

const SUBSCRIPTION: &str = "subscription($f: AuditEventFilter, $after: String) { \
    eventRecorded(filter: $f, after: $after) { id tenant action ledger { index } streamCursor } }";

/// A durable subscription on the instance at `addr`.
async fn follow(addr: SocketAddr, key: &str, filter: Value, after: &str) -> Socket {
    let mut socket = connect_to(addr, json!({ "apiKey": key })).await;
    let ack = next(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        ack.as_ref().map(|a| a["type"].clone()),
        Some(json!("connection_ack"))
    );
    send(
        &mut socket,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": SUBSCRIPTION, "variables": { "f": filter, "after": after } },
        }),
    )
    .await;
    socket
}

/// An unfiltered durable subscription that continues after the last event `seen`.
async fn resume(addr: SocketAddr, key: &str, seen: &[Delivered]) -> Socket {
    let last = seen.last().expect("an event delivered before");
    follow(addr, key, json!({}), &last.cursor).await
}

/// One delivered event: (ledger index, id, action, stream cursor).
#[derive(Clone, Debug)]
struct Delivered {
    index: u64,
    id: String,
    tenant: String,
    action: String,
    cursor: String,
}

/// The next event the subscription delivers, or what came instead.
async fn next_event(socket: &mut Socket, wait: Duration) -> Result<Delivered, Received> {
    match receive(socket, wait).await {
        Received::Message(message) if message["type"] == "next" => {
            let event = &message["payload"]["data"]["eventRecorded"];
            if event.is_null() {
                return Err(Received::Message(message));
            }
            Ok(Delivered {
                index: event["ledger"]["index"].as_u64().expect("an index"),
                id: event["id"].as_str().unwrap().to_owned(),
                tenant: event["tenant"].as_str().unwrap().to_owned(),
                action: event["action"].as_str().unwrap().to_owned(),
                cursor: event["streamCursor"].as_str().expect("a cursor").to_owned(),
            })
        }
        other => Err(other),
    }
}

/// Reads until `count` events arrived in all (`seen` included), failing on anything else.
async fn read_until(socket: &mut Socket, seen: &mut Vec<Delivered>, count: usize) {
    while seen.len() < count {
        match next_event(socket, Duration::from_secs(20)).await {
            Ok(delivered) => seen.push(delivered),
            Err(other) => panic!("after {} events: {other:?}", seen.len()),
        }
    }
}

/// The tenant's stored ids in ledger order: what a feed from the beginning must deliver.
async fn stored_ids(app: &TestApp, tenant: &str) -> Vec<String> {
    let ids: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT id FROM audit_events WHERE tenant = $1 ORDER BY ledger_index")
            .bind(tenant)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    ids.into_iter().map(|(id,)| id.to_string()).collect()
}

/// Every index once and in order, and the ids exactly those stored.
async fn assert_exactly_the_store(app: &TestApp, seen: &[Delivered]) {
    let indices: Vec<u64> = seen.iter().map(|d| d.index).collect();
    let expected: Vec<u64> = (0..seen.len() as u64).collect();
    assert_eq!(indices, expected, "every index once, in order");
    let ids: Vec<String> = seen.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, stored_ids(app, TENANT).await);
    assert!(seen.iter().all(|d| d.tenant == TENANT));
}

/// Once the tenant has `total` events stored: reads them all, checks nothing more comes (no
/// late duplicate) and that they are exactly the store's.
async fn read_to_the_end(
    app: &TestApp,
    socket: &mut Socket,
    seen: &mut Vec<Delivered>,
    total: usize,
) {
    app.wait_stored(TENANT, total as i64).await;
    read_until(socket, seen, total).await;
    assert!(matches!(
        next_event(socket, Duration::from_millis(500)).await,
        Err(Received::Quiet)
    ));
    assert_exactly_the_store(app, seen).await;
}

/// `count` events recorded through the API in batches of `batch`, a pause between batches.
fn record_in_background(
    app: &TestApp,
    key: &str,
    count: usize,
    batch: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let (http, url, key) = (app.http.clone(), app.url("/graphql"), key.to_owned());
    tokio::spawn(async move {
        for start in (0..count).step_by(batch) {
            let inputs: Vec<Value> = (start..(start + batch).min(count))
                .map(|i| event(&format!("doc.edit.{}", i % 3)))
                .collect();
            let body: Value = http
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({
                    "query": "mutation($e: [RecordEventInput!]!) { recordEvents(inputs: $e) { id } }",
                    "variables": { "e": inputs },
                }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body["errors"].is_null(), "{body}");
            tokio::time::sleep(pause).await;
        }
    })
}

#[tokio::test]
async fn a_cut_feed_resumes_exactly_after_its_last_cursor_while_events_keep_coming() {
    let app = TestApp::spawn().await;
    let history: Vec<Value> = (0..120).map(|i| event(&format!("doc.view.{i}"))).collect();
    app.record_all(&history).await;
    app.wait_stored(TENANT, 120).await;

    // Three clients keep recording, another tenant too, while the feed runs and is cut.
    let writers = [
        record_in_background(&app, &app.key, 200, 10, Duration::from_millis(20)),
        record_in_background(&app, &app.key, 200, 7, Duration::from_millis(15)),
        record_in_background(&app, &app.key, 200, 25, Duration::from_millis(40)),
        record_in_background(&app, &app.other_key, 100, 10, Duration::from_millis(20)),
    ];
    let mut seen = Vec::new();
    let mut socket = follow(app.addr, &app.key, json!({}), "beginning").await;
    read_until(&mut socket, &mut seen, 150).await;
    // Cut without a goodbye, in the middle of the stream.
    drop(socket);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut socket = resume(app.addr, &app.key, &seen).await;
    for writer in writers {
        writer.await.unwrap();
    }
    read_to_the_end(&app, &mut socket, &mut seen, 720).await;
}

#[tokio::test]
async fn filters_and_tenants_hold_in_history_and_live() {
    let app = TestApp::spawn().await;
    for action in ["invoice.update", "user.login", "invoice.delete"] {
        app.record(event(action)).await;
        app.record_as(&app.other_key, event(action)).await;
    }
    app.wait_stored(TENANT, 3).await;

    let invoices = json!({ "actions": ["invoice.*"] });
    let mut ours = follow(app.addr, &app.key, invoices.clone(), "beginning").await;
    let mut theirs = follow(app.addr, &app.other_key, invoices.clone(), "beginning").await;
    // From "now": only what is committed after subscribing.
    let mut from_now = follow(app.addr, &app.key, json!({}), "now").await;
    // Let the subscriptions take hold before the live events; operators see them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.ready().await["durable_subscribers"], 3);
    for action in ["user.logout", "invoice.pay"] {
        app.record(event(action)).await;
        app.record_as(&app.other_key, event(action)).await;
    }

    for (socket, tenant) in [(&mut ours, TENANT), (&mut theirs, "globex")] {
        let mut seen = Vec::new();
        read_until(socket, &mut seen, 3).await;
        let actions: Vec<&str> = seen.iter().map(|d| d.action.as_str()).collect();
        assert_eq!(actions, ["invoice.update", "invoice.delete", "invoice.pay"]);
        // Their own indices: 0, 2 in history, 4 live.
        assert_eq!(seen.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 2, 4]);
        assert!(seen.iter().all(|d| d.tenant == tenant), "{seen:?}");
        assert!(matches!(
            next_event(socket, Duration::from_millis(300)).await,
            Err(Received::Quiet)
        ));
    }
    let mut seen = Vec::new();
    read_until(&mut from_now, &mut seen, 2).await;
    assert_eq!(seen.iter().map(|d| d.index).collect::<Vec<_>>(), [3, 4]);

    // A cursor this API did not issue is the caller's error, named; so is a well-formed one
    // beyond the tenant's newest event (forged, or from a longer ledger of another tenant),
    // which would otherwise wait in silence.
    let beyond = traceledger::domain::StreamCursor(5).encode();
    for after in ["yesterday", beyond.as_str()] {
        let mut socket = follow(app.addr, &app.key, json!({}), after).await;
        match receive(&mut socket, Duration::from_secs(5)).await {
            Received::Message(message) => {
                let error = &message["payload"]["errors"][0];
                assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{message}");
                assert_eq!(error["extensions"]["field"], "after", "{message}");
            }
            other => panic!("{after}: {other:?}"),
        }
    }
    // The cursor of the newest event is not beyond: it waits for what comes next.
    let newest = traceledger::domain::StreamCursor(4).encode();
    let mut socket = follow(app.addr, &app.key, json!({}), &newest).await;
    assert!(matches!(
        next_event(&mut socket, Duration::from_millis(500)).await,
        Err(Received::Quiet)
    ));
}

#[tokio::test]
async fn a_feed_resumes_on_another_instance_and_after_that_one_restarts() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut other = serve_on(&app, port);
    let other_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_ready(&app, other_addr).await;

    let writer = record_in_background(&app, &app.key, 400, 10, Duration::from_millis(30));
    let mut seen = Vec::new();
    let mut socket = follow(app.addr, &app.key, json!({}), "beginning").await;
    read_until(&mut socket, &mut seen, 60).await;
    drop(socket);

    // The rest of the way on the other instance, which is killed mid-stream.
    let mut socket = resume(other_addr, &app.key, &seen).await;
    read_until(&mut socket, &mut seen, 150).await;
    other.kill().await.unwrap();
    // What was on the wire still arrives; then the socket breaks.
    loop {
        match next_event(&mut socket, Duration::from_secs(5)).await {
            Ok(delivered) => seen.push(delivered),
            Err(Received::Broken(_) | Received::Closed(..)) => break,
            Err(other) => panic!("{other:?}"),
        }
    }
    // Restarted on the same port, it continues after the last cursor the client kept.
    let restarted = serve_on(&app, port);
    wait_ready(&app, other_addr).await;
    let mut socket = resume(other_addr, &app.key, &seen).await;
    writer.await.unwrap();
    read_to_the_end(&app, &mut socket, &mut seen, 400).await;
    drop(restarted);
}

#[tokio::test]
async fn a_consumer_too_slow_to_keep_up_is_closed_with_its_cursor_and_resumes() {
    let app = TestApp::spawn().await;
    let mut socket = follow(app.addr, &app.key, json!({}), "now").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Far more than the feed holds for a subscriber, while this one reads nothing (what the
    // socket's buffers hold comes on top).
    let total = 40_000;
    let now = Utc::now();
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<_> = chunk.iter().map(|_| stored_event(TENANT, now)).collect();
        app.store
            .insert_events(&batch, traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let cursor = loop {
        match next_event(&mut socket, Duration::from_secs(20)).await {
            Ok(delivered) => seen.push(delivered),
            Err(Received::Message(message)) => {
                let error = &message["payload"]["errors"][0];
                assert_eq!(error["extensions"]["code"], "SLOW_CONSUMER", "{message}");
                break error["extensions"]["cursor"].as_str().unwrap().to_owned();
            }
            Err(other) => panic!("after {} events: {other:?}", seen.len()),
        }
    };
    assert!(seen.len() < total, "closed before the end");
    if let Some(last) = seen.last() {
        assert_eq!(
            cursor, last.cursor,
            "the cursor of the last event delivered"
        );
    }
    // Resumed, it gets the rest: every index once.
    let mut socket = follow(app.addr, &app.key, json!({}), &cursor).await;
    read_until(&mut socket, &mut seen, total).await;
    assert_exactly_the_store(&app, &seen).await;
}

#[tokio::test]
async fn a_feed_from_the_beginning_over_a_hundred_thousand_events_meets_live_ones_seamlessly() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    for _ in 0..100 {
        let batch: Vec<_> = (0..1000).map(|_| stored_event(TENANT, now)).collect();
        app.store
            .insert_events(&batch, traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap();
    }
    // About 1,000 events a second arrive while the history streams.
    let writer = record_in_background(&app, &app.key, 10_000, 100, Duration::from_millis(100));
    let mut seen = Vec::new();
    let mut socket = follow(app.addr, &app.key, json!({}), "beginning").await;
    // A filter nothing in the first 100,000 matches: it looks through them in bounded windows.
    let edits = json!({ "actions": ["doc.edit.1"] });
    let mut filtered = follow(app.addr, &app.key, edits, "beginning").await;
    read_until(&mut socket, &mut seen, 100_000).await;
    writer.await.unwrap();
    read_to_the_end(&app, &mut socket, &mut seen, 110_000).await;
    let unique: HashSet<&str> = seen.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(unique.len(), seen.len());

    let expected: Vec<String> = seen
        .iter()
        .filter(|d| d.action == "doc.edit.1")
        .map(|d| d.id.clone())
        .collect();
    let mut matched = Vec::new();
    read_until(&mut filtered, &mut matched, expected.len()).await;
    assert_eq!(
        matched.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(matches!(
        next_event(&mut filtered, Duration::from_millis(300)).await,
        Err(Received::Quiet)
    ));
}

/// Another instance: `serve` (API and worker) on the test's services, listening on `port`.
fn serve_on(app: &TestApp, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(crate::helpers::traceledger_binary())
        .arg("serve")
        .envs(crate::helpers::service_env(&app.config))
        .env("TRACELEDGER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run traceledger serve")
}

async fn wait_ready(app: &TestApp, addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app
            .http
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
