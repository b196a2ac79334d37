//! `eventRecorded`: the caller's events as they are accepted, from this instance's live feed.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Subscription};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::guard::principal;
use super::inputs::AuditEventFilter;
use super::query::parse_filter;
use super::types::AuditEvent;
use super::Services;
use crate::access::auth::Scope;
use crate::app::reads;

/// The hint given when a caller holds too many subscriptions: one must end first.
const SUBSCRIPTION_RETRY_AFTER_SECS: u64 = 1;

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every event the caller's tenant records from now on that matches `filter`.
    async fn event_recorded(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
    ) -> async_graphql::Result<impl Stream<Item = AuditEvent>> {
        let principal = principal(ctx, Scope::EventsRead).map_err(|e| e.extend())?;
        let tenant = principal.tenant.clone();
        let filter = reads::checked_filter(parse_filter(filter)).map_err(|e| e.extend())?;
        let services = ctx.data_unchecked::<Arc<Services>>();
        // Held as long as the stream lives.
        let slot = services.subscriptions.acquire(principal).ok_or_else(|| {
            ApiError::RateLimited {
                message: format!(
                    "at most {} live subscriptions per key at once",
                    services.subscriptions.max()
                ),
                retry_after_seconds: SUBSCRIPTION_RETRY_AFTER_SECS,
            }
            .extend()
        })?;
        let events = services.live.subscribe();
        Ok(futures::stream::unfold(
            (events, tenant, filter, slot),
            |(mut events, tenant, filter, slot)| async move {
                loop {
                    match events.recv().await {
                        Ok(event) if *event.tenant == *tenant && filter.matches(&event) => {
                            let event = AuditEvent((*event).clone());
                            return Some((event, (events, tenant, filter, slot)));
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
