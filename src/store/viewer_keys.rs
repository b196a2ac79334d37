//! Each tenant's viewer-token key (see `access::viewer`).

use super::{Store, StoreError};

impl Store {
    /// The tenant's viewer-token key, if it has one.
    pub async fn viewer_key(&self, tenant: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT key FROM viewer_token_keys WHERE tenant = $1")
                .bind(tenant)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The tenant's key: `key` if it had none yet, else the one it has (so concurrent first
    /// mints agree on one).
    pub async fn viewer_key_or_insert(
        &self,
        tenant: &str,
        key: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        // Two statements: one would read a snapshot taken before a concurrent first mint
        // committed, and find neither key.
        sqlx::query(
            "INSERT INTO viewer_token_keys (tenant, key) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO NOTHING",
        )
        .bind(tenant)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT key FROM viewer_token_keys WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Replaces the tenant's key with `key`: every viewer token signed with the old one stops
    /// verifying.
    pub async fn rotate_viewer_key(&self, tenant: &str, key: &[u8]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO viewer_token_keys (tenant, key) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET key = EXCLUDED.key, rotated_at = now()",
        )
        .bind(tenant)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
