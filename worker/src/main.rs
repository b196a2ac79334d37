//! `traceledger-worker`: the worker on its own, to scale consumers apart from the API, with the
//! search indexer beside it when Elasticsearch is configured.
//! The pipeline itself lives in the traceledger library, which `traceledger serve` also embeds.

use anyhow::Context;
use clap::Parser;

use traceledger::config::WorkerConfig;
use traceledger::{startup, telemetry};

/// mimalloc, as `traceledger` uses: the worker decodes, copies and frees every event of every
/// batch across threads, which glibc's malloc serves slowly and with fragmentation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "traceledger-worker", version, about = "The traceledger worker")]
struct Cli {
    #[command(flatten)]
    config: WorkerConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Cli::parse().config;
    telemetry::init(config.log);
    startup::run_worker(config)
        .await
        .context("running the worker")
}
