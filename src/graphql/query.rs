//! Reading events: one by id, or a filtered, keyset-paginated list.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ErrorExtensions, Object, ID};
use uuid::Uuid;

use super::error::ApiError;
use super::guard::tenant;
use super::inputs::AuditEventFilter;
use super::loader::{EventKey, EventLoader};
use super::types::{AuditEvent, AuditEventConnection, AuditEventEdge, EventOrder, PageInfo};
use super::Services;
use crate::access::auth::Scope;
use crate::domain::{self, Cursor};

/// The largest page a client may ask for.
pub const MAX_PAGE: i32 = 100;

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// The caller's events matching `filter`, newest first by default.
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
        #[graphql(default_with = "EventOrder::OccurredAtDesc")] order_by: EventOrder,
    ) -> async_graphql::Result<AuditEventConnection> {
        list_events(ctx, filter, first, after, order_by)
            .await
            .map_err(|e| e.extend())
    }

    /// One of the caller's events, or null if it has none with that id.
    async fn audit_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<AuditEvent>> {
        let load = async {
            let id =
                Uuid::try_parse(&id).map_err(|_| ApiError::bad_input("id", "not an event id"))?;
            let key = EventKey {
                tenant: tenant(ctx, Scope::EventsRead)?,
                id,
            };
            let loader = ctx.data_unchecked::<DataLoader<EventLoader>>();
            let event = loader.load_one(key).await.map_err(ApiError::from)?;
            Ok::<_, ApiError>(event.map(AuditEvent))
        };
        load.await.map_err(|e| e.extend())
    }
}

pub(super) fn parse_filter(
    filter: Option<AuditEventFilter>,
) -> Result<domain::EventFilter, ApiError> {
    let filter: domain::EventFilter = filter.unwrap_or_default().into();
    filter
        .check_sizes()
        .map_err(|e| ApiError::bad_input(format!("filter.{}", e.field), e.message))?;
    Ok(filter)
}

async fn list_events(
    ctx: &Context<'_>,
    filter: Option<AuditEventFilter>,
    first: i32,
    after: Option<String>,
    order: EventOrder,
) -> Result<AuditEventConnection, ApiError> {
    let tenant = tenant(ctx, Scope::EventsRead)?;
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(ApiError::bad_input(
            "first",
            format!("must be between 0 and {MAX_PAGE}"),
        ));
    }
    let filter = parse_filter(filter)?;
    let after = after
        .map(|c| Cursor::decode(&c))
        .transpose()
        .map_err(|e| ApiError::bad_input("after", e.to_string()))?;
    let services = ctx.data_unchecked::<Arc<Services>>();
    let page = usize::try_from(first).unwrap_or_default();
    let mut positions = services
        .store
        .page_event_positions(&tenant, &filter, order.into(), after, i64::from(first) + 1)
        .await?;
    let has_next_page = positions.len() > page;
    positions.truncate(page);

    let loader = ctx.data_unchecked::<DataLoader<EventLoader>>();
    let keys = positions.iter().map(|p| EventKey {
        tenant: Arc::clone(&tenant),
        id: p.id,
    });
    let mut events = loader.load_many(keys).await.map_err(ApiError::from)?;
    let edges: Vec<AuditEventEdge> = positions
        .iter()
        .filter_map(|p| {
            let key = EventKey {
                tenant: Arc::clone(&tenant),
                id: p.id,
            };
            events.remove(&key).map(|event| AuditEventEdge {
                cursor: p.encode(),
                node: AuditEvent(event),
            })
        })
        .collect();
    Ok(AuditEventConnection {
        page_info: PageInfo {
            has_next_page,
            end_cursor: positions.last().map(Cursor::encode),
        },
        edges,
    })
}
