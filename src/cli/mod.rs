//! The `traceledger` command line: what each command takes, and which use case it calls. Each
//! command takes only the settings it uses (its own options first), so `--help` stays short.

mod operator;
mod service;
mod verify;

use clap::{Args, Parser, Subcommand};

use traceledger::access::auth::Scope;
use traceledger::bus::BrokerSettings;
use traceledger::config::{Config, WorkerConfig};
use traceledger::search::SearchSettings;
use traceledger::store::DatabaseSettings;
use traceledger::telemetry::{self, LogSettings};

#[derive(Parser)]
#[command(name = "traceledger", version, about = "An audit-log service")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and, unless --no-worker, the worker in the same process.
    Serve {
        /// Run only the API (scale the worker out with `traceledger-worker`).
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate {
        /// Also make this login role (created if missing) a member of `traceledger_runtime`,
        /// for the service to connect as: it may read and add events, never change them.
        #[arg(long, value_parser = parse_role)]
        runtime_role: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run only the worker (as `traceledger-worker` does).
    Worker {
        #[command(flatten)]
        config: WorkerConfig,
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
    /// Inspect and re-drive the dead-letter queue (replays and purges are recorded in tenant
    /// `_traceledger`).
    Dlq {
        /// Who asks, for the audit event of a replay or purge (default: the OS user).
        #[arg(long, global = true, env = "USER", default_value = "operator")]
        operator: String,
        #[command(subcommand)]
        command: DlqCommand,
        #[command(flatten)]
        broker: BrokerSettings,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Drop every monthly partition of events received before a date: the only way events leave
    /// the append-only store. A month straddling the date is kept whole. The drop is itself
    /// recorded in tenant `_traceledger`.
    Retention {
        /// RFC 3339 date-time or a date (midnight UTC), e.g. 2025-01-01.
        #[arg(long, value_parser = parse_cutoff)]
        before: chrono::DateTime<chrono::Utc>,
        /// Who asks, for the audit event (default: the OS user).
        #[arg(long, env = "USER", default_value = "operator")]
        operator: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Verify the ledger: an export made with `GET /export?proofs=true` (offline, no database),
    /// or, with --online, the stored events against their sealed leaves and every signed
    /// checkpoint. Names the index of each event changed, removed, inserted or reordered; exit
    /// status 0 only when everything holds.
    Verify {
        /// The export to check.
        #[arg(long, value_name = "FILE", required_unless_present = "online")]
        export: Option<std::path::PathBuf>,
        /// Walk the stored events instead (needs the database).
        #[arg(long, conflicts_with = "export")]
        online: bool,
        /// With --online: only this tenant (default: every tenant).
        #[arg(long, requires = "online")]
        tenant: Option<String>,
        /// A verifier key (`<name>+<id>+<base64>`, as `GET /ledger/key` serves it) that
        /// checkpoints may be signed with; repeat it for keys rotated out. Needed with
        /// --export; with --online the keys the service lists are taken when none is given.
        #[arg(long = "key", value_name = "VERIFIER_KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    Schema,
    /// Rebuild the Elasticsearch index from PostgreSQL (idempotent; safe while serving).
    Reindex {
        /// Only events that occurred on or after this date (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        #[command(flatten)]
        search: SearchSettings,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// What a command that only works on the database needs.
#[derive(Args)]
struct StoreArgs {
    #[command(flatten)]
    database: DatabaseSettings,
    #[command(flatten)]
    log: LogSettings,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant and print it (it is shown only this once).
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// What the key is for, to tell keys apart (e.g. "billing-service").
        #[arg(long)]
        name: String,
        /// What the key may do (repeatable): events:write, events:read, admin.
        /// Default: events:write and events:read.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (without their secrets), of every tenant or of one.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key: it stops working within the key cache's lifetime (KEY_CACHE_SECS).
    Revoke {
        /// The key's id, as `list` shows it.
        #[arg(long)]
        id: uuid::Uuid,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set or clear a key's own rate limits; omitted: the default.
    Limit {
        /// The key's id, as `list` shows it.
        #[arg(long)]
        id: uuid::Uuid,
        #[command(flatten)]
        rates: RateArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Set or clear the most a tenant's admins may give one key; omitted: the deployment's
    /// default rate.
    Limit {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        rates: RateArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
struct RateArgs {
    /// Events recorded per second.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    write_per_sec: Option<i32>,
    /// Requests (queries, exports, websocket connections) per second.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    read_per_sec: Option<i32>,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Show the oldest dead letters (they stay in the queue).
    List {
        /// How many to show.
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

/// Environment variables this version renamed, old name first: the old one still works.
const RENAMED_ENV: [(&str, &str); 1] = [(
    "TRACELEDGER_BREAKER_COOL_DOWN_MS",
    "TRACELEDGER_BREAKER_COOLDOWN_MS",
)];

/// Parses the command line and runs the command: the whole of `traceledger`. `renamed` are the
/// variables [`adopt_renamed_env`] carried over, to warn about.
pub async fn main(renamed: Vec<(&'static str, &'static str)>) -> std::process::ExitCode {
    let cli = Cli::parse();
    for (old, new) in renamed {
        // After parsing: logging is set up by the command.
        eprintln!("warning: {old} is deprecated; set {new} instead (its value was used)");
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes, never a backtrace: these are a user's errors to act
            // on (anyhow's Debug form would add one whenever RUST_BACKTRACE is set).
            eprintln!("error: {}", user_message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, no_worker } => service::serve(*config, !no_worker).await,
        Command::Migrate {
            runtime_role,
            store,
        } => {
            telemetry::init(store.log);
            service::migrate(&store.database, runtime_role.as_deref()).await
        }
        Command::Worker { config } => {
            telemetry::init(config.log);
            service::worker(config).await
        }
        Command::Keys { operator, command } => operator::keys(&operator, command).await,
        Command::Tenants { operator, command } => operator::tenants(&operator, command).await,
        Command::Dlq {
            operator,
            command,
            broker,
            store,
        } => {
            telemetry::init(store.log);
            operator::dlq(&operator, command, &broker, &store.database).await
        }
        Command::Retention {
            before,
            operator,
            store,
        } => {
            telemetry::init(store.log);
            operator::retention(&operator, before, &store.database).await
        }
        Command::Reindex {
            since,
            search,
            store,
        } => {
            telemetry::init(store.log);
            service::reindex(&search, &store.database, since).await
        }
        Command::Verify {
            export,
            online: _,
            tenant,
            keys,
            store,
        } => {
            telemetry::init(store.log);
            match export {
                Some(file) => verify::export(&file, keys).await,
                None => verify::online(&store.database, tenant, keys).await,
            }
        }
        Command::Schema => {
            print!("{}", traceledger::graphql::sdl());
            Ok(())
        }
    }
}

/// Gives each renamed variable the old one's value where only the old one is set; returns the
/// pairs it did this for. Call it before any thread starts (it changes the environment).
pub fn adopt_renamed_env() -> Vec<(&'static str, &'static str)> {
    let mut adopted = Vec::new();
    for (old, new) in RENAMED_ENV {
        if let (Some(value), None) = (std::env::var_os(old), std::env::var_os(new)) {
            std::env::set_var(new, value);
            adopted.push((old, new));
        }
    }
    adopted
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_command_is_well_formed() {
        // Option names and ids unique per command, defaults parse: clap checks on first use,
        // which would otherwise be a user's.
        Cli::command().debug_assert();
    }
}
