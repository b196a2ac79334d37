//! The service audits itself: every API request (HTTP and websocket connection) and every admin
//! action becomes an audit event of the system tenant `_traceledger`, recorded through the same
//! pipeline as any other. Never on a request's critical path: notes go into a bounded queue that
//! one background task drains in batches; when the queue is full a note is dropped and counted.
//! The task records through the `Recorder` directly, not through the API, so its own writes are
//! never audited again.
//!
//! Notes carry what callers sent (paths, token subjects and tenants), so the service never lets
//! its own validation refuse them: text an event may not hold is escaped and the note says which
//! fields were, a note that still fails is replaced by one saying so, and a batch the pipeline
//! cannot take right now is retried, not dropped. Only a full queue drops notes.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::access::auth::{Credential, Principal};
mod storable;

use crate::app::record::{accept_drafts, park, IngestError, ParkError, Recorder};
use crate::backoff::Backoff;
use crate::domain::{
    ActorDraft, EventDraft, FieldError, GroupDraft, Outcome, RecordedBy, Severity, TargetDraft,
    Tenant, MAX_BATCH,
};
use crate::store::Store;
use storable::{clip, make_storable, unstorable};

/// The tenant the service records its own activity in. Operators read it with a key of this
/// tenant; nobody can write to it through the API.
pub use crate::domain::SYSTEM_TENANT;
/// The `service` of every self-audit event.
const SERVICE: &str = crate::domain::SERVICE_NAME;
/// How long the drain waits after a note for others to join it in one batch.
const LINGER: Duration = Duration::from_millis(200);
/// The first and the longest wait before recording a batch again after the pipeline refused it.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How a request reached the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http,
    Websocket,
}

/// One finished API request, as the audit event will tell it.
#[derive(Clone, Debug)]
pub struct RequestNote {
    pub transport: Transport,
    /// `POST /graphql recordEvent`, `GET /export`, …
    pub operation: String,
    pub status: u16,
    pub duration: Duration,
    /// Who called, if the credentials were accepted.
    pub caller: Option<(Tenant, Credential)>,
    /// Who the refused credentials name (id and actor type), if some were presented and refused.
    pub refused_caller: Option<(String, &'static str)>,
    /// The `extensions.code` of each error a GraphQL answer carried.
    pub error_codes: Vec<String>,
    pub client_ip: Option<IpAddr>,
}

/// How much of the service's own trail may wait to be recorded.
#[derive(clap::Args, Clone, Copy, Debug)]
#[command(next_help_heading = "Own trail")]
pub struct TrailSettings {
    /// Requests and admin actions waiting to be recorded in tenant `_traceledger`; past this,
    /// new ones are dropped (and counted) rather than slowing requests down.
    #[arg(
        value_name = "QUEUE",
        id = "self-audit-queue",
        long = "self-audit-queue",
        env = "TRACELEDGER_SELF_AUDIT_QUEUE",
        default_value_t = 10_000
    )]
    pub queue: usize,
}

