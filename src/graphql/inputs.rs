//! The input types of the contract, and their conversion into domain drafts and filters.

use async_graphql::InputObject;

use super::scalars::DateTime;
use super::types::{Crud, Outcome, Severity};
use crate::domain::{self, ActionPattern, ActorDraft, EventDraft, GroupDraft, TargetDraft};

#[derive(InputObject)]
pub struct ActorInput {
    id: String,
    #[graphql(name = "type", default_with = "String::from(\"user\")")]
    kind: String,
    name: Option<String>,
    ip: Option<String>,
    /// An http(s) URL or a path starting with "/": a link to the actor in your product.
    href: Option<String>,
}

#[derive(InputObject)]
pub struct TargetInput {
    id: String,
    #[graphql(name = "type")]
    kind: String,
    name: Option<String>,
    /// An http(s) URL or a path starting with "/": a link to the target in your product.
    href: Option<String>,
}

/// Your customer the event belongs to (an organization in your product): what viewer tokens are
/// scoped to.
#[derive(InputObject)]
pub struct GroupInput {
    id: String,
    name: Option<String>,
}

#[derive(InputObject)]
pub struct RecordEventInput {
    action: String,
    service: String,
    actor: ActorInput,
    target: Option<TargetInput>,
    #[graphql(default_with = "Outcome::Success")]
    outcome: Outcome,
    #[graphql(default_with = "Severity::Info")]
    severity: Severity,
    occurred_at: Option<DateTime>,
    message: Option<String>,
    metadata: Option<serde_json::Value>,
    /// Same tenant and key: recorded once; a second call answers DUPLICATE.
    idempotency_key: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    group: Option<GroupInput>,
    crud: Option<Crud>,
}

impl From<RecordEventInput> for EventDraft {
    fn from(i: RecordEventInput) -> Self {
        EventDraft {
            action: i.action,
            service: i.service,
            actor: ActorDraft {
                id: i.actor.id,
                kind: i.actor.kind,
                name: i.actor.name,
                ip: i.actor.ip,
                href: i.actor.href,
            },
            target: i.target.map(|t| TargetDraft {
                id: t.id,
                kind: t.kind,
                name: t.name,
                href: t.href,
            }),
            outcome: Some(i.outcome.into()),
            severity: Some(i.severity.into()),
            occurred_at: i.occurred_at.map(|t| t.0),
            message: i.message,
            // An explicit JSON null is the same as no metadata.
            metadata: i.metadata.filter(|m| !m.is_null()),
            idempotency_key: i.idempotency_key,
            request_id: i.request_id,
            trace_id: i.trace_id,
            group: i.group.map(|g| GroupDraft {
                id: g.id,
                name: g.name,
            }),
            crud: i.crud.map(Into::into),
        }
    }
}

#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// Exact names; a trailing ".*" matches a prefix ("invoice.*").
    actions: Option<Vec<String>>,
    services: Option<Vec<String>>,
    actor_ids: Option<Vec<String>>,
    actor_types: Option<Vec<String>>,
    target_ids: Option<Vec<String>>,
    target_types: Option<Vec<String>>,
    /// Events of these groups only (events without a group never match).
    group_ids: Option<Vec<String>>,
    outcomes: Option<Vec<Outcome>>,
    min_severity: Option<Severity>,
    /// Inclusive.
    occurred_after: Option<DateTime>,
    /// Exclusive.
    occurred_before: Option<DateTime>,
}

impl From<AuditEventFilter> for domain::EventFilter {
    fn from(f: AuditEventFilter) -> Self {
        domain::EventFilter {
            actions: f
                .actions
                .unwrap_or_default()
                .iter()
                .map(|a| ActionPattern::parse(a))
                .collect(),
            services: f.services.unwrap_or_default(),
            actor_ids: f.actor_ids.unwrap_or_default(),
            actor_types: f.actor_types.unwrap_or_default(),
            target_ids: f.target_ids.unwrap_or_default(),
            target_types: f.target_types.unwrap_or_default(),
            group_ids: f.group_ids.unwrap_or_default(),
            outcomes: f
                .outcomes
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            min_severity: f.min_severity.map(Into::into),
            occurred_after: f.occurred_after.map(|t| t.0),
            occurred_before: f.occurred_before.map(|t| t.0),
            // Only the caller's credentials set a view.
            view: None,
        }
    }
}
