//! How much each scenario does: the full run, and the quick one CI runs.

use std::time::Duration;

pub struct Sizes {
    pub quick: bool,
    /// Rows inserted in 1000-row statements.
    pub raw_rows: usize,
    /// Messages published with a confirm awaited every 1000, every 100, and for each one.
    pub raw_messages_confirm_1000: usize,
    pub raw_messages_confirm_100: usize,
    pub raw_messages_confirm_each: usize,
    /// Events sent through `recordEvents` per batch size, by this many concurrent clients.
    pub batch_events: usize,
    pub batch_clients: usize,
    /// Events sent as single `recordEvent` calls per concurrency level.
    pub single_events: usize,
    pub single_events_serial: usize,
    /// Events stored before the reads are measured.
    pub stored_events: usize,
    /// Requests per read scenario, by this many concurrent clients.
    pub read_requests: usize,
    pub read_clients: usize,
    /// The same for `search` and `eventStats`, which read far more rows per request.
    pub heavy_read_requests: usize,
    pub heavy_read_clients: usize,
    pub subscribers: usize,
    /// Events recorded while the subscribers listen, one every `live_interval`.
    pub live_events: usize,
    pub live_interval: Duration,
    /// Durable subscribers: tenants, subscribers of each, events recorded across the tenants
    /// at `durable_rate` a second; then stored events one client replays from the beginning.
    pub durable_tenants: usize,
    pub durable_per_tenant: usize,
    pub durable_events: usize,
    pub durable_rate: f64,
    pub replay_events: usize,
    /// How long the worker may take to commit what was accepted before the run fails.
    pub commit_deadline: Duration,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            quick: false,
            raw_rows: 200_000,
            raw_messages_confirm_1000: 50_000,
            raw_messages_confirm_100: 50_000,
            raw_messages_confirm_each: 5_000,
            batch_events: 100_000,
            batch_clients: 4,
            single_events: 20_000,
            single_events_serial: 2_000,
            stored_events: 1_000_000,
            read_requests: 2_000,
            read_clients: 16,
            heavy_read_requests: 40,
            heavy_read_clients: 2,
            subscribers: 1_000,
            live_events: 100,
            live_interval: Duration::from_millis(20),
            durable_tenants: 100,
            durable_per_tenant: 100,
            durable_events: 10_000,
            durable_rate: 1_000.0,
            replay_events: 200_000,
            commit_deadline: Duration::from_secs(180),
        }
    }

    pub fn quick() -> Self {
        Self {
            quick: true,
            raw_rows: 2_000,
            raw_messages_confirm_1000: 2_000,
            raw_messages_confirm_100: 500,
            raw_messages_confirm_each: 50,
            batch_events: 2_000,
            batch_clients: 2,
            single_events: 256,
            single_events_serial: 20,
            stored_events: 5_000,
            read_requests: 40,
            read_clients: 4,
            heavy_read_requests: 6,
            heavy_read_clients: 2,
            subscribers: 20,
            live_events: 5,
            live_interval: Duration::from_millis(20),
            durable_tenants: 3,
            durable_per_tenant: 4,
            durable_events: 300,
            durable_rate: 300.0,
            replay_events: 2_000,
            commit_deadline: Duration::from_secs(30),
        }
    }
}
