//! Logging (`tracing` to stderr, as text or JSON, filtered by `RUST_LOG`, default `info` less
//! PostgreSQL's notices) and the
//! process-wide Prometheus recorder behind `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How the process logs.
#[derive(clap::Args, Clone, Copy, Debug)]
#[command(next_help_heading = "Logging")]
pub struct LogSettings {
    /// Log format.
    #[arg(
        value_name = "FORMAT",
        id = "log-format",
        long = "log-format",
        env = "TRACELEDGER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// PostgreSQL's NOTICEs (sqlx logs them at INFO) are mostly "already exists, skipping" from
/// the idempotent migrations on every start: shown only from WARN up unless `RUST_LOG` says.
const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

pub fn init(settings: LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests start several apps in one process) keeps the first subscriber.
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The Prometheus recorder, installed on first use. One per process: several apps in one process
/// (tests) share it.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}
