//! Every resolver and route is guarded by scope: events:write records, events:read reads
//! (list, by id, stats, metrics, search, subscription, export), admin operates. A missing scope is
//! FORBIDDEN (403 on plain HTTP routes), and nothing is stored.

use serde_json::json;

use traceledger::access::auth::{create_scoped_api_key, Scope};

use crate::helpers::{event, TestApp, TENANT};

const READS: [&str; 5] = [
    "{ auditEvents { edges { cursor } } }",
    "{ auditEvent(id: \"0190d2a0-0000-7000-8000-000000000000\") { id } }",
    "{ eventStats(groupBy: [], interval: HOUR) { totalCount } }",
    "{ processingMetrics { eventsRecorded } }",
    "{ search(query: \"x\") { total } }",
];
const ADMIN: [&str; 3] = [
    "{ apiKeys { id } }",
    "{ deadLetters { id } }",
    "mutation { createApiKey(name: \"x\") { secret } }",
];

async fn key(app: &TestApp, scopes: &[Scope]) -> String {
    create_scoped_api_key(&app.store, TENANT, "scoped", scopes)
        .await
        .unwrap()
        .secret
}

fn assert_forbidden(body: &serde_json::Value, scope: &str) {
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "FORBIDDEN", "{body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(scope), "{message} should name {scope}");
}

#[tokio::test]
async fn a_write_only_key_records_but_reads_nothing() {
    let app = TestApp::spawn().await;
    let writer = key(&app, &[Scope::EventsWrite]).await;
    app.record_as(&writer, event("by.writer")).await;
    app.wait_stored(TENANT, 1).await;
    for query in READS.iter().chain(&ADMIN) {
        let body = app.gql_as(&writer, query, json!({})).await;
        let scope = if ADMIN.contains(query) {
            "admin"
        } else {
            "events:read"
        };
        assert_forbidden(&body, scope);
        // Nothing came back: no data at all, or only null fields.
        let leaked: Vec<&String> = match &body["data"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Object(fields) => fields
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, _)| name)
                .collect(),
            other => panic!("data is neither null nor an object: {other}"),
        };
        assert!(leaked.is_empty(), "{leaked:?} answered: {body}");
    }
    let export = reqwest::Client::new()
        .get(app.url("/export"))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 403);
    let body: serde_json::Value = export.json().await.unwrap();
    assert_forbidden(&body, "events:read");
}

#[tokio::test]
async fn a_read_only_key_reads_but_records_nothing() {
    let app = TestApp::spawn().await;
    let reader = key(&app, &[Scope::EventsRead]).await;
    for (query, variables) in [
        (
            "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
            json!({ "i": event("by.reader") }),
        ),
        (
            "mutation($i: [RecordEventInput!]!) { recordEvents(inputs: $i) { id } }",
            json!({ "i": [event("by.reader")] }),
        ),
    ] {
        let body = app.gql_as(&reader, query, variables).await;
        assert_forbidden(&body, "events:write");
    }
    let body = app
        .gql_as(&reader, "{ auditEvents { edges { cursor } } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    for query in ADMIN {
        assert_forbidden(&app.gql_as(&reader, query, json!({})).await, "admin");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.stored_count(TENANT).await, 0);
}

#[tokio::test]
async fn an_admin_only_key_operates_but_neither_reads_nor_records() {
    let app = TestApp::spawn().await;
    let body = app
        .gql_as(&app.admin_key, "{ apiKeys { id } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    for query in READS {
        assert_forbidden(
            &app.gql_as(&app.admin_key, query, json!({})).await,
            "events:read",
        );
    }
    let body = app
        .gql_as(
            &app.admin_key,
            "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
            json!({ "i": event("by.admin") }),
        )
        .await;
    assert_forbidden(&body, "events:write");
}

#[tokio::test]
async fn a_subscription_needs_the_read_scope() {
    let app = TestApp::spawn().await;
    let writer = key(&app, &[Scope::EventsWrite]).await;
    let mut socket = crate::ws::start_subscription(&app, &writer, json!({})).await;
    let answer = crate::ws::next(&mut socket, std::time::Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(answer["id"], "1", "{answer}");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{answer}"
    );
    assert!(answer["payload"]["data"].is_null(), "{answer}");
}
