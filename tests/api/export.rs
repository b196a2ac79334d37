//! `GET /export`: NDJSON and CSV hold exactly the caller's matching events, CSV quoting survives
//! a real CSV reader, a large export streams every row, bad requests are refused in the API's
//! error shape, and every export leaves an audit event.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::{event, stored_event, TestApp, OTHER_TENANT, TENANT};

const EVENTS: &str = "query($f: AuditEventFilter, $o: EventOrder!) { \
    auditEvents(filter: $f, first: 100, orderBy: $o) { edges { node { \
        id tenant occurredAt receivedAt action outcome severity service \
        actor { id type name ip href } target { id type name href } group { id name } crud \
        message metadata idempotencyKey requestId traceId recordedBy { id type } } } } }";

async fn export(app: &TestApp, key: Option<&str>, query: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(&format!("/export?{query}")));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request")
}

/// The whole body of a successful export, with its content type.
async fn export_text(app: &TestApp, query: &str) -> (String, String) {
    let response = export(app, Some(&app.key), query).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_owned();
    (content_type, response.text().await.expect("body"))
}

/// The caller's events as `auditEvents` serves them.
async fn served(app: &TestApp, filter: Value, order: &str) -> Vec<Value> {
    let body = app.gql(EVENTS, json!({ "f": filter, "o": order })).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["auditEvents"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Events whose text needs quoting in CSV, one each of the others, and a look-alike of the
/// other tenant's. All are in service `billing`; the export events (service `traceledger`) are
/// therefore never among what the tests export.
async fn seed(app: &TestApp) -> usize {
    let tricky = [
        json!({
            "action": "invoice.update",
            "service": "billing",
            "actor": { "id": "alice", "name": "O'Brien, \"Bob\"", "ip": "10.0.0.1", "href": "/users/alice?a=1,2" },
            "target": { "id": "T-1", "type": "invoice", "name": "Q3, \"final\"", "href": "https://x.example/i/T-1" },
            "group": { "id": "org, \"1\"", "name": "Initech, Inc." },
            "crud": "U",
            "message": "a, b",
            "occurredAt": "2026-11-01T10:00:00Z",
            "idempotencyKey": "k-1",
            "requestId": "r-1",
            "traceId": "t-1",
        }),
        json!({
            "action": "invoice.create",
            "service": "billing",
            "actor": { "id": "bob", "type": "service" },
            "outcome": "FAILURE",
            "severity": "CRITICAL",
            "message": "line one\nline two\r\nline \"three\"",
            "metadata": { "note": "x,\"y\"\nz", "n": 1, "nested": { "list": [1, "two"] } },
            "occurredAt": "2026-11-01T10:00:00.123456Z",
        }),
        json!({
            "action": "user.login",
            "service": "billing",
            "actor": { "id": "carol" },
            "occurredAt": "2026-11-01T11:00:00Z",
        }),
    ];
    app.record_many_as(&app.key, &tricky).await;
    app.record_as(&app.other_key, tricky[0].clone()).await;
    app.wait_stored(TENANT, 3).await;
    app.wait_stored(OTHER_TENANT, 1).await;
    tricky.len()
}

/// The CSV row a served event must become, column by column in order.
fn flattened(node: &Value) -> Vec<(&'static str, String)> {
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let fields = [
        ("id", &node["id"]),
        ("tenant", &node["tenant"]),
        ("occurred_at", &node["occurredAt"]),
        ("received_at", &node["receivedAt"]),
        ("action", &node["action"]),
        ("outcome", &node["outcome"]),
        ("severity", &node["severity"]),
        ("service", &node["service"]),
        ("actor_id", &node["actor"]["id"]),
        ("actor_type", &node["actor"]["type"]),
        ("actor_name", &node["actor"]["name"]),
        ("actor_ip", &node["actor"]["ip"]),
        ("target_id", &node["target"]["id"]),
        ("target_type", &node["target"]["type"]),
        ("target_name", &node["target"]["name"]),
        ("message", &node["message"]),
        ("metadata", &node["metadata"]),
        ("idempotency_key", &node["idempotencyKey"]),
        ("request_id", &node["requestId"]),
        ("trace_id", &node["traceId"]),
        ("recorded_by_id", &node["recordedBy"]["id"]),
        ("recorded_by_type", &node["recordedBy"]["type"]),
        ("group_id", &node["group"]["id"]),
        ("group_name", &node["group"]["name"]),
        ("actor_href", &node["actor"]["href"]),
        ("target_href", &node["target"]["href"]),
        ("crud", &node["crud"]),
    ];
    fields
        .into_iter()
        .map(|(name, value)| (name, text(value)))
        .collect()
}

#[tokio::test]
async fn csv_quoting_of_commas_quotes_and_newlines_round_trips() {
    let app = TestApp::spawn().await;
    let count = seed(&app).await;
    let (content_type, body) =
        export_text(&app, "format=csv&orderBy=OCCURRED_AT_ASC&services=billing").await;
    assert_eq!(content_type, "text/csv; charset=utf-8");

    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|record| {
            let record = record.expect("a well-formed CSV record");
            record.iter().map(str::to_owned).collect()
        })
        .collect();
    let expected: Vec<_> = served(&app, json!({}), "OCCURRED_AT_ASC")
        .await
        .iter()
        .map(flattened)
        .collect();
    assert_eq!(rows.len(), count, "only the caller's events");
    let columns: Vec<&str> = expected[0].iter().map(|(name, _)| *name).collect();
    assert_eq!(header, columns);
    // Metadata is JSON text: compared as JSON; every other column as text.
    let as_json = |s: &str| -> Value {
        if s.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(s).expect("metadata JSON")
        }
    };
    for (row, want) in rows.iter().zip(&expected) {
        for (value, (column, wanted)) in row.iter().zip(want) {
            if *column == "metadata" {
                assert_eq!(as_json(value), as_json(wanted));
            } else {
                assert_eq!(value, wanted, "{column}");
            }
        }
    }
    assert!(rows[0].contains(&"Q3, \"final\"".to_owned()));
    assert!(rows[1].contains(&"line one\nline two\r\nline \"three\"".to_owned()));
}

