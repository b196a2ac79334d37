//! The service's own commands: serve, worker, migrate, reindex.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpListener;

use traceledger::config::{Config, WorkerConfig};
use traceledger::search::{ElasticSearch, SearchSettings};
use traceledger::startup::{bootstrap_key, run_worker, App};
use traceledger::store::DatabaseSettings;
use traceledger::tasks::indexer;
use traceledger::tasks::sealer::KeySource;
use traceledger::{http, shutdown, telemetry};

use super::operator::migrated;

/// What `serve` says when keys exist already, so a newcomer knows how to get one.
const NEW_KEY_HINT: &str = "API keys exist already; mint one for yourself with:\n\n    \
     traceledger keys create --tenant default --name me --scope events:write --scope events:read\n\n\
     (or `cargo run -- keys create …` from a checkout)";

pub(super) async fn serve(config: Config, with_worker: bool) -> anyhow::Result<()> {
    telemetry::init(config.log);
    let listen = config.http.listen;
    // The port first: a busy one ends the start before anything is migrated, minted or connected.
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen}: choose another address with --listen or TRACELEDGER_LISTEN"
        )
    })?;
    let shutdown = shutdown::on_signal();
    let app = App::build(config, shutdown)
        .await
        .context("starting traceledger")?;
    match bootstrap_key(app.store()).await? {
        Some(key) => println!(
            "No API keys existed, so one was created for tenant \"default\":\n\n    {}\n",
            key.secret
        ),
        None => println!("{NEW_KEY_HINT}"),
    }
    let pipeline = match with_worker {
        true => Some(app.spawn_pipeline().await?),
        false => None,
    };
    if let Some(key) = pipeline.as_ref().map(|p| &p.key) {
        if let KeySource::Created(path) = &key.source {
            println!(
                "No ledger signing key existed, so one was created in {} (keep it secret and \
                 back it up). Checkpoints verify with:\n\n    {}\n",
                path.display(),
                key.verifier_key
            );
        }
    }
    let path = http::GRAPHQL_PATH;
    tracing::info!(
        "GraphQL and GraphiQL on http://{listen}{path}, subscriptions on ws://{listen}{path}"
    );
    tracing::info!("live dashboard on http://{listen}{}", http::DASHBOARD_PATH);
    tracing::info!(worker = with_worker, "health on http://{listen}/health");
    app.serve(listener).await?;
    if let Some(pipeline) = pipeline {
        pipeline.join().await;
    }
    Ok(())
}

pub(super) async fn worker(config: WorkerConfig) -> anyhow::Result<()> {
    run_worker(config).await.context("running the worker")
}

pub(super) async fn migrate(
    database: &DatabaseSettings,
    runtime_role: Option<&str>,
) -> anyhow::Result<()> {
    let store = migrated(database).await?;
    println!("database is up to date");
    if let Some(role) = runtime_role {
        store
            .grant_runtime_role(role)
            .await
            .with_context(|| format!("granting traceledger_runtime to {role}"))?;
        println!(
            "role {role} may run the service (member of traceledger_runtime); \
             connect it with TRACELEDGER_MIGRATE_ON_START=false"
        );
    }
    Ok(())
}

pub(super) async fn reindex(
    search: &SearchSettings,
    database: &DatabaseSettings,
    since: Option<chrono::NaiveDate>,
) -> anyhow::Result<()> {
    let elastic = ElasticSearch::connect(search)?
        .context("set TRACELEDGER_ELASTICSEARCH_URL (or --elasticsearch-url) to reindex")?;
    let store = migrated(database).await?;
    let since = since.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
    let total = store.count_events_since(since).await?;
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or_default()).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
            .context("progress bar template")?,
    );
    let sent = indexer::reindex(&store, &elastic, since, search.index_batch_size, |n| {
        bar.inc(n)
    })
    .await
    .context("reindexing")?;
    bar.finish();
    println!("indexed {sent} events");
    Ok(())
}
