//! The output types of the contract.

use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, Object, SimpleObject, ID};

use super::ledger::{entry_of, index_of, LedgerEntry};
use super::scalars::DateTime;
use crate::access::auth::Principal;
use crate::access::viewer::CursorKey;
use crate::app::{reads, record, Services};
use crate::domain;
use crate::domain::ledger::Committed;
use crate::domain::StreamCursor;
use crate::store::MatchCount;

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::Outcome")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::Severity")]
pub enum Severity {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::EventOrder")]
pub enum EventOrder {
    OccurredAtDesc,
    OccurredAtAsc,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "record::RecordStatus")]
pub enum RecordStatus {
    Accepted,
    Duplicate,
}

/// Create, read, update or delete.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::Crud")]
pub enum Crud {
    C,
    R,
    U,
    D,
}

#[derive(SimpleObject)]
pub struct Actor {
    id: String,
    #[graphql(name = "type")]
    kind: String,
    name: Option<String>,
    ip: Option<String>,
    /// A link to the actor in the tenant's product.
    href: Option<String>,
}

#[derive(SimpleObject)]
pub struct Target {
    id: String,
    #[graphql(name = "type")]
    kind: String,
    name: Option<String>,
    /// A link to the target in the tenant's product.
    href: Option<String>,
}

/// The tenant's own customer an event belongs to (an organization in the tenant's product).
#[derive(SimpleObject)]
pub struct Group {
    id: String,
    name: Option<String>,
}

/// An immutable record of who did what to which resource, when, and with what outcome.
pub struct AuditEvent {
    pub event: domain::AuditEvent,
    /// Its ledger index when the reader already has it (a durable feed); looked up otherwise.
    pub index: Option<u64>,
}

impl From<domain::AuditEvent> for AuditEvent {
    fn from(event: domain::AuditEvent) -> Self {
        Self { event, index: None }
    }
}

impl From<Committed> for AuditEvent {
    fn from(committed: Committed) -> Self {
        Self {
            event: committed.event,
            index: Some(committed.index),
        }
    }
}

/// An immutable record of who did what to which resource, when, and with what outcome.
#[Object(name = "AuditEvent")]
impl AuditEvent {
    /// UUIDv7, assigned when the API accepted the event.
    async fn id(&self) -> ID {
        ID(self.event.id.to_string())
    }

    /// The tenant of the credentials that recorded it.
    async fn tenant(&self) -> &str {
        &self.event.tenant
    }

    /// When it happened, by the producer's clock (defaults to `receivedAt`).
    async fn occurred_at(&self) -> DateTime {
        DateTime(self.event.occurred_at)
    }

    /// When the API accepted it.
    async fn received_at(&self) -> DateTime {
        DateTime(self.event.received_at)
    }

    async fn action(&self) -> &str {
        &self.event.action
    }

    async fn outcome(&self) -> Outcome {
        self.event.outcome.into()
    }

    async fn severity(&self) -> Severity {
        self.event.severity.into()
    }

    async fn service(&self) -> &str {
        &self.event.service
    }

    async fn actor(&self) -> Actor {
        let a = &self.event.actor;
        Actor {
            id: a.id.clone(),
            kind: a.kind.clone(),
            name: a.name.clone(),
            ip: a.ip.clone(),
            href: a.href.clone(),
        }
    }

    async fn target(&self) -> Option<Target> {
        self.event.target.as_ref().map(|t| Target {
            id: t.id.clone(),
            kind: t.kind.clone(),
            name: t.name.clone(),
            href: t.href.clone(),
        })
    }

    /// The tenant's customer it belongs to, if the producer said.
    async fn group(&self) -> Option<Group> {
        self.event.group.as_ref().map(|g| Group {
            id: g.id.clone(),
            name: g.name.clone(),
        })
    }

    /// Whether the action created, read, updated or deleted, if the producer said.
    async fn crud(&self) -> Option<Crud> {
        self.event.crud.map(Into::into)
    }

    async fn message(&self) -> Option<&str> {
        self.event.message.as_deref()
    }

    /// The event as a sentence, by the tenant's display template for its action (see
    /// `setDisplayTemplate`), else a generic one; HTML-escaped, so it can be put in a page as is.
    async fn display_text(&self, ctx: &Context<'_>) -> String {
        let services = ctx.data_unchecked::<Arc<Services>>();
        services.display.render(&self.event).await
    }

    async fn metadata(&self) -> Option<&serde_json::Value> {
        self.event.metadata.as_ref()
    }

    async fn idempotency_key(&self) -> Option<&str> {
        self.event.idempotency_key.as_deref()
    }

    async fn request_id(&self) -> Option<&str> {
        self.event.request_id.as_deref()
    }

