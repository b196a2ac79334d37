//! Operating the dead-letter queue: list what is in it, replay messages into the worker queue,
//! purge it. Used by `traceledger dlq` and the admin GraphQL fields.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use super::failure::{header_str, Failure, DEAD_LETTER_ID_HEADER, REASON_HEADER};
use super::{connect, decode_batch, publish_confirmed_to, BusError, Topology};

/// One dead letter, as an operator sees it.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Stamped when it was dead-lettered; what `replay --id` takes.
    pub id: String,
    pub reason: String,
    pub attempts: u32,
    pub history: Vec<String>,
    /// How many events it holds, if it decodes at all.
    pub events: Option<usize>,
    pub size_bytes: usize,
}

/// Which dead letters to replay.
#[derive(Clone, Debug)]
pub enum Replay {
    One(String),
    All,
}

#[derive(Clone)]
pub struct DeadLetters {
    url: String,
    topology: Topology,
}

impl DeadLetters {
    pub fn new(url: &str, topology: Topology) -> Self {
        Self {
            url: url.to_owned(),
            topology,
        }
    }

    /// How many messages wait in the dead-letter queue.
    pub async fn count(&self) -> Result<u32, BusError> {
        let (_connection, channel) = self.open().await?;
        self.depth(&channel).await
    }

    /// Up to `limit` dead letters, oldest first, left in the queue as they were.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let (connection, channel) = self.open().await?;
        let mut letters = Vec::new();
        while letters.len() < limit {
            let Some(message) = self.get(&channel).await? else {
                break;
            };
            let properties = &message.delivery.properties;
            let failure = Failure::of(properties);
            letters.push(DeadLetter {
                id: header_str(properties, DEAD_LETTER_ID_HEADER).unwrap_or_default(),
                reason: header_str(properties, REASON_HEADER).unwrap_or_default(),
                attempts: failure.attempts,
                history: failure.history,
                events: decode_batch(&message.delivery.data).ok().map(|e| e.len()),
                size_bytes: message.delivery.data.len(),
            });
        }
        // Closing without acknowledging puts every message back, in its place.
        close(connection, channel).await;
        Ok(letters)
    }

    /// Moves the chosen dead letters back into the worker queue with a clean failure record,
    /// each confirmed before it leaves the dead-letter queue. Calls `progress(done, total)`.
    /// Returns how many were replayed.
    pub async fn replay(
        &self,
        which: Replay,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, BusError> {
        let (connection, channel) = self.open().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        // Only what is there now: a replayed message that fails again comes back behind these.
        let total = u64::from(self.depth(&channel).await?);
        let mut replayed = 0;
        for _ in 0..total {
            let Some(message) = self.get(&channel).await? else {
                break;
            };
            let delivery = message.delivery;
            let id = header_str(&delivery.properties, DEAD_LETTER_ID_HEADER).unwrap_or_default();
            let chosen = match &which {
                Replay::All => true,
                Replay::One(wanted) => *wanted == id,
            };
            if !chosen {
                continue;
            }
            publish_confirmed_to(
                &channel,
                "",
                &self.topology.worker_queue,
                &delivery.data,
                Failure::clear(&delivery.properties),
            )
            .await?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            replayed += 1;
            progress(replayed, total);
            if matches!(which, Replay::One(_)) {
                break;
            }
        }
        close(connection, channel).await;
        Ok(replayed)
    }

    /// Drops every dead letter; returns how many there were.
    pub async fn purge(&self) -> Result<u32, BusError> {
        let (connection, channel) = self.open().await?;
        let purged = channel
            .queue_purge(
                self.topology.dead_letter_queue.as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?;
        close(connection, channel).await;
        Ok(purged)
    }

    async fn open(&self) -> Result<(Connection, Channel), BusError> {
        let connection = connect(&self.url, "traceledger-dead-letters").await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        Ok((connection, channel))
    }

    async fn depth(&self, channel: &Channel) -> Result<u32, BusError> {
        let queue = channel
            .queue_declare(
                self.topology.dead_letter_queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(queue.message_count())
    }

    async fn get(
        &self,
        channel: &Channel,
    ) -> Result<Option<lapin::message::BasicGetMessage>, BusError> {
        Ok(channel
            .basic_get(
                self.topology.dead_letter_queue.as_str().into(),
                BasicGetOptions::default(),
            )
            .await?)
    }
}

async fn close(connection: Connection, channel: Channel) {
    let _ = channel.close(super::CLOSE_NORMAL, "done".into()).await;
    let _ = connection.close(super::CLOSE_NORMAL, "done".into()).await;
}
