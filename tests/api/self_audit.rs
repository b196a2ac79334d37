//! The service audits itself in tenant `_traceledger`: API requests over HTTP and websocket (with
//! operation, status, duration, caller and client IP) and admin actions. Operators read it with
//! a key of that tenant; nobody writes to it through the API.

use std::time::Duration;

use serde_json::{json, Value};

use traceledger::access::auth::{create_scoped_api_key, Scope};
use traceledger::app::own_trail::SYSTEM_TENANT;

use crate::helpers::{event, TestApp, TENANT};
use crate::ws::subscribe;

/// How long the background trail may take to record a request.
const TRAIL_WAIT: Duration = Duration::from_secs(15);

async fn operator_key(app: &TestApp) -> String {
    create_scoped_api_key(&app.store, SYSTEM_TENANT, "operator", &[Scope::EventsRead])
        .await
        .unwrap()
        .secret
}

/// The system tenant's events with `action`, read through the API as an operator, once at
/// least `count` are there.
async fn trail(app: &TestApp, operator: &str, filter: Value, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + TRAIL_WAIT;
    loop {
        let data = app
            .data_as(
                operator,
                "query($f: AuditEventFilter) { auditEvents(filter: $f, first: 100) { edges { node { action outcome tenant actor { id type ip } target { id type } metadata } } } }",
                json!({ "f": filter }),
            )
            .await;
        let events: Vec<Value> = data["auditEvents"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        if events.len() >= count {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} self-audit events: {events:?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_api_request_is_recorded_in_the_system_tenant() {
    let app = TestApp::spawn().await;
    let operator = operator_key(&app).await;
    app.record(event("user.login")).await;
    let (status, _) = app
        .post(
            Some("tlk_unknown"),
            "{ auditEvents { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401);
    let key_id = app.key_id(TENANT, "test").await;

    let events = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "targetIds": ["recordEvent"] }),
        1,
    )
    .await;
    let recorded = &events[0];
    assert_eq!(recorded["tenant"], SYSTEM_TENANT);
    assert_eq!(recorded["outcome"], "SUCCESS");
    assert_eq!(
        recorded["actor"],
        json!({ "id": key_id.to_string(), "type": "api_key", "ip": "127.0.0.1" })
    );
    let metadata = &recorded["metadata"];
    assert_eq!(metadata["status"], 200);
    assert_eq!(metadata["transport"], "http");
    assert_eq!(metadata["tenant"], TENANT);
    assert!(metadata["durationMs"].is_u64(), "{metadata}");

    // An unknown key is named by a short fingerprint, never by the secret.
    use sha2::Digest;
    let fingerprint = hex::encode(sha2::Sha256::digest(b"tlk_unknown"))[..12].to_owned();
    let refused = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "actorIds": [fingerprint] }),
        1,
    )
    .await;
    assert_eq!(refused[0]["outcome"], "FAILURE");
    assert_eq!(refused[0]["metadata"]["status"], 401);
    assert_eq!(refused[0]["actor"]["type"], "credential_fingerprint");

    // A GraphQL error answered with HTTP 200 is still a failure, with its code.
    let body = app
        .gql_as(
            &app.admin_key,
            "{ auditEvents { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let admin_id = app.key_id(TENANT, "admin").await;
    let forbidden = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "actorIds": [admin_id.to_string()] }),
        1,
    )
    .await;
    assert_eq!(forbidden[0]["outcome"], "FAILURE");
    assert_eq!(forbidden[0]["metadata"]["status"], 200);
    assert_eq!(forbidden[0]["metadata"]["errors"], json!(["FORBIDDEN"]));

    // The caller's own tenant holds only its event, none of the trail.
    app.wait_stored(TENANT, 1).await;
}

#[tokio::test]
async fn a_websocket_connection_is_recorded_when_it_closes() {
    let app = TestApp::spawn().await;
    let operator = operator_key(&app).await;
    let socket = subscribe(&app, &app.key, json!({})).await;
    drop(socket);
    let events = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "targetIds": ["websocket /graphql"] }),
        1,
    )
    .await;
    assert_eq!(events[0]["metadata"]["transport"], "websocket");
    assert_eq!(events[0]["metadata"]["tenant"], TENANT);
    assert_eq!(events[0]["actor"]["type"], "api_key");
}

#[tokio::test]
async fn admin_actions_are_recorded() {
    let app = TestApp::spawn().await;
    let operator = operator_key(&app).await;
    let body = app
        .gql_as(
            &app.admin_key,
            "mutation { createApiKey(name: \"temp\") { key { id } } }",
            json!({}),
        )
        .await;
    let id = body["data"]["createApiKey"]["key"]["id"].clone();
    app.gql_as(
        &app.admin_key,
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let operator_admin = app.operator_admin_key().await;
    app.gql_as(&operator_admin, "mutation { purgeDeadLetters }", json!({}))
        .await;
    let events = trail(
        &app,
        &operator,
        json!({ "actions": ["api_key.*", "dead_letters.*"] }),
        3,
    )
    .await;
    let mut actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["api_key.create", "api_key.revoke", "dead_letters.purge"]
    );
    let admin_id = app.key_id(TENANT, "admin").await;
    let operator_id = app.key_id(SYSTEM_TENANT, "operator-admin").await;
    for e in &events {
        let (actor, tenant) = if e["action"] == "dead_letters.purge" {
            (operator_id, SYSTEM_TENANT)
        } else {
            (admin_id, TENANT)
        };
        assert_eq!(e["actor"]["id"], actor.to_string(), "{e}");
        assert_eq!(e["metadata"]["tenant"], tenant, "{e}");
    }
}