/// Who performed an admin action, as its audit event names them.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// A caller of the API, acting in its own tenant.
    Caller(&'a Principal),
    /// An operator at the command line (the name given with `--operator`, or the OS user).
    Operator(&'a str),
}

#[derive(Debug, thiserror::Error)]
#[error("the action is done but its audit event could not be kept: {0}")]
pub struct TrailError(#[from] ParkError);

/// Where the service's own notes go; cheap to clone.
#[derive(Clone)]
pub struct OwnTrail {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    /// A serving process: a bounded queue that a background task records from.
    Queue(mpsc::Sender<EventDraft>),
    /// An operator's command, which runs without the broker: each note is accepted like any
    /// event and parked in the outbox, so a running service publishes it and its worker stores
    /// and indexes it like every other event.
    Outbox(Store),
}

impl OwnTrail {
    /// Starts the background task that records queued notes with `recorder`; it ends when every
    /// `OwnTrail` is dropped.
    pub fn start(recorder: Recorder, capacity: usize) -> Self {
        let (queue, notes) = mpsc::channel(capacity.max(1));
        tokio::spawn(drain(recorder, notes));
        Self {
            sink: Sink::Queue(queue),
        }
    }

    /// The trail of a process without the broker (the operator's commands).
    pub fn parked(store: Store) -> Self {
        Self {
            sink: Sink::Outbox(store),
        }
    }

    pub fn request(&self, note: RequestNote) {
        let (actor_id, actor_type, tenant) = match (&note.caller, note.refused_caller) {
            (Some((tenant, credential)), _) => {
                (credential.id(), credential.kind(), Some(tenant.clone()))
            }
            (None, Some((id, kind))) => (id, kind, None),
            (None, None) => ("anonymous".to_owned(), "anonymous", None),
        };
        // A viewer token's reads are recorded with its group.
        let group = note
            .caller
            .as_ref()
            .and_then(|(_, credential)| group_draft(credential));
        let transport = match note.transport {
            Transport::Http => "http",
            Transport::Websocket => "websocket",
        };
        let failed = note.status >= 400 || !note.error_codes.is_empty();
        self.push(EventDraft {
            action: "api.request".to_owned(),
            service: SERVICE.to_owned(),
            actor: ActorDraft {
                id: clip(actor_id),
                kind: actor_type.to_owned(),
                name: None,
                ip: note.client_ip.map(|ip| ip.to_string()),
                href: None,
            },
            target: Some(TargetDraft {
                id: clip(note.operation.clone()),
                kind: "api_operation".to_owned(),
                name: None,
                href: None,
            }),
            outcome: Some(if failed {
                Outcome::Failure
            } else {
                Outcome::Success
            }),
            severity: Some(if failed {
                Severity::Notice
            } else {
                Severity::Info
            }),
            metadata: Some(json!({
                "transport": transport,
                "operation": clip(note.operation),
                "status": note.status,
                "durationMs": u64::try_from(note.duration.as_millis()).unwrap_or(u64::MAX),
                "tenant": tenant,
                "errors": note.error_codes,
            })),
            group,
            ..Default::default()
        });
    }

    /// An admin action: `action` (e.g. `api_key.revoke`) done by `actor`, on `target`. A
    /// serving process queues it; an operator's command parks it in the outbox and returns once
    /// it is durable there.
    pub async fn action(
        &self,
        actor: Actor<'_>,
        action: &str,
        target: Option<(&str, &str)>,
        message: String,
        details: Value,
    ) -> Result<(), TrailError> {
        self.group_action(actor, None, action, target, message, details)
            .await
    }

    /// An admin action about one of the tenant's groups (a viewer token minted for it): the
    /// event carries `group`. Without one it carries a viewer token caller's group, if any.
    pub async fn group_action(
        &self,
        actor: Actor<'_>,
        group: Option<&str>,
        action: &str,
        target: Option<(&str, &str)>,
        message: String,
        details: Value,
    ) -> Result<(), TrailError> {
        let group = match (group, &actor) {
            (Some(group), _) => Some(GroupDraft {
                id: clip(group.to_owned()),
                name: None,
            }),
            (None, Actor::Caller(principal)) => group_draft(&principal.credential),
            (None, Actor::Operator(_)) => None,
        };
        let (actor, metadata) = match actor {
            Actor::Caller(principal) => (
                ActorDraft {
                    id: clip(principal.credential.id()),
                    kind: principal.credential.kind().to_owned(),
                    name: None,
                    ip: None,
                    href: None,
                },
                json!({ "tenant": principal.tenant, "details": details }),
            ),
            Actor::Operator(name) => (
                ActorDraft {
                    id: clip(name.to_owned()),
                    kind: "operator".to_owned(),
                    name: None,
                    ip: None,
                    href: None,
                },
                json!({ "details": details }),
            ),
        };
        let mut draft = action_draft(actor, action, target, message, metadata);
        draft.group = group;
        match &self.sink {
            Sink::Queue(_) => {
                self.push(draft);
                Ok(())
            }
            Sink::Outbox(store) => {
                make_storable(&mut draft);
                let now = Utc::now().trunc_subsecs(6);
                let service = RecordedBy::service();
                let events = accept_drafts(SYSTEM_TENANT, &service, vec![draft.clone()], now)
                    .or_else(|e| {
                        let error = match e {
                            IngestError::Invalid { error, .. } => error,
                            other => FieldError::new("input", other.to_string()),
                        };
                        tracing::error!(%error, "an operator's note broke the event rules; recording a stand-in");
                        let stand_in = unstorable(&draft, &error);
                        accept_drafts(SYSTEM_TENANT, &service, vec![stand_in], now)
                    });
                match events {
                    Ok(events) => Ok(park(store, &events).await?),
                    Err(e) => {
                        tracing::error!(error = %e, "the operator's action cannot be recorded");
                        Ok(())
                    }
                }
            }
        }
    }

    fn push(&self, mut draft: EventDraft) {
        make_storable(&mut draft);
        let Sink::Queue(queue) = &self.sink else {
            return;
        };
        if queue.try_send(draft).is_err() {
            metrics::counter!("traceledger_self_audit_dropped_total").increment(1);
        }
    }
}

fn action_draft(
    actor: ActorDraft,
    action: &str,
    target: Option<(&str, &str)>,
    message: String,
    metadata: Value,
) -> EventDraft {
    EventDraft {
        action: action.to_owned(),
        service: SERVICE.to_owned(),
        actor,
        target: target.map(|(kind, id)| TargetDraft {
            id: clip(id.to_owned()),
            kind: kind.to_owned(),
            name: None,
            href: None,
        }),
        outcome: Some(Outcome::Success),
        severity: Some(Severity::Warning),
        message: Some(message),
        metadata: Some(metadata),
        ..Default::default()
    }
}

/// Records what is queued, as many notes per call as are waiting (up to a batch). After the
/// first note it lingers a moment for more: the notes are not on anyone's critical path, and
/// every request making its own broker message and insert would double the pipeline's load.
async fn drain(recorder: Recorder, mut notes: mpsc::Receiver<EventDraft>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while notes.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() < MAX_BATCH {
            tokio::time::sleep(LINGER).await;
            while batch.len() < MAX_BATCH {
                match notes.try_recv() {
                    Ok(note) => batch.push(note),
                    Err(_) => break,
                }
            }
        }
        record_batch(&recorder, std::mem::take(&mut batch)).await;
    }
}

/// Records `drafts` whatever it takes: a note the rules still refuse is replaced by one that says
/// so (and the batch goes again, the others untouched), and while the pipeline cannot take the
/// batch it is tried again with backoff; meanwhile the bounded queue fills and drops what comes.
async fn record_batch(recorder: &Recorder, mut drafts: Vec<EventDraft>) {
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    loop {
        match recorder
            .record(SYSTEM_TENANT, &RecordedBy::service(), drafts.clone())
            .await
        {
            Ok(_) => return,
            Err(IngestError::Invalid { index, error }) => {
                tracing::error!(%error, "a self-audit note broke the event rules; recording a stand-in");
                if let Some(note) = drafts.get_mut(index) {
                    *note = unstorable(note, &error);
                } else {
                    return;
                }
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "could not record the service's own audit events; will retry");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The group of a viewer token's audit events.
pub fn group_draft(credential: &Credential) -> Option<GroupDraft> {
    credential.group().map(|group| GroupDraft {
        id: clip(group.to_owned()),
        name: None,
    })
}
