//! Analytics over stored events: what a statistics or metrics question asks (time range,
//! grouping, interval), the limits that keep an answer small enough to chart, and the answers.

use chrono::{DateTime, Duration, Utc};

use super::filter::EventFilter;
use super::validate::FieldError;

/// The range a question covers when it names no start: the last 24 hours.
pub const DEFAULT_RANGE: Duration = Duration::hours(24);
/// Time buckets one statistics answer may span: a day of minutes, two months of hours, four
/// years of days (with room for a range that does not start on a bucket edge).
pub const MAX_STATS_BUCKETS: i64 = 1500;
/// Groups one statistics answer holds: the largest ones, by count over the whole range.
pub const MAX_STATS_GROUPS: i64 = 50;

/// A dimension statistics can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatsGroupBy {
    Action,
    Service,
    /// The actor's id.
    Actor,
    /// The target's type; events without a target form their own group.
    TargetType,
    Outcome,
    Severity,
}

/// The width of a time bucket. Buckets start on UTC minute, hour or day boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsInterval {
    Minute,
    Hour,
    Day,
}

impl StatsInterval {
    pub fn duration(self) -> Duration {
        match self {
            StatsInterval::Minute => Duration::minutes(1),
            StatsInterval::Hour => Duration::hours(1),
            StatsInterval::Day => Duration::days(1),
        }
    }

    /// The bucket a UTC time falls in, counted from the Unix epoch (UTC days have no leap
    /// seconds in Unix time, so day buckets start at midnight UTC).
    fn bucket_number(self, t: DateTime<Utc>) -> i64 {
        let width = self.duration().num_microseconds().unwrap_or(i64::MAX);
        t.timestamp_micros().div_euclid(width)
    }
}

/// A half-open time range `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// `[after, before)`, where `after` defaults to [`DEFAULT_RANGE`] before `now` and `before`
    /// to `now`. `field_prefix` is where the two arguments sit in the caller's input (`filter.`
    /// or nothing), for the error.
    pub fn parse(
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        field_prefix: &str,
    ) -> Result<Self, FieldError> {
        let to = before.unwrap_or(now);
        let from = after.unwrap_or(to - DEFAULT_RANGE);
        if from >= to {
            let field = if before.is_some() {
                "occurredBefore"
            } else {
                "occurredAfter"
            };
            return Err(FieldError::new(
                format!("{field_prefix}{field}"),
                "the time range is empty: occurredAfter must be earlier than occurredBefore \
                 (which defaults to now)",
            ));
        }
        Ok(Self { from, to })
    }

    pub fn seconds(&self) -> f64 {
        // Microseconds: what PostgreSQL keeps.
        (self.to - self.from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
    }
}

/// A checked statistics question: the filter's time range is always set.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsRequest {
    pub filter: EventFilter,
    pub range: TimeRange,
    pub group_by: Vec<StatsGroupBy>,
    pub interval: StatsInterval,
}

impl StatsRequest {
    /// Applies the default range and the limits. Errors name `filter.occurredAfter`,
    /// `filter.occurredBefore`, `groupBy` or `interval`.
    pub fn parse(
        mut filter: EventFilter,
        group_by: Vec<StatsGroupBy>,
        interval: StatsInterval,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        let range = TimeRange::parse(
            filter.occurred_after,
            filter.occurred_before,
            now,
            "filter.",
        )?;
        filter.occurred_after = Some(range.from);
        filter.occurred_before = Some(range.to);
        let repeats = group_by
            .iter()
            .enumerate()
            .any(|(i, g)| group_by[..i].contains(g));
        if repeats {
            return Err(FieldError::new(
                "groupBy",
                "each dimension may be listed once",
            ));
        }
        // The last bucket is the one holding the last microsecond before `to`.
        let last = range.to - Duration::microseconds(1);
        let buckets = interval.bucket_number(last) - interval.bucket_number(range.from) + 1;
        if buckets > MAX_STATS_BUCKETS {
            return Err(FieldError::new(
                "interval",
                format!(
                    "the range spans {buckets} buckets of this interval, more than \
                     {MAX_STATS_BUCKETS}: choose a longer interval or a shorter range"
                ),
            ));
        }
        Ok(Self {
            filter,
            range,
            group_by,
            interval,
        })
    }
}

/// How many events of one group fell in one time bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsBucket {
    /// The bucket's first instant (UTC).
    pub start: DateTime<Utc>,
    /// One value per `group_by` entry, in the same order; `None` for an event without a target.
    pub group: Vec<Option<String>>,
    pub count: i64,
}

/// The answer to a statistics question. Buckets without events are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct EventStats {
    /// Ordered by start, then by group size (largest first); at most [`MAX_STATS_GROUPS`] groups.
    pub buckets: Vec<StatsBucket>,
    /// Every matching event in the range, including those of groups left out.
    pub total_count: i64,
    /// Distinct groups in the range, including those left out.
    pub group_count: i64,
}

impl EventStats {
    /// Whether some groups were left out for being smaller than the largest ones.
    pub fn truncated(&self) -> bool {
        self.group_count > MAX_STATS_GROUPS
    }
}

/// The pipeline's health over a range of `occurred_at`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessingMetrics {
    pub events_recorded: i64,
    /// Accept-to-commit lag (`recorded_at − received_at`); `None` when no event was recorded.
    pub lag: Option<LagPercentiles>,
}

/// Continuous (interpolated) percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LagPercentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn range_defaults_to_the_last_day_and_must_not_be_empty() {
        let now = at("2026-11-02T12:00:00Z");
        let range = TimeRange::parse(None, None, now, "").unwrap();
        assert_eq!(range.from, at("2026-11-01T12:00:00Z"));
        assert_eq!(range.to, now);
        assert_eq!(range.seconds(), 86_400.0);
        let err = TimeRange::parse(Some(now), Some(now), now, "filter.").unwrap_err();
        assert_eq!(err.field, "filter.occurredBefore");
        let err = TimeRange::parse(Some(now), None, now, "").unwrap_err();
        assert_eq!(err.field, "occurredAfter");
    }

    #[test]
    fn bucket_limit_counts_partial_buckets() {
        let now = at("2026-11-02T12:00:30Z");
        // The default day, not starting on a minute: 1441 minute buckets, within the limit.
        assert!(
            StatsRequest::parse(EventFilter::default(), vec![], StatsInterval::Minute, now).is_ok()
        );
        let filter = EventFilter {
            occurred_after: Some(at("2026-11-01T00:00:00Z")),
            occurred_before: Some(at("2026-11-02T02:00:00Z")),
            ..Default::default()
        };
        let err =
            StatsRequest::parse(filter.clone(), vec![], StatsInterval::Minute, now).unwrap_err();
        assert_eq!(err.field, "interval");
        assert!(StatsRequest::parse(filter, vec![], StatsInterval::Hour, now).is_ok());
    }

    #[test]
    fn group_by_may_not_repeat() {
        let err = StatsRequest::parse(
            EventFilter::default(),
            vec![
                StatsGroupBy::Action,
                StatsGroupBy::Service,
                StatsGroupBy::Action,
            ],
            StatsInterval::Hour,
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(err.field, "groupBy");
    }
}
