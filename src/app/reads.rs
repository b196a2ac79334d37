//! Reading a tenant's events: a keyset page, a full-text search, counts over time and the
//! pipeline's own figures. Each checks its arguments (naming the offending one), asks the store
//! or the search backend for positions, and takes the events themselves from an [`EventSource`]
//! (the per-request loader: Redis first, then PostgreSQL), so every read answers with the
//! canonical stored events.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ApiError, Services};
use crate::domain::{
    AuditEvent, Cursor, EventFilter, EventOrder, EventStats, FieldError, ProcessingMetrics,
    SearchQuery, StatsGroupBy, StatsInterval, StatsRequest, Tenant, TimeRange,
};
use crate::search::{BackendKind, SearchRequest};

/// The largest page a client may ask for.
pub const MAX_PAGE: usize = 100;

/// Where a request's events come from, by id: the same events for every read of one request.
pub trait EventSource {
    /// The tenant's events with these ids; unknown ids are left out.
    fn events(
        &self,
        tenant: &Tenant,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, AuditEvent>, ApiError>> + Send;
}

/// One page of a list: each event with the cursor that continues after it.
pub struct Page {
    pub events: Vec<(String, AuditEvent)>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// One page of a search: each hit's event, cursor, score and highlights.
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
    pub total: u64,
    /// Which backend answered.
    pub backend: BackendKind,
}

pub struct Hit {
    pub event: AuditEvent,
    pub cursor: String,
    pub score: Option<f64>,
    pub highlights: Vec<String>,
}

/// A filter as callers send it, held to the limits on its sizes.
pub fn checked_filter(filter: EventFilter) -> Result<EventFilter, ApiError> {
    filter
        .check_sizes()
        .map_err(|e| ApiError::bad_input(format!("filter.{}", e.field), e.message))?;
    Ok(filter)
}

fn page_size(first: i32) -> Result<usize, ApiError> {
    usize::try_from(first)
        .ok()
        .filter(|n| *n <= MAX_PAGE)
        .ok_or_else(|| ApiError::bad_input("first", format!("must be between 0 and {MAX_PAGE}")))
}

/// The tenant's events matching `filter`, `first` of them after the cursor `after`, in `order`.
pub async fn page(
    services: &Services,
    source: &impl EventSource,
    tenant: &Tenant,
    filter: EventFilter,
    first: i32,
    after: Option<&str>,
    order: EventOrder,
) -> Result<Page, ApiError> {
    let size = page_size(first)?;
    let filter = checked_filter(filter)?;
    let after = after
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| ApiError::bad_input("after", e.to_string()))?;
    let mut positions = services
        .store
        .page_event_positions(tenant, &filter, order, after, i64::from(first) + 1)
        .await?;
    let has_next_page = positions.len() > size;
    positions.truncate(size);
    let ids: Vec<Uuid> = positions.iter().map(|p| p.id).collect();
    let mut events = source.events(tenant, &ids).await?;
    Ok(Page {
        end_cursor: positions.last().map(Cursor::encode),
        events: positions
            .iter()
            .filter_map(|p| events.remove(&p.id).map(|event| (p.encode(), event)))
            .collect(),
        has_next_page,
    })
}

/// The tenant's events that `query` finds among those matching `filter`, best first.
pub async fn search(
    services: &Services,
    source: &impl EventSource,
    tenant: &Tenant,
    query: &str,
    filter: EventFilter,
    first: i32,
    after: Option<&str>,
) -> Result<SearchResults, ApiError> {
    let size = page_size(first)?;
    let query =
        SearchQuery::parse(query).map_err(|e| ApiError::bad_input("query", e.to_string()))?;
    let filter = checked_filter(filter)?;
    let (page, backend) = services
        .search
        .search(SearchRequest {
            tenant,
            query: &query,
            filter: &filter,
            first: size,
            after,
        })
        .await?;
    let ids: Vec<Uuid> = page.hits.iter().map(|h| h.id).collect();
    let mut events = source.events(tenant, &ids).await?;
    let end_cursor = page.hits.last().map(|h| h.cursor.clone());
    // A hit whose event the store does not have (an index older than the database) is left out.
    let hits = page
        .hits
        .into_iter()
        .filter_map(|hit| {
            events.remove(&hit.id).map(|event| Hit {
                event,
                cursor: hit.cursor,
                score: hit.score,
                highlights: hit.highlights,
            })
        })
        .collect();
    Ok(SearchResults {
        hits,
        has_next_page: page.has_next_page,
        end_cursor,
        total: page.total,
        backend,
    })
}

/// How many of the tenant's events match `filter`, per `interval` and per group.
pub async fn stats(
    services: &Services,
    tenant: &Tenant,
    filter: EventFilter,
    group_by: Vec<StatsGroupBy>,
    interval: StatsInterval,
) -> Result<(StatsRequest, EventStats), ApiError> {
    let request = StatsRequest::parse(checked_filter(filter)?, group_by, interval, Utc::now())
        .map_err(bad_input)?;
    let stats = services.store.event_stats(tenant, &request).await?;
    Ok((request, stats))
}

/// How many of the tenant's events were recorded in a time range, and how long they took from
/// acceptance to commit.
pub async fn processing(
    services: &Services,
    tenant: &Tenant,
    occurred_after: Option<DateTime<Utc>>,
    occurred_before: Option<DateTime<Utc>>,
) -> Result<(TimeRange, ProcessingMetrics), ApiError> {
    let range =
        TimeRange::parse(occurred_after, occurred_before, Utc::now(), "").map_err(bad_input)?;
    let metrics = services.store.processing_metrics(tenant, range).await?;
    Ok((range, metrics))
}

fn bad_input(e: FieldError) -> ApiError {
    ApiError::bad_input(e.field, e.message)
}
