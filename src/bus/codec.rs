//! The wire format of a batch message: JSON, versioned, holding whole accepted events. A batch may
//! join several callers' events, of several tenants: every reader handles it event by event.

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

/// One caller's events, encoded by the caller, ready to travel in a message with other callers'
/// (see `encode_group`): the publisher only joins bytes, and knows the message's size up front.
#[derive(Debug)]
pub struct EncodedEvents {
    /// The events as JSON array elements, comma-separated, without the brackets.
    elements: Vec<u8>,
    count: usize,
}

impl EncodedEvents {
    pub fn encode(events: &[AuditEvent]) -> Result<Self, serde_json::Error> {
        let mut elements = serde_json::to_vec(events)?;
        // `[e1,e2]` -> `e1,e2`.
        elements.pop();
        elements.remove(0);
        Ok(Self {
            elements,
            count: events.len(),
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn size_bytes(&self) -> usize {
        self.elements.len()
    }
}

/// One batch message holding every part's events, in order: what `encode_batch` gives for all of
/// them at once.
pub fn encode_group<'a>(parts: impl IntoIterator<Item = &'a EncodedEvents>) -> Vec<u8> {
    let mut payload = format!(r#"{{"v":{VERSION},"events":["#).into_bytes();
    let mut first = true;
    for part in parts.into_iter().filter(|p| p.count > 0) {
        if !first {
            payload.push(b',');
        }
        payload.extend_from_slice(&part.elements);
        first = false;
    }
    payload.extend_from_slice(b"]}");
    payload
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
            prop_assert_eq!(&decoded, &events);

            // Split among callers (some with nothing) and joined, it is the same message.
            let parts: Vec<EncodedEvents> = events
                .chunks(3)
                .flat_map(|chunk| [EncodedEvents::encode(chunk).unwrap(), EncodedEvents::encode(&[]).unwrap()])
                .collect();
            prop_assert_eq!(parts.iter().map(EncodedEvents::count).sum::<usize>(), events.len());
            prop_assert_eq!(encode_group(&parts), encode_batch(&events).unwrap());
        }
    }
}
