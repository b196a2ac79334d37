//! Each tenant's display templates, by action pattern (see `domain::DisplayTemplate`).

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// A stored template, as its admin wrote it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredTemplate {
    pub action: String,
    pub template: String,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// The tenant's templates, by action pattern.
    pub async fn display_templates(&self, tenant: &str) -> Result<Vec<StoredTemplate>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT action, template, updated_at FROM display_templates \
             WHERE tenant = $1 ORDER BY action",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?)
    }

    /// Sets the template of `action` (a name or `prefix.*`), or removes it for `None`.
    pub async fn set_display_template(
        &self,
        tenant: &str,
        action: &str,
        template: Option<&str>,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        let Some(template) = template else {
            sqlx::query("DELETE FROM display_templates WHERE tenant = $1 AND action = $2")
                .bind(tenant)
                .bind(action)
                .execute(self.pool())
                .await?;
            return Ok(None);
        };
        Ok(Some(
            sqlx::query_as(
                "INSERT INTO display_templates (tenant, action, template) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, action) \
                 DO UPDATE SET template = EXCLUDED.template, updated_at = now() \
                 RETURNING action, template, updated_at",
            )
            .bind(tenant)
            .bind(action)
            .bind(template)
            .fetch_one(self.pool())
            .await?,
        ))
    }
}
