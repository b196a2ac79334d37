//! Full-text search in PostgreSQL (the generated `search_vector` column and its GIN index), and
//! the queries the Elasticsearch indexer needs: its backlog, and every event for a rebuild.
//!
//! A parsed query becomes SQL with every piece of user text bound as a parameter and turned
//! into a `tsquery` by `plainto_tsquery`/`phraseto_tsquery`, combined with `&&`, `||` and `!!`.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::events::{EventRow, COLUMNS};
use super::filter::{escape_like, push_filter};
use super::{MatchCount, Store, StoreError};
use crate::domain::{
    column_names, ActionPattern, AuditEvent, EventFilter, FieldTerm, Group, Literal,
    ScoredPosition, SearchQuery, Term,
};

/// Marks the start of a match in a headline; private-use characters, stripped from the message
/// first, so they cannot be confused with its text.
pub const MATCH_START: char = '\u{E000}';
pub const MATCH_END: char = '\u{E001}';
/// Separates a headline's fragments.
pub const FRAGMENT_BREAK: char = '\u{E002}';
/// Fragments per headline, and their length in words.
const HEADLINE_FRAGMENTS: u32 = 3;
const HEADLINE_MAX_WORDS: u32 = 25;
const HEADLINE_MIN_WORDS: u32 = 10;

/// One hit: where it stands in the order, and the message's headline (fragments separated by
/// [`FRAGMENT_BREAK`], matches between [`MATCH_START`] and [`MATCH_END`]), if it has a message.
#[derive(Clone, Debug)]
pub struct ScoredHit {
    pub position: ScoredPosition,
    pub headline: Option<String>,
}

impl Store {
    /// One page of the tenant's events matching `query` and `filter`, by relevance (`ts_rank`),
    /// then newest, strictly after `after`; with `backwards`, strictly before it, nearest first
    /// (the order reversed: a page backwards is one keyset query too).
    pub async fn search_events(
        &self,
        tenant: &str,
        query: &SearchQuery,
        filter: &EventFilter,
        after: Option<ScoredPosition>,
        backwards: bool,
        limit: i64,
    ) -> Result<Vec<ScoredHit>, StoreError> {
        let (beyond, order) = if backwards {
            (">", "score ASC, occurred_at ASC, id ASC")
        } else {
            ("<", "score DESC, occurred_at DESC, id DESC")
        };
        let mut q = QueryBuilder::<Postgres>::new("SELECT id, occurred_at, score, ");
        push_headline(&mut q, query);
        q.push(
            " FROM (SELECT id, occurred_at, message, score FROM (SELECT id, occurred_at, message, ",
        );
        push_rank(&mut q, query);
        q.push(" AS score FROM audit_events WHERE ");
        push_matches(&mut q, tenant, query, filter);
        q.push(") hits");
        if let Some(after) = after {
            q.push(format!(" WHERE (score, occurred_at, id) {beyond} ("));
            q.push_bind(after.score);
            q.push(", ");
            q.push_bind(after.occurred_at);
            q.push(", ");
            q.push_bind(after.id);
            q.push(")");
        }
        q.push(format!(" ORDER BY {order} LIMIT "));
        q.push_bind(limit);
        // Headlines are costly: made for the page only, hence the outer query.
        q.push(format!(") page ORDER BY {order}"));
        let rows: Vec<(Uuid, DateTime<Utc>, f32, Option<String>)> =
            q.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(id, occurred_at, score, headline)| ScoredHit {
                position: ScoredPosition {
                    score,
                    occurred_at,
                    id,
                },
                headline,
            })
            .collect())
    }

    /// How many of the tenant's events match, in all pages: exact up to `exact_up_to`, an
    /// estimate beyond (as [`Store::count_matching`]), so a search's total never counts a
    /// million matches on each page.
    pub async fn count_search_matches(
        &self,
        tenant: &str,
        query: &SearchQuery,
        filter: &EventFilter,
        exact_up_to: u64,
    ) -> Result<MatchCount, StoreError> {
        self.capped_count(
            |prefix| {
                let mut q = QueryBuilder::<Postgres>::new(format!(
                    "{prefix}SELECT 1 FROM audit_events WHERE "
                ));
                push_matches(&mut q, tenant, query, filter);
                q
            },
            exact_up_to,
        )
        .await
    }

    /// The oldest queued events not yet acknowledged by the search index.
    pub async fn search_backlog(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let columns = prefixed_columns("e");
        let sql = format!(
            "SELECT {columns} FROM search_backlog b JOIN audit_events e ON e.id = b.event_id \
             ORDER BY b.queued_at, b.event_id LIMIT $1"
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    /// Removes events the search index now holds from the backlog.
    pub async fn clear_search_backlog(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM search_backlog WHERE event_id = ANY($1)")
            .bind(ids)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Events that occurred at or after `since`, in id order after `after`: a rebuild's batches.
    pub async fn events_in_id_order(
        &self,
        since: Option<DateTime<Utc>>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events \
             WHERE ($1::timestamptz IS NULL OR occurred_at >= $1) AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(since)
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    pub async fn count_events_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE $1::timestamptz IS NULL OR occurred_at >= $1",
        )
        .bind(since)
        .fetch_one(self.pool())
        .await?)
    }
}