#[tokio::test]
async fn nobody_writes_to_the_system_tenant_through_the_api() {
    let app = TestApp::spawn().await;
    let forger = create_scoped_api_key(&app.store, SYSTEM_TENANT, "forger", &Scope::ALL)
        .await
        .unwrap()
        .secret;
    let body = app
        .gql_as(
            &forger,
            "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
            json!({ "i": event("api.request") }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // Only the trail's own events arrive there: none of them is the forged one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE tenant = $1 AND service = 'billing'",
    )
    .bind(SYSTEM_TENANT)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(forged, 0);
}

/// Sends `GET /` followed by the raw bytes `C2 85` (U+0085, a control character) on its own
/// connection, as no HTTP client library would (they re-encode the path); the status line back.
async fn raw_control_path(app: &TestApp) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut request = b"GET /".to_vec();
    request.extend_from_slice(&[0xC2, 0x85]);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn requests_the_rules_would_refuse_cannot_blind_the_trail() {
    let app = TestApp::spawn().await;
    let operator = operator_key(&app).await;
    // A flood of unauthenticated requests whose notes carry a control character, interleaved
    // with admin actions that must all be recorded.
    let mut created = Vec::new();
    for round in 0..3 {
        let flood: Vec<_> = (0..100).map(|_| raw_control_path(&app)).collect();
        for status in futures::future::join_all(flood).await {
            assert!(status.contains(" 404 "), "{status}");
        }
        let body = app
            .gql_as(
                &app.admin_key,
                "mutation($n: String!) { createApiKey(name: $n) { key { id } } }",
                json!({ "n": format!("flood-{round}") }),
            )
            .await;
        let id = body["data"]["createApiKey"]["key"]["id"].clone();
        assert!(id.is_string(), "{body}");
        app.gql_as(
            &app.admin_key,
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
        created.push(id);
    }

    let events = trail(&app, &operator, json!({ "actions": ["api_key.*"] }), 6).await;
    for id in &created {
        for action in ["api_key.create", "api_key.revoke"] {
            assert!(
                events
                    .iter()
                    .any(|e| e["action"] == action && e["target"]["id"] == *id),
                "{action} of {id} is missing from the trail: {events:?}"
            );
        }
    }
    // The flood's own notes are there too, escaped and saying so.
    let notes = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "targetIds": ["GET /\\u{85}"] }),
        100,
    )
    .await;
    let note = &notes[0];
    assert_eq!(note["outcome"], "FAILURE", "{note}");
    assert_eq!(note["metadata"]["status"], 404, "{note}");
    assert_eq!(note["metadata"]["escaped"], json!(["target.id"]), "{note}");
}

#[tokio::test]
async fn a_refused_key_is_named_by_its_id_and_no_key_as_anonymous() {
    let app = TestApp::spawn().await;
    let operator = operator_key(&app).await;
    let id = app.key_id(TENANT, "test").await;
    app.store.revoke_api_key(id, None).await.unwrap();
    let (status, _) = app
        .post(
            Some(&app.key),
            "{ auditEvents { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post(None, "{ auditEvents { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(status, 401);
    let revoked = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "actorIds": [id.to_string()] }),
        1,
    )
    .await;
    assert_eq!(revoked[0]["actor"]["type"], "api_key", "{}", revoked[0]);
    assert_eq!(revoked[0]["metadata"]["status"], 401);
    let anonymous = trail(
        &app,
        &operator,
        json!({ "actions": ["api.request"], "actorIds": ["anonymous"] }),
        1,
    )
    .await;
    assert_eq!(anonymous[0]["metadata"]["status"], 401);
}

#[tokio::test]
async fn each_operation_over_a_websocket_is_recorded_with_its_outcome() {
    let app = TestApp::spawn().await;
    let operator = operator_key(&app).await;
    // The admin-only key may do none of these.
    let mut socket = crate::ws::connect(&app, json!({ "apiKey": app.admin_key })).await;
    let ack = crate::ws::next(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(ack.expect("ack")["type"], "connection_ack");
    for (id, query) in [
        ("q", "query Look { auditEvents { edges { cursor } } }"),
        (
            "m",
            "mutation Write { recordEvent(input: { action: \"a.b\", service: \"s\", actor: { id: \"x\" } }) { id } }",
        ),
        ("s", "subscription Watch { eventRecorded { id } }"),
        ("ok", "query Keys { apiKeys { id } }"),
    ] {
        crate::ws::send(
            &mut socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
        // Its answer, then `complete` (or one `error`) ends it.
        loop {
            let answer = crate::ws::next(&mut socket, Duration::from_secs(5))
                .await
                .expect("an answer");
            assert_eq!(answer["id"], id, "{answer}");
            if answer["type"] == "complete" || answer["type"] == "error" {
                break;
            }
        }
    }
    let admin_id = app.key_id(TENANT, "admin").await.to_string();
    let notes = trail(
        &app,
        &operator,
        json!({
            "actions": ["api.request"],
            "actorIds": [admin_id],
            "targetIds": ["Look", "Write", "Watch", "Keys"],
        }),
        4,
    )
    .await;
    for note in &notes {
        assert_eq!(note["metadata"]["transport"], "websocket", "{note}");
        assert_eq!(note["metadata"]["tenant"], TENANT, "{note}");
        let (outcome, errors) = if note["target"]["id"] == "Keys" {
            ("SUCCESS", json!([]))
        } else {
            ("FAILURE", json!(["FORBIDDEN"]))
        };
        assert_eq!(note["outcome"], outcome, "{note}");
        assert_eq!(note["metadata"]["errors"], errors, "{note}");
    }
}
