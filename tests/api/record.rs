//! Recording: accepted events come back whole, duplicates are answered and stored once, and every
//! input rule is enforced with its code and field, storing nothing.

use serde_json::{json, Value};

use crate::helpers::{event, TestApp, TENANT};

const EVENT_FIELDS: &str = "id tenant occurredAt receivedAt action outcome severity service \
    actor { id type name ip href } target { id type name href } group { id name } crud message \
    metadata idempotencyKey requestId traceId";

#[tokio::test]
async fn a_recorded_event_reads_back_whole() {
    let app = TestApp::spawn().await;
    let input = json!({
        "action": "invoice.update",
        "service": "billing",
        "actor": { "id": "alice@example.com", "name": "Alice", "ip": "203.0.113.7", "href": "https://app.example.com/users/alice" },
        "target": { "id": "INV-1", "type": "invoice", "name": "March invoice", "href": "/invoices/INV-1" },
        "group": { "id": "org_42", "name": "Initech" },
        "crud": "U",
        "outcome": "FAILURE",
        "severity": "WARNING",
        "occurredAt": "2026-11-22T14:03:00.123Z",
        "message": "amount changed, ✓ unicode",
        "metadata": { "from": 10, "to": 12, "nested": { "ok": true } },
        "requestId": "req-1",
        "traceId": "trace-1",
    });
    let receipt = app.record(input).await;
    assert_eq!(receipt["status"], "ACCEPTED");
    let id = receipt["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    app.wait_stored(TENANT, 1).await;

    let body = app
        .gql(
            &format!("query($id: ID!) {{ auditEvent(id: $id) {{ {EVENT_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let e = &body["data"]["auditEvent"];
    assert_eq!(e["id"], id);
    assert_eq!(e["tenant"], TENANT);
    assert_eq!(e["occurredAt"], "2026-11-22T14:03:00.123Z");
    assert_eq!(e["receivedAt"], receipt["receivedAt"]);
    assert_eq!(e["action"], "invoice.update");
    assert_eq!(e["outcome"], "FAILURE");
    assert_eq!(e["severity"], "WARNING");
    assert_eq!(
        e["actor"],
        json!({ "id": "alice@example.com", "type": "user", "name": "Alice", "ip": "203.0.113.7", "href": "https://app.example.com/users/alice" })
    );
    assert_eq!(
        e["target"],
        json!({ "id": "INV-1", "type": "invoice", "name": "March invoice", "href": "/invoices/INV-1" })
    );
    assert_eq!(e["group"], json!({ "id": "org_42", "name": "Initech" }));
    assert_eq!(e["crud"], "U");
    assert_eq!(e["message"], "amount changed, ✓ unicode");
    assert_eq!(
        e["metadata"],
        json!({ "from": 10, "to": 12, "nested": { "ok": true } })
    );
    assert_eq!(e["idempotencyKey"], Value::Null);
    assert_eq!(e["requestId"], "req-1");
    assert_eq!(e["traceId"], "trace-1");

    // Read again: now from the cache, and identical.
    let again = app
        .gql(
            &format!("query($id: ID!) {{ auditEvent(id: $id) {{ {EVENT_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(again["data"]["auditEvent"], *e);
}

#[tokio::test]
async fn defaults_fill_what_the_producer_left_out() {
    let app = TestApp::spawn().await;
    let receipt = app.record(event("user.login")).await;
    app.wait_stored(TENANT, 1).await;
    let body = app
        .gql(
            "query($id: ID!) { auditEvent(id: $id) { occurredAt receivedAt outcome severity actor { type } target { id } } }",
            json!({ "id": receipt["id"] }),
        )
        .await;
    let e = &body["data"]["auditEvent"];
    assert_eq!(e["occurredAt"], receipt["receivedAt"]);
    assert_eq!(e["outcome"], "SUCCESS");
    assert_eq!(e["severity"], "INFO");
    assert_eq!(e["actor"]["type"], "user");
    assert_eq!(e["target"], Value::Null);
}

#[tokio::test]
async fn a_batch_is_recorded_in_one_call() {
    let app = TestApp::spawn().await;
    let inputs: Vec<Value> = (0..250)
        .map(|i| event(&format!("batch.item_{i}")))
        .collect();
    let body = app
        .gql(
            "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id status } }",
            json!({ "inputs": inputs }),
        )
        .await;
    let receipts = body["data"]["recordEvents"].as_array().expect("receipts");
    assert_eq!(receipts.len(), 250);
    assert!(receipts.iter().all(|r| r["status"] == "ACCEPTED"));
    let ids: std::collections::HashSet<&str> =
        receipts.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 250);
    app.wait_stored(TENANT, 250).await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_answered_duplicate_and_stored_once() {
    let app = TestApp::spawn().await;
    let mut input = event("invoice.pay");
    input["idempotencyKey"] = json!("pay-42");
    let first = app.record(input.clone()).await;
    assert_eq!(first["status"], "ACCEPTED");
    let second = app.record(input.clone()).await;
    assert_eq!(second["status"], "DUPLICATE");
    assert_eq!(second["id"], first["id"]);

    // Within one batch, and across a batch and an earlier call.
    let body = app
        .gql(
            "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id status } }",
            json!({ "inputs": [
                { "action": "a.b", "service": "s", "actor": { "id": "x" }, "idempotencyKey": "k-1" },
                { "action": "a.b", "service": "s", "actor": { "id": "x" }, "idempotencyKey": "k-1" },
                input,
            ] }),
        )
        .await;
    let r = &body["data"]["recordEvents"];
    assert_eq!(r[0]["status"], "ACCEPTED");
    assert_eq!(r[1]["status"], "DUPLICATE");
    assert_eq!(r[1]["id"], r[0]["id"]);
    assert_eq!(r[2]["status"], "DUPLICATE");
    assert_eq!(r[2]["id"], first["id"]);

    // Another tenant's key space is its own.
    let mut theirs = event("invoice.pay");
    theirs["idempotencyKey"] = json!("pay-42");
    assert_eq!(
        app.record_as(&app.other_key, theirs).await["status"],
        "ACCEPTED"
    );

    app.wait_stored(TENANT, 2).await;
    app.wait_stored(crate::helpers::OTHER_TENANT, 1).await;
}

#[tokio::test]
async fn a_key_forgotten_by_redis_is_still_a_duplicate() {
    let app = TestApp::spawn().await;
    let mut input = event("invoice.pay");
    input["idempotencyKey"] = json!("survives-flush");
    let first = app.record(input.clone()).await;
    app.wait_stored(TENANT, 1).await;
    // Forget this test's keys in Redis, as a Redis restart would.
    let client = redis::Client::open(app.config.redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.config.redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();

    let second = app.record(input).await;
    assert_eq!(second["status"], "DUPLICATE");
    assert_eq!(second["id"], first["id"]);
    app.wait_stored(TENANT, 1).await;
}

/// Sends one invalid input and returns the single error.
async fn rejected(app: &TestApp, input: Value) -> Value {
    let body = app
        .gql(
            "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await;
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("expected an error: {body}"));
    assert_eq!(errors.len(), 1, "{body}");
    errors[0].clone()
}

#[tokio::test]
async fn every_input_rule_is_enforced_with_its_field() {
    let app = TestApp::spawn().await;
    let long = |n: usize| "x".repeat(n);
    let with = |path: &[&str], value: Value| {
        let mut input = event("user.login");
        let mut slot = &mut input;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                slot[*key] = value.clone();
            } else {
                if slot.get(*key).is_none() {
                    slot[*key] = match *key {
                        "group" => json!({ "id": "g" }),
                        _ => json!({ "id": "t", "type": "doc" }),
                    };
                }
                slot = &mut slot[*key];
            }
        }
        input
    };
    let future = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let cases = [
        (with(&["action"], json!("User.Login")), "input.action"),
        (with(&["action"], json!("a..b")), "input.action"),
        (
            with(&["action"], json!(format!("a.{}", long(127)))),
            "input.action",
        ),
        (with(&["service"], json!(long(257))), "input.service"),
        (with(&["service"], json!("")), "input.service"),
        (with(&["actor", "id"], json!(long(257))), "input.actor.id"),
        (with(&["actor", "type"], json!("")), "input.actor.type"),
        (with(&["actor", "ip"], json!("999.1.1.1")), "input.actor.ip"),
        // A link a viewer shows must not be able to run script in its page.
        (
            with(&["actor", "href"], json!("javascript:alert(1)")),
            "input.actor.href",
        ),
        (
            with(&["target", "href"], json!("//evil.example.com/x")),
            "input.target.href",
        ),
        (with(&["group", "id"], json!(" ")), "input.group.id"),
        (
            with(&["group", "name"], json!(long(257))),
            "input.group.name",
        ),
        (with(&["target", "id"], json!(long(257))), "input.target.id"),
        (
            with(&["message"], json!(long(8 * 1024 + 1))),
            "input.message",
        ),
        (with(&["metadata"], json!([1, 2, 3])), "input.metadata"),
        (with(&["metadata"], json!("text")), "input.metadata"),
        (
            with(&["metadata"], json!({ "blob": long(16 * 1024) })),
            "input.metadata",
        ),
        // Beyond 2^53 an integer would not survive the ledger's canonical form unchanged.
        (
            with(
                &["metadata"],
                json!({ "amount": 9_007_199_254_740_993_u64 }),
            ),
            "input.metadata",
        ),
        (with(&["occurredAt"], json!(future)), "input.occurredAt"),
        (
            with(&["idempotencyKey"], json!(long(257))),
            "input.idempotencyKey",
        ),
    ];
    for (input, field) in cases {
        let error = rejected(&app, input.clone()).await;
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{input}: {error}"
        );
        assert_eq!(error["extensions"]["field"], field, "{input}: {error}");
    }
    // Type errors that GraphQL itself catches carry the same code and the argument path.
    let error = rejected(&app, with(&["occurredAt"], json!("yesterday"))).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    assert_eq!(error["extensions"]["field"], "input.occurredAt", "{error}");
    let error = rejected(&app, with(&["outcome"], json!("MAYBE"))).await;
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{error}");

    // Nothing of the rejected calls was stored, and a valid event still goes through after them.
    app.record(event("after.rejections")).await;
    app.wait_stored(TENANT, 1).await;
}

#[tokio::test]
async fn a_batch_with_one_bad_input_stores_nothing() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id } }",
            json!({ "inputs": [event("ok.one"), event("Bad Action"), event("ok.two")] }),
        )
        .await;
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert_eq!(error["extensions"]["field"], "inputs.1.action", "{body}");

    let too_many: Vec<Value> = (0..1001).map(|_| event("a.b")).collect();
    let body = app
        .gql(
            "mutation($inputs: [RecordEventInput!]!) { recordEvents(inputs: $inputs) { id } }",
            json!({ "inputs": too_many }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["field"], "inputs", "{body}");

    app.record(event("marker.last")).await;
    app.wait_stored(TENANT, 1).await;
    let body = app
        .gql("{ auditEvents { edges { node { action } } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["auditEvents"]["edges"],
        json!([{ "node": { "action": "marker.last" } }])
    );
}

