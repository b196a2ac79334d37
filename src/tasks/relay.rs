//! The outbox relay: publishes batches that were accepted while the broker was unreachable, in
//! the order they were accepted, once it is back. Re-sending is safe: the worker stores an event
//! once however often its batch arrives.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::Publisher;
use crate::store::Store;

/// Batches taken from the outbox per transaction.
const DRAIN_BATCH: i64 = 100;

/// Runs until shutdown: wakes when a batch is parked (`wake`) and every `poll` in case another
/// instance parked one.
pub fn spawn_relay(
    store: Store,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    poll: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            relay(&store, &publisher).await;
        }
    })
}

/// Publishes everything waiting, as long as the broker takes it.
async fn relay(store: &Store, publisher: &Publisher) {
    loop {
        let drained = store
            .drain_outbox(DRAIN_BATCH, |entry| async move {
                publisher
                    .publish_payload(&entry.payload, entry.message_id.as_deref())
                    .await
            })
            .await;
        match drained {
            Ok(0) => break,
            Ok(n) => tracing::info!(batches = n, "outbox relayed to the broker"),
            Err(e) => {
                tracing::debug!(error = %e, "outbox not reachable");
                break;
            }
        }
    }
    if let Ok(depth) = store.outbox_depth().await {
        metrics::gauge!("traceledger_outbox_depth").set(depth as f64);
    }
}
