//! A small circuit breaker: after repeated failures a dependency is skipped for a cool-down, so a
//! dead Redis, broker or search cluster costs callers nothing instead of a timeout each; then one
//! probe call is let through to see whether it is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a breaker reports (for `/ready` and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; another is allowed only if it has not reported after a cool-down.
    HalfOpen {
        since: Instant,
    },
}

/// When a dependency (Redis, the broker) counts as down and how long it is then skipped.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Failing dependencies")]
pub struct BreakerSettings {
    /// Consecutive failures after which a dependency (Redis, the broker) is skipped for a while.
    #[arg(
        value_name = "THRESHOLD",
        id = "breaker-threshold",
        long = "breaker-threshold",
        env = "TRACELEDGER_BREAKER_THRESHOLD",
        default_value_t = 3
    )]
    pub threshold: u32,

    /// How long a tripped dependency is skipped before one call probes it again.
    #[arg(
        value_name = "COOLDOWN_MS",
        id = "breaker-cooldown-ms",
        long = "breaker-cooldown-ms",
        alias = "breaker-cool-down-ms",
        env = "TRACELEDGER_BREAKER_COOLDOWN_MS",
        default_value_t = 2000
    )]
    pub cooldown_ms: u64,
}

impl BreakerSettings {
    /// A new breaker with these settings (each dependency gets its own).
    pub fn breaker(&self) -> Breaker {
        Breaker::new(self.threshold, Duration::from_millis(self.cooldown_ms))
    }
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go ahead now.
    pub fn allow(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if now < until => false,
            State::HalfOpen { since } if now < since + self.cooldown => false,
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                true
            }
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        let mut state = self.lock();
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            State::Open { .. } | State::HalfOpen { .. } => self.threshold,
        };
        *state = if failures >= self.threshold {
            State::Open {
                until: Instant::now() + self.cooldown,
            }
        } else {
            State::Closed { failures }
        };
    }

    /// Reports the outcome of a call made after `allow()`.
    pub fn record<T, E>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.record_success(),
            Err(_) => self.record_failure(),
        }
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cooldown() {
        let breaker = Breaker::new(2, Duration::from_millis(30));
        assert!(breaker.allow());
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "one probe after the cool-down");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.record_failure();
        assert!(!breaker.allow(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow());
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow() && breaker.allow());
    }
}
