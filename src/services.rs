//! The running service's shared parts, built once by `app` and reached by every front door:
//! GraphQL resolvers, HTTP routes (export, health) and the readiness report.

use std::sync::Arc;

use crate::bus::{DeadLetters, Publisher};
use crate::cache::Cache;
use crate::ingest::Recorder;
use crate::live::LiveFeed;
use crate::ratelimit::{ConcurrencyCap, DefaultRates};
use crate::search::Searcher;
use crate::self_audit::AuditTrail;
use crate::store::Store;

pub struct Services {
    pub store: Store,
    pub cache: Cache,
    pub publisher: Arc<Publisher>,
    pub recorder: Recorder,
    pub dead_letters: DeadLetters,
    pub live: Arc<LiveFeed>,
    pub search: Searcher,
    /// Live subscriptions each caller may hold open.
    pub subscriptions: ConcurrencyCap,
    /// Where admin actions are recorded.
    pub audit: AuditTrail,
    /// The deployment's rates: every key's unless it has its own, and the ceiling of what a
    /// tenant's admin may give a key unless an operator set the tenant's own.
    pub default_rates: DefaultRates,
}
