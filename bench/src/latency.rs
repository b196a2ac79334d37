//! Latency percentiles: an HDR histogram of microseconds, read out in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Three significant digits: 0.1 % resolution at any magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;
/// Microseconds; anything slower than a minute is recorded as a minute.
const LOWEST_MICROS: u64 = 1;
const HIGHEST_MICROS: u64 = 60_000_000;

#[derive(Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(
                LOWEST_MICROS,
                HIGHEST_MICROS,
                SIGNIFICANT_DIGITS,
            )
            .expect("constant bounds are valid"),
        }
    }
}

impl Latency {
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot run out of range.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.50)
    }

    pub fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }
}
