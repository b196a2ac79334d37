//! Rate limits per key: separate budgets for writes and reads, per-key overrides, HTTP 429 with
//! Retry-After and RATE_LIMITED; the in-process limiter when Redis is unreachable; caps on
//! websocket connections and subscriptions per key.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{event, TestApp};
use crate::ws::{connect, next, subscribe};

const READ: &str = "{ auditEvents { edges { cursor } } }";
const DEAD_PORT_REDIS: &str = "redis://127.0.0.1:1";

/// Sends reads until one is refused (at most `attempts`), and returns that answer.
async fn read_until_limited(app: &TestApp, key: &str, attempts: usize) -> reqwest::Response {
    let client = reqwest::Client::new();
    for _ in 0..attempts {
        let response = client
            .post(app.url("/graphql"))
            .bearer_auth(key)
            .json(&json!({ "query": READ }))
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            return response;
        }
    }
    panic!("{attempts} reads were all allowed");
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
    let app = TestApp::spawn_with(|config| config.read_rate_per_sec = 3).await;
    // A burst of 3 is allowed; well within a second, the rest is refused.
    assert_rate_limited(read_until_limited(&app, &app.key, 10).await).await;
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
        config.redis_url = DEAD_PORT_REDIS.into();
        config.read_rate_per_sec = 3;
    })
    .await;
    assert_rate_limited(read_until_limited(&app, &app.key, 10).await).await;
}

#[tokio::test]
async fn websocket_connections_and_subscriptions_per_key_are_capped() {
    let app = TestApp::spawn_with(|config| {
        config.max_sockets_per_key = 1;
        config.max_subscriptions_per_key = 1;
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
    let answer = next(&mut second, Duration::from_secs(5)).await;
    assert_ne!(
        answer.as_ref().map(|a| a["type"].clone()),
        Some(json!("connection_ack")),
        "{answer:?}"
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

#[tokio::test]
async fn queries_and_mutations_over_a_websocket_draw_on_the_same_budgets() {
    let app = TestApp::spawn_with(|config| config.write_rate_per_sec = 2).await;
    let mut socket = connect(&app, json!({ "apiKey": app.key })).await;
    let ack = next(&mut socket, Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    let mut codes = Vec::new();
    for i in 0..5 {
        crate::ws::send(
            &mut socket,
            json!({
                "id": format!("m{i}"),
                "type": "subscribe",
                "payload": {
                    "query": "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
                    "variables": { "i": event(&format!("over.socket_{i}")) },
                },
            }),
        )
        .await;
        // Each operation answers `next` (data or errors), then `complete`.
        let answer = next(&mut socket, Duration::from_secs(5))
            .await
            .expect("answer");
        codes.push(answer["payload"]["errors"][0]["extensions"]["code"].clone());
        let complete = next(&mut socket, Duration::from_secs(5))
            .await
            .expect("complete");
        assert_eq!(complete["type"], "complete", "{complete}");
    }
    assert!(codes.contains(&json!("RATE_LIMITED")), "{codes:?}");
    let accepted = codes.iter().filter(|c| c.is_null()).count() as i64;
    app.wait_stored(crate::helpers::TENANT, accepted).await;
}
