//! Inspecting and re-driving the dead-letter queue: for operators only (over GraphQL an admin of
//! `_traceledger`, or the command line), since one dead letter can hold several tenants' events.
//! Replays and purges leave an audit event in tenant `_traceledger`.

use serde_json::json;

use super::own_trail::{Actor, OwnTrail};
use super::ApiError;
use crate::bus::{BusError, DeadLetter, DeadLetters, Replay};

/// The dead-letter use cases; cheap to clone.
#[derive(Clone)]
pub struct DeadLetterQueue {
    queue: DeadLetters,
    trail: OwnTrail,
}

impl DeadLetterQueue {
    pub fn new(queue: DeadLetters, trail: OwnTrail) -> Self {
        Self { queue, trail }
    }

    /// The oldest `limit` dead letters, left in the queue.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, ApiError> {
        self.queue.list(limit).await.map_err(unavailable)
    }

    /// Moves dead letters back into the worker queue; `progress(done, total)` follows along.
    /// Returns how many were replayed.
    pub async fn replay(
        &self,
        actor: Actor<'_>,
        which: Replay,
        progress: impl FnMut(u64, u64),
    ) -> Result<u64, ApiError> {
        let target = match &which {
            Replay::One(id) => Some(("dead_letter", id.clone())),
            Replay::All => None,
        };
        let replayed = self
            .queue
            .replay(which, progress)
            .await
            .map_err(unavailable)?;
        tracing::info!(replayed, "dead letters replayed");
        self.trail
            .action(
                actor,
                "dead_letters.replay",
                target.as_ref().map(|(kind, id)| (*kind, id.as_str())),
                format!("{replayed} dead letters replayed"),
                json!({ "replayed": replayed }),
            )
            .await?;
        Ok(replayed)
    }

    /// Drops every dead letter; returns how many there were.
    pub async fn purge(&self, actor: Actor<'_>) -> Result<u64, ApiError> {
        let purged = u64::from(self.queue.purge().await.map_err(unavailable)?);
        tracing::warn!(purged, "dead letters purged");
        self.trail
            .action(
                actor,
                "dead_letters.purge",
                None,
                format!("{purged} dead letters purged"),
                json!({ "purged": purged }),
            )
            .await?;
        Ok(purged)
    }
}

fn unavailable(e: BusError) -> ApiError {
    tracing::warn!(error = %e, "dead-letter queue unreachable");
    ApiError::Unavailable("the broker is unavailable; retry shortly".into())
}
