//! Accepting events: validate every input, settle idempotency keys, publish the accepted ones in
//! one confirmed broker message (shared with the calls that arrive at the same time, see
//! `bus::Publisher`), and hand back a receipt per input. When the broker cannot take them, the
//! call's events are parked in the PostgreSQL outbox (as durable, and relayed later); only when
//! both fail is the call refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use tokio::sync::Notify;

use crate::bus::{encode_batch, BusError, Publisher};
use crate::cache::Cache;
use crate::domain::{AuditEvent, EventDraft, FieldError, NewEvent, RecordedBy, MAX_BATCH};
use crate::store::Store;

/// A PostgreSQL idempotency look-up slower than this is skipped: the unique constraint still
/// keeps a duplicate from being stored, and recording keeps working while the database is down.
const IDEMPOTENCY_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long parking a batch in the outbox may take before the call is refused.
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordStatus {
    Accepted,
    Duplicate,
}

/// What the caller is told about one input.
#[derive(Clone, Debug)]
pub struct Receipt {
    /// The new event's id, or for a duplicate the id first recorded under its key.
    pub id: Uuid,
    pub status: RecordStatus,
    /// When this call was received.
    pub received_at: chrono::DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Nothing of the call was accepted.
    #[error("input {index} is invalid: {error}")]
    Invalid { index: usize, error: FieldError },
    #[error("at most {MAX_BATCH} events per call")]
    TooMany,
    #[error("recording was interrupted")]
    Interrupted,
    #[error("neither the broker ({bus}) nor the outbox ({outbox}) could take the events")]
    Unavailable { bus: BusError, outbox: String },
}

/// Validates a call's inputs and makes them events of `tenant`, stamped as recorded by
/// `recorded_by` at `received_at`: all of them or, if any is invalid, none. Every road into the
/// log (API calls, the service's own trail, operator commands) starts here.
pub fn accept_drafts(
    tenant: &str,
    recorded_by: &RecordedBy,
    drafts: Vec<EventDraft>,
    received_at: chrono::DateTime<Utc>,
) -> Result<Vec<AuditEvent>, IngestError> {
    if drafts.len() > MAX_BATCH {
        return Err(IngestError::TooMany);
    }
    drafts
        .into_iter()
        .enumerate()
        .map(|(index, draft)| {
            NewEvent::parse(draft, received_at)
                .map(|new| AuditEvent {
                    recorded_by: Some(recorded_by.clone()),
                    ..new.accept(tenant, Uuid::now_v7(), received_at)
                })
                .map_err(|error| IngestError::Invalid { index, error })
        })
        .collect()
}

/// Parks accepted events in the PostgreSQL outbox, from where a running service's relay
/// publishes them like any other batch; durable once this returns. For processes that run
/// without the broker (the operator's commands) and for calls the broker could not take.
pub async fn park(store: &Store, events: &[AuditEvent]) -> Result<(), ParkError> {
    let payload = encode_batch(events)?;
    let message_id = events.first().map(|e| e.id.to_string());
    store.push_outbox(&payload, message_id.as_deref()).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    #[error("could not encode the events: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct Recorder {
    publisher: Arc<Publisher>,
    cache: Cache,
    store: Store,
    /// Wakes the outbox relay when a batch was parked.
    outbox_parked: Arc<Notify>,
}

impl Recorder {
    pub fn new(
        publisher: Arc<Publisher>,
        cache: Cache,
        store: Store,
        outbox_parked: Arc<Notify>,
    ) -> Self {
        Self {
            publisher,
            cache,
            store,
            outbox_parked,
        }
    }

