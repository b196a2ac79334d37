//! One typed configuration, parsed once at the edge and passed down. Every setting has a default
//! that points at the local services, and a `TRACELEDGER_*` environment variable that overrides it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "TRACELEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PostgreSQL, the source of truth. The database is created if it does not exist.
    #[arg(
        long,
        env = "TRACELEDGER_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/traceledger"
    )]
    pub database_url: String,

    /// Apply pending migrations when `serve` or `worker` starts. Off for a runtime role, which
    /// may not change the schema: run `traceledger migrate` as the owner instead.
    #[arg(
        long,
        env = "TRACELEDGER_MIGRATE_ON_START",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub migrate_on_start: bool,

    /// Connections for interactive work (reads, writes, the worker) per process.
    #[arg(
        long,
        env = "TRACELEDGER_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub database_max_connections: u32,

    /// Connections for exports, apart from the interactive ones: stalled exports cannot take
    /// what reads need.
    #[arg(
        long,
        env = "TRACELEDGER_DATABASE_STREAM_CONNECTIONS",
        default_value_t = 4
    )]
    pub database_stream_connections: u32,

    /// The longest an interactive statement may run (PostgreSQL `statement_timeout`); 0: no limit.
    #[arg(
        long,
        env = "TRACELEDGER_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub database_statement_timeout_ms: u64,

    /// The longest one export's query may run; 0: no limit.
    #[arg(
        long,
        env = "TRACELEDGER_EXPORT_STATEMENT_TIMEOUT_MS",
        default_value_t = 3_600_000
    )]
    pub export_statement_timeout_ms: u64,

    /// An export whose client takes no data for this long is ended, freeing its connection.
    #[arg(
        long,
        env = "TRACELEDGER_EXPORT_SEND_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub export_send_timeout_ms: u64,

    /// Exports one key may run at once on one instance.
    #[arg(long, env = "TRACELEDGER_MAX_EXPORTS_PER_KEY", default_value_t = 2)]
    pub max_exports_per_key: u32,

    /// Redis, for the event cache and the idempotency fast path.
    #[arg(
        long,
        env = "TRACELEDGER_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Prefix of every Redis key this deployment writes.
    #[arg(long, env = "TRACELEDGER_CACHE_PREFIX", default_value = "tl")]
    pub cache_prefix: String,

    /// How long a loaded event stays cached (events are immutable; this only bounds memory).
    #[arg(long, env = "TRACELEDGER_CACHE_TTL_SECS", default_value_t = 3600)]
    pub cache_ttl_secs: u64,

    /// How long Redis remembers an idempotency key (PostgreSQL remembers it for good).
    #[arg(
        long,
        env = "TRACELEDGER_IDEMPOTENCY_TTL_SECS",
        default_value_t = 86_400
    )]
    pub idempotency_ttl_secs: u64,

    /// RabbitMQ.
    #[arg(
        long,
        env = "TRACELEDGER_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Durable fanout exchange every accepted batch is published to.
    #[arg(
        long,
        env = "TRACELEDGER_EXCHANGE",
        default_value = "traceledger.events"
    )]
    pub exchange: String,

    /// Durable queue the workers consume.
    #[arg(
        long,
        env = "TRACELEDGER_WORKER_QUEUE",
        default_value = "traceledger.worker"
    )]
    pub worker_queue: String,

    /// Where undecodable or invalid messages go instead of looping.
    #[arg(
        long,
        env = "TRACELEDGER_DEAD_LETTER_QUEUE",
        default_value = "traceledger.dead-letter"
    )]
    pub dead_letter_queue: String,

    /// How long `recordEvent` waits for the broker's confirm before parking the events in the
    /// PostgreSQL outbox (the call still answers ACCEPTED; UNAVAILABLE only if that fails too).
    #[arg(long, env = "TRACELEDGER_PUBLISH_TIMEOUT_MS", default_value_t = 5000)]
    pub publish_timeout_ms: u64,

    /// Messages the publisher may have awaiting the broker's confirm at once. Calls arriving
    /// meanwhile wait and travel together in the next message (group commit).
    #[arg(long, env = "TRACELEDGER_PUBLISH_MAX_IN_FLIGHT", default_value_t = 2)]
    pub publish_max_in_flight: usize,

    /// The most events one message of grouped calls carries…
    #[arg(
        long,
        env = "TRACELEDGER_PUBLISH_GROUP_MAX_EVENTS",
        default_value_t = 1000
    )]
    pub publish_group_max_events: usize,

    /// …and the most bytes of events (a single larger call still travels, alone).
    #[arg(long, env = "TRACELEDGER_PUBLISH_GROUP_MAX_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub publish_group_max_bytes: usize,

    /// The worker commits a batch after this many messages…
    #[arg(long, env = "TRACELEDGER_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,

    /// …or this long after the batch's first message, whichever comes first.
    #[arg(long, env = "TRACELEDGER_BATCH_TIMEOUT_MS", default_value_t = 50)]
    pub batch_timeout_ms: u64,

    /// Unacknowledged messages the broker hands one worker at a time.
    #[arg(long, env = "TRACELEDGER_PREFETCH", default_value_t = 1000)]
    pub prefetch: u16,

    /// Delays of the retry queues a message passes through after a transient failure, in order;
    /// after the last one it is dead-lettered.
    #[arg(
        long,
        env = "TRACELEDGER_RETRY_DELAYS_MS",
        value_delimiter = ',',
        default_value = "1000,5000,30000,120000"
    )]
    pub retry_delays_ms: Vec<u64>,

    /// How often the outbox relay looks for events accepted while the broker was down.
    #[arg(long, env = "TRACELEDGER_OUTBOX_POLL_MS", default_value_t = 1000)]
    pub outbox_poll_ms: u64,

    /// Consecutive failures after which a dependency (Redis, the broker) is skipped for a while.
    #[arg(long, env = "TRACELEDGER_BREAKER_THRESHOLD", default_value_t = 3)]
    pub breaker_threshold: u32,

    /// How long a tripped dependency is skipped before one call probes it again.
    #[arg(long, env = "TRACELEDGER_BREAKER_COOL_DOWN_MS", default_value_t = 2000)]
    pub breaker_cool_down_ms: u64,

    /// How long a verified API key is trusted before it is looked up again.
    #[arg(long, env = "TRACELEDGER_KEY_CACHE_SECS", default_value_t = 5)]
    pub key_cache_secs: u64,

    /// Elasticsearch (8+) for search. Unset: PostgreSQL full-text search answers alone.
    #[arg(long, env = "TRACELEDGER_ELASTICSEARCH_URL")]
    pub elasticsearch_url: Option<String>,

    /// Names the alias searched, the index template, and the monthly indices (`<prefix>-YYYY.MM`).
    #[arg(
        long,
        env = "TRACELEDGER_ELASTICSEARCH_INDEX_PREFIX",
        default_value = "traceledger-events"
    )]
    pub elasticsearch_index_prefix: String,

    /// How long one Elasticsearch request may take before it counts as a failure.
    #[arg(
        long,
        env = "TRACELEDGER_ELASTICSEARCH_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub elasticsearch_timeout_ms: u64,

    /// Consecutive Elasticsearch failures after which search stops asking it…
    #[arg(long, env = "TRACELEDGER_SEARCH_BREAKER_FAILURES", default_value_t = 3)]
    pub search_breaker_failures: u32,

    /// …and answers from PostgreSQL this long before one request probes Elasticsearch again.
    #[arg(
        long,
        env = "TRACELEDGER_SEARCH_BREAKER_COOLDOWN_MS",
        default_value_t = 30_000
    )]
    pub search_breaker_cooldown_ms: u64,

    /// Events the indexer sends to Elasticsearch in one `_bulk` request.
    #[arg(long, env = "TRACELEDGER_INDEX_BATCH_SIZE", default_value_t = 500)]
    pub index_batch_size: usize,

    /// How often the indexer looks for newly stored events when it has caught up.
    #[arg(long, env = "TRACELEDGER_INDEX_POLL_MS", default_value_t = 200)]
    pub index_poll_ms: u64,
    /// HS256 secret that JWTs from admin frontends are signed with (or use an RS256 key).
    #[arg(long, env = "TRACELEDGER_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// PEM file of the RSA public key that RS256 JWTs are verified with.
    #[arg(long, env = "TRACELEDGER_JWT_RS256_PUBLIC_KEY_FILE")]
    pub jwt_rs256_public_key_file: Option<std::path::PathBuf>,

    /// The `iss` a JWT must carry (required when JWTs are configured).
    #[arg(long, env = "TRACELEDGER_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` a JWT must carry (required when JWTs are configured).
    #[arg(long, env = "TRACELEDGER_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew tolerated on a JWT's `exp` and `nbf`, in seconds: a websocket opened with a
    /// token is closed this long after the token expires.
    #[arg(long, env = "TRACELEDGER_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// Whether a JWT may name the system tenant `_traceledger` (the service's own trail).
    #[arg(
        long,
        env = "TRACELEDGER_JWT_ALLOW_SYSTEM_TENANT",
        default_value_t = false
    )]
    pub jwt_allow_system_tenant: bool,

    /// The JWT claim naming the tenant the caller acts for.
    #[arg(long, env = "TRACELEDGER_JWT_TENANT_CLAIM", default_value = "tenant")]
    pub jwt_tenant_claim: String,

    /// The JWT claim listing the caller's roles (an array, or a space-separated string).
    #[arg(long, env = "TRACELEDGER_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,

    /// What each role may do, as ROLE=SCOPE entries; a role named like a scope always grants it.
    #[arg(
        long,
        env = "TRACELEDGER_JWT_ROLE_SCOPES",
        value_delimiter = ',',
        default_value = "admin=admin,admin=events:read,auditor=events:read,writer=events:write"
    )]
    pub jwt_role_scopes: Vec<String>,

    /// Events one key may record per second, sustained (a mutation that records none counts
    /// one); a key's own limit overrides it. The burst is one second's worth.
    #[arg(long, env = "TRACELEDGER_WRITE_RATE_PER_SEC", default_value_t = 10_000)]
    pub write_rate_per_sec: u32,

    /// Reads (queries, exports, websocket connections) one key may make per second, sustained.
    #[arg(long, env = "TRACELEDGER_READ_RATE_PER_SEC", default_value_t = 500)]
    pub read_rate_per_sec: u32,

    /// How long a client may take to send a request's headers, and so how long a connection may
    /// sit idle between requests, before it is closed.
    #[arg(
        long,
        env = "TRACELEDGER_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub http_header_timeout_ms: u64,

    /// How long a new websocket may take to send `connection_init` before it is closed (4408).
    #[arg(
        long,
        env = "TRACELEDGER_SOCKET_INIT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub socket_init_timeout_ms: u64,

    /// Websockets that have not authenticated yet that one instance holds at once; more are
    /// refused (503) until some authenticate or time out.
    #[arg(
        long,
        env = "TRACELEDGER_MAX_UNAUTHENTICATED_SOCKETS",
        default_value_t = 256
    )]
    pub max_unauthenticated_sockets: u32,

    /// Websocket connections one key may hold open at once on one instance.
    #[arg(long, env = "TRACELEDGER_MAX_SOCKETS_PER_KEY", default_value_t = 20)]
    pub max_sockets_per_key: u32,

    /// Live subscriptions one key may hold open at once on one instance.
    #[arg(
        long,
        env = "TRACELEDGER_MAX_SUBSCRIPTIONS_PER_KEY",
        default_value_t = 50
    )]
    pub max_subscriptions_per_key: u32,

    /// The deepest GraphQL selection accepted (GraphiQL's introspection query is 15 deep).
    #[arg(long, env = "TRACELEDGER_MAX_QUERY_DEPTH", default_value_t = 20)]
    pub max_query_depth: usize,

    /// The largest GraphQL query complexity accepted (each field selected counts one).
    #[arg(long, env = "TRACELEDGER_MAX_QUERY_COMPLEXITY", default_value_t = 2000)]
    pub max_query_complexity: usize,

    /// Whether the schema answers introspection (GraphiQL needs it).
    #[arg(
        long,
        env = "TRACELEDGER_INTROSPECTION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub introspection: bool,

    /// The largest request body accepted, in bytes: room for a full `recordEvents` batch.
    #[arg(long, env = "TRACELEDGER_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Origins (e.g. https://admin.example.com) whose browser pages may call the API; none by
    /// default, so only same-origin pages can.
    #[arg(long, env = "TRACELEDGER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Requests and admin actions waiting to be recorded in tenant `_traceledger`; past this,
    /// new ones are dropped (and counted) rather than slowing requests down.
    #[arg(long, env = "TRACELEDGER_SELF_AUDIT_QUEUE", default_value_t = 10_000)]
    pub self_audit_queue: usize,

    /// Log format.
    #[arg(long, env = "TRACELEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_secs)
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    pub fn batch_timeout(&self) -> Duration {
        Duration::from_millis(self.batch_timeout_ms)
    }

    pub fn retry_delays(&self) -> Vec<Duration> {
        self.retry_delays_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }

    pub fn outbox_poll(&self) -> Duration {
        Duration::from_millis(self.outbox_poll_ms)
    }

    pub fn breaker(&self) -> crate::breaker::Breaker {
        crate::breaker::Breaker::new(
            self.breaker_threshold,
            Duration::from_millis(self.breaker_cool_down_ms),
        )
    }

    /// How the store's connections are shared out for a serving process.
    pub fn pool_settings(&self) -> crate::store::PoolSettings {
        let limit = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        crate::store::PoolSettings {
            max_connections: self.database_max_connections,
            stream_connections: self.database_stream_connections,
            statement_timeout: limit(self.database_statement_timeout_ms),
            stream_statement_timeout: limit(self.export_statement_timeout_ms),
        }
    }

    pub fn export_send_timeout(&self) -> Duration {
        Duration::from_millis(self.export_send_timeout_ms)
    }

    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }

    pub fn socket_init_timeout(&self) -> Duration {
        Duration::from_millis(self.socket_init_timeout_ms)
    }

    pub fn key_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.key_cache_secs)
    }

    pub fn elasticsearch_timeout(&self) -> Duration {
        Duration::from_millis(self.elasticsearch_timeout_ms)
    }

    pub fn search_breaker_cooldown(&self) -> Duration {
        Duration::from_millis(self.search_breaker_cooldown_ms)
    }

    pub fn index_poll_interval(&self) -> Duration {
        Duration::from_millis(self.index_poll_ms)
    }
}
