//! The ledger's trees, checkpoints and keys: sealing (one transaction per tenant and round,
//! holding the tenant's tree row so two sealers never seal the same tenant at once) and the
//! reads proofs, checkpoints and verification need. The hashing itself is the domain's.

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use sqlx::{FromRow, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use super::events::{EventRow, COLUMNS};
use super::filter::push_filter;
use super::{Store, StoreError};
use crate::domain::ledger::{Hash, TileKey, TileSet};
use crate::domain::{AuditEvent, EventFilter, SYSTEM_TENANT};

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The C2SP signed note.
    pub note: String,
    pub verifier_key: String,
    pub signed_at: DateTime<Utc>,
}

/// What an inclusion proof starts from (see [`Store::proof_start`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofStart {
    pub index: u64,
    pub sealed: u64,
    /// The newest checkpoint at or below the size asked for.
    pub checkpoint: Option<StoredCheckpoint>,
}

#[derive(FromRow)]
struct CheckpointRow {
    size: i64,
    root: Vec<u8>,
    note: String,
    verifier_key: String,
    signed_at: DateTime<Utc>,
}

impl TryFrom<CheckpointRow> for StoredCheckpoint {
    type Error = StoreError;

    fn try_from(r: CheckpointRow) -> Result<Self, StoreError> {
        Ok(StoredCheckpoint {
            size: r.size as u64,
            root: to_hash(&r.root)?,
            note: r.note,
            verifier_key: r.verifier_key,
            signed_at: r.signed_at,
        })
    }
}

fn to_hash(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        id: Uuid::nil(),
        reason: format!("a ledger hash of {} bytes", bytes.len()),
    })
}

fn to_hashes(bytes: &[u8]) -> Result<Vec<Hash>, StoreError> {
    bytes.chunks(32).map(to_hash).collect()
}

async fn load_tiles<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tenant: &str,
    keys: impl IntoIterator<Item = TileKey>,
) -> Result<TileSet, StoreError> {
    let (levels, indices): (Vec<i16>, Vec<i64>) = keys
        .into_iter()
        .map(|k| (i16::from(k.level), k.index as i64))
        .unzip();
    // One primary-key lookup per tile asked for, whatever the planner thinks of the tenant's
    // thousands of tiles.
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT k.level, k.idx, t.hashes \
         FROM unnest($2::smallint[], $3::bigint[]) AS k(level, idx) \
         CROSS JOIN LATERAL (SELECT hashes FROM ledger_tiles \
                             WHERE tenant = $1 AND level = k.level AND idx = k.idx) t",
    )
    .bind(tenant)
    .bind(&levels)
    .bind(&indices)
    .fetch_all(executor)
    .await?;
    let mut tiles = TileSet::new();
    for (level, index, hashes) in rows {
        let key = TileKey {
            level: level as u8,
            index: index as u64,
        };
        tiles.insert(key, to_hashes(&hashes)?);
    }
    Ok(tiles)
}

/// The checkpoint columns, of a tenant's checkpoints.
const CHECKPOINTS: &str = "SELECT size, root, note, verifier_key, signed_at \
                           FROM ledger_checkpoints WHERE tenant = $1";

/// The tenant's events with indices in `[from, below)` that match `filter`, in index order
/// (a tampered table may hold doubles: the id orders them).
fn ledger_rows(
    tenant: String,
    from: u64,
    below: u64,
    filter: &EventFilter,
) -> QueryBuilder<'static, Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT ledger_index, {COLUMNS} FROM audit_events WHERE tenant = "
    ));
    q.push_bind(tenant);
    q.push(" AND ledger_index >= ");
    q.push_bind(from as i64);
    q.push(" AND ledger_index < ");
    q.push_bind(below.min(i64::MAX as u64) as i64);
    push_filter(&mut q, filter);
    q.push(" ORDER BY ledger_index, id");
    q
}

