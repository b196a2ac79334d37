//! Audit events are append-only: UPDATE, DELETE and TRUNCATE through the application's own
//! connection fail, on the partitioned table and on each partition; retention
//! (`traceledger retention --before`) is the one way out, dropping whole months, and it is
//! recorded in tenant `_traceledger`.

use std::process::Command;

use chrono::{Datelike, Duration, TimeZone, Utc};

use traceledger::app::own_trail::SYSTEM_TENANT;

use crate::helpers::{received_event, stored_event, TestApp, TENANT};

#[tokio::test]
async fn updates_deletes_and_truncates_fail_through_the_applications_connection() {
    let app = TestApp::spawn().await;
    let event = stored_event(TENANT, Utc::now() - Duration::hours(1));
    app.store
        .insert_events(
            std::slice::from_ref(&event),
            traceledger::store::SearchBacklog::Skip,
        )
        .await
        .unwrap();
    let partition = app.partition_of(event.id).await;
    for statement in [
        "UPDATE audit_events SET message = 'rewritten'".to_owned(),
        "DELETE FROM audit_events".to_owned(),
        "TRUNCATE audit_events".to_owned(),
        format!("UPDATE {partition} SET message = 'rewritten'"),
        format!("DELETE FROM {partition}"),
        format!("TRUNCATE {partition}"),
        "TRUNCATE audit_events_default".to_owned(),
    ] {
        let error = sqlx::query(&statement)
            .execute(app.store.pool())
            .await
            .expect_err(&statement);
        let message = error.to_string();
        assert!(message.contains("append-only"), "{statement}: {message}");
    }
    let message: Option<String> =
        sqlx::query_scalar("SELECT message FROM audit_events WHERE id = $1")
            .bind(event.id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(message, None, "the event is unchanged");
    assert_eq!(app.stored_count(TENANT).await, 1);
}

#[tokio::test]
async fn retention_drops_whole_old_months_keeps_newer_ones_and_records_that_it_did() {
    // No worker: its partition upkeep would race the test's own ensure_partitions.
    let app = TestApp::spawn_without_worker(|_| {}).await;
    // The cutoff in the middle of a month a year ago: that month straddles it and is kept.
    let year_ago = Utc::now() - Duration::days(365);
    let cutoff = Utc
        .with_ymd_and_hms(year_ago.year(), year_ago.month(), 15, 0, 0, 0)
        .unwrap();
    let mut old = received_event(TENANT, cutoff - Duration::days(40));
    old.idempotency_key = Some("old-key".to_owned());
    let straddling = received_event(TENANT, cutoff - Duration::days(1));
    let recent = received_event(TENANT, Utc::now());
    app.store
        .insert_events(
            &[old.clone(), straddling.clone(), recent.clone()],
            traceledger::store::SearchBacklog::Skip,
        )
        .await
        .unwrap();
    // Months long past have no partition yet: their events wait in the default partition until
    // ensure_partitions gives them one.
    app.store.ensure_partitions(2).await.unwrap();
    let old_partition = app.partition_of(old.id).await;
    let straddling_partition = app.partition_of(straddling.id).await;
    assert_ne!(old_partition, "audit_events_default");
    assert_ne!(straddling_partition, "audit_events_default");

    let retention = || {
        Command::new(env!("CARGO_BIN_EXE_traceledger"))
            .args(["retention", "--before", &cutoff.to_rfc3339()])
            .args(["--operator", "ops-alice"])
            .env("TRACELEDGER_DATABASE_URL", &app.config.database.url)
            .output()
            .expect("run traceledger")
    };
    // Events not yet hashed into the ledger are not dropped: their leaves would be lost.
    let output = retention();
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not yet sealed into the ledger"),
        "{stderr}"
    );
    assert_eq!(app.stored_count(TENANT).await, 3);

    app.seal(TENANT).await;
    let output = retention();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("dropped {old_partition} (1 events)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("dropped 1 partitions, 1 events"),
        "{stdout}"
    );
    assert!(stdout.contains("straddling it are kept"), "{stdout}");

    let left: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant = $1 ORDER BY seq")
            .bind(TENANT)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(left, [straddling.id, recent.id]);
    let tables: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT to_regclass($1)::text, to_regclass($2)::text")
            .bind(&old_partition)
            .bind(&straddling_partition)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(tables, (None, Some(straddling_partition)));
    let keys = app
        .store
        .ids_by_idempotency_keys(TENANT, &["old-key".to_owned()])
        .await
        .unwrap();
    assert!(keys.is_empty(), "the dropped event's key goes with it");

    let (actor, metadata): (String, serde_json::Value) = sqlx::query_as(
        "SELECT actor_id, metadata FROM audit_events \
         WHERE tenant = $1 AND action = 'retention.purge'",
    )
    .bind(SYSTEM_TENANT)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(actor, "ops-alice");
    assert_eq!(metadata["deleted"], 1);
    assert_eq!(metadata["partitions"], serde_json::json!([old_partition]));
    // The index range it dropped, so that a verifier tells pruned from deleted.
    assert_eq!(
        metadata["ledgerRanges"],
        serde_json::json!([{ "tenant": TENANT, "from": 0, "to": 1 }])
    );
    // After it, the table is append-only still.
    assert!(sqlx::query("DELETE FROM audit_events")
        .execute(app.store.pool())
        .await
        .is_err());

    // A cutoff in the future would drop what is being recorded now: refused, nothing dropped.
    let output = Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .args(["retention", "--before", "2100-01-01"])
        .env("TRACELEDGER_DATABASE_URL", &app.config.database.url)
        .output()
        .expect("run traceledger");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot drop the current month"), "{stderr}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant = $1")
        .bind(TENANT)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 2);
}
