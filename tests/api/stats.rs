//! Analytics: `eventStats` counts per UTC bucket and group against what was recorded, and
//! `processingMetrics` against the stored rows; never another tenant's events.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::helpers::{stored_event, TestApp, OTHER_TENANT, TENANT};

const STATS: &str = "query($f: AuditEventFilter, $g: [StatsGroupBy!]!, $i: StatsInterval!) { \
    eventStats(filter: $f, groupBy: $g, interval: $i) { \
        from to interval groupBy totalCount groupCount truncated \
        buckets { start count group { by value } } } }";

const METRICS: &str = "query($a: DateTime, $b: DateTime) { \
    processingMetrics(occurredAfter: $a, occurredBefore: $b) { \
        occurredAfter occurredBefore eventsRecorded throughputPerSecond \
        acceptToCommitLag { p50Ms p95Ms p99Ms } } }";

const DIMENSIONS: [&str; 6] = [
    "ACTION",
    "SERVICE",
    "ACTOR",
    "TARGET_TYPE",
    "OUTCOME",
    "SEVERITY",
];

/// A bucket as (start, group values, count).
type Row = (String, Vec<Option<String>>, i64);
type Expected = BTreeMap<(String, Vec<Option<String>>), i64>;

async fn stats(
    app: &TestApp,
    key: &str,
    filter: Value,
    group_by: &[&str],
    interval: &str,
) -> Value {
    let body = app
        .gql_as(
            key,
            STATS,
            json!({ "f": filter, "g": group_by, "i": interval }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["eventStats"].clone()
}

/// The buckets, checking that each names its dimensions in `groupBy` order.
fn rows(stats: &Value) -> Vec<Row> {
    let group_by = &stats["groupBy"];
    stats["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            let group = b["group"].as_array().expect("group");
            let by: Vec<Value> = group.iter().map(|g| g["by"].clone()).collect();
            assert_eq!(&Value::from(by), group_by, "{b}");
            (
                b["start"].as_str().expect("start").to_owned(),
                group
                    .iter()
                    .map(|g| g["value"].as_str().map(str::to_owned))
                    .collect(),
                b["count"].as_i64().expect("count"),
            )
        })
        .collect()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Twenty-four events over six hours of 2026-11-01, varied in every dimension.
fn varied_inputs() -> Vec<Value> {
    const ACTIONS: [&str; 3] = ["invoice.create", "invoice.update", "user.login"];
    const OUTCOMES: [&str; 3] = ["SUCCESS", "FAILURE", "UNKNOWN"];
    const SEVERITIES: [&str; 6] = ["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"];
    (0..24)
        .map(|i| {
            json!({
                "action": ACTIONS[i % 3],
                "service": if i % 2 == 0 { "billing" } else { "auth" },
                "actor": { "id": format!("actor-{}", i % 4) },
                "target": if i % 5 == 0 { Value::Null } else {
                    json!({ "id": "T", "type": if i % 2 == 0 { "invoice" } else { "account" } })
                },
                "outcome": OUTCOMES[i % 3],
                "severity": SEVERITIES[i % 6],
                "occurredAt": format!("2026-11-01T{:02}:{:02}:00Z", i % 6, i),
            })
        })
        .collect()
}

/// The value an input has for a dimension, as `eventStats` names it.
fn dimension_value(input: &Value, dimension: &str) -> Option<String> {
    let value = match dimension {
        "ACTION" => input["action"].clone(),
        "SERVICE" => input["service"].clone(),
        "ACTOR" => input["actor"]["id"].clone(),
        "TARGET_TYPE" => input["target"]["type"].clone(),
        "OUTCOME" => input["outcome"].clone(),
        "SEVERITY" => input["severity"].clone(),
        other => panic!("unknown dimension {other}"),
    };
    value.as_str().map(str::to_owned)
}

/// What the hour buckets must hold for `inputs` grouped by `dimensions`.
fn expected_hourly(inputs: &[Value], dimensions: &[&str]) -> Expected {
    let mut expected = BTreeMap::new();
    for input in inputs {
        let hour = &input["occurredAt"].as_str().expect("occurredAt")[..13];
        let group = dimensions
            .iter()
            .map(|d| dimension_value(input, d))
            .collect();
        *expected
            .entry((format!("{hour}:00:00Z"), group))
            .or_insert(0) += 1;
    }
    expected
}

fn as_map(rows: Vec<Row>) -> Expected {
    let len = rows.len();
    let map: BTreeMap<_, _> = rows.into_iter().map(|(s, g, n)| ((s, g), n)).collect();
    assert_eq!(map.len(), len, "a (bucket, group) is listed twice");
    map
}

#[tokio::test]
async fn counts_match_what_was_recorded_for_every_grouping() {
    let app = TestApp::spawn().await;
    let inputs = varied_inputs();
    app.record_many_as(&app.key, &inputs).await;
    // The other tenant's look-alikes, plus more, must never be counted.
    app.record_many_as(&app.other_key, &inputs).await;
    app.record_many_as(&app.other_key, &inputs[..5]).await;
    app.wait_stored(TENANT, 24).await;
    app.wait_stored(OTHER_TENANT, 29).await;
    let day = json!({ "occurredAfter": "2026-11-01T00:00:00Z", "occurredBefore": "2026-11-02T00:00:00Z" });

    for dimension in DIMENSIONS {
        let answer = stats(&app, &app.key, day.clone(), &[dimension], "HOUR").await;
        assert_eq!(answer["totalCount"], 24, "{dimension}");
        assert_eq!(answer["truncated"], false);
        let rows = rows(&answer);
        let starts: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        assert!(starts.is_sorted(), "buckets in time order: {starts:?}");
        assert_eq!(
            as_map(rows),
            expected_hourly(&inputs, &[dimension]),
            "{dimension}"
        );
    }

    let pair = ["SERVICE", "OUTCOME"];
    let answer = stats(&app, &app.key, day.clone(), &pair, "HOUR").await;
    let expected = expected_hourly(&inputs, &pair);
    assert_eq!(answer["groupCount"], 6);
    assert_eq!(as_map(rows(&answer)), expected);

    let answer = stats(&app, &app.key, day.clone(), &[], "DAY").await;
    assert_eq!(
        rows(&answer),
        [("2026-11-01T00:00:00Z".to_owned(), vec![], 24)]
    );

    let mut auth_only = day.clone();
    auth_only["services"] = json!(["auth"]);
    auth_only["minSeverity"] = json!("WARNING");
    let answer = stats(&app, &app.key, auth_only, &["SEVERITY"], "DAY").await;
    let expected: i64 = inputs
        .iter()
        .filter(|i| {
            i["service"] == "auth"
                && ["WARNING", "ERROR", "CRITICAL"].contains(&i["severity"].as_str().unwrap())
        })
        .count() as i64;
    assert!(expected > 0);
    assert_eq!(answer["totalCount"], expected);

    let answer = stats(&app, &app.other_key, day, &["ACTION"], "DAY").await;
    assert_eq!(
        answer["totalCount"], 29,
        "the other tenant sees its own events only"
    );
}

#[tokio::test]
async fn bucket_edges_are_utc() {
    let app = TestApp::spawn().await;
    let times = [
        "2026-11-01T10:59:59.999Z",
        "2026-11-01T11:00:00Z",
        // 01:30 UTC on the 2nd, and 23:30 UTC on October 31st.
        "2026-11-01T23:30:00-02:00",
        "2026-11-01T00:30:00+01:00",
    ];
    let inputs: Vec<Value> = times
        .iter()
        .map(|t| {
            let mut e = crate::helpers::event("user.login");
            e["occurredAt"] = json!(t);
            e
        })
        .collect();
    app.record_many_as(&app.key, &inputs).await;
    app.wait_stored(TENANT, 4).await;
    let range = json!({ "occurredAfter": "2026-10-31T00:00:00Z", "occurredBefore": "2026-11-03T00:00:00Z" });
    let starts = |answer: &Value| -> Vec<(String, i64)> {
        rows(answer).into_iter().map(|(s, _, n)| (s, n)).collect()
    };
    let owned = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    };

    let hourly = stats(&app, &app.key, range.clone(), &[], "HOUR").await;
    assert_eq!(
        starts(&hourly),
        owned(&[
            ("2026-10-31T23:00:00Z", 1),
            ("2026-11-01T10:00:00Z", 1),
            ("2026-11-01T11:00:00Z", 1),
            ("2026-11-02T01:00:00Z", 1),
        ])
    );
    let daily = stats(&app, &app.key, range.clone(), &[], "DAY").await;
    assert_eq!(
        starts(&daily),
        owned(&[
            ("2026-10-31T00:00:00Z", 1),
            ("2026-11-01T00:00:00Z", 2),
            ("2026-11-02T00:00:00Z", 1),
        ])
    );
    let minutes = json!({ "occurredAfter": "2026-11-01T10:00:00Z", "occurredBefore": "2026-11-01T12:00:00Z" });
    let by_minute = stats(&app, &app.key, minutes, &[], "MINUTE").await;
    assert_eq!(
        starts(&by_minute),
        owned(&[("2026-11-01T10:59:00Z", 1), ("2026-11-01T11:00:00Z", 1)])
    );
    // occurredAfter is inclusive, occurredBefore exclusive.
    let edge = json!({ "occurredAfter": "2026-11-01T10:59:59.999Z", "occurredBefore": "2026-11-01T11:00:00Z" });
    let answer = stats(&app, &app.key, edge, &[], "HOUR").await;
    assert_eq!(starts(&answer), owned(&[("2026-11-01T10:00:00Z", 1)]));
}

#[tokio::test]
async fn the_default_range_is_the_last_24_hours() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let inputs: Vec<Value> = [Duration::hours(25), Duration::hours(1)]
        .iter()
        .map(|ago| {
            let mut e = crate::helpers::event("user.login");
            e["occurredAt"] = json!(rfc3339(now - *ago));
            e
        })
        .collect();
    app.record_many_as(&app.key, &inputs).await;
    app.wait_stored(TENANT, 2).await;
    let answer = stats(&app, &app.key, Value::Null, &["ACTION"], "HOUR").await;
    assert_eq!(answer["totalCount"], 1);
    let from = at(answer["from"].as_str().unwrap());
    let to = at(answer["to"].as_str().unwrap());
    assert_eq!(to - from, Duration::hours(24));
    assert!((to - now).num_seconds().abs() < 60, "ends now: {to}");
    let rows = rows(&answer);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, [Some("user.login".to_owned())]);
}

