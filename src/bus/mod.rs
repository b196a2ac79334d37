//! RabbitMQ: the topology every instance declares, the confirmed publisher the API records
//! through, and the wire format of what travels between them.
//!
//! Every accepted batch (one `recordEvent`, or one `recordEvents` call) is one persistent
//! message on a durable fanout exchange. The exchange feeds the durable worker queue that the
//! workers share and one exclusive queue per API instance for its live subscribers.

mod codec;
mod publisher;

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

pub use codec::{decode_batch, encode_batch, DecodeError};
pub use publisher::Publisher;

/// How long opening a connection to the broker may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("broker error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker did not answer in time")]
    Timeout,
    #[error("the broker refused the message")]
    Nacked,
    #[error("no queue is bound to exchange {0}")]
    Unroutable(String),
    #[error("could not encode the message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The names of everything this deployment declares on the broker.
#[derive(Clone, Debug)]
pub struct Topology {
    pub exchange: String,
    pub worker_queue: String,
    pub dead_letter_queue: String,
}

impl Topology {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            exchange: config.exchange.clone(),
            worker_queue: config.worker_queue.clone(),
            dead_letter_queue: config.dead_letter_queue.clone(),
        }
    }

    /// Declares the exchange, the worker queue bound to it and the dead-letter queue.
    /// Idempotent: every API instance and worker does it at start, so none depends on another
    /// having started first, and nothing published is dropped for want of a queue.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BusError> {
        self.declare_exchange(channel).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for queue in [&self.worker_queue, &self.dead_letter_queue] {
            channel
                .queue_declare(queue.as_str().into(), durable, FieldTable::default())
                .await?;
        }
        channel
            .queue_bind(
                self.worker_queue.as_str().into(),
                self.exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

impl Topology {
    /// Declares only the durable fanout exchange (for the live feed, which brings its own queue).
    pub async fn declare_exchange(&self, channel: &Channel) -> Result<(), BusError> {
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

/// Opens a connection to the broker, named so operators can tell our connections apart.
pub async fn connect(url: &str, name: &str) -> Result<Connection, BusError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| BusError::Timeout)?
        .map_err(BusError::from)
}
