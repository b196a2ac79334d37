//! Viewer tokens: a tenant's admin mints one for one of its customers (a group); the token reads
//! that group's events on every path (list, by id, search, stats, export, live and durable
//! feeds) and nothing else: no other group, no event without a group, no write, nothing
//! tenant-wide. Tampered, expired, foreign and rotated-out tokens are refused.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use traceledger::access::auth::{create_scoped_api_key, Scope};
use traceledger::app::own_trail::SYSTEM_TENANT;

use crate::helpers::{event, TestApp, OTHER_TENANT, TENANT};
use crate::ws::{connect, next, send};

const MINT: &str = "mutation($g: String!, $a: String, $ttl: Int! = 3600, $x: Boolean! = false) { \
    createViewerToken(groupId: $g, actorId: $a, ttlSeconds: $ttl, exportAllowed: $x) { \
    token expiresAt groupId actorId exportAllowed } }";
const LIST: &str = "query($f: AuditEventFilter) { auditEvents(filter: $f, first: 100) { \
    totalCount edges { node { id action group { id } actor { id } } } } }";

fn in_group(action: &str, group: Option<&str>, actor: &str) -> Value {
    let mut input = event(action);
    input["actor"] = json!({ "id": actor });
    if let Some(group) = group {
        input["group"] = json!({ "id": group, "name": format!("{group} Inc.") });
    }
    input
}

/// Events of groups A and B, one without a group, and a look-alike in the other tenant's A.
async fn seed(app: &TestApp) {
    app.record_all(&[
        in_group("invoice.create", Some("org-a"), "alice"),
        in_group("invoice.update", Some("org-a"), "bob"),
        in_group("invoice.delete", Some("org-b"), "carol"),
        in_group("invoice.view", None, "dave"),
    ])
    .await;
    app.record_as(
        &app.other_key,
        in_group("invoice.create", Some("org-a"), "eve"),
    )
    .await;
    app.wait_stored(TENANT, 4).await;
    app.wait_stored(OTHER_TENANT, 1).await;
}

