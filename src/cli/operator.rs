//! The operator's commands: keys, tenant ceilings, dead letters and retention. Each translates
//! its options, calls the use case the GraphQL admin fields call too, and prints the answer.
//! The audit events of keys, tenants and dead letters are parked in the outbox (these commands
//! run without the broker), from where a running service records and indexes them like any
//! other event; retention's is written by the database function that drops the partitions.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use traceledger::access::ratelimit::DefaultRates;
use traceledger::app::{Actor, ApiError, DeadLetterQueue, KeyRequest, Keys, OwnTrail, Rates};
use traceledger::bus::{BrokerSettings, DeadLetters, Replay};
use traceledger::store::{DatabaseSettings, Store};
use traceledger::telemetry;

use super::{DlqCommand, KeysCommand, RateArgs, TenantsCommand};

pub(super) async fn keys(name: &str, command: KeysCommand) -> anyhow::Result<()> {
    let operator = Actor::Operator(name);
    match command {
        KeysCommand::Create {
            tenant,
            name,
            scopes,
            store,
        } => {
            telemetry::init(store.log);
            let request = KeyRequest {
                tenant: tenant.clone(),
                name,
                scopes: (!scopes.is_empty()).then_some(scopes),
                rates: Rates::default(),
            };
            let created = key_admin(&store.database)
                .await?
                .create(operator, request)
                .await
                .map_err(cli_error)?;
            println!("{}", created.secret);
            eprintln!(
                "key {} for tenant {tenant:?}: store it now, it is not shown again",
                created.key.id
            );
        }
        KeysCommand::List { tenant, store } => {
            telemetry::init(store.log);
            let keys = key_admin(&store.database).await?;
            for key in keys
                .list(tenant.as_deref(), true)
                .await
                .map_err(cli_error)?
            {
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
        }
        KeysCommand::Revoke { id, store } => {
            telemetry::init(store.log);
            let keys = key_admin(&store.database).await?;
            let key = keys.revoke(operator, id).await.map_err(cli_error)?;
            println!(
                "key {id} of tenant {:?} revoked; it stops working within the key cache's \
                 lifetime (TRACELEDGER_KEY_CACHE_SECS, 5 s unless set)",
                key.tenant
            );
        }
        KeysCommand::Limit { id, rates, store } => {
            telemetry::init(store.log);
            let rates = Rates::from(rates);
            key_admin(&store.database)
                .await?
                .limit(name, id, rates)
                .await
                .map_err(cli_error)?;
            println!("key {id}: {}", describe(rates));
        }
    }
    Ok(())
}

pub(super) async fn tenants(operator: &str, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Limit {
            tenant,
            rates,
            store,
        } => {
            telemetry::init(store.log);
            let rates = Rates::from(rates);
            key_admin(&store.database)
                .await?
                .limit_tenant(operator, &tenant, rates)
                .await
                .map_err(cli_error)?;
            println!("tenant {tenant}: keys may get {}", describe(rates));
        }
    }
    Ok(())
}

pub(super) async fn dlq(
    operator: &str,
    command: DlqCommand,
    broker: &BrokerSettings,
    database: &DatabaseSettings,
) -> anyhow::Result<()> {
    let queue = DeadLetters::new(&broker.url, broker.topology());
    if let DlqCommand::List { limit } = command {
        // Reading needs no audit event, so no database either.
        let letters = queue
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
        return Ok(());
    }
    let dead_letters = DeadLetterQueue::new(queue, OwnTrail::parked(migrated(database).await?));
    let operator = Actor::Operator(operator);
    match command {
        DlqCommand::List { .. } => {}
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
                .replay(operator, which, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await
                .map_err(cli_error)?;
            bar.finish_and_clear();
            println!("replayed {replayed} dead letters into the worker queue");
        }
        DlqCommand::Purge => {
            let purged = dead_letters.purge(operator).await.map_err(cli_error)?;
            println!("purged {purged} dead letters");
        }
    }
    Ok(())
}

pub(super) async fn retention(
    operator: &str,
    before: chrono::DateTime<chrono::Utc>,
    database: &DatabaseSettings,
) -> anyhow::Result<()> {
    let store = migrated(database).await?;
    let dropped = traceledger::app::retention::drop_before(&store, before, operator)
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

/// The key use cases for an operator: the deployment's default rates do not bind them.
async fn key_admin(database: &DatabaseSettings) -> anyhow::Result<Keys> {
    let store = migrated(database).await?;
    let trail = OwnTrail::parked(store.clone());
    Ok(Keys::new(store, trail, DefaultRates::default()))
}

/// A store whose migrations are applied, for commands that read or write it. No statement
/// timeouts: those guard a service's interactive requests, and an operator's retention run or
/// reindex count may rightly take long.
pub(super) async fn migrated(database: &DatabaseSettings) -> anyhow::Result<Store> {
    let database = DatabaseSettings {
        statement_timeout_ms: 0,
        stream_statement_timeout_ms: 0,
        ..database.clone()
    };
    let store = Store::connect(&database)
        .await
        .context("connecting to PostgreSQL")?;
    store.migrate().await.context("migrating")?;
    Ok(store)
}

/// A use case's refusal as the command line says it: bad input names the option.
fn cli_error(error: ApiError) -> anyhow::Error {
    match error {
        ApiError::BadInput { field, message } => anyhow::anyhow!("--{field} {message}"),
        other => other.into(),
    }
}

impl From<RateArgs> for Rates {
    fn from(args: RateArgs) -> Self {
        Rates {
            write_per_sec: args.write_per_sec,
            read_per_sec: args.read_per_sec,
        }
    }
}

fn describe(rates: Rates) -> String {
    let show = |rate: Option<i32>| rate.map_or("the default".to_owned(), |r| format!("{r}/s"));
    format!(
        "writes {}, reads {}",
        show(rates.write_per_sec),
        show(rates.read_per_sec)
    )
}
