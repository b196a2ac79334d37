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
use crate::store::MatchCount;

/// The largest page a client may ask for.
pub const MAX_PAGE: usize = 100;
/// Totals are counted up to this many matching events; beyond, they are the planner's estimate.
pub const EXACT_TOTAL_UP_TO: u64 = 10_000;

/// Where a request's events come from, by id: the same events for every read of one request.
pub trait EventSource {
    /// The tenant's events with these ids; unknown ids are left out.
    fn events(
        &self,
        tenant: &Tenant,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, AuditEvent>, ApiError>> + Send;
}

/// One page of a list: each event with its cursor, in the list's order whichever way the page
/// was taken.
pub struct Page {
    pub events: Vec<(String, AuditEvent)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// Which page of a list: Relay's `first`/`after` forwards, or `last`/`before` backwards.
pub struct PageRequest<'a> {
    pub first: i32,
    pub after: Option<&'a str>,
    pub last: Option<i32>,
    pub before: Option<&'a str>,
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

fn page_size(size: i32, field: &str) -> Result<usize, ApiError> {
    usize::try_from(size)
        .ok()
        .filter(|n| *n <= MAX_PAGE)
        .ok_or_else(|| ApiError::bad_input(field, format!("must be between 0 and {MAX_PAGE}")))
}

fn cursor(cursor: Option<&str>, field: &str) -> Result<Option<Cursor>, ApiError> {
    cursor
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| ApiError::bad_input(field, e.to_string()))
}

/// The tenant's events matching `filter` in `order`: `first` after the cursor `after`, or the
/// `last` before the cursor `before` (`first` is then not used). Both ways are one keyset query:
/// backwards is forwards in the reversed order.
pub async fn page(
    services: &Services,
    source: &impl EventSource,
    tenant: &Tenant,
    filter: EventFilter,
    request: PageRequest<'_>,
    order: EventOrder,
) -> Result<Page, ApiError> {
    let filter = checked_filter(filter)?;
    let (size, from, query_order, backwards) = match request.last {
        Some(last) => {
            if request.after.is_some() {
                return Err(ApiError::bad_input(
                    "after",
                    "goes with first; a page backwards takes last and before",
                ));
            }
            let size = page_size(last, "last")?;
            (
                size,
                cursor(request.before, "before")?,
                order.reversed(),
                true,
            )
        }
        None => {
            if request.before.is_some() {
                return Err(ApiError::bad_input(
                    "before",
                    "goes with last; a page forwards takes first and after",
                ));
            }
            let size = page_size(request.first, "first")?;
            (size, cursor(request.after, "after")?, order, false)
        }
    };
    let mut positions = services
        .store
        .page_event_positions(tenant, &filter, query_order, from, size as i64 + 1)
        .await?;
    // One more than asked for tells whether the list goes on that way.
    let more = positions.len() > size;
    positions.truncate(size);
    if backwards {
        positions.reverse();
    }
    let ids: Vec<Uuid> = positions.iter().map(|p| p.id).collect();
    let mut events = source.events(tenant, &ids).await?;
    // The cursor's own event lies on its other side.
    let past_cursor = from.is_some();
    let (has_next_page, has_previous_page) = if backwards {
        (past_cursor, more)
    } else {
        (more, past_cursor)
    };
    Ok(Page {
        start_cursor: positions.first().map(Cursor::encode),
        end_cursor: positions.last().map(Cursor::encode),
        events: positions
            .iter()
            .filter_map(|p| events.remove(&p.id).map(|event| (p.encode(), event)))
            .collect(),
        has_next_page,
        has_previous_page,
    })
}

/// How many of the tenant's events match `filter`: exact up to [`EXACT_TOTAL_UP_TO`], an
/// estimate (flagged) beyond.
pub async fn total(
    services: &Services,
    tenant: &Tenant,
    filter: &EventFilter,
) -> Result<MatchCount, ApiError> {
    Ok(services
        .store
        .count_matching(tenant, filter, EXACT_TOTAL_UP_TO)
        .await?)
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
    let size = page_size(first, "first")?;
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
