//! Audit events are append-only: UPDATE, DELETE and TRUNCATE through the application's own
//! connection fail; retention (`traceledger retention --before`) is the one way out, and it is
//! recorded in tenant `_traceledger`.

use std::process::Command;

use chrono::{Duration, Utc};

use traceledger::self_audit::SYSTEM_TENANT;

use crate::helpers::{stored_event, TestApp, TENANT};

#[tokio::test]
async fn updates_deletes_and_truncates_fail_through_the_applications_connection() {
    let app = TestApp::spawn().await;
    let event = stored_event(TENANT, Utc::now() - Duration::hours(1));
    app.store
        .insert_events(std::slice::from_ref(&event))
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_events SET message = 'rewritten'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let error = sqlx::query(statement)
            .execute(app.store.pool())
            .await
            .expect_err(statement);
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
async fn retention_deletes_only_old_events_and_records_that_it_did() {
    let app = TestApp::spawn().await;
    let old = stored_event(TENANT, Utc::now() - Duration::days(400));
    let recent = stored_event(TENANT, Utc::now() - Duration::days(1));
    app.store
        .insert_events(&[old.clone(), recent.clone()])
        .await
        .unwrap();
    let cutoff = (Utc::now() - Duration::days(365)).date_naive().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_traceledger"))
        .args(["retention", "--before", &cutoff, "--operator", "ops-alice"])
        .env("TRACELEDGER_DATABASE_URL", &app.config.database_url)
        .output()
        .expect("run traceledger");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("deleted 1 events"),
        "{output:?}"
    );

    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant = $1")
        .bind(TENANT)
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(left, [recent.id]);
    let (actor, deleted): (String, serde_json::Value) = sqlx::query_as(
        "SELECT actor_id, metadata -> 'deleted' FROM audit_events \
         WHERE tenant = $1 AND action = 'retention.purge'",
    )
    .bind(SYSTEM_TENANT)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(actor, "ops-alice");
    assert_eq!(deleted, 1);
    // After it, the table is append-only again.
    assert!(sqlx::query("DELETE FROM audit_events")
        .execute(app.store.pool())
        .await
        .is_err());
}
