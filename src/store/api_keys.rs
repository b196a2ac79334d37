//! API keys: stored by hash, each bound to a tenant; listed and revoked by operators.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{Store, StoreError};

/// The columns of `ApiKeyRecord`, in its order.
const KEY_COLUMNS: &str = "id, tenant, name, prefix, scopes, created_at, revoked_at, \
                           write_rate_per_sec, read_rate_per_sec";

/// A stored key, without its secret.
#[derive(Clone, Debug, FromRow)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub tenant: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Overrides of the default rate limits, in requests per second.
    pub write_rate_per_sec: Option<i32>,
    pub read_rate_per_sec: Option<i32>,
}

impl Store {
    pub async fn insert_api_key(
        &self,
        id: Uuid,
        tenant: &str,
        name: &str,
        prefix: &str,
        key_hash: &[u8],
        scopes: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, prefix, key_hash, scopes) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant)
        .bind(name)
        .bind(prefix)
        .bind(key_hash)
        .bind(scopes)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The key with this hash, revoked or not (a revoked one is refused by its caller).
    pub async fn api_key_by_hash(
        &self,
        key_hash: &[u8],
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn api_key_by_id(&self, id: Uuid) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Every key, or those of `tenant`, revoked ones included, oldest first.
    pub async fn list_api_keys(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR tenant = $1 \
             ORDER BY created_at, id"
        ))
        .bind(tenant)
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes the key `id` (of `tenant`, when given). Returns the key as it now is, or `None` if
    /// there is no such key; revoking a revoked key keeps its first revocation time.
    pub async fn revoke_api_key(
        &self,
        id: Uuid,
        tenant: Option<&str>,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) \
             WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) RETURNING {KEY_COLUMNS}"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Sets or clears (`None`) a key's rate-limit overrides.
    pub async fn set_api_key_rates(
        &self,
        id: Uuid,
        write_rate_per_sec: Option<i32>,
        read_rate_per_sec: Option<i32>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE api_keys SET write_rate_per_sec = $2, read_rate_per_sec = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(write_rate_per_sec)
        .bind(read_rate_per_sec)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// The tenant's own ceilings for its keys' rates (write, read), where an operator set any.
    pub async fn tenant_rate_ceilings(
        &self,
        tenant: &str,
    ) -> Result<(Option<i32>, Option<i32>), StoreError> {
        let row: Option<(Option<i32>, Option<i32>)> = sqlx::query_as(
            "SELECT write_per_sec, read_per_sec FROM tenant_rate_ceilings WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.unwrap_or_default())
    }

    /// Sets (or, with `None`, clears back to the default) a tenant's ceilings.
    pub async fn set_tenant_rate_ceilings(
        &self,
        tenant: &str,
        write_per_sec: Option<i32>,
        read_per_sec: Option<i32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_rate_ceilings (tenant, write_per_sec, read_per_sec) \
             VALUES ($1, $2, $3) ON CONFLICT (tenant) DO UPDATE \
             SET write_per_sec = $2, read_per_sec = $3, updated_at = now()",
        )
        .bind(tenant)
        .bind(write_per_sec)
        .bind(read_per_sec)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn count_api_keys(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(self.pool())
            .await?)
    }
}
