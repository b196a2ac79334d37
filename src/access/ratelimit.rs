//! Abuse protection per caller: request rates (GCRA in Redis, shared by every instance, with an
//! in-process limiter taking over while Redis is down), and caps on the websocket connections
//! and subscriptions one caller holds open on this instance.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use crate::access::auth::{Credential, Principal};
use crate::cache::Cache;

/// In-process limiters kept at most before the map starts afresh (a restart of the counts is
/// the worst that happens).
const MAX_LOCAL_BUCKETS: usize = 10_000;

/// Which budget a request draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Mutations, by the events they record (one for a mutation that records none).
    Write,
    /// Queries, subscriptions (per connection), exports: one each.
    Read,
}

/// Why a request may not go ahead now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// Over the caller's rate: it may go ahead after this long.
    Wait(Duration),
    /// It costs more than the caller may spend at once (its burst, one second's worth): it can
    /// never go ahead as it is, only in smaller parts.
    TooLarge { cost: u32, burst: u32 },
}

impl RequestKind {
    fn as_str(self) -> &'static str {
        match self {
            RequestKind::Write => "w",
            RequestKind::Read => "r",
        }
    }
}

/// What one caller may use: rates of events and requests, and what it may hold open at once.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Limits per key")]
pub struct LimitSettings {
    /// Events one key may record per second, sustained (a mutation that records none counts
    /// one); a key's own limit overrides it. The burst is one second's worth.
    #[arg(
        value_name = "WRITE_RATE_PER_SEC",
        id = "write-rate-per-sec",
        long = "write-rate-per-sec",
        env = "TRACELEDGER_WRITE_RATE_PER_SEC",
        default_value_t = 10_000
    )]
    pub write_rate_per_sec: u32,

    /// Reads (queries, exports, websocket connections) one key may make per second, sustained.
    #[arg(
        value_name = "READ_RATE_PER_SEC",
        id = "read-rate-per-sec",
        long = "read-rate-per-sec",
        env = "TRACELEDGER_READ_RATE_PER_SEC",
        default_value_t = 500
    )]
    pub read_rate_per_sec: u32,

    /// Websocket connections one key may hold open at once on one instance.
    #[arg(
        value_name = "MAX_SOCKETS_PER_KEY",
        id = "max-sockets-per-key",
        long = "max-sockets-per-key",
        env = "TRACELEDGER_MAX_SOCKETS_PER_KEY",
        default_value_t = 20
    )]
    pub max_sockets_per_key: u32,

    /// Live subscriptions one key may hold open at once on one instance.
    #[arg(
        value_name = "MAX_SUBSCRIPTIONS_PER_KEY",
        id = "max-subscriptions-per-key",
        long = "max-subscriptions-per-key",
        env = "TRACELEDGER_MAX_SUBSCRIPTIONS_PER_KEY",
        default_value_t = 50
    )]
    pub max_subscriptions_per_key: u32,

    /// Exports one key may run at once on one instance.
    #[arg(
        value_name = "MAX_EXPORTS_PER_KEY",
        id = "max-exports-per-key",
        long = "max-exports-per-key",
        env = "TRACELEDGER_MAX_EXPORTS_PER_KEY",
        default_value_t = 2
    )]
    pub max_exports_per_key: u32,
}

impl LimitSettings {
    pub fn default_rates(&self) -> DefaultRates {
        DefaultRates {
            write_per_sec: self.write_rate_per_sec,
            read_per_sec: self.read_rate_per_sec,
        }
    }
}

/// The deployment's default rates, in requests per second (the burst allowed is one second's).
/// The default value (zero) is for processes that never rate anyone: the operator's commands.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRates {
    pub write_per_sec: u32,
    pub read_per_sec: u32,
}

