//! Rate limits per key: separate budgets for writes and reads, per-key overrides, HTTP 429 with
//! Retry-After and RATE_LIMITED; the in-process limiter when Redis is unreachable; caps on
//! websocket connections and subscriptions per key.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, TestApp};
use crate::ws::{connect, next, subscribe};

const READ: &str = "{ auditEvents { edges { cursor } } }";
const DEAD_PORT_REDIS: &str = "redis://127.0.0.1:1";

/// Sends `count` reads at once and returns their statuses, sorted.
async fn reads_at_once(app: &TestApp, key: &str, count: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let reads = (0..count).map(|_| {
        client
            .post(app.url("/graphql"))
            .bearer_auth(key)
            .json(&json!({ "query": READ }))
            .send()
    });
    let mut statuses: Vec<u16> = futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    statuses
}

/// A rate of 3 per second: a burst of exactly 3, then one more each third of a second.
async fn assert_three_per_second(app: &TestApp, key: &str) {
    assert_eq!(
        reads_at_once(app, key, 4).await,
        [200, 200, 200, 429],
        "a burst of exactly one second's worth"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        reads_at_once(app, key, 2).await,
        [200, 429],
        "one more after a third of a second"
    );
}

/// One read that is refused, for its answer.
async fn limited_read(app: &TestApp, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": READ }))
        .send()
        .await
        .unwrap()
}

async fn assert_rate_limited(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
}

#[tokio::test]
async fn a_key_over_its_read_limit_gets_429_with_retry_after_and_can_still_write() {
    let app = TestApp::spawn_with(|config| config.limits.read_rate_per_sec = 3).await;
    assert_three_per_second(&app, &app.key).await;
    assert_rate_limited(limited_read(&app, &app.key).await).await;
    // Writes draw on their own budget.
    app.record(event("still.writing")).await;
    // Another key has its own budget.
    let (status, _) = app.post(Some(&app.other_key), READ, json!({})).await;
    assert_eq!(status, 200);
    // After the wait it said, the key may read again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, body) = app.post(Some(&app.key), READ, json!({})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_keys_own_limit_overrides_the_default() {
    let app = TestApp::spawn().await;
    let id = app.key_id(crate::helpers::TENANT, "test").await;
    app.store
        .set_api_key_rates(id, Some(2), None)
        .await
        .unwrap();
    let mutation = "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }";
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, body) = app
            .post(
                Some(&app.key),
                mutation,
                json!({ "i": event(&format!("burst.e{i}")) }),
            )
            .await;
        if status == 429 {
            assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Refused writes stored nothing.
    let accepted = statuses.iter().filter(|s| **s == 200).count() as i64;
    app.wait_stored(crate::helpers::TENANT, accepted).await;
}

#[tokio::test]
async fn without_redis_the_in_process_limiter_still_limits() {
    let app = TestApp::spawn_with(|config| {
        config.redis.url = DEAD_PORT_REDIS.into();
        config.limits.read_rate_per_sec = 3;
    })
    .await;
    assert_three_per_second(&app, &app.key).await;
    assert_rate_limited(limited_read(&app, &app.key).await).await;
}

#[tokio::test]
async fn websocket_connections_and_subscriptions_per_key_are_capped() {
    let app = TestApp::spawn_with(|config| {
        config.limits.max_sockets_per_key = 1;
        config.limits.max_subscriptions_per_key = 1;
    })
    .await;
    let mut first = subscribe(&app, &app.key, json!({})).await;
    // A second subscription on the same socket is over the cap.
    crate::ws::send(
        &mut first,
        json!({ "id": "2", "type": "subscribe", "payload": { "query": "subscription { eventRecorded { id } }" } }),
    )
    .await;
    let refused = next(&mut first, Duration::from_secs(5))
        .await
        .expect("an answer");
    // A resolver's error ends that subscription only: a `next` with the error, then `complete`.
    assert_eq!(refused["id"], "2", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{refused}"
    );

    // A second connection of the same key is refused; another key's is not.
    let mut second = connect(&app, json!({ "apiKey": app.key })).await;
    let (code, reason) = crate::ws::assert_closed(&mut second, Duration::from_secs(5)).await;
    assert_eq!(code, 1002, "{reason}");
    assert!(
        reason.starts_with("RATE_LIMITED") && reason.contains("websocket connections"),
        "{reason}"
    );
    let mut theirs = connect(&app, json!({ "apiKey": app.other_key })).await;
    let ack = next(&mut theirs, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["type"], "connection_ack");

    // Once the first closes, the key may connect again.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect(&app, json!({ "apiKey": app.key })).await;
    let ack = next(&mut again, Duration::from_secs(5)).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack");
}