#[tokio::test]
async fn only_the_largest_groups_are_kept_and_the_cut_is_reported() {
    let app = TestApp::spawn().await;
    // Sixty actions: the first ten twice, the rest once.
    let inputs: Vec<Value> = (0..60)
        .flat_map(|i| {
            let mut e = crate::helpers::event(&format!("bulk.a{i:02}"));
            e["occurredAt"] = json!("2026-11-01T12:00:00Z");
            vec![e; if i < 10 { 2 } else { 1 }]
        })
        .collect();
    app.record_many_as(&app.key, &inputs).await;
    app.wait_stored(TENANT, 70).await;
    let day = json!({ "occurredAfter": "2026-11-01T00:00:00Z", "occurredBefore": "2026-11-02T00:00:00Z" });
    let answer = stats(&app, &app.key, day, &["ACTION"], "DAY").await;
    assert_eq!(answer["totalCount"], 70);
    assert_eq!(answer["groupCount"], 60);
    assert_eq!(answer["truncated"], true);
    let rows = rows(&answer);
    assert_eq!(rows.len(), 50);
    let counts: Vec<i64> = rows.iter().map(|r| r.2).collect();
    assert_eq!(counts[..10], [2; 10], "the largest groups come first");
    assert!(counts[10..].iter().all(|&n| n == 1));
}

