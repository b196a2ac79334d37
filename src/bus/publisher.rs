//! Publishing accepted batches with publisher confirms.
//!
//! All requests share one confirm-mode channel: concurrent publishes pipeline on it and each
//! awaits its own confirm, instead of each opening a channel and waiting alone. A broken channel
//! is replaced on the next publish; while the broker keeps failing, a breaker makes publishing
//! fail at once so callers fall back to the outbox instead of each waiting out a timeout.

use std::time::{Duration, Instant};

use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use super::{connect, encode_batch, publish_confirmed_to, BusError, Topology};
use crate::breaker::{Breaker, BreakerState};
use crate::domain::AuditEvent;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

pub struct Publisher {
    url: String,
    topology: Topology,
    timeout: Duration,
    breaker: Breaker,
    link: Mutex<Option<Link>>,
}

struct Link {
    // Kept so the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

impl Publisher {
    /// Connects and declares the topology, so the first publish has somewhere to go. A broker
    /// that is down at start is not fatal: publishing reconnects once it is back.
    pub async fn connect(
        url: &str,
        topology: Topology,
        timeout: Duration,
        breaker: Breaker,
    ) -> Self {
        let publisher = Self {
            url: url.to_owned(),
            topology,
            timeout,
            breaker,
            link: Mutex::new(None),
        };
        if let Err(e) = publisher.channel().await {
            tracing::warn!(error = %e, "broker unreachable at start; recording uses the outbox");
            publisher.breaker.record_failure();
        }
        publisher
    }

    /// Publishes one batch as one persistent message and returns once the broker confirmed it
    /// (it is then on disk in every bound durable queue).
    pub async fn publish_confirmed(&self, events: &[AuditEvent]) -> Result<(), BusError> {
        let payload = encode_batch(events)?;
        let message_id = events.first().map(|e| e.id.to_string());
        self.publish_payload(&payload, message_id.as_deref()).await
    }

    /// Publishes an already encoded batch (from the outbox) the same way.
    pub async fn publish_payload(
        &self,
        payload: &[u8],
        message_id: Option<&str>,
    ) -> Result<(), BusError> {
        if !self.breaker.allow() {
            return Err(BusError::Unavailable);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.publish_once(payload, message_id))
            .await
            .unwrap_or(Err(BusError::Timeout));
        self.breaker.record(&result);
        if result.is_ok() {
            metrics::histogram!("traceledger_publish_confirm_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        result
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Whether the broker link is up right now (for readiness).
    pub async fn is_connected(&self) -> bool {
        self.link
            .lock()
            .await
            .as_ref()
            .is_some_and(|link| link.channel.status().connected())
    }

    async fn publish_once(&self, payload: &[u8], message_id: Option<&str>) -> Result<(), BusError> {
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_app_id("traceledger".into());
        if let Some(id) = message_id {
            properties = properties.with_message_id(id.into());
        }
        let channel = self.channel().await?;
        publish_confirmed_to(&channel, &self.topology.exchange, "", payload, properties).await
    }

    /// The shared channel, reopened (with the topology declared again) if it broke.
    async fn channel(&self) -> Result<Channel, BusError> {
        let mut link = self.link.lock().await;
        if let Some(current) = link.as_ref() {
            if current.channel.status().connected() {
                return Ok(current.channel.clone());
            }
            tracing::warn!("broker channel lost; reconnecting the publisher");
        }
        let connection = connect(&self.url, "traceledger-publisher").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.topology.declare(&channel).await?;
        *link = Some(Link {
            _connection: connection,
            channel: channel.clone(),
        });
        Ok(channel)
    }
}
