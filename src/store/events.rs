//! Writing and reading audit events.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use serde::ser::SerializeMap;
use serde::Serialize;
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

use super::filter::{order_sql, push_filter};
use super::{SearchBacklog, Store, StoreError};
use crate::domain::{
    column_names, Actor, AuditEvent, ColumnKind, ColumnValue, Crud, Cursor, EventFilter,
    EventGroup, EventOrder, Outcome, RecordedBy, Severity, Target, EVENT_COLUMNS,
};

/// The event columns, comma-separated in `EVENT_COLUMNS` order, as every query selects them.
pub(super) const COLUMNS: Columns = Columns;

pub(super) struct Columns;

impl std::fmt::Display for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        static LIST: LazyLock<String> =
            LazyLock::new(|| column_names().collect::<Vec<_>>().join(", "));
        f.write_str(&LIST)
    }
}

/// `id uuid, tenant text, …`: the record type `jsonb_to_recordset` reads a batch as.
fn record_type() -> &'static str {
    static TYPE: LazyLock<String> = LazyLock::new(|| {
        EVENT_COLUMNS
            .iter()
            .map(|c| {
                let sql = match c.kind {
                    ColumnKind::Uuid => "uuid",
                    ColumnKind::Text => "text",
                    ColumnKind::Time => "timestamptz",
                    ColumnKind::Severity => "smallint",
                    ColumnKind::Json => "jsonb",
                };
                format!("{} {sql}", c.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    });
    &TYPE
}

/// An event as one flat JSON object for `jsonb_to_recordset`, serialized straight into the
/// statement's buffer (building a `serde_json::Value` first cost the worker more than this).
struct FlatRow<'a>(&'a AuditEvent);

impl Serialize for FlatRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut row = serializer.serialize_map(Some(EVENT_COLUMNS.len()))?;
        for (column, value) in EVENT_COLUMNS.iter().zip(self.0.column_values()) {
            match value {
                ColumnValue::Uuid(id) => row.serialize_entry(column.name, &id)?,
                ColumnValue::Text(text) => row.serialize_entry(column.name, &text)?,
                ColumnValue::Time(at) => row.serialize_entry(column.name, &at)?,
                ColumnValue::Severity(severity) => {
                    row.serialize_entry(column.name, &severity.rank())?
                }
                ColumnValue::Json(json) => row.serialize_entry(column.name, &json)?,
            }
        }
        row.end()
    }
}

/// An event as read back, one field per column.
#[derive(FromRow)]
pub(super) struct EventRow {
    id: Uuid,
    tenant: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    action: String,
    outcome: String,
    severity: i16,
    service: String,
    actor_id: String,
    actor_type: String,
    actor_name: Option<String>,
    actor_ip: Option<String>,
    target_id: Option<String>,
    target_type: Option<String>,
    target_name: Option<String>,
    message: Option<String>,
    metadata: Option<serde_json::Value>,
    idempotency_key: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    recorded_by_id: Option<String>,
    recorded_by_type: Option<String>,
    group_id: Option<String>,
    group_name: Option<String>,
    actor_href: Option<String>,
    target_href: Option<String>,
    crud: Option<String>,
}

