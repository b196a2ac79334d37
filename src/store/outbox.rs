//! The outbox: accepted batches that still have to reach the broker.

use super::{Store, StoreError};

/// One batch waiting in the outbox.
#[derive(Debug, sqlx::FromRow)]
pub struct OutboxEntry {
    pub seq: i64,
    pub payload: Vec<u8>,
    pub message_id: Option<String>,
}

impl Store {
    /// Keeps a batch the broker could not take; durable once this returns.
    pub async fn push_outbox(
        &self,
        payload: &[u8],
        message_id: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO outbox (payload, message_id) VALUES ($1, $2)")
            .bind(payload)
            .bind(message_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Hands the oldest waiting batches, in order, to `publish`, and removes those it published.
    /// The rows stay locked meanwhile, so several relays never send the same batch at once; a
    /// relay that dies mid-way leaves its rows to be sent again (the worker skips duplicates).
    /// Returns how many were published.
    pub async fn drain_outbox<F, Fut, E>(
        &self,
        limit: i64,
        mut publish: F,
    ) -> Result<usize, StoreError>
    where
        F: FnMut(OutboxEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut tx = self.pool().begin().await?;
        let entries: Vec<OutboxEntry> = sqlx::query_as(
            "SELECT seq, payload, message_id FROM outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut published = Vec::with_capacity(entries.len());
        for entry in entries {
            let seq = entry.seq;
            if let Err(e) = publish(entry).await {
                tracing::warn!(error = %e, "outbox relay could not publish; will retry");
                break;
            }
            published.push(seq);
        }
        sqlx::query("DELETE FROM outbox WHERE seq = ANY($1)")
            .bind(&published)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(published.len())
    }

    pub async fn outbox_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(self.pool())
            .await?)
    }
}
