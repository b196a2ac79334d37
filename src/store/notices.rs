//! Commit notices: PostgreSQL announces every advance of a tenant's ledger head when its
//! transaction commits (migration 0017), and a listener here hears them.

use serde::Deserialize;
use sqlx::postgres::PgListener;

use super::{Store, StoreError};

/// The channel migration 0017's trigger notifies on.
const CHANNEL: &str = "traceledger_commits";

/// A tenant's events up to `head` (exclusive) are committed and readable.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CommitNotice {
    pub tenant: String,
    #[serde(rename = "size")]
    pub head: u64,
}

/// What the listener heard next.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Commit(CommitNotice),
    /// The connection was lost and is opened again on the next call: notices sent meanwhile are
    /// gone, so whoever follows heads must read them again.
    Lost,
}

/// One connection listening for commit notices.
pub struct CommitListener(PgListener);

impl Store {
    pub async fn listen_for_commits(&self) -> Result<CommitListener, StoreError> {
        let mut listener = PgListener::connect_with(self.pool()).await?;
        listener.listen(CHANNEL).await?;
        Ok(CommitListener(listener))
    }
}

impl CommitListener {
    /// The next notice, or [`Heard::Lost`]; an error while the database cannot be reached (the
    /// next call tries again).
    pub async fn next(&mut self) -> Result<Heard, StoreError> {
        loop {
            let Some(notification) = self.0.try_recv().await? else {
                return Ok(Heard::Lost);
            };
            match serde_json::from_str(notification.payload()) {
                Ok(notice) => return Ok(Heard::Commit(notice)),
                Err(e) => tracing::error!(error = %e, payload = notification.payload(),
                                          "a commit notice that does not parse"),
            }
        }
    }
}
