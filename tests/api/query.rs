//! Reading back: every filter, both orders, pages that neither repeat nor skip, and bad cursors.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{TestApp, OTHER_TENANT, TENANT};

/// Ten events an hour apart, varied in every filtered field.
async fn seed(app: &TestApp) -> Vec<Value> {
    // "invoice_x" must not match "invoice.*"; "userxadmin" must not match "user_admin.*" (a
    // LIKE pattern that left "_" unescaped would match it).
    const ACTIONS: [&str; 6] = [
        "invoice.create",
        "invoice.update",
        "user.login",
        "user_admin.grant",
        "invoice_x.create",
        "userxadmin.login",
    ];
    const OUTCOMES: [&str; 3] = ["SUCCESS", "FAILURE", "UNKNOWN"];
    const SEVERITIES: [&str; 6] = ["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"];
    let mut inputs = Vec::new();
    for i in 0..10 {
        inputs.push(json!({
            "action": ACTIONS[i % ACTIONS.len()],
            "service": if i % 2 == 0 { "billing" } else { "auth" },
            "actor": { "id": format!("actor-{}", i % 3), "type": if i % 4 == 0 { "service" } else { "user" } },
            "target": if i % 3 == 0 { Value::Null } else { json!({ "id": format!("T-{}", i % 2), "type": if i < 5 { "invoice" } else { "account" } }) },
            "outcome": OUTCOMES[i % 3],
            "severity": SEVERITIES[i % 6],
            "occurredAt": format!("2026-11-01T{:02}:00:00Z", i),
            "message": format!("event {i}"),
        }));
    }
    app.record_all(&inputs).await;
    // Another tenant's look-alike events must never show up.
    app.record_as(&app.other_key, inputs[0].clone()).await;
    app.wait_stored(TENANT, 10).await;
    app.wait_stored(OTHER_TENANT, 1).await;
    inputs
}