impl TryFrom<EventRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            id: r.id,
            reason: reason.to_owned(),
        };
        let outcome = Outcome::parse(&r.outcome).ok_or_else(|| corrupt("unknown outcome"))?;
        let severity =
            Severity::from_rank(r.severity).ok_or_else(|| corrupt("unknown severity"))?;
        let target = match (r.target_id, r.target_type) {
            (Some(id), Some(kind)) => Some(Target {
                id,
                kind,
                name: r.target_name,
                href: r.target_href,
            }),
            _ => None,
        };
        let crud = match r.crud.as_deref() {
            Some(name) => Some(Crud::parse(name).ok_or_else(|| corrupt("unknown crud"))?),
            None => None,
        };
        let group = r.group_id.map(|id| EventGroup {
            id,
            name: r.group_name,
        });
        let recorded_by = match (r.recorded_by_id, r.recorded_by_type) {
            (Some(id), Some(kind)) => Some(RecordedBy { id, kind }),
            _ => None,
        };
        Ok(AuditEvent {
            id: r.id,
            tenant: r.tenant,
            occurred_at: r.occurred_at,
            received_at: r.received_at,
            action: r.action,
            outcome,
            severity,
            service: r.service,
            actor: Actor {
                id: r.actor_id,
                kind: r.actor_type,
                name: r.actor_name,
                ip: r.actor_ip,
                href: r.actor_href,
            },
            target,
            message: r.message,
            metadata: r.metadata,
            idempotency_key: r.idempotency_key,
            request_id: r.request_id,
            trace_id: r.trace_id,
            recorded_by,
            group,
            crud,
        })
    }
}

