//! `traceledger-worker`: the worker on its own, to scale consumers apart from the API, with the
//! search indexer beside it when Elasticsearch is configured.
//! The pipeline itself lives in the traceledger library, which `traceledger serve` also embeds.

use anyhow::Context;
use clap::Parser;

use traceledger::config::Config;
use traceledger::search::indexer;
use traceledger::store::Store;
use traceledger::worker::{self, WorkerSettings};
use traceledger::{shutdown, telemetry};

#[derive(Parser)]
#[command(name = "traceledger-worker", version, about = "The traceledger worker")]
struct Cli {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Cli::parse().config;
    telemetry::init(config.log_format);
    let store = Store::connect(&config.database_url, config.database_max_connections)
        .await
        .context("connecting to PostgreSQL")?
        .with_search_backlog(config.elasticsearch_url.is_some());
    store.migrate().await.context("migrating")?;
    let shutdown = shutdown::on_signal();
    let indexer = indexer::spawn_from_config(&config, store.clone(), shutdown.clone())
        .context("starting the search indexer")?;
    worker::run(WorkerSettings::from_config(&config), store, shutdown).await;
    if let Some(indexer) = indexer {
        indexer.await.context("indexer task")?;
    }
    Ok(())
}
