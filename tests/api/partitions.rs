//! `audit_events` is partitioned by month of receipt (the time in each UUIDv7 id): events go to
//! their month's partition, a month without one falls back to the default partition until the
//! partitions are ensured, and the batch insert stays idempotent across partitions.

use chrono::{Datelike, Duration, Months, Utc};

use crate::helpers::{received_event, TestApp, TENANT};

fn partition_name(at: chrono::DateTime<Utc>) -> String {
    format!("audit_events_{:04}_{:02}", at.year(), at.month())
}

#[tokio::test]
async fn events_are_stored_in_the_partition_of_their_receipt_month() {
    // No worker: its partition upkeep would race the test's own ensure_partitions.
    let app = TestApp::spawn_without_worker(|_| {}).await;
    let now = Utc::now();
    let current = received_event(TENANT, now);
    // Months ago: no partition exists for it yet.
    let late = received_event(TENANT, now - Months::new(3));
    app.store
        .insert_events(
            &[current.clone(), late.clone()],
            traceledger::store::SearchBacklog::Skip,
        )
        .await
        .unwrap();
    assert_eq!(app.partition_of(current.id).await, partition_name(now));
    assert_eq!(app.partition_of(late.id).await, "audit_events_default");
    let seq_before: i64 = sqlx::query_scalar("SELECT seq FROM audit_events WHERE id = $1")
        .bind(late.id)
        .fetch_one(app.store.pool())
        .await
        .unwrap();

    let created = app.store.ensure_partitions(2).await.unwrap();
    assert_eq!(created, 1, "the late event's month");
    assert_eq!(
        app.partition_of(late.id).await,
        partition_name(now - Months::new(3))
    );
    let (in_default, seq_after): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM audit_events_default), \
                (SELECT seq FROM audit_events WHERE id = $1)",
    )
    .bind(late.id)
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(
        in_default, 0,
        "ensure_partitions keeps the default partition empty"
    );
    assert_eq!(
        seq_after, seq_before,
        "a moved event keeps its stored order"
    );
    // The months ahead are ready before their first event.
    for months_ahead in [1, 2] {
        let name = partition_name(now + Months::new(months_ahead));
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&name)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        assert_eq!(exists, Some(name));
    }
    assert_eq!(app.store.ensure_partitions(2).await.unwrap(), 0);
    assert_eq!(app.stored_count(TENANT).await, 2);
    // Redelivered after it moved, the late event is still recognised: no second row.
    assert_eq!(
        app.store
            .insert_events(
                &[late.clone(), current.clone()],
                traceledger::store::SearchBacklog::Skip
            )
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.stored_count(TENANT).await, 2);
}

#[tokio::test]
async fn a_redelivered_batch_is_stored_once_and_the_first_event_of_a_key_wins() {
    let app = TestApp::spawn_without_worker(|_| {}).await;
    let now = Utc::now();
    let mut first = received_event(TENANT, now - Duration::seconds(2));
    first.idempotency_key = Some("k-1".to_owned());
    let mut second = received_event(TENANT, now - Duration::seconds(1));
    second.idempotency_key = Some("k-1".to_owned());
    let unkeyed = received_event(TENANT, now);
    let batch = [first.clone(), second.clone(), unkeyed.clone()];

    assert_eq!(
        app.store
            .insert_events(&batch, traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        app.store
            .insert_events(&batch, traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap(),
        0,
        "redelivery"
    );
    let mut later = received_event(TENANT, now);
    later.idempotency_key = Some("k-1".to_owned());
    assert_eq!(
        app.store
            .insert_events(&[later.clone()], traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap(),
        0
    );

    let stored: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM audit_events WHERE tenant = $1 ORDER BY seq")
            .bind(TENANT)
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(stored, [first.id, unkeyed.id], "in batch order");
    // The ids that lost the key point at its owner.
    let superseded = app
        .store
        .superseding_ids(TENANT, &[second.id, later.id, first.id])
        .await
        .unwrap();
    assert_eq!(superseded.get(&second.id), Some(&first.id));
    assert_eq!(superseded.get(&later.id), Some(&first.id));
    assert_eq!(superseded.get(&first.id), None);
    let keys = app
        .store
        .ids_by_idempotency_keys(TENANT, &["k-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(keys.get("k-1"), Some(&first.id));
    // The same key in another tenant is another key.
    let mut other = received_event("globex", now);
    other.idempotency_key = Some("k-1".to_owned());
    assert_eq!(
        app.store
            .insert_events(&[other], traceledger::store::SearchBacklog::Skip)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_key_stored_by_two_workers_at_once_has_one_owner_and_both_ids_resolve() {
    let app = TestApp::spawn_without_worker(|_| {}).await;
    let now = Utc::now();
    let mut first = received_event(TENANT, now - Duration::seconds(1));
    first.idempotency_key = Some("k-race".to_owned());
    let mut second = received_event(TENANT, now);
    second.idempotency_key = Some("k-race".to_owned());

    // One worker's batch statement runs first and has not committed yet…
    let mut in_flight = app.store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO audit_idempotency_keys (tenant, idempotency_key, event_id) VALUES ($1, $2, $3)",
    )
    .bind(TENANT)
    .bind("k-race")
    .bind(first.id)
    .execute(&mut *in_flight)
    .await
    .unwrap();
    // …when another's, with the same key, starts: it waits for the first to finish.
    let store = app.store.clone();
    let racing = {
        let second = second.clone();
        tokio::spawn(async move {
            store
                .insert_events(&[second], traceledger::store::SearchBacklog::Skip)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !racing.is_finished(),
        "the second claim waits for the first"
    );
    in_flight.commit().await.unwrap();
    assert_eq!(racing.await.unwrap().unwrap(), 0, "the key is taken");

    let superseded = app
        .store
        .superseding_ids(TENANT, &[second.id])
        .await
        .unwrap();
    assert_eq!(superseded.get(&second.id), Some(&first.id));
}
