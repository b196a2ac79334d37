//! A circuit breaker for a remote backend: after `threshold` consecutive failures it opens and
//! callers skip the backend (no per-request timeout to pay); after `cool_down` one call probes it
//! (half-open), and its outcome closes or re-opens the breaker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            state: Mutex::default(),
        }
    }

    /// Whether a call may go to the backend now. Once the cool-down is over, only one caller at a
    /// time gets through (the probe) until it reports back.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    pub fn success(&self) {
        *self.lock() = State::default();
    }

    pub fn failure(&self) {
        self.failure_at(Instant::now());
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match state.open_until {
            None => true,
            Some(until) if now < until || state.probing => false,
            Some(_) => {
                state.probing = true;
                true
            }
        }
    }

    fn failure_at(&self, now: Instant) {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        state.probing = false;
        if state.failures >= self.threshold {
            state.open_until = Some(now + self.cool_down);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_consecutive_failures_and_probes_once_after_the_cool_down() {
        let breaker = Breaker::new(3, COOL_DOWN);
        let t0 = Instant::now();
        breaker.failure_at(t0);
        breaker.failure_at(t0);
        assert!(breaker.allow_at(t0), "two failures do not open it");
        breaker.failure_at(t0);
        assert!(!breaker.allow_at(t0 + COOL_DOWN / 2), "open");
        let later = t0 + COOL_DOWN;
        assert!(breaker.allow_at(later), "the probe goes through");
        assert!(!breaker.allow_at(later), "only one probe at a time");
        breaker.failure_at(later);
        assert!(!breaker.allow_at(later + COOL_DOWN / 2), "re-opened");
        assert!(breaker.allow_at(later + COOL_DOWN));
        breaker.success();
        assert!(breaker.allow_at(later + COOL_DOWN));
        assert!(breaker.allow_at(later + COOL_DOWN), "closed again");
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, COOL_DOWN);
        let t0 = Instant::now();
        breaker.failure_at(t0);
        breaker.success();
        breaker.failure_at(t0);
        assert!(breaker.allow_at(t0));
    }
}
