//! The worker: consume the durable worker queue, gather a batch, commit it to PostgreSQL in one
//! statement, and only then acknowledge it. It runs inside `traceledger serve` or on its own as
//! `traceledger-worker`.
//!
//! A message that can never be stored (undecodable, invalid, or refused by the database) goes to
//! the dead-letter queue at once, with the reason in its headers. A message that failed for a
//! passing reason (a deadlock, a timeout) goes through the retry queues, each with a longer TTL,
//! and is dead-lettered after the last. While PostgreSQL is unreachable the batch stays
//! unacknowledged and is retried with backoff, using up no attempts. If the worker dies, the
//! broker redelivers what it had not acknowledged, and the insert skips rows already stored.

use std::ops::Range;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use tokio_util::sync::CancellationToken;

use crate::backoff::{sleep_unless_shutdown, Backoff};
use crate::bus::{self, decode_batch, BrokerSettings, BusError, Failure, Topology};
use crate::domain::AuditEvent;
use crate::store::{SearchBacklog, Store, StoreError};

/// Backoff while the database is out of reach, and while the broker is.
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Monthly partitions of `audit_events` kept ready beyond the current month, so the first events
/// of a month never wait on DDL.
const PARTITION_MONTHS_AHEAD: i32 = 2;
/// How often the worker checks the partitions; checking is cheap, creating one is rare.
const PARTITION_CHECK_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the broker closed the worker's consumer")]
    ConsumerClosed,
}

impl From<lapin::Error> for WorkerError {
    fn from(e: lapin::Error) -> Self {
        WorkerError::Bus(e.into())
    }
}

/// How the worker gathers its batches.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Worker")]
pub struct WorkerSettings {
    /// The worker commits a batch after this many messages…
    #[arg(
        value_name = "BATCH_SIZE",
        id = "batch-size",
        long = "batch-size",
        env = "TRACELEDGER_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: usize,

    /// …or this long after the batch's first message, whichever comes first.
    #[arg(
        value_name = "BATCH_TIMEOUT_MS",
        id = "batch-timeout-ms",
        long = "batch-timeout-ms",
        env = "TRACELEDGER_BATCH_TIMEOUT_MS",
        default_value_t = 50
    )]
    pub batch_timeout_ms: u64,

    /// Unacknowledged messages the broker hands one worker at a time.
    #[arg(
        value_name = "PREFETCH",
        id = "prefetch",
        long = "prefetch",
        env = "TRACELEDGER_PREFETCH",
        default_value_t = 1000
    )]
    pub prefetch: u16,
}

/// What one worker consumes, how, and where its commits go.
struct Plan {
    amqp_url: String,
    topology: Topology,
    batch_size: usize,
    batch_timeout: Duration,
    prefetch: u16,
    backlog: SearchBacklog,
}

/// Runs until `shutdown`, reconnecting to the broker when it goes away. On shutdown the batch in
/// flight is committed and acknowledged before returning. With `SearchBacklog::Queue` every
/// stored event is queued for the search indexer in the same commit.
pub async fn run(
    settings: &WorkerSettings,
    broker: &BrokerSettings,
    backlog: SearchBacklog,
    store: Store,
    shutdown: CancellationToken,
) {
    let settings = Plan {
        amqp_url: broker.url.clone(),
        topology: broker.topology(),
        batch_size: settings.batch_size.max(1),
        batch_timeout: Duration::from_millis(settings.batch_timeout_ms),
        prefetch: settings.prefetch,
        backlog,
    };
    let partitions = tokio::spawn(keep_partitions(store.clone(), shutdown.clone()));
    let mut backoff = Backoff::new(RETRY_FIRST_DELAY, RETRY_MAX_DELAY);
    while !shutdown.is_cancelled() {
        match consume(&settings, &store, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "worker lost the broker; reconnecting");
                if !backoff.wait(&shutdown).await {
                    break;
                }
            }
        }
    }
    let _ = partitions.await;
    tracing::info!("worker stopped");
}