    async fn trace_id(&self) -> Option<&str> {
        self.event.trace_id.as_deref()
    }

    /// Who recorded it, from the credentials the server verified (never from the input): an
    /// API key's id, a JWT's subject, or the service itself. Null for events stored before
    /// this was kept.
    async fn recorded_by(&self) -> Option<RecordedBy> {
        self.event.recorded_by.as_ref().map(|by| RecordedBy {
            id: by.id.clone(),
            kind: by.kind.clone(),
        })
    }

    /// Its place in the tenant's verifiable ledger: null until it is stored, and for a viewer
    /// token (an index counts the whole tenant's events).
    async fn ledger(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LedgerEntry>> {
        if viewer_cursor_key(ctx).is_some() {
            return Ok(None);
        }
        entry_of(ctx, &self.event, self.index)
            .await
            .map_err(|e| e.extend())
    }

    /// Where a durable `eventRecorded(after:)` subscription continues after this event: null
    /// until it is stored. A viewer token's cursors are sealed: they resume its feed and tell
    /// nothing else.
    async fn stream_cursor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let index = match self.index {
            Some(index) => Some(index),
            None => index_of(ctx, &self.event).await.map_err(|e| e.extend())?,
        };
        Ok(index.map(|index| match viewer_cursor_key(ctx) {
            Some(key) => key.seal(index),
            None => StreamCursor(index).encode(),
        }))
    }
}

/// The key a viewer token's cursors are sealed with, if the caller is one.
fn viewer_cursor_key<'a>(ctx: &Context<'a>) -> Option<&'a CursorKey> {
    ctx.data_opt::<Principal>()?
        .view
        .as_ref()
        .map(|view| &view.cursor_key)
}

/// The provenance of an event.
#[derive(SimpleObject)]
pub struct RecordedBy {
    /// An API key's id, a JWT's subject, or `traceledger`.
    id: String,
    /// `api_key`, `jwt_subject` or `service`.
    #[graphql(name = "type")]
    kind: String,
}

#[derive(SimpleObject)]
pub struct RecordEventPayload {
    /// The new event's id; for DUPLICATE, the id of the event first recorded with that key.
    pub id: ID,
    pub status: RecordStatus,
    /// When this call was received.
    pub received_at: DateTime,
}

impl From<record::Receipt> for RecordEventPayload {
    fn from(r: record::Receipt) -> Self {
        Self {
            id: ID(r.id.to_string()),
            status: r.status.into(),
            received_at: DateTime(r.received_at),
        }
    }
}

/// Where a page stands in its list (Relay): whether there is more either way, and the cursors
/// of its first and last edge (`after: endCursor` continues forwards, `before: startCursor`
/// backwards).
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct AuditEventEdge {
    pub cursor: String,
    pub node: AuditEvent,
}

pub struct AuditEventConnection {
    pub edges: Vec<AuditEventEdge>,
    pub page_info: PageInfo,
    /// What the total counts: counted once, and only when asked for.
    pub matching: Matching,
}

/// The events a list's filter matches, across all of its pages.
pub struct Matching {
    pub tenant: domain::Tenant,
    pub filter: domain::EventFilter,
    pub total: tokio::sync::OnceCell<MatchCount>,
}

impl Matching {
    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<MatchCount> {
        let services = ctx.data_unchecked::<Arc<Services>>();
        self.total
            .get_or_try_init(|| reads::total(services, &self.tenant, &self.filter))
            .await
            .copied()
            .map_err(|e| e.extend())
    }
}

#[Object]
impl AuditEventConnection {
    async fn edges(&self) -> &[AuditEventEdge] {
        &self.edges
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many events match the filter, on every page: exact up to 10,000, beyond that the
    /// database's estimate (then `totalCountIsEstimate` is true). Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        Ok(self.matching.total(ctx).await?.count)
    }

    /// Whether `totalCount` is an estimate: more than 10,000 events match.
    async fn total_count_is_estimate(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.matching.total(ctx).await?.estimate)
    }
}

#[derive(SimpleObject)]
pub struct SearchHit {
    pub cursor: String,
    pub score: Option<f64>,
    pub event: AuditEvent,
    /// Message fragments with the matches wrapped in `<em>…</em>`.
    pub highlights: Vec<String>,
}

#[derive(SimpleObject)]
pub struct SearchConnection {
    pub hits: Vec<SearchHit>,
    pub page_info: PageInfo,
    /// The hits in all pages: exact up to 10,000, beyond that an estimate
    /// (`totalCountIsEstimate`).
    pub total: i32,
    /// The same as `total`, named as on `auditEvents`.
    pub total_count: u64,
    /// Whether `totalCount` (and `total`) is an estimate: more than 10,000 hits.
    pub total_count_is_estimate: bool,
}