/// Sends `query` over `socket` as operation `id` and returns the error code of its answer
/// (null when it succeeded), having read the `complete` that follows.
async fn over_socket(
    socket: &mut crate::ws::Socket,
    id: &str,
    query: &str,
    variables: Value,
) -> Value {
    crate::ws::send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    // Each operation answers `next` (data or errors), then `complete`.
    let answer = next(socket, Duration::from_secs(5)).await.expect("answer");
    let complete = next(socket, Duration::from_secs(5))
        .await
        .expect("complete");
    assert_eq!(complete["type"], "complete", "{complete}");
    answer["payload"]["errors"][0]["extensions"]["code"].clone()
}

#[tokio::test]
async fn queries_and_mutations_over_a_websocket_draw_on_the_same_budgets() {
    let app = TestApp::spawn_with(|config| {
        config.limits.read_rate_per_sec = 4;
        config.limits.write_rate_per_sec = 2;
    })
    .await;
    let mut socket = connect(&app, json!({ "apiKey": app.key })).await;
    let ack = next(&mut socket, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    // The connection took one read; two over HTTP and one over the socket spend the rest.
    assert_eq!(reads_at_once(&app, &app.key, 2).await, [200, 200]);
    assert_eq!(
        over_socket(&mut socket, "q1", READ, json!({})).await,
        Value::Null
    );
    assert_eq!(
        over_socket(&mut socket, "q2", READ, json!({})).await,
        "RATE_LIMITED"
    );
    assert_rate_limited(limited_read(&app, &app.key).await).await;

    // Writes: two over HTTP and the socket together, then refused on both.
    let record = "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }";
    app.record(event("over.http")).await;
    let code = over_socket(
        &mut socket,
        "m1",
        record,
        json!({ "i": event("over.socket") }),
    )
    .await;
    assert_eq!(code, Value::Null);
    let code = over_socket(
        &mut socket,
        "m2",
        record,
        json!({ "i": event("over.socket") }),
    )
    .await;
    assert_eq!(code, "RATE_LIMITED");
    let (status, _) = app
        .post(Some(&app.key), record, json!({ "i": event("over.http") }))
        .await;
    assert_eq!(status, 429);
    app.wait_stored(crate::helpers::TENANT, 2).await;
}

const RECORD_MANY: &str = "mutation($i: [RecordEventInput!]!) { recordEvents(inputs: $i) { id } }";

fn inputs(count: usize, prefix: &str) -> Value {
    Value::Array(
        (0..count)
            .map(|i| event(&format!("{prefix}.e{i}")))
            .collect(),
    )
}

#[tokio::test]
async fn write_limits_count_events_not_requests() {
    let app = TestApp::spawn_with(|config| config.limits.write_rate_per_sec = 100).await;
    let (status, body) = app
        .post(
            Some(&app.key),
            RECORD_MANY,
            json!({ "i": inputs(60, "first") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // 40 of the second's 100 are left: 60 more are over the limit, 30 are not.
    let (status, body) = app
        .post(
            Some(&app.key),
            RECORD_MANY,
            json!({ "i": inputs(60, "second") }),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    let (status, body) = app
        .post(
            Some(&app.key),
            RECORD_MANY,
            json!({ "i": inputs(30, "third") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // More than the key may ever send at once is refused as input, not as "retry later".
    let (status, body) = app
        .post(
            Some(&app.key),
            RECORD_MANY,
            json!({ "i": inputs(101, "fourth") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "inputs");
    app.wait_stored(crate::helpers::TENANT, 90).await;
}

#[tokio::test]
async fn aliases_share_one_batch_cap_per_request() {
    let app = TestApp::spawn().await;
    let aliased = |count: usize| {
        let fields: String = (0..count)
            .map(|n| format!("a{n}: recordEvents(inputs: $i) {{ id }} "))
            .collect();
        format!("mutation($i: [RecordEventInput!]!) {{ {fields}}}")
    };
    // The attack: 100 aliases sharing one 1000-item variable.
    let (status, body) = app
        .post(
            Some(&app.key),
            &aliased(100),
            json!({ "i": inputs(1000, "alias") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "inputs");
    // Two aliases of 600, and a mix with recordEvent, are over the cap as well.
    let (_, body) = app
        .post(
            Some(&app.key),
            &aliased(2),
            json!({ "i": inputs(600, "two") }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(body["data"].is_null(), "nothing ran: {body}");
    // Over a websocket too.
    let mut socket = connect(&app, json!({ "apiKey": app.key })).await;
    next(&mut socket, Duration::from_secs(5))
        .await
        .expect("ack");
    let code = over_socket(
        &mut socket,
        "m",
        &aliased(3),
        json!({ "i": inputs(400, "ws") }),
    )
    .await;
    assert_eq!(code, "BAD_USER_INPUT");
    // Within the cap, aliases work.
    let (status, body) = app
        .post(
            Some(&app.key),
            &aliased(2),
            json!({ "i": inputs(400, "fits") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_stored(crate::helpers::TENANT, 800).await;
}