/// Makes sure, at start-up and then hourly, that this month's and the next months' partitions
/// exist (and that the default partition is emptied), away from the batch path: an insert never
/// runs DDL. Retries sooner while the database is out of reach.
async fn keep_partitions(store: Store, shutdown: CancellationToken) {
    loop {
        let next_check = match store.ensure_partitions(PARTITION_MONTHS_AHEAD).await {
            Ok(created) => {
                if created > 0 {
                    tracing::info!(created, "audit_events partitions created");
                }
                PARTITION_CHECK_EVERY
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not check audit_events partitions");
                RETRY_MAX_DELAY
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(next_check) => {}
        }
    }
}

async fn consume(
    settings: &Plan,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let connection = bus::connect(&settings.amqp_url, "traceledger-worker").await?;
    let channel = connection.create_channel().await?;
    settings.topology.declare(&channel).await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let republish = connection.create_channel().await?;
    republish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            settings.topology.worker_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %settings.topology.worker_queue, "worker consuming");
    let batch = Batcher {
        store,
        republish: &republish,
        topology: &settings.topology,
        backlog: settings.backlog,
        shutdown,
    };
    while let Some(deliveries) = next_batch(&mut consumer, settings, shutdown).await? {
        batch.commit(deliveries).await?;
    }
    // Shutting down: nothing is in flight; unacknowledged prefetched messages go back.
    let _ = channel
        .close(bus::CLOSE_NORMAL, "worker shutting down".into())
        .await;
    let _ = connection
        .close(bus::CLOSE_NORMAL, "worker shutting down".into())
        .await;
    Ok(())
}

/// Waits for a first message, then gathers more until the batch is full or its time is up.
/// `None` once shutdown is requested and nothing is pending.
async fn next_batch(
    consumer: &mut Consumer,
    settings: &Plan,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<Delivery>>, WorkerError> {
    let first = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(None),
        next = consumer.next() => next.ok_or(WorkerError::ConsumerClosed)??,
    };
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + settings.batch_timeout;
    while batch.len() < settings.batch_size {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            next = consumer.next() => match next {
                Some(delivery) => batch.push(delivery?),
                None => break,
            },
        }
    }
    Ok(Some(batch))
}

struct Batcher<'a> {
    store: &'a Store,
    /// A confirm-mode channel for moving messages to retry and dead-letter queues.
    republish: &'a Channel,
    topology: &'a Topology,
    backlog: SearchBacklog,
    shutdown: &'a CancellationToken,
}

