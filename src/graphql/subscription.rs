//! `eventRecorded`: the caller's events as they are accepted, from this instance's live feed.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Subscription};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::inputs::AuditEventFilter;
use super::query::{parse_filter, tenant};
use super::types::AuditEvent;
use super::Services;

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every event the caller's tenant records from now on that matches `filter`.
    async fn event_recorded(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
    ) -> async_graphql::Result<impl Stream<Item = AuditEvent>> {
        let tenant = tenant(ctx).map_err(|e| e.extend())?;
        let filter = parse_filter(filter).map_err(|e| e.extend())?;
        let events = ctx.data_unchecked::<Arc<Services>>().live.subscribe();
        Ok(futures::stream::unfold(
            (events, tenant, filter),
            |(mut events, tenant, filter)| async move {
                loop {
                    match events.recv().await {
                        Ok(event) if *event.tenant == *tenant && filter.matches(&event) => {
                            let event = AuditEvent((*event).clone());
                            return Some((event, (events, tenant, filter)));
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "slow subscriber skipped events");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}
