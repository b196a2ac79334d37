//! Redis: the cache-aside copy of stored events, the fast path for idempotency keys, and the
//! shared state of rate limits.
//!
//! Nothing here is the source of truth. Events are immutable, so a cached one is never stale;
//! an idempotency key claimed here is still guarded by PostgreSQL's unique constraint. So when
//! Redis is down every call fails fast (a breaker stops even trying for a while) and callers go
//! on without it; the service starts without Redis and connects when it appears.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::breaker::{Breaker, BreakerState};
use crate::domain::AuditEvent;

/// Redis calls that take longer than this count as failures; callers then go without the cache.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a service that started without Redis tries to reach it.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// GCRA (the generic cell rate algorithm) in one atomic step: KEYS[1] holds the caller's
/// theoretical arrival time in microseconds of Redis' clock; ARGV[1] is the interval between
/// units at the sustained rate, ARGV[2] how many units may come at once, ARGV[3] how many this
/// request takes (its events, for writes). Returns -1 if the request may go ahead, or else the
/// microseconds to wait.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local tat = tonumber(redis.call('GET', KEYS[1])) or now
        if tat < now then tat = now end
        local new_tat = tat + interval * cost
        local allow_at = new_tat - interval * burst
        if now < allow_at then
            return allow_at - now
        end
        redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
        return -1
        ",
    )
});

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cache unavailable")]
    Unavailable,
}

/// Where Redis is and what this deployment keeps there.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Redis")]
pub struct RedisSettings {
    /// Redis, for the event cache, the idempotency fast path and shared rate limits.
    #[arg(
        value_name = "URL",
        id = "redis-url",
        long = "redis-url",
        env = "TRACELEDGER_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,

    /// Prefix of every Redis key this deployment writes.
    #[arg(
        value_name = "PREFIX",
        id = "cache-prefix",
        long = "cache-prefix",
        env = "TRACELEDGER_CACHE_PREFIX",
        default_value = "tl"
    )]
    pub prefix: String,

    /// How long a loaded event stays cached (events are immutable; this only bounds memory).
    #[arg(
        value_name = "EVENT_TTL_SECS",
        id = "cache-ttl-secs",
        long = "cache-ttl-secs",
        env = "TRACELEDGER_CACHE_TTL_SECS",
        default_value_t = 3600
    )]
    pub event_ttl_secs: u64,

    /// How long Redis remembers an idempotency key (PostgreSQL remembers it for good).
    #[arg(
        value_name = "IDEMPOTENCY_TTL_SECS",
        id = "idempotency-ttl-secs",
        long = "idempotency-ttl-secs",
        env = "TRACELEDGER_IDEMPOTENCY_TTL_SECS",
        default_value_t = 86_400
    )]
    pub idempotency_ttl_secs: u64,
}

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    conn: OnceCell<ConnectionManager>,
    breaker: Breaker,
    prefix: String,
    event_ttl: Duration,
    idempotency_ttl: Duration,
}