impl Batcher<'_> {
    /// Stores a batch and acknowledges it; sends what failed on to a retry queue or, for good,
    /// to the dead-letter queue.
    async fn commit(&self, deliveries: Vec<Delivery>) -> Result<(), WorkerError> {
        // Every message's events in one list, each message knowing its own span of it: the batch
        // is inserted whole, and on failure message by message, without copying any event.
        let mut events: Vec<AuditEvent> = Vec::new();
        let mut decoded: Vec<(Delivery, Range<usize>)> = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            // A message may join several callers' events, of several tenants. An invalid event
            // dead-letters the whole message, but the API checks every event against these same
            // rules before publishing, so only a message not published by the API can fail here:
            // one caller's event never takes another's to the dead-letter queue this way.
            match decode_batch(&delivery.data) {
                Ok(mut message_events) => {
                    let start = events.len();
                    events.append(&mut message_events);
                    decoded.push((delivery, start..events.len()));
                }
                Err(e) => self.dead_letter(delivery, &e.to_string()).await?,
            }
        }
        let Some((last, _)) = decoded.last() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        match self.insert_when_reachable(&events).await {
            None => Ok(()),
            Some(Ok(stored)) => {
                metrics::histogram!("traceledger_worker_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("traceledger_worker_batch_events").record(events.len() as f64);
                metrics::counter!("traceledger_events_stored_total").increment(stored);
                record_lag(&events);
                tracing::debug!(
                    messages = decoded.len(),
                    events = events.len(),
                    stored,
                    "batch committed"
                );
                // One ack for the whole batch: it covers every earlier delivery on this channel,
                // all of which belong to this batch.
                last.acker.ack(BasicAckOptions { multiple: true }).await?;
                Ok(())
            }
            Some(Err(batch_error)) => {
                // Store each message alone, so one bad or unlucky message does not hold up the
                // others, and each failure is charged to the message that caused it. A message is
                // retried or dead-lettered whole, with every caller's events in it: a retry skips
                // rows already stored, and a replay stores each event once under its own id.
                tracing::warn!(error = %batch_error, "batch failed; storing its messages one by one");
                for (delivery, span) in decoded {
                    match self.insert_when_reachable(&events[span]).await {
                        None => return Ok(()),
                        Some(Ok(stored)) => {
                            metrics::counter!("traceledger_events_stored_total").increment(stored);
                            delivery.acker.ack(BasicAckOptions::default()).await?;
                        }
                        Some(Err(e)) if e.is_transient() => {
                            self.retry(delivery, &e.to_string()).await?
                        }
                        Some(Err(e)) => self.dead_letter(delivery, &e.to_string()).await?,
                    }
                }
                Ok(())
            }
        }
    }

    /// Inserts, waiting (unacknowledged, with backoff) while the database is out of reach: an
    /// outage is nobody's fault and must not use up a message's attempts. `None` if shutdown came
    /// first; otherwise the stored count or the error the database gave.
    async fn insert_when_reachable(
        &self,
        events: &[AuditEvent],
    ) -> Option<Result<u64, StoreError>> {
        let mut backoff = Backoff::new(RETRY_FIRST_DELAY, RETRY_MAX_DELAY);
        loop {
            match self.store.insert_events(events, self.backlog).await {
                Err(e) if e.is_unavailable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "database unavailable; batch kept");
                    if !sleep_unless_shutdown(delay, self.shutdown).await {
                        return None;
                    }
                }
                done => return Some(done),
            }
        }
    }

    /// Sends a message to the retry queue for its next attempt, or, when it has none left, to
    /// the dead-letter queue.
    async fn retry(&self, delivery: Delivery, reason: &str) -> Result<(), WorkerError> {
        let failure = Failure::of(&delivery.properties).failed_again(reason);
        let Some(queue) = self.topology.retry_queue(failure.attempts as usize) else {
            let reason = format!("gave up after {} attempts: {reason}", failure.attempts);
            return self.bury(delivery, &failure, &reason).await;
        };
        tracing::info!(attempt = failure.attempts, %queue, reason, "retrying a message later");
        metrics::counter!("traceledger_worker_retries_total").increment(1);
        self.republish(&queue, &delivery, failure.stamp(&delivery.properties))
            .await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Moves a message that can never be stored to the dead-letter queue at once.
    async fn dead_letter(&self, delivery: Delivery, reason: &str) -> Result<(), WorkerError> {
        let failure = Failure::of(&delivery.properties).failed_again(reason);
        self.bury(delivery, &failure, reason).await
    }

    async fn bury(
        &self,
        delivery: Delivery,
        failure: &Failure,
        reason: &str,
    ) -> Result<(), WorkerError> {
        tracing::warn!(
            reason,
            attempts = failure.attempts,
            "dead-lettering a message"
        );
        metrics::counter!("traceledger_dead_letters_total").increment(1);
        let properties = failure.stamp_dead(&delivery.properties, reason);
        self.republish(&self.topology.dead_letter_queue, &delivery, properties)
            .await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Publishes a copy to `queue` and waits for the broker's confirm; only then may the
    /// original be acknowledged.
    async fn republish(
        &self,
        queue: &str,
        delivery: &Delivery,
        properties: BasicProperties,
    ) -> Result<(), WorkerError> {
        bus::publish_confirmed_to(self.republish, "", queue, &delivery.data, properties).await?;
        Ok(())
    }
}

/// Accept-to-commit lag of a committed batch, for the end-to-end lag metric.
fn record_lag(events: &[AuditEvent]) {
    let now = chrono::Utc::now();
    for event in events {
        let lag = (now - event.received_at)
            .num_microseconds()
            .unwrap_or(i64::MAX) as f64
            / 1e6;
        metrics::histogram!("traceledger_accept_to_commit_seconds").record(lag);
    }
}
