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
use crate::search::{BackendKind, SearchError, SearchRequest};
use crate::store::MatchCount;

/// The largest page a client may ask for.
pub const MAX_PAGE: usize = 100;
pub use crate::domain::EXACT_TOTAL_UP_TO;

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

/// Which way a page goes, how large, and from which cursor (named as the caller gave it).
struct Way<'a> {
    size: usize,
    cursor: Option<&'a str>,
    cursor_field: &'static str,
    backwards: bool,
}

impl<'a> PageRequest<'a> {
    /// Forwards with `first`/`after`, or backwards with `last`/`before` (`first` then unused);
    /// mixing the pairs is bad input.
    fn way(&self) -> Result<Way<'a>, ApiError> {
        match self.last {
            Some(last) => {
                if self.after.is_some() {
                    return Err(ApiError::bad_input(
                        "after",
                        "goes with first; a page backwards takes last and before",
                    ));
                }
                Ok(Way {
                    size: page_size(last, "last")?,
                    cursor: self.before,
                    cursor_field: "before",
                    backwards: true,
                })
            }
            None => {
                if self.before.is_some() {
                    return Err(ApiError::bad_input(
                        "before",
                        "goes with last; a page forwards takes first and after",
                    ));
                }
                Ok(Way {
                    size: page_size(self.first, "first")?,
                    cursor: self.after,
                    cursor_field: "after",
                    backwards: false,
                })
            }
        }
    }
}

/// One page of a search: each hit's event, cursor, score and highlights, best first whichever
/// way the page was taken.
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
    /// Exact up to [`EXACT_TOTAL_UP_TO`], beyond that an estimate (flagged).
    pub total: MatchCount,
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
    let way = request.way()?;
    let (size, from, backwards) = (
        way.size,
        cursor(way.cursor, way.cursor_field)?,
        way.backwards,
    );
    let query_order = if backwards { order.reversed() } else { order };
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

/// The tenant's events that `query` finds among those matching `filter`, best first: the page
/// after a cursor, or before it (Relay both ways, as [`page`]).
pub async fn search(
    services: &Services,
    source: &impl EventSource,
    tenant: &Tenant,
    query: &str,
    filter: EventFilter,
    request: PageRequest<'_>,
) -> Result<SearchResults, ApiError> {
    let way = request.way()?;
    let query =
        SearchQuery::parse(query).map_err(|e| ApiError::bad_input("query", e.to_string()))?;
    let filter = checked_filter(filter)?;
    let (page, backend) = services
        .search
        .search(SearchRequest {
            tenant,
            query: &query,
            filter: &filter,
            first: way.size,
            after: way.cursor,
            backwards: way.backwards,
        })
        .await
        .map_err(|e| match e {
            SearchError::BadCursor => ApiError::bad_input(way.cursor_field, e.to_string()),
            e => e.into(),
        })?;
    let ids: Vec<Uuid> = page.hits.iter().map(|h| h.id).collect();
    let mut events = source.events(tenant, &ids).await?;
    let start_cursor = page.hits.first().map(|h| h.cursor.clone());
    let end_cursor = page.hits.last().map(|h| h.cursor.clone());
    // The cursor's own hit lies on its other side.
    let past_cursor = way.cursor.is_some();
    let (has_next_page, has_previous_page) = if way.backwards {
        (past_cursor, page.has_more)
    } else {
        (page.has_more, past_cursor)
    };
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
        has_next_page,
        has_previous_page,
        start_cursor,
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
