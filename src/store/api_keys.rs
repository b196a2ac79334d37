//! API keys: stored by hash, each bound to a tenant.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{Store, StoreError};

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

    /// The live (not revoked) key with this hash.
    pub async fn api_key_by_hash(
        &self,
        key_hash: &[u8],
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, tenant, name, prefix, scopes, created_at, revoked_at FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn count_api_keys(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(self.pool())
            .await?)
    }
}