#[tokio::test]
async fn malformed_requests_get_a_coded_error_not_a_crash() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let response = client
        .post(app.url("/graphql"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let body = app.gql("{ auditEvents { nope } }", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    let body = app.gql("query {", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );

    // Still serving.
    assert_eq!(app.record(event("still.alive")).await["status"], "ACCEPTED");
}

#[tokio::test]
async fn every_event_says_who_recorded_it_and_nobody_can_pose_as_the_service() {
    let app = TestApp::spawn().await;
    let receipt = app.record(event("invoice.paid")).await;
    app.wait_stored(TENANT, 1).await;
    let body = app
        .gql(
            "query($id: ID!) { auditEvent(id: $id) { recordedBy { id type } } }",
            json!({ "id": receipt["id"] }),
        )
        .await;
    let key_id = app.key_id(TENANT, "test").await;
    assert_eq!(
        body["data"]["auditEvent"]["recordedBy"],
        json!({ "id": key_id.to_string(), "type": "api_key" }),
        "{body}"
    );

    // The input cannot say who recorded it.
    let mut forged = event("invoice.paid");
    forged["recordedBy"] = json!({ "id": "someone-else", "type": "api_key" });
    let (_, body) = app
        .post(
            Some(&app.key),
            "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
            json!({ "i": forged }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );

    // The service's action namespace and name are its own.
    for (input, field) in [
        (event("traceledger.export"), "inputs.1.action"),
        (event("traceledger"), "inputs.1.action"),
        (
            json!({ "action": "data.export", "service": "traceledger", "actor": { "id": "x" } }),
            "inputs.1.service",
        ),
    ] {
        let (_, body) = app
            .post(
                Some(&app.key),
                "mutation($i: [RecordEventInput!]!) { recordEvents(inputs: $i) { id } }",
                json!({ "i": [event("fine.one"), input] }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    // Look-alikes that are not the namespace are anyone's.
    app.record(event("traceledgers.sync")).await;
    app.wait_stored(TENANT, 2).await;
}
