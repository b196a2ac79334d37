//! Committed events in ledger order, for durable subscriptions: one reader per tenant with
//! subscribers on this instance, woken by PostgreSQL's commit notices, reads what each commit
//! added (one query per tenant and notice, whatever the number of subscribers) and fans it out
//! in memory. A tenant nobody here follows costs nothing but the ignored notice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::backoff::{sleep_unless_shutdown, Backoff};
use crate::domain::ledger::Committed;
use crate::domain::EventFilter;
use crate::store::{Heard, Store};

/// Events a follower may fall behind its tenant's reader by before it is told it is too slow:
/// what a tenant's readers hold in memory at most.
pub const FOLLOWER_BUFFER: usize = 8192;
/// Events read per query.
const PAGE: usize = 1000;
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct CommitFeed {
    store: Store,
    readers: Mutex<HashMap<String, Arc<Reader>>>,
    history: HistoryGate,
    /// Durable subscriptions open on this instance, replaying or live.
    followers: Arc<AtomicUsize>,
    shutdown: CancellationToken,
}

/// Counts one durable subscription while it lives.
pub struct Following(Arc<AtomicUsize>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One tenant's reader, shared by its followers on this instance.
struct Reader {
    events: broadcast::Sender<Arc<Committed>>,
    /// The highest head heard of.
    head: AtomicU64,
    wake: Notify,
}

impl Reader {
    fn heard(&self, head: u64) {
        if self.head.fetch_max(head, Ordering::AcqRel) < head {
            self.wake.notify_one();
        }
    }
}

impl CommitFeed {
    /// Listens for commit notices until `shutdown`.
    pub fn start(store: Store, shutdown: CancellationToken) -> Arc<Self> {
        // Half the pool at most for feeds reading history, and half of that for one tenant's:
        // the rest of the pool stays for every other request.
        let pooled = store.pool().options().get_max_connections() as usize;
        let history = HistoryGate::new((pooled / 2).max(1));
        let feed = Arc::new(Self {
            store,
            readers: Mutex::default(),
            history,
            followers: Arc::default(),
            shutdown,
        });
        tokio::spawn(Arc::clone(&feed).listen());
        feed
    }

    /// The tenant's committed events from the index `from` on, as its reader reads them (it
    /// starts at `from` when this is its first follower). Then tell [`Self::heard`] the head
    /// read after subscribing, so that nothing committed before the reader existed is waited
    /// for.
    pub fn follow(
        self: &Arc<Self>,
        tenant: &str,
        from: u64,
    ) -> broadcast::Receiver<Arc<Committed>> {
        let mut readers = self.lock();
        if let Some(reader) = readers.get(tenant) {
            return reader.events.subscribe();
        }
        let (events, receiver) = broadcast::channel(FOLLOWER_BUFFER);
        let reader = Arc::new(Reader {
            events,
            head: AtomicU64::new(from),
            wake: Notify::new(),
        });
        readers.insert(tenant.to_owned(), Arc::clone(&reader));
        tokio::spawn(Arc::clone(self).read(tenant.to_owned(), reader, from));
        receiver
    }

    /// The tenant's head is at least `head`.
    pub fn heard(&self, tenant: &str, head: u64) {
        if let Some(reader) = self.lock().get(tenant) {
            reader.heard(head);
        }
    }

    /// Counted as a durable subscription until dropped.
    pub fn following(&self) -> Following {
        self.followers.fetch_add(1, Ordering::Relaxed);
        Following(Arc::clone(&self.followers))
    }

    /// Durable subscriptions open on this instance.
    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::Relaxed)
    }

    /// Waits for a turn to query the tenant's history (see [`HistoryGate`]); `None` never
    /// happens while the feed lives.
    pub async fn history_turn(&self, tenant: &str) -> Option<HistoryTurn> {
        self.history.turn(tenant).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Reader>>> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn listen(self: Arc<Self>) {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        let mut listener = None;
        while !self.shutdown.is_cancelled() {
            let current = match listener.as_mut() {
                Some(current) => current,
                None => match self.store.listen_for_commits().await {
                    Ok(opened) => {
                        // Whatever was committed while nobody listened.
                        self.catch_up().await;
                        listener.insert(opened)
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in = ?delay, "cannot listen for commits");
                        if !sleep_unless_shutdown(delay, &self.shutdown).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let heard = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                heard = current.next() => heard,
            };
            match heard {
                Ok(Heard::Commit(notice)) => {
                    backoff.reset();
                    self.heard(&notice.tenant, notice.head);
                }
                Ok(Heard::Lost) => {
                    tracing::warn!("lost the commit notices' connection; reading heads again");
                    self.catch_up().await;
                }
                Err(e) => {
                    listener = None;
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "commit notices interrupted");
                    if !sleep_unless_shutdown(delay, &self.shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the head of every tenant followed here: notices may have been missed.
    async fn catch_up(&self) {
        let tenants: Vec<String> = self.lock().keys().cloned().collect();
        for tenant in tenants {
            match self.store.ledger_head(&tenant).await {
                Ok(head) => self.heard(&tenant, head),
                Err(e) => tracing::warn!(error = %e, tenant, "cannot read a ledger head"),
            }
        }
    }

    /// Reads the tenant's events as its head advances, from `next` on, until nobody follows.
    async fn read(self: Arc<Self>, tenant: String, reader: Arc<Reader>, mut next: u64) {
        let everything = EventFilter::default();
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            {
                let mut readers = self.lock();
                // Under the lock: no follower can be joining it now. Checked before every read,
                // so that a busy tenant nobody follows any more is not read for nobody.
                if reader.events.receiver_count() == 0 || self.shutdown.is_cancelled() {
                    // Its sender goes with it: followers still here learn that it ended.
                    readers.remove(&tenant);
                    return;
                }
            }
            let head = reader.head.load(Ordering::Acquire);
            if next >= head {
                tokio::select! {
                    _ = self.shutdown.cancelled() => continue,
                    _ = reader.wake.notified() => continue,
                }
            }
            metrics::counter!("traceledger_feed_reader_queries_total").increment(1);
            let page = match self
                .store
                .ledger_page(&tenant, next, head, &everything, PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, tenant, retry_in = ?delay, "cannot read committed events");
                    // On shutdown the loop's top ends the reader.
                    sleep_unless_shutdown(delay, &self.shutdown).await;
                    continue;
                }
            };
            backoff.reset();
            // Rows below the head that are not there were dropped by retention: skip them.
            next = page.last().map_or(head, |(index, _)| index + 1);
            for (index, event) in page {
                // An error only means nobody follows right now.
                let _ = reader.events.send(Arc::new(Committed { index, event }));
            }
        }
    }
}

/// Bounds the history queries in flight on this instance, in all and per tenant: feeds that
/// replay history (or look through it for a filter that matches little) wait for a turn instead
/// of taking the pool every other request needs, and one tenant's feeds never take every turn.
struct HistoryGate {
    all: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A turn to query history; the next waiting feed goes when it is dropped.
pub struct HistoryTurn {
    _all: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

impl HistoryGate {
    fn new(in_all: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(in_all)),
            per_tenant: (in_all / 2).max(1),
            tenants: Mutex::default(),
        }
    }

    /// `None` only if a semaphore were closed, which none is.
    async fn turn(&self, tenant: &str) -> Option<HistoryTurn> {
        let mine = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            // Tenants nobody waits for or queries for any more are forgotten.
            tenants.retain(|_, gate| Arc::strong_count(gate) > 1);
            Arc::clone(
                tenants
                    .entry(tenant.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))),
            )
        };
        // The tenant's own turn first: a tenant waiting for its own takes none of the others'.
        let tenant_turn = mine.acquire_owned().await.ok()?;
        let all_turn = Arc::clone(&self.all).acquire_owned().await.ok()?;
        Some(HistoryTurn {
            _all: all_turn,
            _tenant: tenant_turn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_tenant_never_takes_every_turn_and_turns_come_back() {
        let gate = HistoryGate::new(4);
        let a1 = gate.turn("a").await;
        let _a2 = gate.turn("a").await;
        // A third turn of tenant a waits for one of its own two…
        let waiting = tokio::time::timeout(Duration::from_millis(50), gate.turn("a")).await;
        assert!(waiting.is_err());
        // …while tenant b still gets the turns a left.
        let _b1 = gate.turn("b").await;
        let _b2 = gate.turn("b").await;
        // Every turn is taken now: c waits until one comes back.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), gate.turn("c"))
                .await
                .is_err()
        );
        drop(a1);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), gate.turn("c"))
                .await
                .is_ok_and(|turn| turn.is_some())
        );
    }
}
