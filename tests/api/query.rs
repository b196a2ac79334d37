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
            "group": if i % 5 == 0 { Value::Null } else { json!({ "id": format!("org-{}", i % 2) }) },
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
            json!({ "groupIds": ["org-1"] }),
            Box::new(|i| i["group"]["id"] == "org-1"),
        ),
        // Events without a group are in no group's list.
        (
            json!({ "groupIds": ["org-0", "org-1"] }),
            Box::new(|i| !i["group"].is_null()),
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

const PAGE_BOTH_WAYS: &str =
    "query($first: Int! = 50, $after: String, $last: Int, $before: String, $o: EventOrder!) { \
    auditEvents(first: $first, after: $after, last: $last, before: $before, orderBy: $o) { \
      edges { cursor node { message } } \
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

/// The messages of one page and its pageInfo.
async fn page_both_ways(app: &TestApp, variables: Value) -> (Vec<String>, Value) {
    let body = app.gql(PAGE_BOTH_WAYS, variables).await;
    assert!(body["errors"].is_null(), "{body}");
    let connection = &body["data"]["auditEvents"];
    let edges = connection["edges"].as_array().unwrap();
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        assert_eq!(first["cursor"], connection["pageInfo"]["startCursor"]);
        assert_eq!(last["cursor"], connection["pageInfo"]["endCursor"]);
    }
    let messages = edges
        .iter()
        .map(|e| e["node"]["message"].as_str().unwrap().to_owned())
        .collect();
    (messages, connection["pageInfo"].clone())
}

#[tokio::test]
async fn pages_backwards_and_forwards_meet_in_the_middle_while_events_keep_arriving() {
    let app = TestApp::spawn().await;
    let inputs = seed(&app).await;
    let mut stored = inputs.len() as i64;
    for order in ["OCCURRED_AT_DESC", "OCCURRED_AT_ASC"] {
        let mut want = expected(&inputs, |_| true);
        if order == "OCCURRED_AT_ASC" {
            want.reverse();
        }
        // From the front, three forwards; from the end, backwards in pages of three until the
        // pages meet what the front saw.
        let (front, info) = page_both_ways(&app, json!({ "first": 3, "o": order })).await;
        // (The first pass's late arrivals may stand first in the second.)
        let front: Vec<&String> = front.iter().filter(|m| !m.starts_with("late")).collect();
        assert_eq!(
            front,
            want[..front.len()].iter().collect::<Vec<_>>(),
            "{order}"
        );
        assert_eq!(info["hasPreviousPage"], false);
        assert_eq!(info["hasNextPage"], true);
        let mut back: Vec<String> = Vec::new();
        let mut before = Value::Null;
        loop {
            let (page, info) =
                page_both_ways(&app, json!({ "last": 3, "before": before, "o": order })).await;
            // A page backwards still reads in the list's order: it goes in front of the rest.
            back.splice(0..0, page);
            // Events arrive between pages: in the middle and at both ends.
            for (i, at) in [
                "2026-10-31T23:00:00Z",
                "2026-11-01T04:30:00Z",
                "2026-11-02T00:00:00Z",
            ]
            .into_iter()
            .enumerate()
            {
                app.record(json!({ "action": "late.arrival", "service": "x", "actor": { "id": "y" }, "occurredAt": at, "message": format!("late {order} {} {i}", back.len()) })).await;
            }
            stored += 3;
            app.wait_stored(TENANT, stored).await;
            assert_eq!(info["hasNextPage"], !before.is_null(), "{order}: {info}");
            if info["hasPreviousPage"] == false {
                break;
            }
            before = info["startCursor"].clone();
        }
        // Backwards all the way: every seeded event once, in order; none twice.
        let seeded: Vec<String> = back
            .iter()
            .filter(|m| !m.starts_with("late"))
            .cloned()
            .collect();
        assert_eq!(seeded, want, "{order}");
        let unique: HashSet<&String> = back.iter().collect();
        assert_eq!(unique.len(), back.len(), "{order}: {back:?}");
        // The page before the third event of the front is exactly the front's first two.
        let third = app
            .gql(PAGE_BOTH_WAYS, json!({ "first": 3, "o": order }))
            .await["data"]["auditEvents"]["edges"][2]["cursor"]
            .clone();
        let (before_third, info) =
            page_both_ways(&app, json!({ "last": 2, "before": third, "o": order })).await;
        let (front_now, _) = page_both_ways(&app, json!({ "first": 2, "o": order })).await;
        assert_eq!(before_third, front_now, "{order}");
        assert_eq!(info["hasPreviousPage"], false, "{order}: {info}");
    }
}