/// The messages ("event N") of the page the filter selects, in the order served.
async fn messages(app: &TestApp, filter: Value, order: &str) -> Vec<String> {
    let body = app
        .gql(
            "query($f: AuditEventFilter, $o: EventOrder!) { auditEvents(filter: $f, first: 100, orderBy: $o) { edges { node { message tenant } } pageInfo { hasNextPage } } }",
            json!({ "f": filter, "o": order }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let connection = &body["data"]["auditEvents"];
    assert_eq!(connection["pageInfo"]["hasNextPage"], false);
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["node"]["tenant"], TENANT);
            e["node"]["message"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// What the filter should select, newest first, worked out from the inputs.
fn expected(inputs: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut out: Vec<String> = inputs
        .iter()
        .filter(|i| keep(i))
        .map(|i| i["message"].as_str().unwrap().to_owned())
        .collect();
    out.reverse();
    out
}

#[tokio::test]
async fn every_filter_selects_what_it_says() {
    let app = TestApp::spawn().await;
    let inputs = seed(&app).await;
    let rank = |s: &Value| {
        ["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"]
            .iter()
            .position(|x| s == x)
            .unwrap()
    };

    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Value, Keep)> = vec![
        (json!({}), Box::new(|_| true)),
        (
            json!({ "actions": ["user.login"] }),
            Box::new(|i| i["action"] == "user.login"),
        ),
        // A prefix matches below the dot only: not "invoice_x.create".
        (
            json!({ "actions": ["invoice.*"] }),
            Box::new(|i| i["action"].as_str().unwrap().starts_with("invoice.")),
        ),
        (
            json!({ "actions": ["invoice.*", "user.login"] }),
            Box::new(|i| {
                i["action"].as_str().unwrap().starts_with("invoice.") || i["action"] == "user.login"
            }),
        ),
        // "_" is a literal, not a LIKE wildcard: "user_admin.*" must not match "userxadmin".
        (
            json!({ "actions": ["user_admin.*"] }),
            Box::new(|i| i["action"] == "user_admin.grant"),
        ),
        (
            json!({ "services": ["auth"] }),
            Box::new(|i| i["service"] == "auth"),
        ),
        (
            json!({ "actorIds": ["actor-1", "actor-2"] }),
            Box::new(|i| i["actor"]["id"] != "actor-0"),
        ),
        (
            json!({ "actorTypes": ["service"] }),
            Box::new(|i| i["actor"]["type"] == "service"),
        ),
        (
            json!({ "targetIds": ["T-1"] }),
            Box::new(|i| i["target"]["id"] == "T-1"),
        ),
        (
            json!({ "targetTypes": ["account"] }),
            Box::new(|i| i["target"]["type"] == "account"),
        ),
        (
            json!({ "outcomes": ["FAILURE", "UNKNOWN"] }),
            Box::new(|i| i["outcome"] != "SUCCESS"),
        ),
        (
            json!({ "minSeverity": "WARNING" }),
            Box::new(move |i| rank(&i["severity"]) >= 3),
        ),
        (
            json!({ "occurredAfter": "2026-11-01T03:00:00Z" }),
            Box::new(|i| i["occurredAt"].as_str().unwrap() >= "2026-11-01T03"),
        ),
        (
            json!({ "occurredBefore": "2026-11-01T03:00:00Z" }),
            Box::new(|i| i["occurredAt"].as_str().unwrap() < "2026-11-01T03"),
        ),
        (
            json!({ "services": ["billing"], "minSeverity": "NOTICE", "occurredAfter": "2026-11-01T01:00:00Z", "occurredBefore": "2026-11-01T09:00:00Z" }),
            Box::new(move |i| {
                i["service"] == "billing"
                    && rank(&i["severity"]) >= 2
                    && i["occurredAt"].as_str().unwrap() >= "2026-11-01T01"
                    && i["occurredAt"].as_str().unwrap() < "2026-11-01T09"
            }),
        ),
        (json!({ "services": ["nobody"] }), Box::new(|_| false)),
    ];
    for (filter, keep) in cases {
        let want = expected(&inputs, &keep);
        assert_eq!(
            messages(&app, filter.clone(), "OCCURRED_AT_DESC").await,
            want,
            "filter {filter}"
        );
        let mut ascending = want.clone();
        ascending.reverse();
        assert_eq!(
            messages(&app, filter.clone(), "OCCURRED_AT_ASC").await,
            ascending,
            "filter {filter} ascending"
        );
    }
}

#[tokio::test]
async fn pages_cover_everything_once_while_events_keep_arriving() {
    let app = TestApp::spawn().await;
    let inputs = seed(&app).await;
    let mut stored = inputs.len() as i64;
    for order in ["OCCURRED_AT_DESC", "OCCURRED_AT_ASC"] {
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let body = app
                .gql(
                    "query($after: String, $o: EventOrder!) { auditEvents(first: 3, after: $after, orderBy: $o) { edges { cursor node { message occurredAt } } pageInfo { hasNextPage endCursor } } }",
                    json!({ "after": after, "o": order }),
                )
                .await;
            let connection = &body["data"]["auditEvents"];
            let edges = connection["edges"].as_array().unwrap();
            seen.extend(
                edges
                    .iter()
                    .map(|e| e["node"]["message"].as_str().unwrap().to_owned()),
            );
            let Some(last) = edges.last() else { break };
            assert_eq!(last["cursor"], connection["pageInfo"]["endCursor"]);
            // Between pages, events arrive and are stored: one at the cursor's very time (a
            // tie, broken by id), one before everything seeded and one in its middle.
            for (i, at) in [
                last["node"]["occurredAt"].clone(),
                json!("2026-10-31T23:00:00Z"),
                json!("2026-11-01T04:30:00Z"),
            ]
            .into_iter()
            .enumerate()
            {
                app.record(json!({ "action": "late.arrival", "service": "x", "actor": { "id": "y" }, "occurredAt": at, "message": format!("late {order} {} {i}", seen.len()) })).await;
            }
            stored += 3;
            app.wait_stored(TENANT, stored).await;
            if connection["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = connection["pageInfo"]["endCursor"].clone();
        }
        // Every event that was there from the start: once each, in order.
        let seeded: Vec<String> = seen
            .iter()
            .filter(|m| !m.starts_with("late"))
            .cloned()
            .collect();
        let mut want = expected(&inputs, |_| true);
        if order == "OCCURRED_AT_ASC" {
            want.reverse();
        }
        assert_eq!(seeded, want, "{order}");
        // Late arrivals ahead of the cursor may show up; none twice.
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{order}: {seen:?}");
    }
}

#[tokio::test]
async fn bad_paging_arguments_are_rejected() {
    let app = TestApp::spawn().await;
    for (args, field) in [
        ("first: 101", "first"),
        ("first: -1", "first"),
        ("after: \"not-a-cursor\"", "after"),
        ("after: \"MTIzOnh5eg\"", "after"),
    ] {
        let body = app
            .gql(
                &format!("{{ auditEvents({args}) {{ edges {{ cursor }} }} }}"),
                json!({}),
            )
            .await;
        let error = &body["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{args}: {body}"
        );
        assert_eq!(error["extensions"]["field"], field, "{args}: {body}");
    }
    let body = app
        .gql("{ auditEvent(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "id", "{body}");
}

#[tokio::test]
async fn another_tenants_event_is_not_found_by_id() {
    let app = TestApp::spawn().await;
    let theirs = app
        .record_as(&app.other_key, crate::helpers::event("secret.thing"))
        .await;
    app.wait_stored(OTHER_TENANT, 1).await;
    let query = "query($id: ID!) { auditEvent(id: $id) { id } }";
    let mine = app.gql(query, json!({ "id": theirs["id"] })).await;
    assert_eq!(mine["data"]["auditEvent"], Value::Null, "{mine}");
    // Its owner does see it (and now it is cached: still invisible to the other tenant).
    let owner = app
        .gql_as(&app.other_key, query, json!({ "id": theirs["id"] }))
        .await;
    assert_eq!(owner["data"]["auditEvent"]["id"], theirs["id"]);
    let mine = app.gql(query, json!({ "id": theirs["id"] })).await;
    assert_eq!(mine["data"]["auditEvent"], Value::Null);
    let list = app
        .gql("{ auditEvents { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(list["data"]["auditEvents"]["edges"], json!([]));

    // Filters naming exactly what their event holds find nothing either, nor does an export.
    let filter =
        json!({ "actions": ["secret.thing"], "services": ["billing"], "actorIds": ["alice"] });
    let filtered = app
        .gql(
            "query($f: AuditEventFilter) { auditEvents(filter: $f) { edges { node { id } } } }",
            json!({ "f": filter }),
        )
        .await;
    assert_eq!(
        filtered["data"]["auditEvents"]["edges"],
        json!([]),
        "{filtered}"
    );
    let stats = app
        .gql(
            "query($f: AuditEventFilter) { eventStats(filter: $f, groupBy: [ACTION], interval: DAY) { totalCount } }",
            json!({ "f": filter }),
        )
        .await;
    assert_eq!(stats["data"]["eventStats"]["totalCount"], 0, "{stats}");
    let export = reqwest::Client::new()
        .get(app.url("/export?actions=secret.thing"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.text().await.unwrap(), "");
}

/// The server keeps parsed query texts: a text sent again must still be answered by its own
/// variables (here `@include`, which prunes the parsed document) and operation name.
#[tokio::test]
async fn a_query_sent_again_is_answered_by_its_own_variables_and_operation() {
    let app = TestApp::spawn().await;
    app.record(json!({
        "action": "user.login", "service": "auth", "actor": { "id": "alice" }, "message": "hello"
    }))
    .await;
    app.wait_stored(TENANT, 1).await;
    let query = "query Page($full: Boolean!) { auditEvents(first: 1) { edges { node { action message @include(if: $full) } } } }
                 query Count { eventStats(groupBy: [ACTION], interval: DAY) { totalCount } }";
    for full in [true, false, true] {
        let body = app
            .post_body(
                &json!({ "query": query, "operationName": "Page", "variables": { "full": full } }),
            )
            .await;
        let node = &body["data"]["auditEvents"]["edges"][0]["node"];
        let expected = if full {
            json!({ "action": "user.login", "message": "hello" })
        } else {
            json!({ "action": "user.login" })
        };
        assert_eq!(node, &expected, "{body}");
    }
    let count = app
        .post_body(&json!({ "query": query, "operationName": "Count" }))
        .await;
    assert_eq!(
        count["data"],
        json!({ "eventStats": { "totalCount": 1 } }),
        "{count}"
    );
}
