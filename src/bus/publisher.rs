//! Publishing accepted batches with publisher confirms.
//!
//! All requests share one confirm-mode channel: concurrent publishes pipeline on it and each
//! awaits its own confirm, instead of each opening a channel and waiting alone. A broken channel
//! is replaced on the next publish.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::Mutex;

use super::{connect, encode_batch, BusError, Topology};
use crate::domain::AuditEvent;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

pub struct Publisher {
    url: String,
    topology: Topology,
    timeout: Duration,
    link: Mutex<Option<Link>>,
}

struct Link {
    // Kept so the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

impl Publisher {
    /// Connects and declares the topology, so the first publish has somewhere to go.
    pub async fn connect(
        url: &str,
        topology: Topology,
        timeout: Duration,
    ) -> Result<Self, BusError> {
        let publisher = Self {
            url: url.to_owned(),
            topology,
            timeout,
            link: Mutex::new(None),
        };
        publisher.channel().await?;
        Ok(publisher)
    }

    /// Publishes one batch as one persistent message and returns once the broker confirmed it
    /// (it is then on disk in every bound durable queue).
    pub async fn publish_confirmed(&self, events: &[AuditEvent]) -> Result<(), BusError> {
        let payload = encode_batch(events)?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_app_id("traceledger".into());
        if let Some(first) = events.first() {
            properties = properties.with_message_id(first.id.to_string().into());
        }
        let publish = async {
            let channel = self.channel().await?;
            let confirm = channel
                .basic_publish(
                    self.topology.exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &payload,
                    properties,
                )
                .await?
                .await?;
            match confirm {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_returned)) => {
                    Err(BusError::Unroutable(self.topology.exchange.clone()))
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => Err(BusError::Nacked),
            }
        };
        tokio::time::timeout(self.timeout, publish)
            .await
            .map_err(|_| BusError::Timeout)?
    }

    /// Whether the broker link is up right now (for health checks).
    pub async fn is_connected(&self) -> bool {
        self.link
            .lock()
            .await
            .as_ref()
            .is_some_and(|link| link.channel.status().connected())
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
