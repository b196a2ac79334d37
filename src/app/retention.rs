//! Retention: dropping whole months of events received before a date, the only way events leave
//! the append-only store. The database function does the drop and records it in tenant
//! `_traceledger` in the same transaction, so the drop and its audit event cannot part.

use chrono::{DateTime, Utc};

use crate::store::{DroppedPartition, Store, StoreError};

/// Drops every monthly partition of events received before `cutoff` (a month straddling it is
/// kept whole), as requested by `operator`.
pub async fn drop_before(
    store: &Store,
    cutoff: DateTime<Utc>,
    operator: &str,
) -> Result<Vec<DroppedPartition>, StoreError> {
    store.drop_partitions_before(cutoff, operator).await
}