#[derive(FromRow)]
struct IndexedRow {
    ledger_index: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

/// A tenant's tree held for sealing: the transaction keeps the tree row locked until
/// [`Sealing::commit`].
pub struct Sealing {
    tx: Transaction<'static, Postgres>,
    tenant: String,
    /// How many leaves are sealed (hashed into tiles) so far.
    pub sealed: u64,
    /// How many events the tenant has (its ledger head).
    pub head: u64,
}

impl Store {
    /// Every tenant that has a ledger.
    pub async fn ledger_tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT tenant FROM ledger_heads ORDER BY tenant")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Tenants with events not yet sealed.
    pub async fn unsealed_tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT h.tenant FROM ledger_heads h LEFT JOIN ledger_trees t USING (tenant) \
             WHERE h.size > coalesce(t.size, 0) ORDER BY h.tenant",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Takes the tenant's tree for sealing; `None` when another sealer holds it right now.
    pub async fn begin_sealing(&self, tenant: &str) -> Result<Option<Sealing>, StoreError> {
        sqlx::query(
            "INSERT INTO ledger_trees (tenant, size) VALUES ($1, 0) ON CONFLICT (tenant) DO NOTHING",
        )
        .bind(tenant)
        .execute(self.pool())
        .await?;
        let mut tx = self.pool().begin().await?;
        let sealed: Option<i64> = sqlx::query_scalar(
            "SELECT size FROM ledger_trees WHERE tenant = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let head: Option<i64> =
            sqlx::query_scalar("SELECT size FROM ledger_heads WHERE tenant = $1")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
        Ok(Some(Sealing {
            tx,
            tenant: tenant.to_owned(),
            sealed: sealed as u64,
            head: head.unwrap_or(0) as u64,
        }))
    }

    /// The tenant's events that match `filter` with ledger indices below `below`, in index
    /// order, as (index, event), read as they come.
    pub fn stream_ledger_matching(
        &self,
        tenant: String,
        filter: EventFilter,
        below: u64,
    ) -> impl Stream<Item = Result<(u64, AuditEvent), StoreError>> + Send + 'static {
        let pool = self.streams.clone();
        async_stream::try_stream! {
            let mut q = ledger_rows(tenant, 0, below, &filter);
            let mut rows = q.build_query_as::<IndexedRow>().fetch(&pool);
            while let Some(row) = rows.try_next().await? {
                yield (row.ledger_index as u64, AuditEvent::try_from(row.event)?);
            }
        }
    }

    /// Up to `limit` of the tenant's events with indices in `[from, below)` that match
    /// `filter`, in index order, as (index, event).
    pub async fn ledger_page(
        &self,
        tenant: &str,
        from: u64,
        below: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
        let mut q = ledger_rows(tenant.to_owned(), from, below, filter);
        q.push(" LIMIT ");
        q.push_bind(limit as i64);
        q.build_query_as::<IndexedRow>()
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|row| Ok((row.ledger_index as u64, AuditEvent::try_from(row.event)?)))
            .collect()
    }