#[tokio::test]
async fn ndjson_lines_are_the_events_and_filters_match_the_api() {
    let app = TestApp::spawn().await;
    let count = seed(&app).await;
    let (content_type, body) = export_text(&app, "format=ndjson&services=billing").await;
    assert_eq!(content_type, "application/x-ndjson");
    assert!(body.ends_with('\n'));
    let lines: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), count);
    // Newest first by default, field for field what auditEvents serves for the same filter (the
    // export's own event, service `traceledger`, may be stored by now).
    let same_filter = json!({ "services": ["billing"] });
    assert_eq!(lines, served(&app, same_filter, "OCCURRED_AT_DESC").await);

    let (_, body) = export_text(
        &app,
        "actions=invoice.*&actions=user.login&outcomes=SUCCESS&occurredAfter=2026-11-01T10:00:00Z\
         &occurredBefore=2026-11-01T11:00:00.000001Z&orderBy=OCCURRED_AT_ASC",
    )
    .await;
    let ids: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON")["id"].clone())
        .collect();
    let filter = json!({
        "actions": ["invoice.*", "user.login"],
        "outcomes": ["SUCCESS"],
        "occurredAfter": "2026-11-01T10:00:00Z",
        "occurredBefore": "2026-11-01T11:00:00.000001Z",
    });
    let want: Vec<Value> = served(&app, filter, "OCCURRED_AT_ASC")
        .await
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "{body}");
    assert_eq!(ids, want);
}

/// Lines of a streamed body, counted chunk by chunk; each complete line is handed to `check`
/// and dropped, so only a partial line is ever kept.
async fn count_lines(mut response: reqwest::Response, check: impl Fn(&[u8])) -> usize {
    let mut lines = 0;
    let mut partial: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("body chunk") {
        partial.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = partial[start..].iter().position(|&b| b == b'\n') {
            check(&partial[start..start + end]);
            lines += 1;
            start += end + 1;
        }
        partial.drain(..start);
    }
    assert!(partial.is_empty(), "the body ends with a full line");
    lines
}

