//! The `traceledger` command: thin parsing, then library calls.

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpListener;

use traceledger::app::{bootstrap_key, App};
use traceledger::config::Config;
use traceledger::search::{indexer, ElasticSearch};
use traceledger::store::Store;
use traceledger::{auth, graphql, http, shutdown, telemetry};

#[derive(Parser)]
#[command(name = "traceledger", version, about = "An audit-log service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and, unless --no-worker, the worker in the same process.
    Serve {
        #[command(flatten)]
        config: Config,
        /// Run only the API (scale the worker out with `traceledger-worker`).
        #[arg(long)]
        no_worker: bool,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate {
        #[command(flatten)]
        config: Config,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    Schema,
    /// Rebuild the Elasticsearch index from PostgreSQL (idempotent; safe while serving).
    Reindex {
        #[command(flatten)]
        config: Config,
        /// Only events that occurred on or after this date (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant and print it (it is shown only this once).
    Create {
        #[command(flatten)]
        config: Config,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { config, no_worker } => serve(config, !no_worker).await,
        Command::Migrate { config } => {
            telemetry::init(config.log_format);
            let store = connect(&config).await?;
            store.migrate().await.context("migrating")?;
            println!("database is up to date");
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    config,
                    tenant,
                    name,
                },
        } => {
            telemetry::init(config.log_format);
            let store = connect(&config).await?;
            store.migrate().await.context("migrating")?;
            let key = auth::create_api_key(&store, &tenant, &name).await?;
            println!("{}", key.secret);
            eprintln!(
                "key {} for tenant {tenant:?}: store it now, it is not shown again",
                key.id
            );
            Ok(())
        }
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Reindex { config, since } => reindex(config, since).await,
    }
}

async fn serve(config: Config, with_worker: bool) -> anyhow::Result<()> {
    telemetry::init(config.log_format);
    let shutdown = shutdown::on_signal();
    let listen = config.listen;
    let app = App::build(config, shutdown)
        .await
        .context("starting traceledger")?;
    if let Some(key) = bootstrap_key(app.store()).await? {
        println!(
            "No API keys existed, so one was created for tenant \"default\":\n\n    {}\n",
            key.secret
        );
    }
    let worker = with_worker.then(|| app.spawn_worker());
    let indexer = if with_worker {
        app.spawn_indexer()?
    } else {
        None
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let path = http::GRAPHQL_PATH;
    tracing::info!(
        "GraphQL and playground on http://{listen}{path}, subscriptions on ws://{listen}{path}"
    );
    tracing::info!(worker = with_worker, "health on http://{listen}/health");
    app.serve(listener).await?;
    if let Some(worker) = worker {
        worker.await.context("worker task")?;
    }
    if let Some(indexer) = indexer {
        indexer.await.context("indexer task")?;
    }
    Ok(())
}

async fn reindex(config: Config, since: Option<chrono::NaiveDate>) -> anyhow::Result<()> {
    telemetry::init(config.log_format);
    let elastic = ElasticSearch::from_config(&config)?
        .context("set TRACELEDGER_ELASTICSEARCH_URL (or --elasticsearch-url) to reindex")?;
    let store = connect(&config).await?;
    store.migrate().await.context("migrating")?;
    let since = since.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
    let total = store.count_events_since(since).await?;
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or_default()).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
            .context("progress bar template")?,
    );
    let sent = indexer::reindex(&store, &elastic, since, config.index_batch_size, |n| {
        bar.inc(n)
    })
    .await
    .context("reindexing")?;
    bar.finish();
    println!("indexed {sent} events");
    Ok(())
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| "connecting to PostgreSQL")
}