pub struct RateLimiter {
    cache: Cache,
    defaults: DefaultRates,
    /// By bucket (kind and caller) and rate: a changed override starts a fresh limiter.
    local: Mutex<HashMap<(String, u32), Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimiter {
    pub fn new(cache: Cache, defaults: DefaultRates) -> Self {
        Self {
            cache,
            defaults,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` units of `kind` (1 for a read; the events recorded, for a write) from the
    /// caller's budget: `Ok` to go ahead, or why not.
    pub async fn check(
        &self,
        principal: &Principal,
        kind: RequestKind,
        cost: u32,
    ) -> Result<(), Limited> {
        let rate = match kind {
            RequestKind::Write => principal.rates.write_per_sec,
            RequestKind::Read => principal.rates.read_per_sec,
        }
        .unwrap_or(match kind {
            RequestKind::Write => self.defaults.write_per_sec,
            RequestKind::Read => self.defaults.read_per_sec,
        })
        .max(1);
        let cost = cost.max(1);
        // The burst is one second's worth.
        if cost > rate {
            return Err(Limited::TooLarge { cost, burst: rate });
        }
        let bucket = format!("{}:{}", kind.as_str(), caller_id(principal));
        let interval = Duration::from_secs(1) / rate;
        match self
            .cache
            .take_rate_tokens(&bucket, interval, rate, cost)
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(Limited::Wait(wait)),
            Err(e) => {
                tracing::debug!(error = %e, "rate limits fall back to this instance");
                self.check_locally(bucket, rate, cost)
            }
        }
    }

    fn check_locally(&self, bucket: String, rate: u32, cost: u32) -> Result<(), Limited> {
        let limiter = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if local.len() >= MAX_LOCAL_BUCKETS {
                local.clear();
            }
            let per_sec = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
            Arc::clone(local.entry((bucket, rate)).or_insert_with(|| {
                Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(per_sec)))
            }))
        };
        let Some(units) = NonZeroU32::new(cost) else {
            return Ok(());
        };
        match limiter.check_n(units) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited::Wait(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(Limited::TooLarge { cost, burst: rate }),
        }
    }
}

/// A wait as `Retry-After` counts it: whole seconds, rounded up, never 0.
pub fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// One caller's identity for limits: its tenant and key id or token subject, unambiguous
/// whatever either holds.
fn caller_id(principal: &Principal) -> String {
    let (kind, id) = match &principal.credential {
        Credential::ApiKey(id) => ("k", id.to_string()),
        Credential::Token { subject } => ("t", subject.clone()),
        // All of a group's viewer tokens share one budget: minting more buys its holders none.
        Credential::Viewer { group, .. } => ("g", group.clone()),
    };
    format!(
        "{}:{}:{kind}:{id}",
        principal.tenant.len(),
        principal.tenant
    )
}

/// Caps how many of something (websocket connections, subscriptions) each caller holds at once.
#[derive(Clone)]
pub struct ConcurrencyCap {
    max: u32,
    held: Arc<Mutex<HashMap<String, u32>>>,
}

/// One held slot; released when dropped.
pub struct Slot {
    caller: String,
    held: Arc<Mutex<HashMap<String, u32>>>,
}

impl ConcurrencyCap {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for the caller, or `None` if it already holds the maximum.
    pub fn acquire(&self, principal: &Principal) -> Option<Slot> {
        let caller = caller_id(principal);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(caller.clone()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            caller,
            held: Arc::clone(&self.held),
        })
    }

    pub fn max(&self) -> u32 {
        self.max
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::auth::RateOverrides;

    fn caller(tenant: &str, subject: &str) -> Principal {
        Principal {
            tenant: crate::domain::Tenant::stored(tenant),
            credential: Credential::Token {
                subject: subject.into(),
            },
            scopes: vec![],
            rates: RateOverrides::default(),
            expires_at: None,
            view: None,
        }
    }

    #[test]
    fn a_cap_counts_per_caller_and_frees_dropped_slots() {
        let cap = ConcurrencyCap::new(2);
        let alice = caller("acme", "alice");
        let first = cap.acquire(&alice).unwrap();
        let _second = cap.acquire(&alice).unwrap();
        assert!(cap.acquire(&alice).is_none());
        assert!(cap.acquire(&caller("acme", "bob")).is_some());
        drop(first);
        assert!(cap.acquire(&alice).is_some());
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(5)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn caller_ids_are_unambiguous() {
        assert_ne!(
            caller_id(&caller("a:1", "b")),
            caller_id(&caller("a", "1:b"))
        );
    }
}