#[tokio::test]
async fn an_export_of_100k_events_streams_every_row() {
    const EVENTS: usize = 100_000;
    const BATCH: usize = 1000;
    let app = TestApp::spawn().await;
    let start = Utc::now() - Duration::days(30);
    for batch in 0..EVENTS / BATCH {
        let events: Vec<_> = (0..BATCH)
            .map(|i| {
                stored_event(
                    TENANT,
                    start + Duration::seconds((batch * BATCH + i) as i64),
                )
            })
            .collect();
        app.store
            .insert_events(&events, traceledger::store::SearchBacklog::Skip)
            .await
            .expect("seed");
    }
    let others: Vec<_> = (0..BATCH)
        .map(|i| stored_event(OTHER_TENANT, start + Duration::seconds(i as i64)))
        .collect();
    app.store
        .insert_events(&others, traceledger::store::SearchBacklog::Skip)
        .await
        .expect("seed");

    let response = export(&app, Some(&app.key), "format=ndjson&services=billing").await;
    assert_eq!(response.status(), 200);
    let ndjson_lines = count_lines(response, |line| {
        let event: Value = serde_json::from_slice(line).expect("JSON line");
        assert_eq!(event["tenant"], TENANT);
    })
    .await;
    assert_eq!(ndjson_lines, EVENTS);

    let response = export(&app, Some(&app.key), "format=csv&services=billing").await;
    assert_eq!(response.status(), 200);
    let csv_lines = count_lines(response, |_| {}).await;
    assert_eq!(csv_lines, EVENTS + 1, "a header and one line per event");
}

#[tokio::test]
async fn exports_need_a_key_and_valid_parameters() {
    let app = TestApp::spawn().await;
    for key in [None, Some("tlk_not-a-key")] {
        let response = export(&app, key, "format=csv").await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
    for (query, field) in [
        ("format=xml", "format"),
        ("format=csv&occurredAfter=yesterday", "occurredAfter"),
        ("service=billing", "service"),
        ("orderBy=NEWEST", "orderBy"),
    ] {
        let response = export(&app, Some(&app.key), query).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.expect("JSON");
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1);
        assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(
            errors[0]["extensions"],
            json!({ "code": "BAD_USER_INPUT", "field": field }),
            "{query}"
        );
    }
    // Nothing was exported, so nothing was recorded.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.stored_count(TENANT).await, 0);
}

#[tokio::test]
async fn every_export_is_recorded_in_the_callers_tenant() {
    let app = TestApp::spawn().await;
    app.record(event("user.login")).await;
    app.wait_stored(TENANT, 1).await;
    let (_, body) = export_text(&app, "format=csv&services=billing&minSeverity=INFO").await;
    assert_eq!(body.lines().count(), 2);
    app.wait_stored(TENANT, 2).await;

    let key_id = app.key_id(TENANT, "test").await;
    let recorded = served(
        &app,
        json!({ "actions": ["traceledger.export"] }),
        "OCCURRED_AT_DESC",
    )
    .await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let export_event = &recorded[0];
    assert_eq!(export_event["service"], "traceledger");
    assert_eq!(
        export_event["actor"],
        json!({ "id": key_id.to_string(), "type": "api_key", "name": null, "ip": null, "href": null })
    );
    assert_eq!(
        export_event["metadata"],
        json!({
            "format": "csv",
            "orderBy": "OCCURRED_AT_DESC",
            "proofs": false,
            "filter": { "services": ["billing"], "minSeverity": "INFO" },
        })
    );
    assert_eq!(
        app.stored_count(OTHER_TENANT).await,
        0,
        "recorded in the caller's tenant only"
    );
}

