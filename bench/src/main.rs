//! traceledger-bench: measures this machine's raw limits (PostgreSQL inserts, RabbitMQ confirmed
//! publishes and consumes) and the service on top of them (ingest, reads, live subscriptions) in
//! one run, prints one table and appends it to BENCHMARKS.md.

mod api;
mod cpu;
mod durable;
mod elastic;
mod export;
mod harness;
mod ingest;
mod latency;
mod ledger;
mod live;
mod raw;
mod reads;
mod report;
mod sizes;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use harness::BenchEnv;
use report::Report;
use sizes::Sizes;

/// The allocator `traceledger serve` uses, so the API child measured here is the one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Benchmarks traceledger against this machine's raw limits")]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Every scenario at a size small enough for CI: checks it completes and the counts match.
    /// Prints the table but appends nothing to the report file.
    #[arg(long, global = true)]
    quick: bool,

    /// Where the results are appended.
    #[arg(long, global = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md"))]
    report: PathBuf,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// PostgreSQL multi-row INSERT, confirmed publishes, consume-and-ack.
    Raw,
    /// recordEvents and recordEvent, until every event is committed.
    Ingest,
    /// auditEvents and auditEvent at many stored events; the ledger's proofs, export with
    /// proofs and verification over them.
    Reads,
    /// Websocket subscribers, live and durable: delivery latency and the API's memory; a
    /// durable feed's replay of history.
    Live,
    /// Every scenario, with the ratios between them.
    All,
    /// The API with its worker, started by the benchmark as a child process (not for people).
    #[command(hide = true)]
    Api,
}

impl Command {
    fn includes(self, scenario: Command) -> bool {
        self == scenario || self == Command::All
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.command == Command::Api {
        return api::serve_child().await;
    }
    let sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let env = BenchEnv::create().await?;
    // Clean up whatever happened, then report the scenario's own error if any.
    let outcome = run(cli.command, &sizes, &env).await;
    env.cleanup().await;
    let report = outcome?;
    let table = report.render(&sizes);
    println!("{table}");
    if !cli.quick {
        report::append(&cli.report, &table)
            .with_context(|| format!("appending to {}", cli.report.display()))?;
        println!("Appended to {}", cli.report.display());
    }
    Ok(())
}

async fn run(command: Command, sizes: &Sizes, env: &BenchEnv) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if command.includes(Command::Raw) {
        report.raw = Some(raw::run(env, sizes).await.context("raw limits")?);
    }
    if command.includes(Command::Ingest) || command.includes(Command::Reads) {
        let api = api::ApiProcess::spawn(env)
            .await
            .context("starting the API")?;
        let result = async {
            if command.includes(Command::Ingest) {
                report.ingest = ingest::run(env, &api, sizes).await.context("ingest")?;
            }
            if command.includes(Command::Reads) {
                let (reads, ids) = reads::run(env, &api, sizes).await.context("reads")?;
                report.reads = reads;
                report.export = Some(export::run(env, &api, sizes).await.context("export")?);
                report.ledger = Some(
                    ledger::run(env, &api, sizes, &ids)
                        .await
                        .context("ledger")?,
                );
            }
            anyhow::Ok(())
        }
        .await;
        report.heavy_rss_mib = api.resident_mib().ok();
        api.stop().await;
        result?;
    }
    if command.includes(Command::Live) {
        // A freshly started API: its memory is what serving the subscribers takes, not what
        // the heaps of the ingest and reads scenarios before it left behind (reported apart).
        let api = api::ApiProcess::spawn(env)
            .await
            .context("starting the API")?;
        let result = live::run(env, &api, sizes).await.context("live");
        api.stop().await;
        report.live = Some(result?);
        // Another fresh API for the durable subscribers, for the same reason.
        let api = api::ApiProcess::spawn(env)
            .await
            .context("starting the API")?;
        let result = durable::run(env, &api, sizes).await.context("durable");
        api.stop().await;
        report.durable = Some(result?);
    }
    Ok(report)
}