async fn mint(app: &TestApp, admin: &str, variables: Value) -> Value {
    let body = app.gql_as(admin, MINT, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["createViewerToken"].clone()
}

async fn token_for(app: &TestApp, variables: Value) -> String {
    mint(app, &app.admin_key, variables).await["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// The actions `token` lists with `filter`.
async fn listed(app: &TestApp, token: &str, filter: Value) -> (HashSet<String>, Value) {
    let data = app.data_as(token, LIST, json!({ "f": filter })).await;
    let actions = data["auditEvents"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["action"].as_str().expect("action").to_owned())
        .collect();
    (actions, data["auditEvents"]["totalCount"].clone())
}

fn set(actions: &[&str]) -> HashSet<String> {
    actions.iter().map(|a| (*a).to_owned()).collect()
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// A GET of `path` with `token`.
async fn get_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

/// The HTTP status of a GraphQL request with `token`.
async fn status_of(app: &TestApp, token: &str, query: &str) -> u16 {
    app.post(Some(token), query, json!({})).await.0
}

#[tokio::test]
async fn a_viewer_token_reads_its_group_on_every_path_and_nothing_else() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let minted = mint(&app, &app.admin_key, json!({ "g": "org-a" })).await;
    assert_eq!(minted["groupId"], "org-a");
    assert_eq!(minted["exportAllowed"], false);
    let token = minted["token"].as_str().expect("a token").to_owned();

    // List and totals: group A's events only, whatever the filter asks.
    let (actions, total) = listed(&app, &token, json!({})).await;
    assert_eq!(actions, set(&["invoice.create", "invoice.update"]));
    assert_eq!(total, 2);
    let (actions, total) = listed(&app, &token, json!({ "groupIds": ["org-b"] })).await;
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(total, 0);

    // By id: another group's event and an ungrouped one are as good as not there.
    let everything = app.data_as(&app.key, LIST, json!({})).await;
    for edge in everything["auditEvents"]["edges"]
        .as_array()
        .expect("edges")
    {
        let node = &edge["node"];
        let seen = app
            .data_as(
                &token,
                "query($id: ID!) { auditEvent(id: $id) { id } }",
                json!({ "id": node["id"] }),
            )
            .await;
        let visible = node["group"]["id"] == "org-a";
        assert_eq!(!seen["auditEvent"].is_null(), visible, "{node}");
    }

    // Search and statistics.
    let data = app
        .data_as(
            &token,
            "{ search(query: \"invoice\") { total hits { event { action } } } }",
            json!({}),
        )
        .await;
    let found: HashSet<String> = data["search"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["event"]["action"].as_str().expect("action").to_owned())
        .collect();
    assert_eq!(found, set(&["invoice.create", "invoice.update"]));
    let data = app
        .data_as(
            &token,
            "{ eventStats(groupBy: [ACTION], interval: DAY) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["eventStats"]["totalCount"], 2);

    // No writes, no minting, nothing tenant-wide.
    for forbidden in [
        "mutation { recordEvent(input: {action: \"x.y\", service: \"s\", actor: {id: \"u\"}}) { id } }",
        "mutation { createViewerToken(groupId: \"org-b\") { token } }",
        "mutation { rotateViewerTokenKey }",
        "{ ledgerCheckpoint { size } }",
        "{ processingMetrics { occurredAfter } }",
        "{ apiKeys { id } }",
    ] {
        let body = app.gql_as(&token, forbidden, json!({})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{forbidden}: {body}");
    }
    let checkpoint = get_as(&app, &token, "/ledger/checkpoint").await;
    assert_eq!(checkpoint.status(), 403);

    // Export only when the minter allowed it, and then only the group's events; never proofs.
    let refused = get_as(&app, &token, "/export?format=ndjson").await;
    assert_eq!(refused.status(), 403);
    let exporter = token_for(&app, json!({ "g": "org-a", "x": true })).await;
    let export = get_as(&app, &exporter, "/export?format=ndjson").await;
    assert_eq!(export.status(), 200);
    let lines: Vec<Value> = export
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| l["group"]["id"] == "org-a"),
        "{lines:?}"
    );
    let proofs = get_as(&app, &exporter, "/export?format=ndjson&proofs=true").await;
    assert_eq!(proofs.status(), 403);

    // The tenant's trail records the viewer's exports with its group, and of its filter only
    // the fields and a digest: a customer writes no text of its own into the tenant's log.
    let filtered = get_as(
        &app,
        &exporter,
        "/export?format=csv&actorIds=written-by-a-customer",
    )
    .await;
    assert_eq!(filtered.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let records = loop {
        let data = app
            .data_as(
                &app.key,
                "{ auditEvents(filter: {actions: [\"traceledger.export\"]}) { edges { node { group { id } actor { type } metadata } } } }",
                json!({}),
            )
            .await;
        let records = data["auditEvents"]["edges"]
            .as_array()
            .expect("edges")
            .clone();
        if records.len() >= 2 || tokio::time::Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        let node = &record["node"];
        assert_eq!(node["group"]["id"], "org-a", "{node}");
        assert_eq!(node["actor"]["type"], "viewer_token", "{node}");
        assert!(node["metadata"]["filter"]["sha256"].is_string(), "{node}");
    }
    let text = serde_json::to_string(&records).expect("JSON");
    assert!(!text.contains("written-by-a-customer"), "{text}");
    assert!(text.contains("actorIds"), "{text}");
}

/// Events a subscription with `token` delivers within a few seconds, by action.
async fn delivered(socket: &mut crate::ws::Socket, want: usize) -> Vec<String> {
    let mut actions = Vec::new();
    while actions.len() < want {
        let Some(message) = next(socket, Duration::from_secs(10)).await else {
            break;
        };
        assert_eq!(message["type"], "next", "{message}");
        let event = &message["payload"]["data"]["eventRecorded"];
        assert_eq!(event["group"]["id"], "org-a", "{message}");
        actions.push(event["action"].as_str().expect("action").to_owned());
    }
    actions
}

#[tokio::test]
async fn live_and_durable_feeds_of_a_viewer_token_carry_its_group_only() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let token = token_for(&app, json!({ "g": "org-a" })).await;

    // Durable from the beginning: the stored A events, then the new ones as they commit.
    let mut durable = connect(&app, json!({ "apiKey": token })).await;
    assert_eq!(
        next(&mut durable, Duration::from_secs(5))
            .await
            .map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    send(
        &mut durable,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { eventRecorded(after: \"beginning\") { action group { id } } }"
        } }),
    )
    .await;
    assert_eq!(
        delivered(&mut durable, 2).await,
        vec!["invoice.create", "invoice.update"]
    );

    // And the low-latency feed, which never touches the store.
    let mut live = crate::ws::subscribe(&app, &token, json!({})).await;
    app.record_all(&[
        in_group("report.view", Some("org-b"), "carol"),
        in_group("report.view", None, "dave"),
        in_group("report.export", Some("org-a"), "alice"),
    ])
    .await;
    assert_eq!(delivered(&mut durable, 1).await, vec!["report.export"]);
    let message = next(&mut live, Duration::from_secs(10))
        .await
        .expect("a live event");
    assert_eq!(
        message["payload"]["data"]["eventRecorded"]["action"],
        "report.export"
    );
    crate::ws::assert_quiet(&mut durable, Duration::from_secs(1)).await;
    crate::ws::assert_quiet(&mut live, Duration::from_millis(200)).await;

    // It never sees a ledger index (one counts the whole tenant's events): its cursors are
    // sealed, resume its feed, and a plain cursor (one it could make up) is refused.
    let data = app
        .data_as(
            &token,
            "{ auditEvents(filter: {actions: [\"invoice.update\"]}) { edges { node { ledger { index } streamCursor } } } }",
            json!({}),
        )
        .await;
    let node = &data["auditEvents"]["edges"][0]["node"];
    assert_eq!(node["ledger"], Value::Null, "{node}");
    let sealed = node["streamCursor"].as_str().expect("a cursor").to_owned();
    assert!(sealed.starts_with("tlc_"), "{sealed}");
    let resume = |after: String| {
        let app = &app;
        let token = token.clone();
        async move {
            let mut socket = connect(app, json!({ "apiKey": token })).await;
            next(&mut socket, Duration::from_secs(5)).await;
            send(
                &mut socket,
                json!({ "id": "1", "type": "subscribe", "payload": {
                    "query": "subscription($a: String) { eventRecorded(after: $a) { action group { id } } }",
                    "variables": { "a": after },
                } }),
            )
            .await;
            socket
        }
    };
    let mut resumed = resume(sealed).await;
    assert_eq!(delivered(&mut resumed, 1).await, vec!["report.export"]);
    let plain = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        "ledger:0",
    );
    let mut forged = resume(plain).await;
    let refusal = next(&mut forged, Duration::from_secs(5))
        .await
        .expect("an answer");
    let error = &refusal["payload"]["errors"][0]["extensions"];
    assert_eq!(error["code"], "BAD_USER_INPUT", "{refusal}");
    assert_eq!(error["field"], "after", "{refusal}");
}

#[tokio::test]
async fn an_actor_token_sees_that_actor_and_minting_needs_an_admin() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let token = token_for(&app, json!({ "g": "org-a", "a": "bob" })).await;
    let (actions, _) = listed(&app, &token, json!({})).await;
    assert_eq!(actions, set(&["invoice.update"]));

    // Only an admin mints, within the limits, for its own tenant.
    let body = app.gql_as(&app.key, MINT, json!({ "g": "org-a" })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    for (variables, field) in [
        (json!({ "g": "org-a", "ttl": 0 }), "ttlSeconds"),
        (json!({ "g": "org-a", "ttl": 86_401 }), "ttlSeconds"),
        (json!({ "g": " " }), "groupId"),
    ] {
        let body = app.gql_as(&app.admin_key, MINT, variables.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{variables}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
}

#[tokio::test]
async fn tampered_expired_foreign_and_rotated_tokens_are_refused() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let token = token_for(&app, json!({ "g": "org-a" })).await;
    assert_eq!(status_of(&app, &token, "{ __typename }").await, 200);

    // The claims changed to another group, the signature kept.
    let (signed, mac) = token.rsplit_once('.').expect("claims.mac");
    let claims = signed.strip_prefix("tlv_").expect("prefix");
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json = String::from_utf8(engine.decode(claims).expect("base64")).expect("UTF-8");
    let forged = format!(
        "tlv_{}.{mac}",
        engine.encode(json.replace("org-a", "org-b"))
    );
    assert_eq!(status_of(&app, &forged, "{ __typename }").await, 401);

    // Another tenant's admin mints for its own tenant: that token reads the other tenant's A.
    let other_admin = create_scoped_api_key(&app.store, OTHER_TENANT, "admin", &[Scope::Admin])
        .await
        .expect("key")
        .secret;
    let foreign = token_for_admin(&app, &other_admin, json!({ "g": "org-a" })).await;
    let (actions, _) = listed(&app, &foreign, json!({})).await;
    assert_eq!(actions, set(&["invoice.create"]));
    let data = app.data_as(&foreign, LIST, json!({})).await;
    assert_eq!(
        data["auditEvents"]["edges"][0]["node"]["actor"]["id"],
        "eve"
    );
    // Its claims rewritten to this tenant, under the other tenant's signature.
    let (signed, mac) = foreign.rsplit_once('.').expect("claims.mac");
    let json = String::from_utf8(engine.decode(&signed[4..]).expect("base64")).expect("UTF-8");
    let moved = format!(
        "tlv_{}.{mac}",
        engine.encode(json.replace(OTHER_TENANT, TENANT))
    );
    assert_eq!(status_of(&app, &moved, "{ __typename }").await, 401);

    // Expired.
    let short = token_for(&app, json!({ "g": "org-a", "ttl": 1 })).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = app.post(Some(&short), "{ __typename }", json!({})).await;
    assert_eq!(status, 401, "{body}");

    // Rotating the key revokes what was minted before; a token minted after works.
    let body = app
        .gql_as(
            &app.admin_key,
            "mutation { rotateViewerTokenKey }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["rotateViewerTokenKey"], true, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while status_of(&app, &token, "{ __typename }").await != 401 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated-out token still works"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = token_for(&app, json!({ "g": "org-a" })).await;
    assert_eq!(status_of(&app, &fresh, "{ __typename }").await, 200);
}

async fn token_for_admin(app: &TestApp, admin: &str, variables: Value) -> String {
    mint(app, admin, variables).await["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

#[tokio::test]
async fn minting_and_every_read_with_a_token_are_in_the_service_trail_with_the_group() {
    let app = TestApp::spawn().await;
    let operator =
        create_scoped_api_key(&app.store, SYSTEM_TENANT, "operator", &[Scope::EventsRead])
            .await
            .expect("key")
            .secret;
    let token = token_for(&app, json!({ "g": "org-a" })).await;
    listed(&app, &token, json!({})).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let data = app
            .data_as(
                &operator,
                "{ auditEvents(filter: {actions: [\"viewer_token.create\", \"api.request\"], groupIds: [\"org-a\"]}, first: 100) { edges { node { action actor { type } group { id } } } } }",
                json!({}),
            )
            .await;
        let nodes: Vec<Value> = data["auditEvents"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        let minted = nodes.iter().any(|n| n["action"] == "viewer_token.create");
        let read = nodes
            .iter()
            .any(|n| n["action"] == "api.request" && n["actor"]["type"] == "viewer_token");
        if minted && read {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trail lacks the mint or the read: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
