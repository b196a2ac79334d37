//! Waiting between attempts at something that failed because a dependency is out of reach: the
//! delays double from a first one up to a ceiling (the sequence is `backon`'s), a success starts
//! them afresh, and every wait ends early on shutdown. The one way this service backs off.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Delays from `first`, doubling, up to `max`, for as long as it takes.
    pub fn new(first: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(max)
            .without_max_times();
        Self {
            builder,
            delays: builder.build(),
        }
    }

    /// The next wait starts from the first delay again (the dependency was back).
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }

    /// The next delay; the one after it is longer, up to the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        // Never empty: there is no limit on attempts.
        self.delays.next().unwrap_or(Duration::ZERO)
    }

    /// Waits the next delay; `false` if shutdown came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        sleep_unless_shutdown(self.next_delay(), shutdown).await
    }
}

/// Sleeps for `delay`; `false` if shutdown came first.
pub async fn sleep_unless_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_starts_afresh() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