fn prefixed_columns(alias: &str) -> String {
    column_names()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tenant, the filter, and every group of the query, each an `AND`.
fn push_matches(
    q: &mut QueryBuilder<'_, Postgres>,
    tenant: &str,
    query: &SearchQuery,
    filter: &EventFilter,
) {
    q.push("tenant = ");
    q.push_bind(tenant.to_owned());
    push_filter(q, filter);
    // Text-only groups become one tsquery, so the GIN index answers them together.
    let text_groups: Vec<&Group> = query.groups.iter().filter(|g| g.is_text_only()).collect();
    if !text_groups.is_empty() {
        q.push(" AND search_vector @@ (");
        for (i, group) in text_groups.iter().enumerate() {
            if i > 0 {
                q.push(" && ");
            }
            push_text_group(q, group);
        }
        q.push(")");
    }
    for group in query.groups.iter().filter(|g| !g.is_text_only()) {
        q.push(" AND (");
        for (i, literal) in group.any_of.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            push_predicate(q, literal);
        }
        q.push(")");
    }
}

/// `(a || !!b || …)` as one tsquery.
fn push_text_group(q: &mut QueryBuilder<'_, Postgres>, group: &Group) {
    q.push("(");
    for (i, literal) in group.any_of.iter().enumerate() {
        if i > 0 {
            q.push(" || ");
        }
        if literal.negated {
            q.push("!!");
        }
        push_tsquery(q, &literal.term);
    }
    q.push(")");
}

fn push_tsquery(q: &mut QueryBuilder<'_, Postgres>, term: &Term) {
    let (function, text) = match term {
        Term::Word(text) => ("plainto_tsquery", text),
        Term::Phrase(text) => ("phraseto_tsquery", text),
        // Only text reaches here; a field term has no tsquery and matches nothing.
        Term::Field(_) => {
            q.push("''::tsquery");
            return;
        }
    };
    q.push(format!("{function}('simple', "));
    q.push_bind(text.clone());
    q.push(")");
}

/// One literal as a boolean that is never NULL (so an exclusion keeps events without a target).
fn push_predicate(q: &mut QueryBuilder<'_, Postgres>, literal: &Literal) {
    q.push(if literal.negated { "NOT " } else { "" });
    q.push("coalesce((");
    match &literal.term {
        Term::Word(_) | Term::Phrase(_) => {
            q.push("search_vector @@ ");
            push_tsquery(q, &literal.term);
        }
        Term::Field(field) => push_field(q, field),
    }
    q.push("), false)");
}

fn push_field(q: &mut QueryBuilder<'_, Postgres>, field: &FieldTerm) {
    match field {
        FieldTerm::Action(ActionPattern::Exact(name)) => {
            q.push("action = ");
            q.push_bind(name.clone());
        }
        FieldTerm::Action(ActionPattern::Prefix(prefix)) => {
            q.push("action LIKE ");
            q.push_bind(format!("{}%", escape_like(prefix)));
        }
        FieldTerm::Actor(who) => {
            q.push("actor_id = ");
            q.push_bind(who.clone());
            q.push(" OR actor_name = ");
            q.push_bind(who.clone());
        }
        FieldTerm::Target(what) => {
            q.push("target_id = ");
            q.push_bind(what.clone());
            q.push(" OR target_name = ");
            q.push_bind(what.clone());
        }
        FieldTerm::Service(service) => {
            q.push("service = ");
            q.push_bind(service.clone());
        }
        FieldTerm::Outcome(outcome) => {
            q.push("outcome = ");
            q.push_bind(outcome.as_str());
        }
        FieldTerm::MinSeverity(severity) => {
            q.push("severity >= ");
            q.push_bind(severity.rank());
        }
    }
}

/// The query whose terms count for relevance and highlights: every word and phrase not
/// excluded, any of them. None when the query has no such text.
fn push_positive_tsquery(q: &mut QueryBuilder<'_, Postgres>, query: &SearchQuery) -> bool {
    let mut any = false;
    for term in query.positive_text() {
        q.push(if any { " || " } else { "(" });
        push_tsquery(q, term);
        any = true;
    }
    if any {
        q.push(")");
    }
    any
}

fn push_rank(q: &mut QueryBuilder<'_, Postgres>, query: &SearchQuery) {
    if query.positive_text().next().is_none() {
        q.push("0::real");
        return;
    }
    q.push("ts_rank(search_vector, ");
    push_positive_tsquery(q, query);
    q.push(")");
}

fn push_headline(q: &mut QueryBuilder<'_, Postgres>, query: &SearchQuery) {
    if query.positive_text().next().is_none() {
        q.push("NULL::text");
        return;
    }
    let markers = format!("{MATCH_START}{MATCH_END}{FRAGMENT_BREAK}");
    let options = format!(
        "StartSel={MATCH_START}, StopSel={MATCH_END}, FragmentDelimiter={FRAGMENT_BREAK}, \
         MaxFragments={HEADLINE_FRAGMENTS}, MaxWords={HEADLINE_MAX_WORDS}, \
         MinWords={HEADLINE_MIN_WORDS}"
    );
    q.push("ts_headline('simple', translate(message, ");
    q.push_bind(markers);
    q.push(", ''), ");
    push_positive_tsquery(q, query);
    q.push(", ");
    q.push_bind(options);
    q.push(")");
}
