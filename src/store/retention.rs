//! Retention and partitions: `audit_events` is partitioned by month of receipt (migration 0009),
//! inserts need their month's partition to exist, and dropping whole old partitions is the one way
//! events leave the append-only table.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// A monthly partition retention dropped, and how many events it held.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DroppedPartition {
    #[sqlx(rename = "partition_name")]
    pub name: String,
    #[sqlx(rename = "dropped_rows")]
    pub rows: i64,
}

impl Store {
    /// Creates the partitions of this month and of the next `months_ahead` months if missing,
    /// and moves any event that landed in the default partition to its month's partition.
    /// Returns how many partitions were created. Cheap when there is nothing to do.
    pub async fn ensure_partitions(&self, months_ahead: i32) -> Result<i32, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT audit_events_ensure_partitions($1)")
                .bind(months_ahead)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Drops, through the audited retention function, every monthly partition whose events were
    /// all received before `cutoff`; a month straddling the cutoff is kept whole. Records a
    /// `retention.purge` event of tenant `_traceledger` in the same transaction, and returns the
    /// partitions dropped (possibly none), oldest first.
    pub async fn drop_partitions_before(
        &self,
        cutoff: DateTime<Utc>,
        requested_by: &str,
    ) -> Result<Vec<DroppedPartition>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT partition_name, dropped_rows FROM drop_audit_partitions_before($1, $2)",
        )
        .bind(cutoff)
        .bind(requested_by)
        .fetch_all(self.pool())
        .await?)
    }
}
