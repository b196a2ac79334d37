//! RabbitMQ: the topology every instance declares, the confirmed publisher the API records
//! through, and the wire format of what travels between them.
//!
//! Accepted events travel as persistent batch messages on a durable fanout exchange: the calls
//! (`recordEvent`, `recordEvents`) that arrive together share one message, so a message can hold
//! several callers' events, of several tenants. The exchange feeds the durable worker queue that
//! the workers share and one exclusive queue per API instance for its live subscribers.

mod codec;
mod dead_letters;
mod failure;
mod publisher;

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

pub use codec::{decode_batch, encode_batch, DecodeError};
pub use dead_letters::{DeadLetter, DeadLetters, Replay};
pub use failure::{Failure, ATTEMPTS_HEADER, DEAD_LETTER_ID_HEADER, HISTORY_HEADER, REASON_HEADER};
pub use publisher::{GroupCommit, PublishSettings, Publisher};

/// AMQP reply code for closing a channel or connection normally.
pub const CLOSE_NORMAL: u16 = 200;
/// How long opening a connection to the broker may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("broker error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker did not answer in time")]
    Timeout,
    #[error("the broker is unavailable (failing repeatedly; not tried for a moment)")]
    Unavailable,
    #[error("the broker refused the message")]
    Nacked,
    #[error("no queue takes messages sent to {0}")]
    Unroutable(String),
    #[error("could not encode the message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the publisher has stopped")]
    Stopped,
}

/// Every caller whose events travelled in one message is answered with that message's outcome.
impl Clone for BusError {
    fn clone(&self) -> Self {
        match self {
            BusError::Amqp(e) => BusError::Amqp(e.clone()),
            BusError::Timeout => BusError::Timeout,
            BusError::Unavailable => BusError::Unavailable,
            BusError::Nacked => BusError::Nacked,
            BusError::Unroutable(target) => BusError::Unroutable(target.clone()),
            BusError::Encode(e) => BusError::Encode(serde::ser::Error::custom(e)),
            BusError::Stopped => BusError::Stopped,
        }
    }
}

/// Where the broker is and the names this deployment declares on it.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "RabbitMQ")]
pub struct BrokerSettings {
    /// RabbitMQ.
    #[arg(
        value_name = "URL",
        id = "amqp-url",
        long = "amqp-url",
        env = "TRACELEDGER_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub url: String,

    /// Durable fanout exchange every accepted batch is published to.
    #[arg(
        value_name = "EXCHANGE",
        id = "exchange",
        long = "exchange",
        env = "TRACELEDGER_EXCHANGE",
        default_value = "traceledger.events"
    )]
    pub exchange: String,

    /// Durable queue the workers consume.
    #[arg(
        value_name = "WORKER_QUEUE",
        id = "worker-queue",
        long = "worker-queue",
        env = "TRACELEDGER_WORKER_QUEUE",
        default_value = "traceledger.worker"
    )]
    pub worker_queue: String,

    /// Where undecodable or invalid messages go instead of looping.
    #[arg(
        value_name = "DEAD_LETTER_QUEUE",
        id = "dead-letter-queue",
        long = "dead-letter-queue",
        env = "TRACELEDGER_DEAD_LETTER_QUEUE",
        default_value = "traceledger.dead-letter"
    )]
    pub dead_letter_queue: String,

    /// Delays of the retry queues a message passes through after a transient failure, in order;
    /// after the last one it is dead-lettered.
    #[arg(
        value_name = "RETRY_DELAYS_MS",
        id = "retry-delays-ms",
        long = "retry-delays-ms",
        env = "TRACELEDGER_RETRY_DELAYS_MS",
        value_delimiter = ',',
        default_value = "1000,5000,30000,120000"
    )]
    pub retry_delays_ms: Vec<u64>,
}

impl BrokerSettings {
    pub fn topology(&self) -> Topology {
        Topology {
            exchange: self.exchange.clone(),
            worker_queue: self.worker_queue.clone(),
            dead_letter_queue: self.dead_letter_queue.clone(),
            retry_delays: self
                .retry_delays_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        }
    }
}

/// The names of everything this deployment declares on the broker.
#[derive(Clone, Debug)]
pub struct Topology {
    pub exchange: String,
    pub worker_queue: String,
    pub dead_letter_queue: String,
    /// One retry queue per delay, in the order a failing message passes through them.
    pub retry_delays: Vec<Duration>,
}

impl Topology {
    /// The retry queue for the `n`th failed attempt (1-based), if there is one.
    pub fn retry_queue(&self, attempt: usize) -> Option<String> {
        let delay = self.retry_delays.get(attempt.checked_sub(1)?)?;
        // Named by delay: a queue's TTL cannot change once declared, a new delay is a new queue.
        Some(format!(
            "{}.retry.{}ms",
            self.worker_queue,
            delay.as_millis()
        ))
    }

    /// Every durable queue this topology declares.
    pub fn queues(&self) -> Vec<String> {
        let retries = (1..=self.retry_delays.len()).filter_map(|n| self.retry_queue(n));
        [self.worker_queue.clone(), self.dead_letter_queue.clone()]
            .into_iter()
            .chain(retries)
            .collect()
    }

    /// Declares the exchange, the worker queue bound to it, the retry queues (each dead-letters
    /// back into the worker queue when its TTL runs out) and the dead-letter queue.
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
        for (n, delay) in self.retry_delays.iter().enumerate() {
            let Some(queue) = self.retry_queue(n + 1) else {
                continue;
            };
            let mut arguments = FieldTable::default();
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.worker_queue.as_str().into()),
            );
            channel
                .queue_declare(queue.as_str().into(), durable, arguments)
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

/// Publishes on a confirm-mode channel and waits for the broker's confirm. Mandatory: a message
/// that no queue takes comes back as an error instead of being confirmed and dropped, so the
/// caller never acknowledges (and loses) its original.
pub async fn publish_confirmed_to(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: lapin::BasicProperties,
) -> Result<(), BusError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            properties,
        )
        .await?
        .await?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        lapin::Confirmation::Ack(Some(_returned)) => {
            Err(BusError::Unroutable(format!("{exchange}/{routing_key}")))
        }
        lapin::Confirmation::Nack(_) | lapin::Confirmation::NotRequested => Err(BusError::Nacked),
    }
}

/// How many messages wait in each of the topology's queues, for the metrics. Keeps one
/// connection across scrapes (opened, and the topology declared, on the first), so a scraper
/// polling every few seconds costs the broker no connection churn.
pub struct QueueDepths {
    url: String,
    topology: Topology,
    link: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl QueueDepths {
    pub fn new(url: &str, topology: Topology) -> Self {
        Self {
            url: url.to_owned(),
            topology,
            link: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn read(&self) -> Result<Vec<(String, u32)>, BusError> {
        let mut link = self.link.lock().await;
        if !link.as_ref().is_some_and(|(connection, channel)| {
            connection.status().connected() && channel.status().connected()
        }) {
            let connection = connect(&self.url, "traceledger-metrics").await?;
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel).await?;
            *link = Some((connection, channel));
        }
        let Some((_, channel)) = link.as_ref() else {
            return Err(BusError::Stopped);
        };
        let mut depths = Vec::new();
        for queue in self.topology.queues() {
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(declared) => depths.push((queue, declared.message_count())),
                Err(e) => {
                    // The broker closes a channel on a failed declare: open anew next time.
                    *link = None;
                    return Err(e.into());
                }
            }
        }
        Ok(depths)
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
