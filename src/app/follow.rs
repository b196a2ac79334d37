//! Durable feeds: a tenant's stored events that match a filter, in ledger order, from a cursor
//! on, then live as they are committed — with no gap and no duplicate at the seam, because every
//! step goes by ledger index. History is read from the store in pages at the pace the caller
//! reads; live events come from the tenant's shared reader ([`CommitFeed`]), and a jump in its
//! indices is filled from the store.

use std::sync::Arc;

use async_stream::try_stream;
use futures::future::RemoteHandle;
use futures::{FutureExt, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::ApiError;
use crate::domain::ledger::Committed;
use crate::domain::{EventFilter, StreamCursor, StreamStart};
use crate::store::Store;
use crate::tasks::commits::{CommitFeed, FOLLOWER_BUFFER};

/// Events read per query of history.
const PAGE: usize = 500;
/// Ledger indices one query of history looks through at most: a filter that matches little
/// (or nothing) costs a bounded query each time, never a scan of a tenant's whole history
/// holding a pooled connection.
const WINDOW: u64 = 20_000;

/// Follows the tenant's events matching `filter` from `start` on; ends with an error when the
/// caller reads too slowly to keep up (its cursor says where to resume).
pub fn follow(
    store: Store,
    feed: Arc<CommitFeed>,
    tenant: String,
    filter: EventFilter,
    start: StreamStart,
) -> impl Stream<Item = Result<Committed, ApiError>> + Send + 'static {
    let filter = Arc::new(filter);
    try_stream! {
        let _following = feed.following();
        let mut next = match start {
            StreamStart::At(index) => {
                // A cursor this tenant's feed never gave (forged, or another tenant's further
                // ledger) would wait silently for events that may never come: say so instead.
                if index > store.ledger_head(&tenant).await? {
                    Err(ApiError::bad_input(
                        "after",
                        "this cursor is beyond the newest committed event: give a streamCursor \
                         this feed delivered, \"beginning\" or \"now\"",
                    ))?;
                }
                index
            }
            StreamStart::Now => store.ledger_head(&tenant).await?,
        };
        // History first, until what is left is within a page of the head: only then is the
        // shared reader joined, so a long replay never holds its buffer.
        loop {
            let head = store.ledger_head(&tenant).await?;
            let close = head.saturating_sub(next) <= PAGE as u64;
            let mut pages = History::new(&store, &feed, &tenant, &filter, next, head);
            while let Some(page) = pages.next_page().await? {
                for committed in page {
                    yield committed;
                }
            }
            next = next.max(head);
            if close {
                break;
            }
        }
        let mut live = feed.follow(&tenant, next);
        // Whatever was committed before the reader had us: from the store, then the reader is
        // told the head so that it does not wait for the next commit to read it.
        let head = store.ledger_head(&tenant).await?;
        feed.heard(&tenant, head);
        let mut pages = History::new(&store, &feed, &tenant, &filter, next, head);
        while let Some(page) = pages.next_page().await? {
            for committed in page {
                yield committed;
            }
        }
        next = next.max(head);
        loop {
            let committed = match live.recv().await {
                Ok(committed) => committed,
                // Its buffer also filled with events it has no use for (below its cursor, or
                // while it read history): only a follower really behind the head is too slow.
                // Whatever else it lost is a jump, filled from the store below.
                Err(RecvError::Lagged(_)) => {
                    let head = store.ledger_head(&tenant).await?;
                    if head.saturating_sub(next) > FOLLOWER_BUFFER as u64 {
                        Err(too_slow(next))?;
                    }
                    continue;
                }
                // The instance is shutting down.
                Err(RecvError::Closed) => Err(ApiError::Unavailable(format!(
                    "the server is shutting down: resume after {}",
                    resume_cursor(next)
                )))?,
            };
            if committed.index < next {
                continue;
            }
            if committed.index > next {
                let mut pages = History::new(&store, &feed, &tenant, &filter, next, committed.index);
                while let Some(page) = pages.next_page().await? {
                    for committed in page {
                        yield committed;
                    }
                }
            }
            next = committed.index + 1;
            if filter.matches(&committed.event) {
                yield Committed::clone(&committed);
            }
        }
    }
}

/// The cursor to resume after everything below `next`.
fn resume_cursor(next: u64) -> String {
    match next.checked_sub(1) {
        Some(last) => StreamCursor(last).encode(),
        None => "beginning".into(),
    }
}

fn too_slow(next: u64) -> ApiError {
    ApiError::SlowConsumer {
        message: format!(
            "this subscription fell more than {} events behind and was closed; subscribe again \
             with `after` set to the cursor given here",
            FOLLOWER_BUFFER
        ),
        cursor: resume_cursor(next),
    }
}

/// The matching events with indices in `[from, below)`, a page per query, each in its turn.
/// The next page is read while the caller takes the current one, so a replay's queries and
/// its deliveries overlap instead of taking turns.
struct History {
    reader: PageReader,
    next: u64,
    below: u64,
    ahead: Option<RemoteHandle<Result<ReadPage, ApiError>>>,
}

impl History {
    fn new(
        store: &Store,
        feed: &Arc<CommitFeed>,
        tenant: &str,
        filter: &Arc<EventFilter>,
        from: u64,
        below: u64,
    ) -> Self {
        Self {
            reader: PageReader {
                store: store.clone(),
                feed: Arc::clone(feed),
                tenant: tenant.to_owned(),
                filter: Arc::clone(filter),
            },
            next: from,
            below,
            ahead: None,
        }
    }

    async fn next_page(&mut self) -> Result<Option<Vec<Committed>>, ApiError> {
        let (page, next) = match self.ahead.take() {
            Some(ahead) => ahead.await?,
            None if self.next < self.below => {
                self.reader.clone().read(self.next, self.below).await?
            }
            None => return Ok(None),
        };
        self.next = next;
        if self.next < self.below {
            // Dropped with the subscription, the read ahead is cancelled with it.
            let (read, handle) = self
                .reader
                .clone()
                .read(self.next, self.below)
                .remote_handle();
            tokio::spawn(read);
            self.ahead = Some(handle);
        }
        Ok(Some(page))
    }
}

/// One query's matching events, and the index the next query starts from.
type ReadPage = (Vec<Committed>, u64);

/// What one query of a feed's history needs, owned, so that it can run ahead.
#[derive(Clone)]
struct PageReader {
    store: Store,
    feed: Arc<CommitFeed>,
    tenant: String,
    filter: Arc<EventFilter>,
}

impl PageReader {
    /// The matching events from `from` on, below `below` and within one window; and where the
    /// next query starts.
    async fn read(self, from: u64, below: u64) -> Result<ReadPage, ApiError> {
        let Some(_turn) = self.feed.history_turn(&self.tenant).await else {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        };
        metrics::counter!("traceledger_feed_history_queries_total").increment(1);
        let below = below.min(from.saturating_add(WINDOW));
        let page = self
            .store
            .ledger_page(&self.tenant, from, below, &self.filter, PAGE)
            .await?;
        let next = match page.last() {
            Some((index, _)) if page.len() == PAGE => index + 1,
            // The rest of the window holds nothing that matches.
            _ => below,
        };
        let page = page
            .into_iter()
            .map(|(index, event)| Committed { index, event })
            .collect();
        Ok((page, next))
    }
}
