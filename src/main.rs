//! The `traceledger` command: thin parsing, then library calls.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::net::TcpListener;

use traceledger::app::{self, bootstrap_key, App};
use traceledger::auth::Scope;
use traceledger::bus::{DeadLetters, Replay, Topology};
use traceledger::config::Config;
use traceledger::domain::check_tenant;
use traceledger::search::{indexer, ElasticSearch};
use traceledger::self_audit::record_operator_action;
use traceledger::store::Store;
use traceledger::{auth, graphql, http, shutdown, telemetry};

/// mimalloc instead of the system allocator: serving a request allocates and frees many small
/// objects across threads, and glibc's malloc was a quarter of the API's CPU in a profile of
/// single-event ingest (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `serve` says when keys exist already, so a newcomer knows how to get one.
const NEW_KEY_HINT: &str = "API keys exist already; mint one for yourself with:\n\n    \
     traceledger keys create --tenant default --name me --scope events:write --scope events:read\n\n\
     (or `cargo run -- keys create …` from a checkout)";

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
        /// Also make this login role (created if missing) a member of `traceledger_runtime`,
        /// for the service to connect as: it may read and add events, never change them.
        #[arg(long, value_parser = parse_role)]
        runtime_role: Option<String>,
    },
    /// Run only the worker (as `traceledger-worker` does).
    Worker {
        #[command(flatten)]
        config: Config,
    },
    /// Manage API keys of any tenant (changes are recorded in tenant `_traceledger`).
    Keys {
        /// Who asks, for the audit event (default: the OS user).
        #[arg(long, global = true, env = "USER", default_value = "operator")]
        operator: String,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Set what a tenant's admins may give their keys (changes are recorded in tenant
    /// `_traceledger`).
    Tenants {
        /// Who asks, for the audit event (default: the OS user).
        #[arg(long, global = true, env = "USER", default_value = "operator")]
        operator: String,
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Inspect and re-drive the dead-letter queue.
    Dlq {
        #[command(flatten)]
        config: Config,
        /// Who asks, for the audit event of a replay or purge (default: the OS user).
        #[arg(long, global = true, env = "USER", default_value = "operator")]
        operator: String,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Drop every monthly partition of events received before a date: the only way events leave
    /// the append-only store. A month straddling the date is kept whole. The drop is itself
    /// recorded in tenant `_traceledger`.
    Retention {
        #[command(flatten)]
        config: Config,
        /// RFC 3339 date-time or a date (midnight UTC), e.g. 2025-01-01.
        #[arg(long, value_parser = parse_cutoff)]
        before: chrono::DateTime<chrono::Utc>,
        /// Who asks, for the audit event (default: the OS user).
        #[arg(long, env = "USER", default_value = "operator")]
        operator: String,
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
        /// What the key may do (repeatable): events:write, events:read, admin.
        /// Default: events:write and events:read.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// List keys (without their secrets), of every tenant or of one.
    List {
        #[command(flatten)]
        config: Config,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key: it stops working within the key cache's lifetime (seconds).
    Revoke {
        #[command(flatten)]
        config: Config,
        /// The key's id, as `list` shows it.
        #[arg(long)]
        id: uuid::Uuid,
    },
    /// Set or clear a key's own rate limits (requests per second); omitted: the default.
    Limit {
        #[command(flatten)]
        config: Config,
        #[arg(long)]
        id: uuid::Uuid,
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        write_per_sec: Option<i32>,
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        read_per_sec: Option<i32>,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Set or clear the most a tenant's admins may give one key, per second (events for
    /// writes, requests for reads); omitted: the deployment's default rate.
    Limit {
        #[command(flatten)]
        config: Config,
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        write_per_sec: Option<i32>,
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        read_per_sec: Option<i32>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Show the oldest dead letters (they stay in the queue).
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move dead letters back into the worker queue.
    Replay {
        /// The dead letter's id, as `list` shows it.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter in the queue now.
        #[arg(long)]
        all: bool,
    },
    /// Drop every dead letter.
    Purge,
}

fn parse_cutoff(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{value:?} is neither an RFC 3339 date-time nor a YYYY-MM-DD date"))
}

/// A role name that needs no quoting: lowercase letters, digits and `_`, not starting with a digit.
fn parse_role(name: &str) -> Result<String, String> {
    let plain = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(name.to_owned())
    } else {
        Err("use lowercase letters, digits and '_' (at most 63)".to_owned())
    }
}

fn parse_scope(name: &str) -> Result<Scope, String> {
    Scope::parse(name)
        .ok_or_else(|| format!("unknown scope {name:?}: events:write, events:read or admin"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes, never a backtrace: these are a user's errors to act
            // on (anyhow's Debug form would add one whenever RUST_BACKTRACE is set).
            eprintln!("error: {}", user_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes in one line, each said once: many of our errors already include
/// their cause's text, which the chain would otherwise repeat.
fn user_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, no_worker } => serve(config, !no_worker).await,
        Command::Migrate {
            config,
            runtime_role,
        } => {
            telemetry::init(config.log_format);
            let store = connect(&config).await?;
            store.migrate().await.context("migrating")?;
            println!("database is up to date");
            if let Some(role) = runtime_role {
                store
                    .grant_runtime_role(&role)
                    .await
                    .with_context(|| format!("granting traceledger_runtime to {role}"))?;
                println!(
                    "role {role} may run the service (member of traceledger_runtime); \
                     connect it with TRACELEDGER_MIGRATE_ON_START=false"
                );
            }
            Ok(())
        }
        Command::Worker { config } => {
            telemetry::init(config.log_format);
            app::run_worker(config).await.context("running the worker")
        }
        Command::Dlq {
            config,
            operator,
            command,
        } => {
            telemetry::init(config.log_format);
            dlq(&config, &operator, command).await
        }
        Command::Keys { operator, command } => keys(&operator, command).await,
        Command::Tenants { operator, command } => tenants(&operator, command).await,
        Command::Retention {
            config,
            before,
            operator,
        } => {
            telemetry::init(config.log_format);
            let store = migrated(&config).await?;
            let dropped = store
                .drop_partitions_before(before, &operator)
                .await
                .context("dropping old partitions")?;
            for partition in &dropped {
                println!("dropped {} ({} events)", partition.name, partition.rows);
            }
            let events: i64 = dropped.iter().map(|p| p.rows).sum();
            println!(
                "dropped {} partitions, {events} events received before {before}; \
                 events of the month straddling it are kept until a later run",
                dropped.len()
            );
            Ok(())
        }
        Command::Reindex { config, since } => reindex(config, since).await,
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
    }
}

async fn keys(operator: &str, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            config,
            tenant,
            name,
            scopes,
        } => {
            telemetry::init(config.log_format);
            check_tenant(&tenant)
                .map_err(|e| anyhow::anyhow!("--tenant {tenant:?} {}", e.message))?;
            let store = migrated(&config).await?;
            let scopes = if scopes.is_empty() {
                Scope::DEFAULT.to_vec()
            } else {
                scopes
            };
            let key = auth::create_scoped_api_key(&store, &tenant, &name, &scopes).await?;
            let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            record_operator_action(
                &store,
                operator,
                "api_key.create",
                Some(("api_key", &key.id.to_string())),
                format!("API key {name:?} created for tenant {tenant}"),
                json!({ "tenant": tenant, "name": name, "scopes": scope_names }),
            )
            .await?;
            println!("{}", key.secret);
            eprintln!(
                "key {} for tenant {tenant:?}: store it now, it is not shown again",
                key.id
            );
            Ok(())
        }
        KeysCommand::List { config, tenant } => {
            telemetry::init(config.log_format);
            let store = migrated(&config).await?;
            for key in store.list_api_keys(tenant.as_deref()).await? {
                let revoked = key
                    .revoked_at
                    .map(|t| format!("  revoked {}", t.to_rfc3339()))
                    .unwrap_or_default();
                println!(
                    "{}  {}  {:?}  {}…  {}  created {}{revoked}",
                    key.id,
                    key.tenant,
                    key.name,
                    key.prefix,
                    key.scopes.join(","),
                    key.created_at.to_rfc3339()
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { config, id } => {
            telemetry::init(config.log_format);
            let store = migrated(&config).await?;
            let key = store
                .revoke_api_key(id, None)
                .await?
                .with_context(|| format!("there is no key {id}"))?;
            record_operator_action(
                &store,
                operator,
                "api_key.revoke",
                Some(("api_key", &id.to_string())),
                format!("API key {id} of tenant {} revoked", key.tenant),
                json!({ "tenant": key.tenant, "name": key.name }),
            )
            .await?;
            println!(
                "key {id} of tenant {:?} revoked; it stops working within {} s",
                key.tenant, config.key_cache_secs
            );
            Ok(())
        }
        KeysCommand::Limit {
            config,
            id,
            write_per_sec,
            read_per_sec,
        } => {
            telemetry::init(config.log_format);
            let store = migrated(&config).await?;
            if !store
                .set_api_key_rates(id, write_per_sec, read_per_sec)
                .await?
            {
                anyhow::bail!("there is no key {id}");
            }
            record_operator_action(
                &store,
                operator,
                "api_key.limit",
                Some(("api_key", &id.to_string())),
                format!("rate limits of API key {id} set"),
                json!({ "writePerSec": write_per_sec, "readPerSec": read_per_sec }),
            )
            .await?;
            println!("key {id}: writes {write_per_sec:?}/s, reads {read_per_sec:?}/s (None: the default)");
            Ok(())
        }
    }
}

async fn tenants(operator: &str, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Limit {
            config,
            tenant,
            write_per_sec,
            read_per_sec,
        } => {
            telemetry::init(config.log_format);
            check_tenant(&tenant)
                .map_err(|e| anyhow::anyhow!("--tenant {tenant:?} {}", e.message))?;
            let store = migrated(&config).await?;
            store
                .set_tenant_rate_ceilings(&tenant, write_per_sec, read_per_sec)
                .await?;
            record_operator_action(
                &store,
                operator,
                "tenant.limit",
                Some(("tenant", &tenant)),
                format!("rate ceilings of tenant {tenant} set"),
                json!({ "writePerSec": write_per_sec, "readPerSec": read_per_sec }),
            )
            .await?;
            println!(
                "tenant {tenant}: keys may get writes {write_per_sec:?}/s, reads {read_per_sec:?}/s (None: the default)"
            );
            Ok(())
        }
    }
}

async fn serve(config: Config, with_worker: bool) -> anyhow::Result<()> {
    telemetry::init(config.log_format);
    let listen = config.listen;
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
    let worker = with_worker.then(|| app.spawn_worker());
    let indexer = if with_worker {
        app.spawn_indexer()?
    } else {
        None
    };
    let path = http::GRAPHQL_PATH;
    tracing::info!(
        "GraphQL and GraphiQL on http://{listen}{path}, subscriptions on ws://{listen}{path}"
    );
    tracing::info!("live dashboard on http://{listen}{}", http::DASHBOARD_PATH);
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

async fn dlq(config: &Config, operator: &str, command: DlqCommand) -> anyhow::Result<()> {
    let dead_letters = DeadLetters::new(&config.amqp_url, Topology::from_config(config));
    match command {
        DlqCommand::List { limit } => {
            let letters = dead_letters
                .list(limit)
                .await
                .context("reading the dead-letter queue")?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                let events = letter
                    .events
                    .map_or("undecodable".to_owned(), |n| format!("{n} events"));
                println!(
                    "{}  {} attempts  {events}  {} bytes",
                    letter.id, letter.attempts, letter.size_bytes
                );
                println!("    reason: {}", letter.reason);
                for line in letter.history {
                    println!("    {line}");
                }
            }
        }
        DlqCommand::Replay { id, all } => {
            let which = match id {
                Some(id) if !all => Replay::One(id),
                _ => Replay::All,
            };
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let replayed = dead_letters
                .replay(which, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await
                .context("replaying dead letters")?;
            bar.finish_and_clear();
            record_operator_action(
                &connect(config).await?,
                operator,
                "dead_letters.replay",
                None,
                format!("{replayed} dead letters replayed"),
                json!({ "replayed": replayed }),
            )
            .await?;
            println!("replayed {replayed} dead letters into the worker queue");
        }
        DlqCommand::Purge => {
            let purged = dead_letters
                .purge()
                .await
                .context("purging the dead-letter queue")?;
            record_operator_action(
                &connect(config).await?,
                operator,
                "dead_letters.purge",
                None,
                format!("{purged} dead letters purged"),
                json!({ "purged": purged }),
            )
            .await?;
            println!("purged {purged} dead letters");
        }
    }
    Ok(())
}

/// A store whose migrations are applied, for commands that read or write it.
async fn migrated(config: &Config) -> anyhow::Result<Store> {
    let store = connect(config).await?;
    store.migrate().await.context("migrating")?;
    Ok(store)
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| "connecting to PostgreSQL")
}