#[tokio::test]
async fn totals_are_exact_up_to_ten_thousand_and_flagged_as_estimates_beyond() {
    let app = TestApp::spawn().await;
    let total = |filter: Value| {
        let app = &app;
        async move {
            let body = app
                .gql(
                    "query($f: AuditEventFilter) { auditEvents(filter: $f, first: 1) { totalCount totalCountIsEstimate edges { cursor } } }",
                    json!({ "f": filter }),
                )
                .await;
            assert!(body["errors"].is_null(), "{body}");
            (
                body["data"]["auditEvents"]["totalCount"].as_u64().unwrap(),
                body["data"]["auditEvents"]["totalCountIsEstimate"]
                    .as_bool()
                    .unwrap(),
            )
        }
    };
    let inputs = seed(&app).await;
    assert_eq!(total(json!({})).await, (inputs.len() as u64, false));
    assert_eq!(total(json!({ "actions": ["invoice.*"] })).await, (4, false));
    assert_eq!(
        total(json!({ "actions": ["nothing.here"] })).await,
        (0, false)
    );

    // Past the exact limit: an estimate, flagged, never less than what was counted.
    store_past_the_exact_limit(&app, |_| None).await;
    let (count, estimate) = total(json!({})).await;
    assert!(estimate, "{count}");
    assert!(count > 10_000, "{count}");
    // A filter that still matches few is counted exactly (the bulk are invoice.update).
    assert_eq!(total(json!({ "actions": ["user.*"] })).await, (2, false));
}

#[tokio::test]
async fn bad_paging_arguments_are_rejected() {
    let app = TestApp::spawn().await;
    for (args, field) in [
        ("first: 101", "first"),
        ("first: -1", "first"),
        ("last: 101", "last"),
        ("last: -1", "last"),
        ("after: \"not-a-cursor\"", "after"),
        ("after: \"MTIzOnh5eg\"", "after"),
        ("last: 5, before: \"not-a-cursor\"", "before"),
        // One direction a page: Relay's two pairs do not mix.
        ("last: 5, after: \"MTIzOnh5eg\"", "after"),
        ("before: \"MTIzOnh5eg\"", "before"),
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

#[tokio::test]
async fn search_totals_are_exact_up_to_ten_thousand_and_flagged_beyond() {
    let app = TestApp::spawn().await;
    let total = |query: &'static str| {
        let app = &app;
        async move {
            let body = app
                .gql(
                    "query($q: String!) { search(query: $q, first: 1) { total totalCount totalCountIsEstimate } }",
                    json!({ "q": query }),
                )
                .await;
            assert!(body["errors"].is_null(), "{body}");
            let search = &body["data"]["search"];
            assert_eq!(search["total"], search["totalCount"], "{search}");
            (
                search["totalCount"].as_u64().unwrap(),
                search["totalCountIsEstimate"].as_bool().unwrap(),
            )
        }
    };
    store_past_the_exact_limit(&app, |i| {
        Some(
            if i < 7 {
                "rare refund"
            } else {
                "common refund"
            }
            .to_owned(),
        )
    })
    .await;
    assert_eq!(total("rare").await, (7, false));
    let (count, estimate) = total("refund").await;
    assert!(estimate, "{count}");
    assert!(count > 10_000, "{count}");
}

/// Stores 11,000 events of `TENANT` (the `i`th with `message(i)`) straight into the store, past
/// the 10,000 that totals count exactly, and has the planner look at them.
async fn store_past_the_exact_limit(app: &TestApp, message: impl Fn(usize) -> Option<String>) {
    let now = chrono::Utc::now();
    for batch in 0..11 {
        let events: Vec<_> = (0..1000)
            .map(|i| {
                let mut event = crate::helpers::stored_event(TENANT, now);
                if let Some(text) = message(batch * 1000 + i) {
                    event.message = Some(text);
                }
                event
            })
            .collect();
        app.store
            .insert_events(&events, traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE audit_events")
        .execute(app.store.pool())
        .await
        .unwrap();
}
