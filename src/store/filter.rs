//! The SQL form of an [`EventFilter`] and an [`EventOrder`], shared by every query that selects
//! events (pages, statistics, exports), so they all agree on what a filter means.

use sqlx::{Postgres, QueryBuilder};

use crate::domain::{ActionPattern, EventFilter, EventOrder};

/// Appends the filter's conditions, each an `AND`, all values bound.
pub(super) fn push_filter(q: &mut QueryBuilder<'_, Postgres>, f: &EventFilter) {
    if !f.actions.is_empty() {
        let mut exact = Vec::new();
        let mut prefixes = Vec::new();
        for pattern in &f.actions {
            match pattern {
                ActionPattern::Exact(name) => exact.push(name.clone()),
                ActionPattern::Prefix(prefix) => prefixes.push(format!("{}%", escape_like(prefix))),
            }
        }
        q.push(" AND (action = ANY(");
        q.push_bind(exact);
        q.push(")");
        for prefix in prefixes {
            q.push(" OR action LIKE ");
            q.push_bind(prefix);
        }
        q.push(")");
    }
    for (column, values) in f.exact_lists() {
        if !values.is_empty() {
            q.push(format!(" AND {column} = ANY("));
            q.push_bind(values.to_vec());
            q.push(")");
        }
    }
    if !f.outcomes.is_empty() {
        let outcomes: Vec<&str> = f.outcomes.iter().map(|o| o.as_str()).collect();
        q.push(" AND outcome = ANY(");
        q.push_bind(outcomes);
        q.push(")");
    }
    if let Some(min) = f.min_severity {
        q.push(" AND severity >= ");
        q.push_bind(min.rank());
    }
    if let Some(after) = f.occurred_after {
        q.push(" AND occurred_at >= ");
        q.push_bind(after);
    }
    if let Some(before) = f.occurred_before {
        q.push(" AND occurred_at < ");
        q.push_bind(before);
    }
}

/// Escapes LIKE's wildcards (`_` is common in action names) with the default escape, `\`.
pub(super) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The comparison that continues a keyset page, and the direction of `ORDER BY`.
pub(super) fn order_sql(order: EventOrder) -> (&'static str, &'static str) {
    match order {
        EventOrder::OccurredAtDesc => ("<", "DESC"),
        EventOrder::OccurredAtAsc => (">", "ASC"),
    }
}
