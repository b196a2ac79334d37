//! Building the service from its configuration: connect every dependency, wire the services
//! together, and serve. `traceledger serve`, the tests and the benchmarks all start it here.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::access::auth::{self, Authenticator, NewApiKey};
use crate::access::ratelimit::{ConcurrencyCap, RateLimiter};
use crate::app::record::Recorder;
use crate::app::{
    DeadLetterQueue, DisplayTemplates, Keys, Ledger, OwnTrail, Services, ViewerTokens,
};
use crate::bus::{BusError, DeadLetters, Publisher, QueueDepths};
use crate::cache::{Cache, CacheError};
use crate::config::{Config, StartSettings, WorkerConfig};
use crate::graphql::build_schema;
use crate::http::{self, AppState, BadCorsOrigin};
use crate::search::{SearchError, Searcher};
use crate::store::{DatabaseSettings, Store, StoreError};
use crate::tasks::commits::CommitFeed;
use crate::tasks::indexer;
use crate::tasks::live::LiveFeed;
use crate::tasks::relay;
use crate::tasks::sealer::{self, KeySource, SealError};
use crate::tasks::worker;

/// The tenant of the key created for a newcomer when a deployment has none.
pub const BOOTSTRAP_TENANT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("PostgreSQL: {0}")]
    Store(#[from] StoreError),
    #[error("Redis: {0}")]
    Cache(#[from] CacheError),
    #[error("RabbitMQ: {0}")]
    Bus(#[from] BusError),
    #[error("search: {0}")]
    Search(#[from] SearchError),
    #[error("ledger: {0}")]
    Ledger(#[from] SealError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("JWT settings: {0}")]
    Jwt(#[from] crate::access::jwt::JwtConfigError),
    #[error(transparent)]
    CorsOrigin(#[from] BadCorsOrigin),
}

/// A fully connected service, ready to serve.
pub struct App {
    config: Config,
    store: Store,
    router: axum::Router,
    shutdown: CancellationToken,
}

impl App {
    /// Connects to PostgreSQL (creating and migrating the database), Redis and RabbitMQ.
    pub async fn build(config: Config, shutdown: CancellationToken) -> Result<Self, StartupError> {
        // Before anything records a metric.
        crate::telemetry::metrics();
        let store = connect_store(&config.database, config.start).await?;
        let cache = Cache::connect(&config.redis, config.breaker.breaker()).await?;
        let topology = config.broker.topology();
        let publisher = Arc::new(
            Publisher::connect(
                &config.broker.url,
                topology.clone(),
                &config.publish,
                config.breaker.breaker(),
            )
            .await,
        );
        let outbox_parked = Arc::new(Notify::new());
        relay::spawn_relay(
            store.clone(),
            Arc::clone(&publisher),
            Arc::clone(&outbox_parked),
            config.publish.outbox_poll(),
            shutdown.clone(),
        );
        let live = LiveFeed::start(&config.broker.url, &topology, shutdown.clone()).await;
        let recorder = Recorder::new(
            publisher.clone(),
            cache.clone(),
            store.clone(),
            outbox_parked,
        );
        let rates = config.limits.default_rates();
        let trail = OwnTrail::start(recorder.clone(), config.trail.queue);
        let services = Arc::new(Services {
            store: store.clone(),
            cache: cache.clone(),
            publisher,
            keys: Keys::new(store.clone(), trail.clone(), rates),
            viewer_tokens: ViewerTokens::new(store.clone(), trail.clone()),
            display: DisplayTemplates::new(store.clone(), trail.clone()),
            ledger: Ledger::new(store.clone()),
            dead_letters: DeadLetterQueue::new(
                DeadLetters::new(&config.broker.url, topology.clone()),
                trail.clone(),
            ),
            trail,
            recorder,
            live,
            commits: CommitFeed::start(store.clone(), shutdown.clone()),
            queue_depths: QueueDepths::new(&config.broker.url, topology.clone()),
            search: Searcher::new(&config.search, store.clone())?,
            subscriptions: ConcurrencyCap::new(config.limits.max_subscriptions_per_key),
            default_rates: rates,
        });
        let http = &config.http;
        let state = AppState {
            schema: build_schema(Arc::clone(&services), &config.schema),
            documents: Arc::default(),
            persisted: Arc::default(),
            services,
            auth: Arc::new(Authenticator::new(store.clone(), &config.credentials)?),
            limiter: Arc::new(RateLimiter::new(cache, rates)),
            sockets: ConcurrencyCap::new(config.limits.max_sockets_per_key),
            unauthenticated_sockets: Arc::new(tokio::sync::Semaphore::new(
                http.max_unauthenticated_sockets as usize,
            )),
            socket_init_timeout: Duration::from_millis(http.socket_init_timeout_ms),
            exports: ConcurrencyCap::new(config.limits.max_exports_per_key),
            export_send_timeout: Duration::from_millis(http.export_send_timeout_ms),
        };
        Ok(Self {
            router: http::router(state, http)?,
            config,
            store,
            shutdown,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs the pipeline inside this process until shutdown: the worker, the ledger's sealer
    /// beside it, and the search indexer when Elasticsearch is configured (it indexes what the
    /// worker queues).
    pub async fn spawn_pipeline(&self) -> Result<Pipeline, StartupError> {
        let config = WorkerConfig::from(&self.config);
        start_pipeline(&config, self.store.clone(), self.shutdown.clone()).await
    }

    /// Serves HTTP on `listener` until shutdown.
    pub async fn serve(self, listener: TcpListener) -> Result<(), StartupError> {
        http::serve(
            listener,
            self.router,
            self.config.http.header_timeout(),
            self.shutdown,
        )
        .await;
        Ok(())
    }
}

/// The store a serving process uses: migrated first unless told not to (a runtime role may not
/// change the schema), and a loud warning when its role could do more than it needs.
async fn connect_store(
    database: &DatabaseSettings,
    start: StartSettings,
) -> Result<Store, StartupError> {
    let store = Store::connect(database).await?;
    if start.migrate_on_start {
        store.migrate().await?;
    }
    match store.excess_privilege().await {
        Ok(Some(what)) => tracing::warn!(
            "connected to PostgreSQL as {what}: it can change or delete audit events past the \
             append-only guards; run the service as a role with only what it needs \
             (`traceledger migrate --runtime-role NAME`, README \"Immutable storage\")"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot tell what the database role may do"),
    }
    Ok(store)
}

/// Runs only the worker until a shutdown signal: the `traceledger worker` command and the
/// `traceledger-worker` binary.
pub async fn run_worker(config: WorkerConfig) -> Result<(), StartupError> {
    crate::telemetry::metrics();
    let store = connect_store(&config.database, config.start).await?;
    let shutdown = crate::shutdown::on_signal();
    start_pipeline(&config, store, shutdown).await?.join().await;
    Ok(())
}

/// The pipeline's tasks in a serving process, and the key its sealer signs with.
pub struct Pipeline {
    tasks: [Option<JoinHandle<()>>; 3],
    pub key: SigningKey,
}

impl Pipeline {
    /// Waits until every task has stopped (after shutdown).
    pub async fn join(self) {
        for task in self.tasks.into_iter().flatten() {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a pipeline task failed");
            }
        }
    }
}

/// The key checkpoints are signed with: its public half, and where it came from.
#[derive(Debug)]
pub struct SigningKey {
    pub verifier_key: String,
    pub source: KeySource,
}

/// Starts the worker, the ledger's sealer beside it (after loading or creating its signing
/// key, listing it among the ledger's keys and logging which it is) and the search indexer
/// when Elasticsearch is configured.
async fn start_pipeline(
    config: &WorkerConfig,
    store: Store,
    shutdown: CancellationToken,
) -> Result<Pipeline, StartupError> {
    let (signer, source) = sealer::load_signer(&config.ledger)?;
    sealer::announce(&signer, &source);
    store.register_ledger_key(signer.verifier_key()).await?;
    let key = SigningKey {
        verifier_key: signer.verifier_key().to_owned(),
        source,
    };
    let indexer = indexer::spawn(&config.search, store.clone(), shutdown.clone())?;
    let sealer = sealer::spawn(&config.ledger, signer, store.clone(), shutdown.clone());
    let (settings, broker) = (config.worker.clone(), config.broker.clone());
    let backlog = config.search.backlog();
    let worker = tokio::spawn(async move {
        worker::run(&settings, &broker, backlog, store, shutdown).await;
    });
    Ok(Pipeline {
        tasks: [Some(worker), Some(sealer), indexer],
        key,
    })
}

/// A newcomer's first key: created for tenant `default` when the deployment has no key at all.
pub async fn bootstrap_key(store: &Store) -> Result<Option<NewApiKey>, StoreError> {
    if store.count_api_keys().await? > 0 {
        return Ok(None);
    }
    // A newcomer's own deployment: the first key may do everything.
    auth::create_scoped_api_key(store, BOOTSTRAP_TENANT, "bootstrap", &auth::Scope::ALL)
        .await
        .map(Some)
}
