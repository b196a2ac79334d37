//! The worker: consume the durable worker queue, gather a batch, commit it to PostgreSQL in one
//! statement, and only then acknowledge it. It runs inside `traceledger serve` or on its own as
//! `traceledger-worker`.
//!
//! A message that can never be stored (undecodable, invalid, or refused by the database) goes to
//! the dead-letter queue, with the reason in its headers, instead of looping. While PostgreSQL is
//! unreachable the batch stays unacknowledged and is retried with backoff; if the worker dies,
//! the broker redelivers it, and the insert skips rows already stored.

use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};
use tokio_util::sync::CancellationToken;

use crate::bus::{self, decode_batch, BusError, Topology};
use crate::config::Config;
use crate::domain::AuditEvent;
use crate::store::{Store, StoreError};

const RETRY_FIRST_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Header on a dead letter saying why it could not be stored.
pub const REASON_HEADER: &str = "x-traceledger-reason";

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

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub amqp_url: String,
    pub topology: Topology,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub prefetch: u16,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            amqp_url: config.amqp_url.clone(),
            topology: Topology::from_config(config),
            batch_size: config.batch_size.max(1),
            batch_timeout: config.batch_timeout(),
            prefetch: config.prefetch,
        }
    }
}

/// Runs until `shutdown`, reconnecting to the broker when it goes away. On shutdown the batch in
/// flight is committed and acknowledged before returning.
pub async fn run(settings: WorkerSettings, store: Store, shutdown: CancellationToken) {
    let mut delay = RETRY_FIRST_DELAY;
    while !shutdown.is_cancelled() {
        match consume(&settings, &store, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "worker lost the broker; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_MAX_DELAY);
            }
        }
    }
    tracing::info!("worker stopped");
}

async fn consume(
    settings: &WorkerSettings,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let connection = bus::connect(&settings.amqp_url, "traceledger-worker").await?;
    let channel = connection.create_channel().await?;
    settings.topology.declare(&channel).await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let dead_letters = connection.create_channel().await?;
    dead_letters
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
        dead_letters: &dead_letters,
        topology: &settings.topology,
        shutdown,
    };
    while let Some(deliveries) = next_batch(&mut consumer, settings, shutdown).await? {
        batch.commit(deliveries).await?;
    }
    // Shutting down: nothing is in flight; unacknowledged prefetched messages go back.
    let _ = channel.close(200, "worker shutting down".into()).await;
    let _ = connection.close(200, "worker shutting down".into()).await;
    Ok(())
}

/// Waits for a first message, then gathers more until the batch is full or its time is up.
/// `None` once shutdown is requested and nothing is pending.
async fn next_batch(
    consumer: &mut Consumer,
    settings: &WorkerSettings,
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
    dead_letters: &'a Channel,
    topology: &'a Topology,
    shutdown: &'a CancellationToken,
}

impl Batcher<'_> {
    /// Stores a batch and acknowledges it; dead-letters what can never be stored.
    async fn commit(&self, deliveries: Vec<Delivery>) -> Result<(), WorkerError> {
        let mut decoded: Vec<(Delivery, Vec<AuditEvent>)> = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match decode_batch(&delivery.data) {
                Ok(events) => decoded.push((delivery, events)),
                Err(e) => self.dead_letter(delivery, &e.to_string()).await?,
            }
        }
        let Some((last, _)) = decoded.last() else {
            return Ok(());
        };
        let events: Vec<AuditEvent> = decoded
            .iter()
            .flat_map(|(_, e)| e.iter().cloned())
            .collect();
        match self.insert_with_retry(&events).await {
            Some(Ok(stored)) => {
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
                // Some message in the batch is refused for good: store each alone to find it.
                tracing::warn!(error = %batch_error, "batch refused; storing its messages one by one");
                for (delivery, events) in decoded {
                    match self.insert_with_retry(&events).await {
                        Some(Ok(_)) => {
                            delivery.acker.ack(BasicAckOptions::default()).await?;
                        }
                        Some(Err(e)) => self.dead_letter(delivery, &e.to_string()).await?,
                        None => return Ok(()),
                    }
                }
                Ok(())
            }
            // Shutting down during an outage: leave the batch unacknowledged for redelivery.
            None => Ok(()),
        }
    }

    /// Inserts, waiting out transient failures. `None` if shutdown came first; otherwise the
    /// stored count or an error that retrying will not cure.
    async fn insert_with_retry(&self, events: &[AuditEvent]) -> Option<Result<u64, StoreError>> {
        let mut delay = RETRY_FIRST_DELAY;
        loop {
            match self.store.insert_events(events).await {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?delay, "database unavailable; batch kept");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX_DELAY);
                }
                done => return Some(done),
            }
        }
    }

    /// Moves a message to the dead-letter queue (confirmed) and only then acknowledges it.
    async fn dead_letter(&self, delivery: Delivery, reason: &str) -> Result<(), WorkerError> {
        tracing::warn!(reason, "dead-lettering a message");
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        let properties: BasicProperties = delivery.properties.clone().with_headers(headers);
        let confirm = self
            .dead_letters
            .basic_publish(
                "".into(),
                self.topology.dead_letter_queue.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if !matches!(confirm, Confirmation::Ack(_)) {
            return Err(BusError::Nacked.into());
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }
}