    /// Records a call's inputs for `tenant`, stamped as recorded by `recorded_by`: all of them
    /// or, if any is invalid, none.
    pub async fn record(
        &self,
        tenant: &str,
        recorded_by: &RecordedBy,
        drafts: Vec<EventDraft>,
    ) -> Result<Vec<Receipt>, IngestError> {
        // Microseconds: what PostgreSQL keeps, so the receipt matches the stored event.
        let received_at = Utc::now().trunc_subsecs(6);
        let events = accept_drafts(tenant, recorded_by, drafts, received_at)?;

        // From the idempotency claim to the broker's confirm (or the outbox) runs to the end in a
        // task of its own: a client that hangs up mid-call must not leave a key claimed for an
        // event that was never delivered, or a delivered event without its receipt logic.
        let recorder = self.clone();
        let tenant = tenant.to_owned();
        tokio::spawn(async move { recorder.accept(&tenant, events, received_at).await })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "recording task failed");
                IngestError::Interrupted
            })?
    }

    /// Settles idempotency for validated events, delivers the new ones, and writes receipts.
    async fn accept(
        &self,
        tenant: &str,
        events: Vec<AuditEvent>,
        received_at: chrono::DateTime<Utc>,
    ) -> Result<Vec<Receipt>, IngestError> {
        let duplicate_of = self.settle_idempotency(tenant, &events).await;
        let (fresh, receipts): (Vec<AuditEvent>, Vec<Receipt>) = {
            let mut fresh = Vec::with_capacity(events.len());
            let mut receipts = Vec::with_capacity(events.len());
            for (index, event) in events.into_iter().enumerate() {
                match duplicate_of.get(&index) {
                    Some(&first) => receipts.push(Receipt {
                        id: first,
                        status: RecordStatus::Duplicate,
                        received_at,
                    }),
                    None => {
                        receipts.push(Receipt {
                            id: event.id,
                            status: RecordStatus::Accepted,
                            received_at,
                        });
                        fresh.push(event);
                    }
                }
            }
            (fresh, receipts)
        };

        if fresh.is_empty() {
            return Ok(receipts);
        }
        if let Err(error) = self.deliver(&fresh).await {
            let claimed: Vec<&str> = fresh
                .iter()
                .filter_map(|e| e.idempotency_key.as_deref())
                .collect();
            if let Err(e) = self.cache.release_idempotency_keys(tenant, &claimed).await {
                tracing::warn!(error = %e, "could not release idempotency claims");
            }
            return Err(error);
        }
        metrics::counter!("traceledger_events_accepted_total").increment(fresh.len() as u64);
        Ok(receipts)
    }

    /// Publishes the call's events, or parks them in the outbox when the broker cannot take the
    /// message that would carry them.
    async fn deliver(&self, events: &[AuditEvent]) -> Result<(), IngestError> {
        let bus = match self.publisher.publish_confirmed(events).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tracing::warn!(error = %bus, events = events.len(), "broker unavailable; parking the batch in the outbox");
        let parked = tokio::time::timeout(OUTBOX_TIMEOUT, park(&self.store, events)).await;
        match parked {
            Ok(Ok(())) => {
                metrics::counter!("traceledger_outbox_parked_total").increment(1);
                self.outbox_parked.notify_one();
                Ok(())
            }
            Ok(Err(e)) => Err(IngestError::Unavailable {
                bus,
                outbox: e.to_string(),
            }),
            Err(_) => Err(IngestError::Unavailable {
                bus,
                outbox: "timed out".into(),
            }),
        }
    }

    /// Which inputs (by index) repeat a key already recorded, and the id recorded under it.
    /// Redis answers for keys it has seen; PostgreSQL for the ones Redis did not know.
    async fn settle_idempotency(
        &self,
        tenant: &str,
        events: &[AuditEvent],
    ) -> HashMap<usize, Uuid> {
        let claims: Vec<(usize, &str, Uuid)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.idempotency_key.as_deref().map(|k| (i, k, e.id)))
            .collect();
        let mut duplicate_of = HashMap::new();
        if claims.is_empty() {
            return duplicate_of;
        }
        let pairs: Vec<(&str, Uuid)> = claims.iter().map(|&(_, k, id)| (k, id)).collect();
        match self.cache.claim_idempotency_keys(tenant, &pairs).await {
            Ok(previous) => {
                for (&(index, _, _), holder) in claims.iter().zip(previous) {
                    if let Some(first) = holder {
                        duplicate_of.insert(index, first);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "idempotency fast path unavailable");
                // Without Redis, still answer repeats within this call.
                let mut first_by_key: HashMap<&str, Uuid> = HashMap::new();
                for &(index, key, id) in &claims {
                    if let Some(&first) = first_by_key.get(key) {
                        duplicate_of.insert(index, first);
                    } else {
                        first_by_key.insert(key, id);
                    }
                }
            }
        }

        // Keys Redis did not know may still be stored (Redis restarted, or the claim expired).
        let unknown: Vec<String> = claims
            .iter()
            .filter(|(index, _, _)| !duplicate_of.contains_key(index))
            .map(|&(_, key, _)| key.to_owned())
            .collect();
        if unknown.is_empty() {
            return duplicate_of;
        }
        let lookup = self.store.ids_by_idempotency_keys(tenant, &unknown);
        match tokio::time::timeout(IDEMPOTENCY_LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(stored)) if !stored.is_empty() => {
                for &(index, key, _) in &claims {
                    if let Some(&first) = stored.get(key) {
                        duplicate_of.insert(index, first);
                    }
                }
                let holders: Vec<(&str, Uuid)> =
                    stored.iter().map(|(k, id)| (k.as_str(), *id)).collect();
                if let Err(e) = self.cache.remember_idempotency_keys(tenant, &holders).await {
                    tracing::warn!(error = %e, "could not cache idempotency keys");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "idempotency look-up failed; relying on the unique key")
            }
            Err(_) => tracing::warn!("idempotency look-up timed out; relying on the unique key"),
        }
        duplicate_of
    }
}
