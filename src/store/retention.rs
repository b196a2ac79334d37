//! Retention: the one way old events leave the append-only table (see migration 0006).

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

impl Store {
    /// Deletes, through the audited retention function, every event that occurred before
    /// `cutoff`. Returns how many were deleted.
    pub async fn purge_events_before(
        &self,
        cutoff: DateTime<Utc>,
        requested_by: &str,
    ) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT purge_audit_events_before($1, $2)")
                .bind(cutoff)
                .bind(requested_by)
                .fetch_one(self.pool())
                .await?,
        )
    }
}
