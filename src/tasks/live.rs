//! The live feed behind `eventRecorded`: this instance's own exclusive queue on the events
//! exchange, fanned out in-process to every subscriber.
//!
//! Subscribers read from a broadcast channel, so a slow one falls behind (and skips what it
//! missed) without holding up the others or the feed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::backoff::{sleep_unless_shutdown, Backoff};
use crate::bus::{self, decode_batch, BusError, Topology};
use crate::domain::AuditEvent;

/// Events a subscriber may fall behind by before it starts skipping.
const SUBSCRIBER_BUFFER: usize = 4096;
/// Reconnecting waits this long at first, doubling up to the maximum while the broker stays
/// away, so a long outage costs few attempts and a blip costs little.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

pub struct LiveFeed {
    events: broadcast::Sender<Arc<AuditEvent>>,
}

impl LiveFeed {
    /// Binds this instance's queue before returning (if the broker is up), so a subscription made
    /// afterwards misses nothing published afterwards; then keeps the feed running, reconnecting
    /// whenever the broker goes away, until `shutdown`.
    pub async fn start(url: &str, topology: &Topology, shutdown: CancellationToken) -> Arc<Self> {
        let (events, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let feed = Arc::new(Self { events });
        // Bound now when the broker is there; otherwise the loop below keeps trying.
        let first = open(url, topology)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "live feed starts without the broker"))
            .ok();
        let (url, topology, pump) = (url.to_owned(), topology.clone(), Arc::clone(&feed));
        tokio::spawn(async move {
            let mut current = first;
            let mut backoff = Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY);
            while !shutdown.is_cancelled() {
                let (_connection, consumer) = match current.take() {
                    Some(link) => link,
                    None => match open(&url, &topology).await {
                        Ok(link) => link,
                        Err(e) => {
                            let delay = backoff.next_delay();
                            tracing::warn!(error = %e, retry_in = ?delay, "live feed cannot reach the broker");
                            if !sleep_unless_shutdown(delay, &shutdown).await {
                                break;
                            }
                            continue;
                        }
                    },
                };
                let delivered = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    delivered = pump.forward(consumer) => delivered,
                };
                // A link that carried something was healthy: start the backoff afresh. One
                // lost as soon as it opened keeps backing off.
                if delivered {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!(retry_in = ?delay, "live feed lost its queue; reconnecting");
                if !sleep_unless_shutdown(delay, &shutdown).await {
                    break;
                }
            }
        });
        feed
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditEvent>> {
        self.events.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.events.receiver_count()
    }

    /// Forwards deliveries until the consumer ends; whether it delivered anything.
    async fn forward(&self, mut consumer: Consumer) -> bool {
        let mut delivered = false;
        while let Some(Ok(delivery)) = consumer.next().await {
            delivered = true;
            // Nobody listening on this instance: decoding would be work for no one.
            if self.events.receiver_count() == 0 {
                continue;
            }
            match decode_batch(&delivery.data) {
                Ok(events) => {
                    for event in events {
                        // An error only means nobody is subscribed right now.
                        let _ = self.events.send(Arc::new(event));
                    }
                }
                Err(e) => tracing::debug!(error = %e, "live feed skipped a message"),
            }
        }
        delivered
    }
}

/// A server-named, exclusive, auto-delete queue bound to the exchange: it lives exactly as long
/// as this instance's connection. Acknowledged on delivery: the feed is live, not durable.
async fn open(url: &str, topology: &Topology) -> Result<(Connection, Consumer), BusError> {
    let connection = bus::connect(url, "traceledger-live").await?;
    let channel = connection.create_channel().await?;
    topology.declare_exchange(&channel).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            topology.exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((connection, consumer))
}
