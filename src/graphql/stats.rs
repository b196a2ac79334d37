//! Analytics: `eventStats` (counts per time bucket and group, shaped for charts) and
//! `processingMetrics` (how much the pipeline recorded, how fast, and with what lag).

use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, Object, SimpleObject};

use super::error::ApiError;
use super::guard::{reader, tenant};
use super::inputs::AuditEventFilter;
use super::query::parse_filter;
use super::scalars::DateTime;
use super::Services;
use crate::access::auth::Scope;
use crate::app::reads;
use crate::domain;

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::StatsGroupBy")]
pub enum StatsGroupBy {
    Action,
    Service,
    /// The actor's id.
    Actor,
    /// The target's type; events without a target form a group whose value is null.
    TargetType,
    Outcome,
    Severity,
}

/// The width of a time bucket; buckets start on UTC minute, hour or day boundaries.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::StatsInterval")]
pub enum StatsInterval {
    Minute,
    Hour,
    Day,
}

/// Event counts per time bucket and group: one chart series per distinct `group`.
#[derive(SimpleObject)]
pub struct EventStats {
    /// Start of the range counted (inclusive): `filter.occurredAfter`, by default 24 hours
    /// before `to`.
    from: DateTime,
    /// End of the range counted (exclusive): `filter.occurredBefore`, by default now.
    to: DateTime,
    interval: StatsInterval,
    group_by: Vec<StatsGroupBy>,
    /// Ordered by start, then by group size (largest first). Buckets without events are left
    /// out. At most 50 groups: the largest by count over the whole range.
    buckets: Vec<StatsBucket>,
    /// Every matching event in the range, including those of groups left out.
    total_count: i64,
    /// Distinct groups in the range, including those left out.
    group_count: i64,
    /// Whether groups were left out (`groupCount` is above 50).
    truncated: bool,
}

#[derive(SimpleObject)]
pub struct StatsBucket {
    /// The bucket's first instant.
    start: DateTime,
    /// One entry per `groupBy` dimension, in the same order; empty when not grouped.
    group: Vec<StatsGroupValue>,
    count: i64,
}

#[derive(SimpleObject)]
pub struct StatsGroupValue {
    by: StatsGroupBy,
    /// The dimension's value (severity and outcome by name); null for TARGET_TYPE of events
    /// without a target.
    value: Option<String>,
}

/// The pipeline's health over a range of `occurredAt`, for the caller's tenant.
#[derive(SimpleObject)]
pub struct ProcessingMetrics {
    occurred_after: DateTime,
    occurred_before: DateTime,
    /// Events stored with `occurredAt` in the range.
    events_recorded: i64,
    /// `eventsRecorded` per second of the range.
    throughput_per_second: f64,
    /// Time from the API accepting an event to its commit in the store (`recordedAt −
    /// receivedAt`); null when no event was recorded.
    accept_to_commit_lag: Option<LagPercentiles>,
}

/// Continuous (interpolated) percentiles, in milliseconds.
#[derive(SimpleObject)]
pub struct LagPercentiles {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

#[derive(Default)]
pub struct StatsQuery;

#[Object]
impl StatsQuery {
    /// Counts of the caller's events matching `filter`, per UTC time bucket of `interval` and
    /// per combination of the `groupBy` dimensions. The range defaults to the last 24 hours and
    /// may span at most 1500 buckets.
    async fn event_stats(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        group_by: Vec<StatsGroupBy>,
        interval: StatsInterval,
    ) -> async_graphql::Result<EventStats> {
        event_stats(ctx, filter, group_by, interval)
            .await
            .map_err(|e| e.extend())
    }

    /// Events recorded, throughput and accept-to-commit lag for the caller's tenant, over events
    /// with `occurredAt` in `[occurredAfter, occurredBefore)` (default: the last 24 hours).
    async fn processing_metrics(
        &self,
        ctx: &Context<'_>,
        occurred_after: Option<DateTime>,
        occurred_before: Option<DateTime>,
    ) -> async_graphql::Result<ProcessingMetrics> {
        processing_metrics(ctx, occurred_after, occurred_before)
            .await
            .map_err(|e| e.extend())
    }
}

async fn event_stats(
    ctx: &Context<'_>,
    filter: Option<AuditEventFilter>,
    group_by: Vec<StatsGroupBy>,
    interval: StatsInterval,
) -> Result<EventStats, ApiError> {
    let (tenant, filter) = reader(ctx, parse_filter(filter))?;
    let services = ctx.data_unchecked::<Arc<Services>>();
    let (request, stats) = reads::stats(
        services,
        &tenant,
        filter,
        group_by.iter().copied().map(Into::into).collect(),
        interval.into(),
    )
    .await?;
    let truncated = stats.truncated();
    let buckets = stats
        .buckets
        .into_iter()
        .map(|bucket| StatsBucket {
            start: DateTime(bucket.start),
            group: group_by
                .iter()
                .zip(bucket.group)
                .map(|(&by, value)| StatsGroupValue { by, value })
                .collect(),
            count: bucket.count,
        })
        .collect();
    Ok(EventStats {
        from: DateTime(request.range.from),
        to: DateTime(request.range.to),
        interval,
        group_by,
        buckets,
        total_count: stats.total_count,
        group_count: stats.group_count,
        truncated,
    })
}

async fn processing_metrics(
    ctx: &Context<'_>,
    occurred_after: Option<DateTime>,
    occurred_before: Option<DateTime>,
) -> Result<ProcessingMetrics, ApiError> {
    let tenant = tenant(ctx, Scope::EventsRead)?;
    let services = ctx.data_unchecked::<Arc<Services>>();
    let (range, metrics) = reads::processing(
        services,
        &tenant,
        occurred_after.map(|t| t.0),
        occurred_before.map(|t| t.0),
    )
    .await?;
    Ok(ProcessingMetrics {
        occurred_after: DateTime(range.from),
        occurred_before: DateTime(range.to),
        events_recorded: metrics.events_recorded,
        throughput_per_second: metrics.events_recorded as f64 / range.seconds(),
        accept_to_commit_lag: metrics.lag.map(|lag| LagPercentiles {
            p50_ms: lag.p50_ms,
            p95_ms: lag.p95_ms,
            p99_ms: lag.p99_ms,
        }),
    })
}
