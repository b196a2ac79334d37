//! Statistics and pipeline metrics, each computed by PostgreSQL in one query over the tenant's
//! events of a time range (index-only on `audit_events_tenant_time_stats`).

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Row};

use super::filter::push_filter;
use super::{Store, StoreError};
use crate::domain::{
    EventFilter, EventStats, LagPercentiles, ProcessingMetrics, Severity, StatsBucket,
    StatsGroupBy, StatsInterval, StatsRequest, TimeRange, MAX_STATS_GROUPS,
};

/// Where `date_bin` starts counting buckets: the Unix epoch in UTC, so buckets start on UTC
/// minutes, hours and midnights whatever the session's time zone. (`date_bin` is plain
/// arithmetic; `date_trunc` with a time zone converts every row and costs much more.)
const BUCKET_ORIGIN: &str = "TIMESTAMPTZ '1970-01-01 00:00:00+00'";

impl Store {
    /// Event counts per UTC time bucket and group, for the largest [`MAX_STATS_GROUPS`] groups.
    pub async fn event_stats(
        &self,
        tenant: &str,
        request: &StatsRequest,
    ) -> Result<EventStats, StoreError> {
        let keys: Vec<String> = (0..request.group_by.len())
            .map(|i| format!("k{i}"))
            .collect();
        let key_columns: String = request
            .group_by
            .iter()
            .zip(&keys)
            .map(|(g, k)| format!(", {} AS {k}", group_expression(*g)))
            .collect();
        let key_list: String = keys.iter().map(|k| format!(", {k}")).collect();
        let partition = if keys.is_empty() {
            String::new()
        } else {
            format!("PARTITION BY {}", keys.join(", "))
        };
        let stride = interval_stride(request.interval);

        // Count per (bucket, group); rank groups by their count over the whole range (ties by
        // key, so the cut is stable); keep the largest groups. Totals are taken before the cut.
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "WITH counts AS (\
                SELECT date_bin('{stride}', occurred_at, {BUCKET_ORIGIN}) AS bucket{key_columns}, \
                       count(*) AS n \
                FROM audit_events WHERE tenant = "
        ));
        q.push_bind(tenant);
        push_filter(&mut q, &request.filter);
        q.push(format!(
            " GROUP BY bucket{key_list}), \
             ranked AS (\
                SELECT bucket{key_list}, n, sum(n) OVER () AS total_count, \
                       dense_rank() OVER (ORDER BY group_total DESC{key_list}) AS group_rank \
                FROM (SELECT *, sum(n) OVER ({partition}) AS group_total FROM counts) c), \
             counted AS (SELECT *, max(group_rank) OVER () AS group_count FROM ranked) \
             SELECT bucket{key_list}, n, total_count::bigint AS total_count, group_count \
             FROM counted WHERE group_rank <= "
        ));
        q.push_bind(MAX_STATS_GROUPS);
        q.push(" ORDER BY bucket, group_rank");
        let rows = q.build().fetch_all(self.pool()).await?;

        let mut stats = EventStats {
            buckets: Vec::with_capacity(rows.len()),
            total_count: 0,
            group_count: 0,
        };
        for row in rows {
            stats.total_count = row.try_get("total_count")?;
            stats.group_count = row.try_get("group_count")?;
            let group = keys
                .iter()
                .map(|k| row.try_get::<Option<String>, _>(k.as_str()))
                .collect::<Result<_, _>>()?;
            stats.buckets.push(StatsBucket {
                start: row.try_get::<DateTime<Utc>, _>("bucket")?,
                group,
                count: row.try_get("n")?,
            });
        }
        Ok(stats)
    }

    /// Events recorded for the tenant with `occurred_at` in `range`, and the percentiles of
    /// their accept-to-commit lag.
    pub async fn processing_metrics(
        &self,
        tenant: &str,
        range: TimeRange,
    ) -> Result<ProcessingMetrics, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT count(*) AS events, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP \
             (ORDER BY (EXTRACT(EPOCH FROM recorded_at - received_at) * 1000)::float8) AS lag_ms \
             FROM audit_events WHERE tenant = ",
        );
        q.push_bind(tenant);
        let filter = EventFilter {
            occurred_after: Some(range.from),
            occurred_before: Some(range.to),
            ..Default::default()
        };
        push_filter(&mut q, &filter);
        let (events_recorded, lag_ms): (i64, Option<Vec<f64>>) =
            q.build_query_as().fetch_one(self.pool()).await?;
        let lag = match lag_ms.as_deref() {
            Some(&[p50_ms, p95_ms, p99_ms]) => Some(LagPercentiles {
                p50_ms,
                p95_ms,
                p99_ms,
            }),
            _ => None,
        };
        Ok(ProcessingMetrics {
            events_recorded,
            lag,
        })
    }
}

/// The SQL value a dimension groups by; severity by its name rather than its stored rank.
fn group_expression(group_by: StatsGroupBy) -> String {
    match group_by {
        StatsGroupBy::Action => "action".into(),
        StatsGroupBy::Service => "service".into(),
        StatsGroupBy::Actor => "actor_id".into(),
        StatsGroupBy::TargetType => "target_type".into(),
        StatsGroupBy::Outcome => "outcome".into(),
        StatsGroupBy::Severity => {
            let cases: String = Severity::ALL
                .iter()
                .map(|s| format!(" WHEN {} THEN '{}'", s.rank(), s.as_str()))
                .collect();
            format!("(CASE severity{cases} END)")
        }
    }
}

fn interval_stride(interval: StatsInterval) -> &'static str {
    match interval {
        StatsInterval::Minute => "1 minute",
        StatsInterval::Hour => "1 hour",
        StatsInterval::Day => "1 day",
    }
}
