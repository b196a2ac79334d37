//! Keeping Elasticsearch in step with PostgreSQL. The worker's batch insert queues every new
//! event in `search_backlog` in the same transaction; this task sends the backlog to
//! Elasticsearch with one `_bulk` per batch and deletes rows only once Elasticsearch has taken
//! them. While Elasticsearch is down it backs off and retries, so it catches up when it returns.
//! [`reindex`] rebuilds the index from PostgreSQL (`traceledger reindex`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::{sleep_unless_shutdown, Backoff};
use crate::search::{ElasticSearch, SearchError, SearchSettings};
use crate::store::Store;

const RETRY_FIRST_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);

/// Starts the indexer when the settings name an Elasticsearch; the events it indexes are those
/// stored with `SearchBacklog::Queue` (see [`SearchSettings::backlog`]).
pub fn spawn(
    settings: &SearchSettings,
    store: Store,
    shutdown: CancellationToken,
) -> Result<Option<JoinHandle<()>>, SearchError> {
    let batch_size = settings.index_batch_size.max(1);
    let poll = Duration::from_millis(settings.index_poll_ms);
    Ok(ElasticSearch::connect(settings)?
        .map(|elastic| tokio::spawn(run(batch_size, poll, store, elastic, shutdown))))
}

/// Drains the backlog until `shutdown`.
async fn run(
    batch_size: usize,
    poll_interval: Duration,
    store: Store,
    elastic: ElasticSearch,
    shutdown: CancellationToken,
) {
    let mut template_ready = false;
    let mut backoff = Backoff::new(RETRY_FIRST_DELAY, RETRY_MAX_DELAY);
    while !shutdown.is_cancelled() {
        let round = async {
            if !template_ready {
                elastic.ensure_template().await?;
                template_ready = true;
            }
            drain_batch(&store, &elastic, batch_size).await
        };
        let wait = match round.await {
            // A full batch: there may be more waiting right now.
            Ok(sent) if sent >= batch_size => {
                backoff.reset();
                Duration::ZERO
            }
            Ok(_) => {
                backoff.reset();
                poll_interval
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "search indexing failed; will retry");
                // A cluster that comes back may have lost the template (a rebuilt cluster).
                template_ready = false;
                delay
            }
        };
        if !sleep_unless_shutdown(wait, &shutdown).await {
            break;
        }
    }
}

/// Sends the oldest backlog batch; returns how many events it held. Events Elasticsearch
/// refused for good are logged and dropped from the backlog (PostgreSQL search still finds
/// them); events refused for now stay queued and make the round an error, so it backs off.
async fn drain_batch(
    store: &Store,
    elastic: &ElasticSearch,
    batch_size: usize,
) -> Result<usize, SearchError> {
    let limit = i64::try_from(batch_size).unwrap_or(i64::MAX);
    let events = store.search_backlog(limit).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let outcome = elastic.index(&events).await?;
    let done: Vec<_> = outcome
        .indexed
        .iter()
        .chain(&outcome.rejected)
        .copied()
        .collect();
    store.clear_search_backlog(&done).await?;
    if !outcome.retry.is_empty() {
        return Err(SearchError::Elastic(format!(
            "{} events were not taken; retrying",
            outcome.retry.len()
        )));
    }
    Ok(events.len())
}

/// Sends every event that occurred since `since` (all when None) to Elasticsearch again, in
/// batches, calling `progress` with each batch's size. Idempotent: document id = event id.
pub async fn reindex(
    store: &Store,
    elastic: &ElasticSearch,
    since: Option<DateTime<Utc>>,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> Result<u64, SearchError> {
    elastic.ensure_template().await?;
    let limit = i64::try_from(batch_size.max(1)).unwrap_or(i64::MAX);
    let mut after = None;
    let mut total = 0;
    loop {
        let events = store.events_in_id_order(since, after, limit).await?;
        let Some(last) = events.last() else {
            return Ok(total);
        };
        after = Some(last.id);
        let outcome = elastic.index(&events).await?;
        if !outcome.retry.is_empty() || !outcome.rejected.is_empty() {
            return Err(SearchError::Elastic(format!(
                "{} events were refused, {} for now; run reindex again",
                outcome.rejected.len() + outcome.retry.len(),
                outcome.retry.len()
            )));
        }
        let sent = events.len() as u64;
        total += sent;
        progress(sent);
    }
}
