//! The service audits itself: every API request (HTTP and websocket connection) and every admin
//! action becomes an audit event of the system tenant `_traceledger`, recorded through the same
//! pipeline as any other. Never on a request's critical path: notes go into a bounded queue that
//! one background task drains in batches; when the queue is full a note is dropped and counted.
//! The task records through the `Recorder` directly, not through the API, so its own writes are
//! never audited again.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::{Credential, Principal};
use crate::domain::{
    ActorDraft, EventDraft, NewEvent, Outcome, Severity, TargetDraft, MAX_BATCH, MAX_ID_LEN,
};
use crate::ingest::Recorder;
use crate::store::{Store, StoreError};

/// The tenant the service records its own activity in. Operators read it with a key of this
/// tenant; nobody can write to it through the API.
pub const SYSTEM_TENANT: &str = "_traceledger";
/// The `service` of every self-audit event.
const SERVICE: &str = "traceledger";
/// How long the drain waits after a note for others to join it in one batch.
const LINGER: Duration = Duration::from_millis(200);

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
    pub caller: Option<(String, Credential)>,
    /// The `extensions.code` of each error a GraphQL answer carried.
    pub error_codes: Vec<String>,
    pub client_ip: Option<IpAddr>,
}

/// The sending end of the self-audit queue; cheap to clone.
#[derive(Clone)]
pub struct AuditTrail {
    queue: mpsc::Sender<EventDraft>,
}

impl AuditTrail {
    /// Starts the background task that records queued notes with `recorder`; it ends when every
    /// `AuditTrail` is dropped.
    pub fn start(recorder: Recorder, capacity: usize) -> Self {
        let (queue, notes) = mpsc::channel(capacity.max(1));
        tokio::spawn(drain(recorder, notes));
        Self { queue }
    }

    pub fn request(&self, note: RequestNote) {
        let (actor_id, actor_type, tenant) = match &note.caller {
            Some((tenant, credential)) => {
                (credential.id(), credential.kind(), Some(tenant.clone()))
            }
            None => ("anonymous".to_owned(), "anonymous", None),
        };
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
            },
            target: Some(TargetDraft {
                id: clip(note.operation.clone()),
                kind: "api_operation".to_owned(),
                name: None,
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
            ..Default::default()
        });
    }

    /// An admin action: `action` (e.g. `api_key.revoke`) done by `principal`, on `target`.
    pub fn admin_action(
        &self,
        principal: &Principal,
        action: &str,
        target: Option<(&str, &str)>,
        message: String,
        details: Value,
    ) {
        let actor = ActorDraft {
            id: clip(principal.credential.id()),
            kind: principal.credential.kind().to_owned(),
            name: None,
            ip: None,
        };
        let metadata = json!({ "tenant": principal.tenant, "details": details });
        self.push(action_draft(actor, action, target, message, metadata));
    }

    fn push(&self, draft: EventDraft) {
        if self.queue.try_send(draft).is_err() {
            metrics::counter!("traceledger_self_audit_dropped_total").increment(1);
        }
    }
}

/// Records an operator's action from the command line, which runs without the broker: the event
/// is validated like any other and stored directly.
pub async fn record_operator_action(
    store: &Store,
    operator: &str,
    action: &str,
    target: Option<(&str, &str)>,
    message: String,
    details: Value,
) -> Result<(), StoreError> {
    let actor = ActorDraft {
        id: clip(operator.to_owned()),
        kind: "operator".to_owned(),
        name: None,
        ip: None,
    };
    let draft = action_draft(
        actor,
        action,
        target,
        message,
        json!({ "details": details }),
    );
    let now = Utc::now().trunc_subsecs(6);
    match NewEvent::parse(draft, now) {
        Ok(new) => {
            let event = new.accept(SYSTEM_TENANT, Uuid::now_v7(), now);
            store.insert_events(&[event]).await.map(|_| ())
        }
        // Only an operator name we cannot store gets here; the action itself is done.
        Err(e) => {
            tracing::error!(error = %e, "the operator's action cannot be recorded");
            Ok(())
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
        let drafts = std::mem::take(&mut batch);
        let count = drafts.len() as u64;
        if let Err(e) = recorder.record(SYSTEM_TENANT, drafts).await {
            tracing::warn!(error = %e, "could not record the service's own audit events");
            metrics::counter!("traceledger_self_audit_dropped_total").increment(count);
        }
    }
}

/// Keeps an id within what an event accepts (cutting on a character boundary).
fn clip(mut s: String) -> String {
    if s.len() > MAX_ID_LEN {
        let mut end = MAX_ID_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
