//! The running service's shared parts, built once by `startup` and reached by every entrance:
//! GraphQL resolvers, HTTP routes (export, health) and the readiness report.

use std::sync::Arc;

use super::{DeadLetterQueue, DisplayTemplates, Keys, Ledger, OwnTrail, ViewerTokens};
use crate::access::ratelimit::{ConcurrencyCap, DefaultRates};
use crate::app::record::Recorder;
use crate::bus::{Publisher, QueueDepths};
use crate::cache::Cache;
use crate::search::Searcher;
use crate::store::Store;
use crate::tasks::commits::CommitFeed;
use crate::tasks::live::LiveFeed;

pub struct Services {
    pub store: Store,
    pub cache: Cache,
    pub publisher: Arc<Publisher>,
    pub recorder: Recorder,
    pub keys: Keys,
    /// Viewer tokens for the tenants' own customers.
    pub viewer_tokens: ViewerTokens,
    /// The tenants' sentences for their actions.
    pub display: DisplayTemplates,
    pub dead_letters: DeadLetterQueue,
    /// Checkpoints, proofs and tiles of the tenants' ledgers.
    pub ledger: Ledger,
    pub live: Arc<LiveFeed>,
    /// Committed events in ledger order, for durable subscriptions.
    pub commits: Arc<CommitFeed>,
    /// The broker's queue depths, for the metrics.
    pub queue_depths: QueueDepths,
    pub search: Searcher,
    /// Live subscriptions each caller may hold open.
    pub subscriptions: ConcurrencyCap,
    /// The service's own trail: every request and admin action, in tenant `_traceledger`.
    pub trail: OwnTrail,
    /// The deployment's rates: every key's unless it has its own, and the ceiling of what a
    /// tenant's admin may give a key unless an operator set the tenant's own.
    pub default_rates: DefaultRates,
}
