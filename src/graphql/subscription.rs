//! `eventRecorded`: the caller's events as they are accepted, from this instance's live feed;
//! or, given `after`, durably: stored events in ledger order from a cursor on, then as they are
//! committed.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Subscription};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::guard::principal;
use super::inputs::AuditEventFilter;
use super::query::parse_filter;
use super::types::AuditEvent;
use super::Services;
use crate::access::auth::{Principal, Scope};
use crate::access::viewer::CursorKey;
use crate::app::follow::follow;
use crate::app::reads;
use crate::domain::{StreamCursor, StreamStart};

/// The hint given when a caller holds too many subscriptions: one must end first.
const SUBSCRIPTION_RETRY_AFTER_SECS: u64 = 1;

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every event the caller's tenant records from now on that matches `filter`, as soon as it
    /// is accepted.
    ///
    /// With `after` the feed is durable: a `streamCursor` of an event delivered earlier (the feed
    /// continues after it), `"beginning"` or `"now"`. It delivers the stored matching events
    /// after that point in ledger order, then each new one once it is committed, with no gap and
    /// no duplicate; every event carries `ledger { index }` and `streamCursor`. Subscribing
    /// again with the last cursor continues exactly after it, on any instance. A subscriber
    /// that falls too far behind is closed with `SLOW_CONSUMER` and `extensions.cursor`.
    async fn event_recorded(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<AuditEvent>>> {
        let principal = principal(ctx, Scope::EventsRead).map_err(|e| e.extend())?;
        let tenant = principal.tenant.clone();
        let filter = reads::checked_filter(principal.held_to_view(parse_filter(filter)))
            .map_err(|e| e.extend())?;
        let start = after
            .map(|after| {
                stream_start(principal, &after).ok_or_else(|| {
                    ApiError::bad_input(
                        "after",
                        "not a stream cursor: give an event's streamCursor, \"beginning\" or \"now\"",
                    )
                    .extend()
                })
            })
            .transpose()?;
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
        if let Some(start) = start {
            let events = follow(
                services.store.clone(),
                Arc::clone(&services.commits),
                tenant.to_string(),
                filter,
                start,
            );
            let cursor_key = principal.view.as_ref().map(|v| v.cursor_key.clone());
            return Ok(events
                .map(move |item| {
                    let _held = &slot;
                    item.map(AuditEvent::from)
                        .map_err(|e| sealed_for(cursor_key.as_ref(), e).extend())
                })
                .boxed());
        }
        let events = services.live.subscribe();
        Ok(futures::stream::unfold(
            (events, tenant, filter, slot),
            |(mut events, tenant, filter, slot)| async move {
                loop {
                    match events.recv().await {
                        Ok(event) if *event.tenant == *tenant && filter.matches(&event) => {
                            let event = AuditEvent::from((*event).clone());
                            return Some((Ok(event), (events, tenant, filter, slot)));
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "slow subscriber skipped events");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        )
        .boxed())
    }
}

/// Where a durable feed starts: `"beginning"`, `"now"`, or after the event of a stream cursor,
/// which for a viewer token is one of its own sealed ones.
fn stream_start(principal: &Principal, after: &str) -> Option<StreamStart> {
    let Some(view) = &principal.view else {
        return StreamStart::parse(after).ok();
    };
    match after {
        "beginning" | "now" => StreamStart::parse(after).ok(),
        sealed => view
            .cursor_key
            .open(sealed)?
            .checked_add(1)
            .map(StreamStart::At),
    }
}

/// A feed's error as its caller may see it: a viewer token's resume cursor sealed like the
/// ones it was given.
fn sealed_for(key: Option<&CursorKey>, error: ApiError) -> ApiError {
    match (key, error) {
        (Some(key), ApiError::SlowConsumer { message, cursor }) => {
            let cursor = match StreamCursor::decode(&cursor) {
                Ok(StreamCursor(index)) => key.seal(index),
                Err(_) => cursor,
            };
            ApiError::SlowConsumer { message, cursor }
        }
        (_, error) => error,
    }
}
