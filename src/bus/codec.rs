//! The wire format of a batch message: JSON, versioned, holding whole accepted events.

use serde::{Deserialize, Serialize};

use crate::domain::{AuditEvent, FieldError};

const VERSION: u32 = 1;

#[derive(Serialize)]
struct BatchOut<'a> {
    v: u32,
    events: &'a [AuditEvent],
}

#[derive(Deserialize)]
struct BatchIn {
    v: u32,
    events: Vec<AuditEvent>,
}

/// Why a message can never be stored: it goes to the dead-letter queue, not back to the queue.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a traceledger batch: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported batch version {0}")]
    Version(u32),
    #[error("the batch holds no events")]
    Empty,
    #[error("event {index} is invalid: {error}")]
    Invalid { index: usize, error: FieldError },
}

pub fn encode_batch(events: &[AuditEvent]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&BatchOut { v: VERSION, events })
}

/// Decodes a message and checks every event in it against the input rules.
pub fn decode_batch(payload: &[u8]) -> Result<Vec<AuditEvent>, DecodeError> {
    let batch: BatchIn = serde_json::from_slice(payload)?;
    if batch.v != VERSION {
        return Err(DecodeError::Version(batch.v));
    }
    if batch.events.is_empty() {
        return Err(DecodeError::Empty);
    }
    for (index, event) in batch.events.iter().enumerate() {
        event
            .check()
            .map_err(|error| DecodeError::Invalid { index, error })?;
    }
    Ok(batch.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ActorDraft, EventDraft, NewEvent};
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, decoding answers (never panics), and only valid events pass.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(events) = decode_batch(&bytes) {
                prop_assert!(events.iter().all(|e| e.check().is_ok()));
            }
        }

        /// What the API encodes, the worker decodes to the same events.
        #[test]
        fn encoded_batches_round_trip(actions in proptest::collection::vec("[a-z]{1,8}(\\.[a-z]{1,8}){0,2}", 1..20)) {
            let now = chrono::Utc::now();
            let events: Vec<AuditEvent> = actions
                .into_iter()
                .map(|action| {
                    let draft = EventDraft {
                        action,
                        service: "svc".into(),
                        actor: ActorDraft { id: "a".into(), kind: "user".into(), ..Default::default() },
                        ..Default::default()
                    };
                    NewEvent::parse(draft, now).unwrap().accept("t", uuid::Uuid::now_v7(), now)
                })
                .collect();
            let decoded = decode_batch(&encode_batch(&events).unwrap()).unwrap();
            prop_assert_eq!(decoded, events);
        }
    }
}