impl Store {
    /// Commits a batch: the one place where the stored order of events is decided. In one
    /// transaction it locks the ledger heads of the batch's tenants (in tenant order, so that
    /// concurrent commits take turns per tenant and never deadlock), gives each new row the next
    /// `ledger_index` of its tenant (gap-free, in batch order) and advances the heads. A row whose
    /// id is already stored, or repeated in the batch, is skipped, so a redelivered message never
    /// makes a second row or uses up an index; of the events sharing a (tenant, idempotency key),
    /// only the first stored is kept, and the others' ids are recorded as superseded by it (see
    /// [`Store::superseding_ids`]). With `SearchBacklog::Queue`, new rows are also queued for
    /// indexing in the same statement. Returns how many rows were new.
    pub async fn insert_events(
        &self,
        events: &[AuditEvent],
        backlog: SearchBacklog,
    ) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let rows: Vec<FlatRow> = events.iter().map(FlatRow).collect();
        let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut tx = self.begin_locking_heads(&tenants).await?;
        // Keys first: each key in the batch gets its owner, the first event to claim it. The
        // no-op DO UPDATE (rather than DO NOTHING) makes RETURNING give the owner of a key
        // already taken too. An event is stored only if it owns its key and is not stored yet
        // (a redelivery owns its key already); the others are recorded as superseded by the
        // owner. Under the heads' locks no other commit of these tenants runs, so what this
        // statement sees stored is all there is.
        let record_type = record_type();
        let commit = format!(
            "WITH batch AS (
                SELECT DISTINCT ON (id) * FROM ROWS FROM (jsonb_to_recordset($1) AS ({record_type}))
                WITH ORDINALITY AS x({COLUMNS}, batch_order)
                ORDER BY id, batch_order
             ),
             owners AS (
                INSERT INTO audit_idempotency_keys (tenant, idempotency_key, event_id)
                SELECT DISTINCT ON (tenant, idempotency_key) tenant, idempotency_key, id
                FROM batch WHERE idempotency_key IS NOT NULL
                ORDER BY tenant, idempotency_key, batch_order
                ON CONFLICT (tenant, idempotency_key)
                    DO UPDATE SET event_id = audit_idempotency_keys.event_id
                RETURNING tenant, idempotency_key, event_id
             ),
             superseded AS (
                INSERT INTO audit_superseded_ids (id, tenant, event_id)
                SELECT b.id, b.tenant, o.event_id
                FROM batch b JOIN owners o USING (tenant, idempotency_key)
                WHERE o.event_id <> b.id
                ON CONFLICT (id) DO NOTHING
             ),
             fresh AS (
                SELECT b.*, row_number() OVER (PARTITION BY b.tenant ORDER BY b.batch_order) - 1
                    AS offset_in_batch
                FROM batch b
                WHERE (b.idempotency_key IS NULL OR b.id IN (SELECT event_id FROM owners))
                  AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.id = b.id)
             ),
             inserted AS (
                INSERT INTO audit_events ({COLUMNS}, ledger_index)
                SELECT {COLUMNS}, h.size + f.offset_in_batch
                FROM fresh f JOIN ledger_heads h USING (tenant)
                ORDER BY f.batch_order
                RETURNING id, tenant
             ),
             advanced AS (
                UPDATE ledger_heads h SET size = h.size + c.added
                FROM (SELECT tenant, count(*) AS added FROM inserted GROUP BY tenant) c
                WHERE h.tenant = c.tenant
             )"
        );
        // The new rows are queued for the search index in the same statement, so an event is
        // never stored without being queued (one row queued per row inserted).
        let sql = if backlog == SearchBacklog::Queue {
            format!(
                "{commit}, queued AS (INSERT INTO search_backlog (event_id) \
                 SELECT id FROM inserted RETURNING 1) SELECT count(*) FROM queued"
            )
        } else {
            format!("{commit} SELECT count(*) FROM inserted")
        };
        let stored: i64 = sqlx::query_scalar(&sql)
            .bind(sqlx::types::Json(&rows))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u64::try_from(stored).unwrap_or_default())
    }

    /// A transaction holding the ledger heads of `tenants` (sorted), locked in that order. A
    /// tenant's first events find no head: it is created on its own, outside the transaction
    /// (creating heads inside would lock them in whatever order they arrive), and the locks are
    /// taken again. Heads are never deleted, so the second try finds them all.
    async fn begin_locking_heads(
        &self,
        tenants: &[&str],
    ) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        const LOCK: &str =
            "SELECT tenant FROM ledger_heads WHERE tenant = ANY($1) ORDER BY tenant FOR UPDATE";
        let mut tx = self.pool().begin().await?;
        let locked = sqlx::query(LOCK).bind(tenants).execute(&mut *tx).await?;
        if locked.rows_affected() == tenants.len() as u64 {
            return Ok(tx);
        }
        tx.rollback().await?;
        sqlx::query(
            "INSERT INTO ledger_heads (tenant, size) SELECT t, 0 FROM unnest($1::text[]) AS t \
             ORDER BY t ON CONFLICT (tenant) DO NOTHING",
        )
        .bind(tenants)
        .execute(self.pool())
        .await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(LOCK).bind(tenants).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// The tenant's events with these ids, in no particular order; unknown ids are left out.
    pub async fn events_by_ids(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE tenant = $1 AND id = ANY($2)");
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(tenant)
            .bind(ids)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    /// For ids that lost their idempotency key to another event (both were accepted while the
    /// fast duplicate check was unavailable), the id of the event stored under that key.
    pub async fn superseding_ids(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Uuid>, StoreError> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT id, event_id FROM audit_superseded_ids WHERE tenant = $1 AND id = ANY($2)",
        )
        .bind(tenant)
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The ids of events already stored under these idempotency keys.
    pub async fn ids_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Uuid>, StoreError> {
        let rows: Vec<(String, Uuid)> = sqlx::query_as(
            "SELECT idempotency_key, event_id FROM audit_idempotency_keys \
             WHERE tenant = $1 AND idempotency_key = ANY($2)",
        )
        .bind(tenant)
        .bind(keys)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// One page of positions of the tenant's events that match `filter`, in `order`, strictly
    /// after `after`. Keyset pagination on (occurred_at, id): stable while events arrive.
    pub async fn page_event_positions(
        &self,
        tenant: &str,
        filter: &EventFilter,
        order: EventOrder,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<Cursor>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT occurred_at, id FROM audit_events WHERE tenant = ",
        );
        q.push_bind(tenant);
        push_filter(&mut q, filter);
        let (cmp, dir) = order_sql(order);
        if let Some(after) = after {
            q.push(format!(" AND (occurred_at, id) {cmp} ("));
            q.push_bind(after.occurred_at);
            q.push(", ");
            q.push_bind(after.id);
            q.push(")");
        }
        q.push(format!(" ORDER BY occurred_at {dir}, id {dir} LIMIT "));
        q.push_bind(limit);
        let rows: Vec<(DateTime<Utc>, Uuid)> = q.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(occurred_at, id)| Cursor { occurred_at, id })
            .collect())
    }

    /// How many of the tenant's events match `filter`: counted while there are at most
    /// `exact_up_to` (the count stops reading there), the planner's estimate beyond, so that a
    /// total never scans a million rows. The estimate is asked first (it reads no rows): when it
    /// is far above the limit, nothing is counted at all.
    pub async fn count_matching(
        &self,
        tenant: &str,
        filter: &EventFilter,
        exact_up_to: u64,
    ) -> Result<MatchCount, StoreError> {
        self.capped_count(|prefix| matching_rows(prefix, tenant, filter), exact_up_to)
            .await
    }

    /// How many rows `rows` selects (`rows(prefix)` is a `SELECT 1 …` after `prefix`): counted
    /// up to `exact_up_to`, the planner's estimate beyond, asked first (see
    /// [`Store::count_matching`]).
    pub(super) async fn capped_count<'a>(
        &self,
        rows: impl Fn(&str) -> QueryBuilder<'a, Postgres>,
        exact_up_to: u64,
    ) -> Result<MatchCount, StoreError> {
        let mut q = rows("EXPLAIN (FORMAT JSON) ");
        let plan: serde_json::Value = q.build_query_scalar().fetch_one(self.pool()).await?;
        let planned = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as u64;
        if planned > exact_up_to.saturating_mul(ESTIMATE_TRUSTED_ABOVE) {
            return Ok(MatchCount {
                count: planned,
                estimate: true,
            });
        }
        let limit = i64::try_from(exact_up_to.saturating_add(1)).unwrap_or(i64::MAX);
        let mut q = rows("SELECT count(*) FROM (");
        q.push(" LIMIT ");
        q.push_bind(limit);
        q.push(") AS capped");
        let counted: i64 = q.build_query_scalar().fetch_one(self.pool()).await?;
        if counted < limit {
            return Ok(MatchCount {
                count: counted as u64,
                estimate: false,
            });
        }
        Ok(MatchCount {
            // More than were counted, whatever the planner thinks.
            count: planned.max(exact_up_to + 1),
            estimate: true,
        })
    }

    /// Every one of the tenant's events that matches `filter`, in `order`, read row by row from
    /// one query: memory stays constant however many rows there are. The query holds one
    /// connection of the streams' own pool until the stream ends or is dropped.
    pub fn stream_events(
        &self,
        tenant: String,
        filter: EventFilter,
        order: EventOrder,
    ) -> impl Stream<Item = Result<AuditEvent, StoreError>> + Send + 'static {
        let pool = self.streams.clone();
        async_stream::try_stream! {
            let mut q = QueryBuilder::<Postgres>::new(format!(
                "SELECT {COLUMNS} FROM audit_events WHERE tenant = "
            ));
            q.push_bind(tenant);
            push_filter(&mut q, &filter);
            let (_, dir) = order_sql(order);
            q.push(format!(" ORDER BY occurred_at {dir}, id {dir}"));
            let mut rows = q.build_query_as::<EventRow>().fetch(&pool);
            while let Some(row) = rows.try_next().await? {
                yield AuditEvent::try_from(row)?;
            }
        }
    }
}

/// `SELECT 1` of the tenant's events that match `filter`, after `prefix`: what a total counts
/// or estimates.
fn matching_rows<'a>(
    prefix: &str,
    tenant: &'a str,
    filter: &'a EventFilter,
) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(format!(
        "{prefix}SELECT 1 FROM audit_events WHERE tenant = "
    ));
    q.push_bind(tenant);
    push_filter(&mut q, filter);
    q
}

/// How far above the exact limit the planner's estimate must be for nothing to be counted:
/// estimates are rough, so one near the limit is checked by counting.
const ESTIMATE_TRUSTED_ABOVE: u64 = 3;

/// How many events match: exact, or an estimate above what was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchCount {
    pub count: u64,
    pub estimate: bool,
}
