//! Reading events: one by id, or a filtered, keyset-paginated list.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ErrorExtensions, Object, ID};
use uuid::Uuid;

use super::error::ApiError;
use super::guard::{event_reader, reader};
use super::inputs::AuditEventFilter;
use super::loader::{EventKey, EventLoader};
use super::types::{
    AuditEvent, AuditEventConnection, AuditEventEdge, EventOrder, Matching, PageInfo,
};
use super::Services;
use crate::app::reads::{self, PageRequest};
use crate::domain;

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// The caller's events matching `filter`, newest first by default. Pages go forwards
    /// (`first` after the cursor `after`) or backwards (`last` before the cursor `before`;
    /// `first` is then not used), each one keyset query, and come in `orderBy` either way.
    #[allow(clippy::too_many_arguments)]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "EventOrder::OccurredAtDesc")] order_by: EventOrder,
    ) -> async_graphql::Result<AuditEventConnection> {
        let request = PageRequest {
            first,
            after: after.as_deref(),
            last,
            before: before.as_deref(),
        };
        list_events(ctx, filter, request, order_by)
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
            let (tenant, view) = event_reader(ctx)?;
            let loader = ctx.data_unchecked::<DataLoader<EventLoader>>();
            let event = loader
                .load_one(EventKey { tenant, id })
                .await
                .map_err(ApiError::from)?;
            // Outside the caller's view is as good as not there.
            let event = event.filter(|e| view.is_none_or(|v| v.admits(e)));
            Ok::<_, ApiError>(event.map(AuditEvent::from))
        };
        load.await.map_err(|e| e.extend())
    }
}

pub(super) fn parse_filter(filter: Option<AuditEventFilter>) -> domain::EventFilter {
    filter.unwrap_or_default().into()
}

async fn list_events(
    ctx: &Context<'_>,
    filter: Option<AuditEventFilter>,
    request: PageRequest<'_>,
    order: EventOrder,
) -> Result<AuditEventConnection, ApiError> {
    let (tenant, filter) = reader(ctx, parse_filter(filter))?;
    let services = ctx.data_unchecked::<Arc<Services>>();
    let loader = ctx.data_unchecked::<DataLoader<EventLoader>>();
    let page = reads::page(
        services,
        loader,
        &tenant,
        filter.clone(),
        request,
        order.into(),
    )
    .await?;
    Ok(AuditEventConnection {
        page_info: PageInfo {
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            start_cursor: page.start_cursor,
            end_cursor: page.end_cursor,
        },
        edges: page
            .events
            .into_iter()
            .map(|(cursor, event)| AuditEventEdge {
                cursor,
                node: AuditEvent::from(event),
            })
            .collect(),
        matching: Matching {
            tenant,
            filter,
            total: Default::default(),
        },
    })
}
