//! The ledger's order: every stored event has a `ledger_index`, 0, 1, 2, … per tenant, with no
//! gap and no repeat, decided in the worker's batch commit whatever runs at once: two workers,
//! many tenants, redelivered batches, and the retention function's own event.

use chrono::{Duration, Utc};
use futures::future::join_all;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use traceledger::access::auth::create_api_key;
use traceledger::store::SearchBacklog;

use crate::helpers::{received_event, stored_event, TestApp, TENANT};

/// The tenant's indices in order, and its head's size, read in one snapshot.
async fn ledger(app: &TestApp, tenant: &str) -> (Vec<i64>, i64) {
    let (indices, size): (Vec<i64>, Option<i64>) = sqlx::query_as(
        "SELECT coalesce(array_agg(ledger_index ORDER BY ledger_index), '{}'), \
                (SELECT size FROM ledger_heads WHERE tenant = $1) \
         FROM audit_events WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_one(app.store.pool())
    .await
    .expect("the tenant's ledger");
    (indices, size.unwrap_or(0))
}

fn assert_gap_free(tenant: &str, indices: &[i64], size: i64) {
    let expected: Vec<i64> = (0..size).collect();
    assert_eq!(
        indices, expected,
        "tenant {tenant}: every index 0..{size} once"
    );
}

#[tokio::test]
async fn two_workers_give_every_tenant_one_gap_free_sequence() {
    let app = TestApp::spawn().await;
    // A second worker on the same queue and database, committing batches beside the first.
    let shutdown = CancellationToken::new();
    let (settings, broker) = (app.config.worker.clone(), app.config.broker.clone());
    let (store, stop) = (app.store.clone(), shutdown.clone());
    let second = tokio::spawn(async move {
        traceledger::tasks::worker::run(&settings, &broker, SearchBacklog::Skip, store, stop).await
    });
    let tenants = ["ledger-a", "ledger-b", "ledger-c", "ledger-d"];
    let mut keys = Vec::new();
    for tenant in tenants {
        let key = create_api_key(&app.store, tenant, "ledger").await.unwrap();
        keys.push(key.secret);
    }
    const CALLS: usize = 10;
    const PER_CALL: usize = 20;
    let app = &app;
    let calls = keys.iter().flat_map(|key| {
        (0..CALLS).map(move |call| {
            let inputs: Vec<_> = (0..PER_CALL)
                .map(|i| {
                    json!({
                        "action": "ledger.append",
                        "service": "billing",
                        "actor": { "id": format!("u{call}-{i}") },
                    })
                })
                .collect();
            async move { app.record_many_as(key, &inputs).await }
        })
    });
    join_all(calls).await;
    for tenant in tenants {
        app.wait_stored(tenant, (CALLS * PER_CALL) as i64).await;
        let (indices, size) = ledger(app, tenant).await;
        assert_eq!(size, (CALLS * PER_CALL) as i64, "{tenant}");
        assert_gap_free(tenant, &indices, size);
    }
    shutdown.cancel();
    second.await.expect("the second worker stops");
}

#[tokio::test]
async fn a_redelivered_or_repeated_event_gets_no_second_index() {
    let app = TestApp::spawn().await;
    let at = Utc::now() - Duration::minutes(1);
    let batch = vec![stored_event(TENANT, at), stored_event(TENANT, at)];
    let stored = app
        .store
        .insert_events(&batch, SearchBacklog::Skip)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    // The same batch again (a redelivery), and one repeating an event inside itself.
    let again = app
        .store
        .insert_events(&batch, SearchBacklog::Skip)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let third = stored_event(TENANT, at);
    let repeated = vec![third.clone(), batch[0].clone(), third];
    let stored = app
        .store
        .insert_events(&repeated, SearchBacklog::Skip)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let (indices, size) = ledger(&app, TENANT).await;
    assert_eq!(size, 3);
    assert_gap_free(TENANT, &indices, size);
    // In commit order: the first batch's events first, in batch order.
    let first: Vec<i64> = sqlx::query_scalar(
        "SELECT ledger_index FROM audit_events WHERE id = ANY($1) ORDER BY ledger_index",
    )
    .bind([batch[0].id, batch[1].id])
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert_eq!(first, vec![0, 1]);
}

#[tokio::test]
async fn retention_records_its_drop_at_the_next_index_of_the_service_ledger() {
    let app = TestApp::spawn().await;
    let cutoff = Utc::now() - Duration::days(40);
    let old = received_event(TENANT, cutoff - Duration::days(40));
    app.store
        .insert_events(std::slice::from_ref(&old), SearchBacklog::Skip)
        .await
        .unwrap();
    app.store.ensure_partitions(2).await.unwrap();
    // The row moved out of the default partition keeps its index.
    let (indices, _) = ledger(&app, TENANT).await;
    assert_eq!(indices, vec![0]);
    app.seal(TENANT).await;
    let dropped = app
        .store
        .drop_partitions_before(cutoff, "ops-alice")
        .await
        .expect("retention");
    assert!(!dropped.is_empty());
    let purge: i64 = sqlx::query_scalar(
        "SELECT ledger_index FROM audit_events \
         WHERE tenant = '_traceledger' AND action = 'retention.purge'",
    )
    .fetch_one(app.store.pool())
    .await
    .expect("the drop is recorded");
    let (indices, size) = ledger(&app, "_traceledger").await;
    assert!(indices.contains(&purge));
    assert_gap_free("_traceledger", &indices, size);
}
