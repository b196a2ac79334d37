//! What each process is configured with, parsed once at the edge. Every component declares its
//! own small settings struct (with a default pointing at the local services and a
//! `TRACELEDGER_*` variable overriding it); this module only composes them per process, so each
//! command shows, and a component sees, only the settings it uses.

use clap::{Args, Parser};

use crate::access::auth::CredentialSettings;
use crate::access::ratelimit::LimitSettings;
use crate::app::own_trail::TrailSettings;
use crate::breaker::BreakerSettings;
use crate::bus::{BrokerSettings, PublishSettings};
use crate::cache::RedisSettings;
use crate::graphql::SchemaLimits;
use crate::http::HttpSettings;
use crate::search::SearchSettings;
use crate::store::DatabaseSettings;
use crate::tasks::sealer::LedgerSettings;
use crate::tasks::worker::WorkerSettings;
use crate::telemetry::LogSettings;

/// Whether a serving process changes the schema when it starts.
#[derive(Args, Clone, Copy, Debug)]
#[command(next_help_heading = "PostgreSQL")]
pub struct StartSettings {
    /// Apply pending migrations when `serve` or `worker` starts. Off for a runtime role, which
    /// may not change the schema: run `traceledger migrate` as the owner instead.
    #[arg(
        value_name = "MIGRATE_ON_START",
        id = "migrate-on-start",
        long = "migrate-on-start",
        env = "TRACELEDGER_MIGRATE_ON_START",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub migrate_on_start: bool,
}

/// Everything `traceledger serve` runs: the API, and the worker and indexer unless told not to.
#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub schema: SchemaLimits,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub credentials: CredentialSettings,
    #[command(flatten)]
    pub trail: TrailSettings,
    #[command(flatten)]
    pub start: StartSettings,
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub broker: BrokerSettings,
    #[command(flatten)]
    pub publish: PublishSettings,
    #[command(flatten)]
    pub breaker: BreakerSettings,
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub search: SearchSettings,
    #[command(flatten)]
    pub ledger: LedgerSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

/// What a worker process (`traceledger worker`, `traceledger-worker`) runs with.
#[derive(Args, Clone, Debug)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub start: StartSettings,
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub broker: BrokerSettings,
    #[command(flatten)]
    pub search: SearchSettings,
    #[command(flatten)]
    pub ledger: LedgerSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

impl From<&Config> for WorkerConfig {
    fn from(config: &Config) -> Self {
        Self {
            worker: config.worker.clone(),
            start: config.start,
            database: config.database.clone(),
            broker: config.broker.clone(),
            search: config.search.clone(),
            ledger: config.ledger.clone(),
            log: config.log,
        }
    }
}

/// Parses nothing but the environment, for callers that build a config in code (tests, benches).
#[derive(Parser)]
struct EnvOnly {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Local defaults with `TRACELEDGER_*` overrides applied.
    pub fn from_env() -> Result<Self, clap::Error> {
        EnvOnly::try_parse_from(["traceledger"]).map(|e| e.config)
    }
}
