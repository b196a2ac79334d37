//! Building the service from its configuration: connect every dependency, wire the services
//! together, and serve. `traceledger serve`, the tests and the benchmarks all start it here.

use std::sync::Arc;

use axum::http::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Authenticator, NewApiKey};
use crate::bus::{BusError, DeadLetters, GroupCommit, Publisher, Topology};
use crate::cache::{Cache, CacheError};
use crate::config::Config;
use crate::graphql::{build_schema, SchemaLimits};
use crate::http::{self, AppState, HttpLimits};
use crate::ingest::Recorder;
use crate::jwt::JwtVerifier;
use crate::live::LiveFeed;
use crate::outbox;
use crate::ratelimit::{ConcurrencyCap, DefaultRates, RateLimiter};
use crate::search::{indexer, SearchError, Searcher};
use crate::self_audit::AuditTrail;
use crate::services::Services;
use crate::store::{Store, StoreError};
use crate::worker::{self, WorkerSettings};

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
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("JWT settings: {0}")]
    Jwt(#[from] crate::jwt::JwtConfigError),
    #[error("CORS origin {0:?} is not a valid header value")]
    CorsOrigin(String),
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
        let store = connect_store(&config).await?;
        let cache = Cache::connect(
            &config.redis_url,
            &config.cache_prefix,
            config.cache_ttl(),
            config.idempotency_ttl(),
            config.breaker(),
        )
        .await?;
        let topology = Topology::from_config(&config);
        let publisher = Arc::new(
            Publisher::connect(
                &config.amqp_url,
                topology.clone(),
                config.publish_timeout(),
                config.breaker(),
                GroupCommit::from_config(&config),
            )
            .await,
        );
        let outbox_parked = Arc::new(Notify::new());
        outbox::spawn_relay(
            store.clone(),
            Arc::clone(&publisher),
            Arc::clone(&outbox_parked),
            config.outbox_poll(),
            shutdown.clone(),
        );
        let live = LiveFeed::start(&config.amqp_url, &topology, shutdown.clone()).await;
        let recorder = Recorder::new(
            publisher.clone(),
            cache.clone(),
            store.clone(),
            outbox_parked,
        );
        let rates = DefaultRates {
            write_per_sec: config.write_rate_per_sec,
            read_per_sec: config.read_rate_per_sec,
        };
        let services = Arc::new(Services {
            store: store.clone(),
            cache: cache.clone(),
            publisher,
            audit: AuditTrail::start(recorder.clone(), config.self_audit_queue),
            recorder,
            dead_letters: DeadLetters::new(&config.amqp_url, topology.clone()),
            live,
            search: Searcher::from_config(&config, store.clone())?,
            subscriptions: ConcurrencyCap::new(config.max_subscriptions_per_key),
            default_rates: rates,
        });
        let limits = SchemaLimits {
            max_depth: config.max_query_depth,
            max_complexity: config.max_query_complexity,
            introspection: config.introspection,
        };
        let auth = Authenticator::new(store.clone(), config.key_cache_ttl())
            .with_jwt(JwtVerifier::from_config(&config)?);
        let state = AppState {
            schema: build_schema(Arc::clone(&services), limits),
            documents: Arc::default(),
            services,
            auth: Arc::new(auth),
            limiter: Arc::new(RateLimiter::new(cache, rates)),
            sockets: ConcurrencyCap::new(config.max_sockets_per_key),
            unauthenticated_sockets: Arc::new(tokio::sync::Semaphore::new(
                config.max_unauthenticated_sockets as usize,
            )),
            socket_init_timeout: config.socket_init_timeout(),
            exports: ConcurrencyCap::new(config.max_exports_per_key),
            export_send_timeout: config.export_send_timeout(),
            amqp_url: config.amqp_url.as_str().into(),
            topology: Arc::new(topology),
        };
        let http_limits = HttpLimits {
            max_body_bytes: config.max_body_bytes,
            cors_origins: config
                .cors_origins
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| StartupError::CorsOrigin(o.clone())))
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            router: http::router(state, http_limits),
            config,
            store,
            shutdown,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs the worker inside this process until shutdown.
    pub fn spawn_worker(&self) -> JoinHandle<()> {
        tokio::spawn(worker::run(
            WorkerSettings::from_config(&self.config),
            self.store.clone(),
            self.shutdown.clone(),
        ))
    }

    /// Runs the search indexer inside this process until shutdown, when Elasticsearch is
    /// configured (it indexes what the worker queues).
    pub fn spawn_indexer(&self) -> Result<Option<JoinHandle<()>>, StartupError> {
        Ok(indexer::spawn_from_config(
            &self.config,
            self.store.clone(),
            self.shutdown.clone(),
        )?)
    }

    /// Serves HTTP on `listener` until shutdown.
    pub async fn serve(self, listener: TcpListener) -> Result<(), StartupError> {
        http::serve(
            listener,
            self.router,
            self.config.http_header_timeout(),
            self.shutdown,
        )
        .await;
        Ok(())
    }
}

/// The store a serving process uses: migrated first unless told not to (a runtime role may not
/// change the schema), and a loud warning when its role could do more than it needs.
async fn connect_store(config: &Config) -> Result<Store, StartupError> {
    let store = Store::connect_with(&config.database_url, config.pool_settings())
        .await?
        .with_search_backlog(config.elasticsearch_url.is_some());
    if config.migrate_on_start {
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
pub async fn run_worker(config: Config) -> Result<(), StartupError> {
    crate::telemetry::metrics();
    let store = connect_store(&config).await?;
    let shutdown = crate::shutdown::on_signal();
    let indexer = indexer::spawn_from_config(&config, store.clone(), shutdown.clone())?;
    worker::run(WorkerSettings::from_config(&config), store, shutdown).await;
    if let Some(indexer) = indexer {
        let _ = indexer.await;
    }
    Ok(())
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