    /// The ledger indices of the tenant's events with these ids (unknown ids left out).
    pub async fn ledger_indices(
        &self,
        tenant: &str,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT id, ledger_index FROM audit_events WHERE tenant = $1 AND id = ANY($2)",
        )
        .bind(tenant)
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(id, i)| (id, i as u64)).collect())
    }

    /// What an inclusion proof starts from, in one query: the event's ledger index, how many of
    /// the tenant's leaves are sealed, and its newest checkpoint of at most `size` leaves (of
    /// any size when `None`). `None` when the tenant has no such stored event.
    pub async fn proof_start(
        &self,
        tenant: &str,
        id: Uuid,
        size: Option<u64>,
    ) -> Result<Option<ProofStart>, StoreError> {
        type Row = (
            i64,
            i64,
            Option<i64>,
            Option<Vec<u8>>,
            Option<String>,
            Option<String>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT e.ledger_index, coalesce(t.size, 0), \
                    c.size, c.root, c.note, c.verifier_key, c.signed_at \
             FROM audit_events e \
             LEFT JOIN ledger_trees t ON t.tenant = $1 \
             LEFT JOIN LATERAL (SELECT size, root, note, verifier_key, signed_at \
                                FROM ledger_checkpoints \
                                WHERE tenant = $1 AND size <= $3 \
                                ORDER BY size DESC LIMIT 1) c ON true \
             WHERE e.tenant = $1 AND e.id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(size.map_or(i64::MAX, |s| s.min(i64::MAX as u64) as i64))
        .fetch_optional(self.pool())
        .await?;
        let Some((index, sealed, size, root, note, verifier_key, signed_at)) = row else {
            return Ok(None);
        };
        let checkpoint = match (size, root, note, verifier_key, signed_at) {
            (Some(size), Some(root), Some(note), Some(verifier_key), Some(signed_at)) => {
                Some(StoredCheckpoint::try_from(CheckpointRow {
                    size,
                    root,
                    note,
                    verifier_key,
                    signed_at,
                })?)
            }
            _ => None,
        };
        Ok(Some(ProofStart {
            index: index as u64,
            sealed: sealed as u64,
            checkpoint,
        }))
    }

    /// How many of the tenant's leaves are sealed (hashed into the tiles).
    pub async fn sealed_size(&self, tenant: &str) -> Result<u64, StoreError> {
        let size: Option<i64> =
            sqlx::query_scalar("SELECT size FROM ledger_trees WHERE tenant = $1")
                .bind(tenant)
                .fetch_optional(self.pool())
                .await?;
        Ok(size.unwrap_or(0) as u64)
    }

    /// These tiles of the tenant's tree, those that exist.
    pub async fn ledger_tiles(
        &self,
        tenant: &str,
        keys: impl IntoIterator<Item = TileKey>,
    ) -> Result<TileSet, StoreError> {
        load_tiles(self.pool(), tenant, keys).await
    }

    /// The tenant's newest checkpoint.
    pub async fn latest_checkpoint(
        &self,
        tenant: &str,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        sqlx::query_as::<_, CheckpointRow>(&format!("{CHECKPOINTS} ORDER BY size DESC LIMIT 1"))
            .bind(tenant)
            .fetch_optional(self.pool())
            .await?
            .map(StoredCheckpoint::try_from)
            .transpose()
    }

    /// The tenant's checkpoint of exactly this size, if one was signed.
    pub async fn checkpoint_of_size(
        &self,
        tenant: &str,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        sqlx::query_as::<_, CheckpointRow>(&format!("{CHECKPOINTS} AND size = $2"))
            .bind(tenant)
            .bind(size as i64)
            .fetch_optional(self.pool())
            .await?
            .map(StoredCheckpoint::try_from)
            .transpose()
    }

    /// A page of the tenant's checkpoints in size order, after the size `after`.
    pub async fn checkpoints(
        &self,
        tenant: &str,
        after: Option<u64>,
        limit: i64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        sqlx::query_as::<_, CheckpointRow>(&format!(
            "{CHECKPOINTS} AND size > $2 ORDER BY size LIMIT $3"
        ))
        .bind(tenant)
        .bind(after.map_or(0, |a| a as i64))
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(StoredCheckpoint::try_from)
        .collect()
    }

    /// Every verifier key that signed a checkpoint, oldest first, with when it first did.
    pub async fn ledger_keys(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT verifier_key, first_used FROM ledger_keys ORDER BY first_used, verifier_key",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The tenant's events with an index at or past `from` (none belong there but those the
    /// next commit is adding), the first thousand.
    pub async fn events_from_index(
        &self,
        tenant: &str,
        from: u64,
    ) -> Result<Vec<(u64, Uuid)>, StoreError> {
        let rows: Vec<(i64, Uuid)> = sqlx::query_as(
            "SELECT ledger_index, id FROM audit_events WHERE tenant = $1 AND ledger_index >= $2 \
             ORDER BY ledger_index LIMIT 1000",
        )
        .bind(tenant)
        .bind(from as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(i, id)| (i as u64, id)).collect())
    }

    /// The tenant's ledger head: how many indices its events have been given.
    pub async fn ledger_head(&self, tenant: &str) -> Result<u64, StoreError> {
        let head: Option<i64> =
            sqlx::query_scalar("SELECT size FROM ledger_heads WHERE tenant = $1")
                .bind(tenant)
                .fetch_optional(self.pool())
                .await?;
        Ok(head.unwrap_or(0) as u64)
    }

    /// Lists a key among those that sign (at start, so it is served before its first
    /// checkpoint).
    pub async fn register_ledger_key(&self, verifier_key: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO ledger_keys (verifier_key) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(verifier_key)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The index ranges `[from, to)` of the tenant's events that retention dropped, with the id
    /// of the `retention.purge` event that lists each.
    pub async fn pruned_ranges(&self, tenant: &str) -> Result<Vec<(u64, u64, Uuid)>, StoreError> {
        let rows: Vec<(i64, i64, Uuid)> = sqlx::query_as(
            "SELECT (r->>'from')::bigint, (r->>'to')::bigint, e.id FROM audit_events e, \
             jsonb_array_elements(e.metadata->'ledgerRanges') r \
             WHERE e.tenant = $2 AND e.action = 'retention.purge' \
             AND r->>'tenant' = $1 ORDER BY 1",
        )
        .bind(tenant)
        .bind(SYSTEM_TENANT)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(from, to, id)| (from as u64, to as u64, id))
            .collect())
    }
}