#[tokio::test]
async fn bad_arguments_name_their_field() {
    let app = TestApp::spawn().await;
    let two_days = json!({ "occurredAfter": "2026-11-01T00:00:00Z", "occurredBefore": "2026-11-03T00:00:00Z" });
    let empty = json!({ "occurredAfter": "2026-11-01T00:00:00Z", "occurredBefore": "2026-11-01T00:00:00Z" });
    for (filter, group_by, interval, field) in [
        (two_days.clone(), vec!["ACTION"], "MINUTE", "interval"),
        (
            two_days,
            vec!["ACTION", "SERVICE", "ACTION"],
            "HOUR",
            "groupBy",
        ),
        (empty, vec![], "HOUR", "filter.occurredBefore"),
    ] {
        let body = app
            .gql(STATS, json!({ "f": filter, "g": group_by, "i": interval }))
            .await;
        let error = &body["errors"][0]["extensions"];
        assert_eq!(error["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(error["field"], field, "{body}");
    }
    let body = app
        .gql(
            METRICS,
            json!({ "a": "2026-11-02T00:00:00Z", "b": "2026-11-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "occurredBefore");
}

/// The continuous percentile `p` of sorted values, interpolated as PostgreSQL's
/// `percentile_cont` is documented to.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

fn assert_close(actual: &Value, expected: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("a number: {actual}"));
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{actual} != {expected}"
    );
}

#[tokio::test]
async fn processing_metrics_match_the_stored_rows() {
    let app = TestApp::spawn().await;
    let (from, to) = (at("2026-11-05T00:00:00Z"), at("2026-11-05T01:00:00Z"));
    // Five through the pipeline, with the lag it really had…
    let inputs: Vec<Value> = (0..5)
        .map(|i| {
            let mut e = crate::helpers::event("user.login");
            e["occurredAt"] = json!(rfc3339(from + Duration::minutes(i * 10)));
            e
        })
        .collect();
    app.record_many_as(&app.key, &inputs).await;
    // …a hundred straight into the store, accepted at spread-out times, so the lags differ…
    let now = Utc::now();
    let seeded: Vec<_> = (0..100)
        .map(|i| {
            let mut e = stored_event(TENANT, from + Duration::seconds(i));
            e.received_at = now - Duration::milliseconds(7 * i);
            e
        })
        .collect();
    app.store
        .insert_events(&seeded, traceledger::store::SearchBacklog::Skip)
        .await
        .expect("seed");
    // …and events that must not count: the other tenant's, and ours outside the range.
    let other: Vec<_> = (0..10)
        .map(|i| stored_event(OTHER_TENANT, from + Duration::seconds(i)))
        .collect();
    let outside = vec![
        stored_event(TENANT, to),
        stored_event(TENANT, from - Duration::seconds(1)),
    ];
    app.store
        .insert_events(&other, traceledger::store::SearchBacklog::Skip)
        .await
        .expect("seed");
    app.store
        .insert_events(&outside, traceledger::store::SearchBacklog::Skip)
        .await
        .expect("seed");
    app.wait_stored(TENANT, 107).await;

    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT received_at, recorded_at FROM audit_events \
         WHERE tenant = $1 AND occurred_at >= $2 AND occurred_at < $3",
    )
    .bind(TENANT)
    .bind(from)
    .bind(to)
    .fetch_all(app.store.pool())
    .await
    .expect("rows");
    assert_eq!(rows.len(), 105);
    let mut lags: Vec<f64> = rows
        .iter()
        .map(|(received, recorded)| {
            (*recorded - *received).num_microseconds().unwrap() as f64 / 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);

    let body = app
        .gql(METRICS, json!({ "a": rfc3339(from), "b": rfc3339(to) }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let metrics = &body["data"]["processingMetrics"];
    assert_eq!(metrics["eventsRecorded"], 105);
    assert_close(&metrics["throughputPerSecond"], 105.0 / 3600.0);
    let lag = &metrics["acceptToCommitLag"];
    assert_close(&lag["p50Ms"], percentile(&lags, 0.5));
    assert_close(&lag["p95Ms"], percentile(&lags, 0.95));
    assert_close(&lag["p99Ms"], percentile(&lags, 0.99));
    assert!(lag["p50Ms"].as_f64() < lag["p99Ms"].as_f64(), "{lag}");

    let body = app
        .gql(
            METRICS,
            json!({ "a": "2026-11-06T00:00:00Z", "b": "2026-11-06T01:00:00Z" }),
        )
        .await;
    let metrics = &body["data"]["processingMetrics"];
    assert_eq!(metrics["eventsRecorded"], 0, "{body}");
    assert_eq!(metrics["throughputPerSecond"], 0.0);
    assert_eq!(metrics["acceptToCommitLag"], Value::Null);
}

#[tokio::test]
async fn the_lag_includes_the_time_the_worker_spends_writing() {
    let app = TestApp::spawn().await;
    // The worker's insert statement takes 400 ms before it writes its rows, as a big batch does.
    for statement in [
        "CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$
         BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER test_slow_insert BEFORE INSERT ON audit_events
         FOR EACH STATEMENT EXECUTE FUNCTION test_slow_insert()",
    ] {
        sqlx::query(statement)
            .execute(app.store.pool())
            .await
            .expect("test trigger");
    }
    let mut e = crate::helpers::event("user.login");
    e["occurredAt"] = json!("2026-11-06T00:00:00Z");
    app.record(e).await;
    app.wait_stored(TENANT, 1).await;
    let body = app
        .gql(
            "{ processingMetrics(occurredAfter: \"2026-11-06T00:00:00Z\", occurredBefore: \"2026-11-07T00:00:00Z\") { eventsRecorded acceptToCommitLag { p50Ms } } }",
            json!({}),
        )
        .await;
    let metrics = &body["data"]["processingMetrics"];
    assert_eq!(metrics["eventsRecorded"], 1, "{body}");
    let lag = metrics["acceptToCommitLag"]["p50Ms"]
        .as_f64()
        .expect("a lag");
    assert!(lag >= 400.0, "the write's 400 ms are missing from {lag} ms");
}