impl Cache {
    /// Connects to Redis, or, if it is not there, keeps trying in the background. Fails only for
    /// a malformed URL.
    pub async fn connect(settings: &RedisSettings, breaker: Breaker) -> Result<Self, CacheError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let cache = Self {
            inner: Arc::new(Inner {
                conn: OnceCell::new(),
                breaker,
                prefix: settings.prefix.clone(),
                event_ttl: Duration::from_secs(settings.event_ttl_secs),
                idempotency_ttl: Duration::from_secs(settings.idempotency_ttl_secs),
            }),
        };
        // No retries inside the connection manager: a call fails fast and the breaker decides
        // when to try again; the manager still reconnects by itself on the next call.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_number_of_retries(0);
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(conn) => {
                let _ = cache.inner.conn.set(conn);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Redis unreachable at start; running without the cache");
                let inner = Arc::clone(&cache.inner);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(RECONNECT_INTERVAL).await;
                        let attempt =
                            ConnectionManager::new_with_config(client.clone(), config.clone());
                        if let Ok(conn) = attempt.await {
                            let _ = inner.conn.set(conn);
                            tracing::info!("Redis reachable; cache enabled");
                            return;
                        }
                    }
                });
            }
        }
        Ok(cache)
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run(|mut conn| async move { redis::cmd("PING").query_async::<()>(&mut conn).await })
            .await
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Runs one Redis call, unless Redis is known to be down, and tells the breaker how it went.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(conn) = self.inner.conn.get().cloned() else {
            return Err(CacheError::Unavailable);
        };
        if !self.inner.breaker.allow() {
            return Err(CacheError::Unavailable);
        }
        let result = call(conn).await;
        self.inner.breaker.record(&result);
        Ok(result?)
    }

    /// The cached events for these (tenant, id) keys, in the same order; `None` for a miss.
    pub async fn get_events(
        &self,
        keys: &[(String, Uuid)],
    ) -> Result<Vec<Option<AuditEvent>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys
            .iter()
            .map(|(tenant, id)| self.event_key(tenant, id))
            .collect();
        let values: Vec<Option<Vec<u8>>> =
            self.run(|mut conn| async move {
                redis::cmd("MGET").arg(&names).query_async(&mut conn).await
            })
            .await?;
        // An entry that does not decode (written by another version) is just a miss.
        Ok(values
            .into_iter()
            .map(|v| v.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
            .collect())
    }

    pub async fn put_events(&self, events: &[AuditEvent]) -> Result<(), CacheError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for event in events {
            let Ok(body) = serde_json::to_vec(event) else {
                continue;
            };
            pipe.cmd("SET")
                .arg(self.event_key(&event.tenant, &event.id))
                .arg(body)
                .arg("EX")
                .arg(self.inner.event_ttl.as_secs().max(1))
                .ignore();
        }
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Claims each idempotency key for the given new event id, in order, in one round trip.
    /// Returns, per claim, `None` if it is now ours or the id that holds it already (so a second
    /// claim of the same key in one batch sees the first).
    pub async fn claim_idempotency_keys(
        &self,
        tenant: &str,
        claims: &[(&str, Uuid)],
    ) -> Result<Vec<Option<Uuid>>, CacheError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (key, id) in claims {
            pipe.cmd("SET")
                .arg(self.idempotency_key(tenant, key))
                .arg(id.to_string())
                .arg("NX")
                .arg("GET")
                .arg("EX")
                .arg(self.inner.idempotency_ttl.as_secs().max(1));
        }
        let previous: Vec<Option<String>> = self
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await?;
        Ok(previous
            .into_iter()
            .map(|p| p.and_then(|id| Uuid::try_parse(&id).ok()))
            .collect())
    }

    /// Records which event holds each key (after PostgreSQL said so), overwriting claims.
    pub async fn remember_idempotency_keys(
        &self,
        tenant: &str,
        holders: &[(&str, Uuid)],
    ) -> Result<(), CacheError> {
        if holders.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, id) in holders {
            pipe.cmd("SET")
                .arg(self.idempotency_key(tenant, key))
                .arg(id.to_string())
                .arg("EX")
                .arg(self.inner.idempotency_ttl.as_secs().max(1))
                .ignore();
        }
        self.run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Gives up claims whose events were never published, so a retry is not told DUPLICATE.
    pub async fn release_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[&str],
    ) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = keys
            .iter()
            .map(|k| self.idempotency_key(tenant, k))
            .collect();
        self.run(|mut conn| async move {
            redis::cmd("DEL")
                .arg(&names)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// Takes `cost` units from the GCRA bucket `bucket` (`interval` apart sustained, `burst` at
    /// once; `cost` must not exceed `burst`). Returns `None` if it may go ahead, or how long to
    /// wait.
    pub async fn take_rate_tokens(
        &self,
        bucket: &str,
        interval: Duration,
        burst: u32,
        cost: u32,
    ) -> Result<Option<Duration>, CacheError> {
        let key = format!("{}:rl:{bucket}", self.inner.prefix);
        let interval_us = u64::try_from(interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let wait_us: i64 = self
            .run(|mut conn| async move {
                GCRA.key(key)
                    .arg(interval_us)
                    .arg(burst.max(1))
                    .arg(cost.max(1))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(u64::try_from(wait_us).ok().map(Duration::from_micros))
    }

    fn event_key(&self, tenant: &str, id: &Uuid) -> String {
        // The id has a fixed length, so the key is unambiguous whatever the tenant holds.
        format!("{}:ev:{}:{}", self.inner.prefix, tenant, id.simple())
    }

    fn idempotency_key(&self, tenant: &str, key: &str) -> String {
        // Length-prefixed so tenant "a:b" with key "c" never collides with tenant "a", key "b:c".
        format!(
            "{}:idem:{}:{}:{}",
            self.inner.prefix,
            tenant.len(),
            tenant,
            key
        )
    }
}