impl Sealing {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The tenant's events with indices in `[self.sealed, to)`, in index order, as (index,
    /// event); a tampered table may hold gaps or doubles, which the caller must refuse.
    pub async fn events(&mut self, to: u64) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
        let rows = ledger_rows(
            self.tenant.clone(),
            self.sealed,
            to,
            &EventFilter::default(),
        )
        .build_query_as::<IndexedRow>()
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.ledger_index as u64, AuditEvent::try_from(r.event)?)))
            .collect()
    }

    /// These tiles, those that exist.
    pub async fn tiles(&mut self, keys: &[TileKey]) -> Result<TileSet, StoreError> {
        load_tiles(&mut *self.tx, &self.tenant, keys.iter().copied()).await
    }

    /// Stores the grown tiles, the tree's new size and, when given, the checkpoint over them;
    /// then commits.
    pub async fn commit(
        mut self,
        tiles: &[(TileKey, &[Hash])],
        size: u64,
        checkpoint: Option<&StoredCheckpoint>,
    ) -> Result<(), StoreError> {
        let mut levels = Vec::with_capacity(tiles.len());
        let mut indices = Vec::with_capacity(tiles.len());
        let mut data = Vec::with_capacity(tiles.len());
        for (key, hashes) in tiles {
            levels.push(i16::from(key.level));
            indices.push(key.index as i64);
            data.push(hashes.concat());
        }
        sqlx::query(
            "INSERT INTO ledger_tiles (tenant, level, idx, hashes) \
             SELECT $1, * FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) \
             ON CONFLICT (tenant, level, idx) DO UPDATE SET hashes = EXCLUDED.hashes",
        )
        .bind(&self.tenant)
        .bind(&levels)
        .bind(&indices)
        .bind(&data)
        .execute(&mut *self.tx)
        .await?;
        if let Some(checkpoint) = checkpoint {
            sqlx::query(
                "INSERT INTO ledger_checkpoints (tenant, size, root, note, verifier_key, \
                 signed_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&self.tenant)
            .bind(checkpoint.size as i64)
            .bind(checkpoint.root.as_slice())
            .bind(&checkpoint.note)
            .bind(&checkpoint.verifier_key)
            .bind(checkpoint.signed_at)
            .execute(&mut *self.tx)
            .await?;
            sqlx::query(
                "INSERT INTO ledger_keys (verifier_key, first_used) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&checkpoint.verifier_key)
            .bind(checkpoint.signed_at)
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query("UPDATE ledger_trees SET size = $2 WHERE tenant = $1")
            .bind(&self.tenant)
            .bind(size as i64)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