/// Starts an export over a raw connection and reads only its status line and headers: a client
/// that never reads the body. Returns the connection (open) and the status line.
async fn stalled_export(app: &TestApp, key: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 256];
    let read = stream.read(&mut head).await.unwrap();
    let status = String::from_utf8_lossy(&head[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    (stream, status)
}

#[tokio::test]
async fn exports_that_nobody_reads_cannot_take_reads_from_another_tenant() {
    let app = TestApp::spawn_with(|config| {
        // Fewer interactive connections than the old shared pool's stalled exports took.
        config.database.max_connections = 2;
        config.database.stream_connections = 2;
        config.limits.max_exports_per_key = 2;
        config.http.export_send_timeout_ms = 1500;
    })
    .await;
    // Exports (45 MB) far larger than every buffer between the server and a client that stalls.
    let padding = "x".repeat(15_000);
    for chunk in 0..30 {
        let events: Vec<_> = (0..100)
            .map(|i| {
                let mut e = stored_event(TENANT, Utc::now() - Duration::seconds(chunk * 100 + i));
                e.metadata = Some(json!({ "padding": padding }));
                e
            })
            .collect();
        app.store
            .insert_events(&events, traceledger::store::SearchBacklog::Skip)
            .await
            .expect("seed");
    }
    let theirs = app.record_as(&app.other_key, event("theirs.visible")).await;
    app.wait_stored(OTHER_TENANT, 1).await;

    let mut stalled = Vec::new();
    for _ in 0..2 {
        let (stream, status) = stalled_export(&app, &app.key).await;
        assert!(status.contains(" 200 "), "{status}");
        stalled.push(stream);
    }
    // A third export of the same key is over its cap.
    let refused = export(&app, Some(&app.key), "format=ndjson").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    // Another tenant reads, by page, by id and by search, and records, as if nothing happened.
    for _ in 0..5 {
        let page = app
            .gql_as(
                &app.other_key,
                "{ auditEvents { edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            page["data"]["auditEvents"]["edges"][0]["node"]["id"], theirs["id"],
            "{page}"
        );
        let one = app
            .gql_as(
                &app.other_key,
                "query($id: ID!) { auditEvent(id: $id) { id } }",
                json!({ "id": theirs["id"] }),
            )
            .await;
        assert_eq!(one["data"]["auditEvent"]["id"], theirs["id"], "{one}");
        let found = app
            .gql_as(
                &app.other_key,
                "{ search(query: \"visible\") { hits { event { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            found["data"]["search"]["hits"][0]["event"]["id"], theirs["id"],
            "{found}"
        );
    }
    app.record_as(&app.other_key, event("theirs.more")).await;
    let ready = app.ready().await;
    assert_eq!(ready["postgres"]["status"], "up", "{ready}");

    // The stalled exports are ended after the send timeout: their slots and connections come
    // back, so the key can export again.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let again = export(&app, Some(&app.key), "format=ndjson&actions=none.such").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), "");
    drop(stalled);
}

#[tokio::test]
async fn statement_timeouts_bound_interactive_queries() {
    let app = TestApp::spawn_with(|config| config.database.statement_timeout_ms = 200).await;
    let slow = sqlx::query("SELECT pg_sleep(1)")
        .execute(app.store.pool())
        .await
        .expect_err("a statement longer than the timeout is cancelled");
    assert!(slow.to_string().contains("statement timeout"), "{slow}");
}

/// Every field of an event, each of them set, survives the store and reaches both export
/// formats: one place declares the event's columns, and a field it forgot would be lost here.
#[tokio::test]
async fn every_field_of_an_event_reaches_the_store_and_both_exports() {
    let app = TestApp::spawn().await;
    // Microseconds: what PostgreSQL keeps.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now() - Duration::minutes(1), 6);
    let mut full = stored_event(TENANT, at);
    full.actor.name = Some("Ann Admin".into());
    full.actor.ip = Some("10.1.2.3".into());
    full.actor.href = Some("https://app.example.com/users/ann".into());
    full.target = Some(traceledger::domain::Target {
        id: "inv-7".into(),
        kind: "invoice".into(),
        name: Some("January".into()),
        href: Some("/invoices/inv-7".into()),
    });
    full.group = Some(traceledger::domain::EventGroup {
        id: "org-7".into(),
        name: Some("Initech".into()),
    });
    full.crud = Some(traceledger::domain::Crud::U);
    full.message = Some("paid in full".into());
    full.metadata = Some(json!({ "amount": 12.5, "currency": "EUR" }));
    full.idempotency_key = Some("idem-7".into());
    full.request_id = Some("req-7".into());
    full.trace_id = Some("trace-7".into());
    full.recorded_by = Some(traceledger::domain::RecordedBy {
        id: "key-7".into(),
        kind: "api_key".into(),
    });
    app.store
        .insert_events(
            std::slice::from_ref(&full),
            traceledger::store::SearchBacklog::Skip,
        )
        .await
        .expect("seed");
    let stored = app
        .store
        .events_by_ids(TENANT, &[full.id])
        .await
        .expect("read back");
    assert_eq!(stored, vec![full.clone()], "a field was lost in the store");

    let (_, ndjson) = export_text(&app, "format=ndjson").await;
    let line: Value = serde_json::from_str(ndjson.lines().next().expect("a line")).unwrap();
    assert_eq!(line, serde_json::to_value(&full).unwrap(), "{ndjson}");

    let (_, csv) = export_text(&app, "format=csv").await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let row = reader.records().next().expect("a row").unwrap();
    let field = |name: &str| {
        let at = header.iter().position(|h| h == name);
        at.map(|i| row[i].to_owned())
            .unwrap_or_else(|| panic!("no {name} column in {header:?}"))
    };
    // Each field of the API's event, flattened, has its column holding the value.
    for (name, expected) in [
        ("id", full.id.to_string()),
        ("actor_name", "Ann Admin".into()),
        ("actor_ip", "10.1.2.3".into()),
        ("target_name", "January".into()),
        ("idempotency_key", "idem-7".into()),
        ("request_id", "req-7".into()),
        ("trace_id", "trace-7".into()),
        ("recorded_by_id", "key-7".into()),
        ("recorded_by_type", "api_key".into()),
        ("group_id", "org-7".into()),
        ("group_name", "Initech".into()),
        ("actor_href", "https://app.example.com/users/ann".into()),
        ("target_href", "/invoices/inv-7".into()),
        ("crud", "U".into()),
        ("severity", full.severity.as_str().into()),
    ] {
        assert_eq!(field(name), expected, "{name}");
    }
    let metadata: Value = serde_json::from_str(&field("metadata")).unwrap();
    assert_eq!(metadata, json!({ "amount": 12.5, "currency": "EUR" }));
    assert_eq!(header.len(), traceledger::domain::EVENT_COLUMNS.len());
}

#[tokio::test]
async fn a_spreadsheet_safe_csv_runs_no_recorded_value_as_a_formula() {
    let app = TestApp::spawn().await;
    let mut formula = crate::helpers::event("invoice.update");
    formula["message"] = json!("=HYPERLINK(\"http://evil.example\",\"click\")");
    formula["actor"] = json!({ "id": "@admin" });
    app.record(formula).await;
    app.wait_stored(TENANT, 1).await;

    let (_, safe) = export_text(&app, "format=csv&spreadsheetSafe=true").await;
    let mut reader = csv::Reader::from_reader(safe.as_bytes());
    let header = reader.headers().expect("header").clone();
    let row = reader.records().next().expect("a row").expect("a record");
    let field = |name: &str| row[header.iter().position(|h| h == name).expect(name)].to_owned();
    assert_eq!(
        field("message"),
        "'=HYPERLINK(\"http://evil.example\",\"click\")"
    );
    assert_eq!(field("actor_id"), "'@admin");
    assert_eq!(field("action"), "invoice.update");

    // Plain CSV stays exact; the option is for CSV only.
    let (_, exact) = export_text(&app, "format=csv").await;
    assert!(exact.contains(",@admin,"), "{exact}");
    let refused = export(&app, Some(&app.key), "format=ndjson&spreadsheetSafe=true").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["errors"][0]["extensions"]["field"], "spreadsheetSafe");
}
