//! The machine's raw limits, without traceledger in the way: multi-row INSERTs into a table shaped
//! like `audit_events` (same columns, constraints and indexes), persistent messages published to
//! a durable fanout exchange with publisher confirms, and consume-and-ack.

use std::time::Instant;

use anyhow::{bail, ensure};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::harness::{progress, BenchEnv};
use crate::sizes::Sizes;

/// The audit-shaped message.
const MESSAGE_BYTES: usize = 500;
const INSERT_BATCH_ROWS: usize = 1000;
/// AMQP delivery mode 2: written to disk.
const PERSISTENT: u8 = 2;
/// Unacknowledged messages the raw consumer takes at a time (the worker's default prefetch).
const CONSUME_PREFETCH: u16 = 1000;

pub struct RawLimits {
    pub insert_rows_per_s: f64,
    pub publish_confirm_1000_per_s: f64,
    pub publish_confirm_100_per_s: f64,
    pub publish_confirm_each_per_s: f64,
    pub consume_ack_per_s: f64,
}

pub async fn run(env: &BenchEnv, sizes: &Sizes) -> anyhow::Result<RawLimits> {
    let insert_rows_per_s = insert_rows(env, sizes.raw_rows).await?;
    let connection = traceledger::bus::connect(&env.config.broker.url, "bench-raw").await?;
    let channel = connection.create_channel().await?;
    // The same durable fanout exchange and bound durable queue our topology declares.
    env.raw_topology().declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let publish_confirm_1000_per_s =
        publish(env, &channel, sizes.raw_messages_confirm_1000, 1000).await?;
    let publish_confirm_100_per_s =
        publish(env, &channel, sizes.raw_messages_confirm_100, 100).await?;
    let publish_confirm_each_per_s =
        publish(env, &channel, sizes.raw_messages_confirm_each, 1).await?;
    let published = sizes.raw_messages_confirm_1000
        + sizes.raw_messages_confirm_100
        + sizes.raw_messages_confirm_each;
    let consume_ack_per_s = consume_and_ack(env, &connection, published).await?;
    // Everything is measured: a close that races a channel still closing is no failure of the run.
    let _ = channel
        .close(traceledger::bus::CLOSE_NORMAL, "done".into())
        .await;
    let _ = connection
        .close(traceledger::bus::CLOSE_NORMAL, "done".into())
        .await;
    Ok(RawLimits {
        insert_rows_per_s,
        publish_confirm_1000_per_s,
        publish_confirm_100_per_s,
        publish_confirm_each_per_s,
        consume_ack_per_s,
    })
}

/// Rows/s of 1000-row INSERT … VALUES statements on one connection, each its own transaction.
async fn insert_rows(env: &BenchEnv, rows: usize) -> anyhow::Result<f64> {
    let pool = env.store.pool();
    sqlx::query("CREATE TABLE raw_audit_events (LIKE audit_events INCLUDING ALL)")
        .execute(pool)
        .await?;
    let message = "x".repeat(MESSAGE_BYTES / 2);
    let bar = progress("raw INSERT rows", rows);
    let started = Instant::now();
    let mut done = 0;
    while done < rows {
        let n = INSERT_BATCH_ROWS.min(rows - done);
        let now = chrono::Utc::now();
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO raw_audit_events (id, tenant, occurred_at, received_at, action, outcome, \
             severity, service, actor_id, actor_type, actor_ip, target_id, target_type, message, \
             request_id, ledger_index) ",
        );
        q.push_values(done..done + n, |mut row, i| {
            row.push_bind(Uuid::now_v7())
                .push_bind("raw")
                .push_bind(now)
                .push_bind(now)
                .push_bind("invoice.update")
                .push_bind("SUCCESS")
                .push_bind(1_i16)
                .push_bind("billing")
                .push_bind(format!("user-{}", i % 1000))
                .push_bind("user")
                .push_bind("203.0.113.7")
                .push_bind(format!("invoice-{i}"))
                .push_bind("invoice")
                .push_bind(&message)
                .push_bind(format!("req-{i}"))
                .push_bind(i64::try_from(i).unwrap_or(i64::MAX));
        });
        q.build().execute(pool).await?;
        done += n;
        bar.set_position(done as u64);
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_audit_events")
        .fetch_one(pool)
        .await?;
    ensure!(
        stored as usize == rows,
        "{stored} raw rows stored, {rows} inserted"
    );
    Ok(rate)
}

/// Messages/s published persistent on one channel, awaiting the confirms every `window` messages.
async fn publish(
    env: &BenchEnv,
    channel: &Channel,
    count: usize,
    window: usize,
) -> anyhow::Result<f64> {
    let payload = vec![b'x'; MESSAGE_BYTES];
    let bar = progress(&format!("raw publish, confirm {window}"), count);
    let started = Instant::now();
    let mut pending = Vec::with_capacity(window);
    for sent in 1..=count {
        let confirm = channel
            .basic_publish(
                env.raw_topology().exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default().with_delivery_mode(PERSISTENT),
            )
            .await?;
        pending.push(confirm);
        if pending.len() == window || sent == count {
            for confirm in pending.drain(..) {
                if !matches!(confirm.await?, Confirmation::Ack(_)) {
                    bail!("the broker did not confirm a raw message");
                }
            }
            bar.set_position(sent as u64);
        }
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(rate)
}

/// Messages/s consumed from the raw queue and acknowledged one by one.
async fn consume_and_ack(
    env: &BenchEnv,
    connection: &lapin::Connection,
    expected: usize,
) -> anyhow::Result<f64> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(CONSUME_PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            env.raw_topology().worker_queue.as_str().into(),
            "bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let bar = progress("raw consume-and-ack", expected);
    let started = Instant::now();
    let mut received = 0;
    while received < expected {
        let Some(delivery) = consumer.next().await else {
            bail!("the raw consumer stopped after {received} of {expected} messages");
        };
        delivery?.acker.ack(BasicAckOptions::default()).await?;
        received += 1;
        if received.is_multiple_of(1000) {
            bar.set_position(received as u64);
        }
    }
    let rate = expected as f64 / started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Closed here, not by its drop: the connection's close must not find it half closed.
    let _ = channel
        .close(traceledger::bus::CLOSE_NORMAL, "done".into())
        .await;
    Ok(rate)
}
