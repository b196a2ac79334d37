//! The one table a run prints (Markdown, so the same text goes into BENCHMARKS.md), with the
//! date, commit and machine it was measured on, and each of the targets: met or not.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use traceledger::config::Config;

use crate::durable::DurableResult;
use crate::export::ExportResult;
use crate::ingest::{IngestResult, Shape};
use crate::ledger::LedgerResult;
use crate::live::LiveResult;
use crate::raw::RawLimits;
use crate::reads::{self, ReadResult};
use crate::sizes::Sizes;

/// The targets.
const BATCH_VS_CONFIRM_EACH: f64 = 3.0;
const SINGLE_C32_VS_CONFIRM_1000: f64 = 0.5;
const LIST_P99_MS: f64 = 15.0;
const WARM_GET_P99_MS: f64 = 2.0;
const LIVE_P99_MS: f64 = 50.0;
const LIVE_RSS_MIB: f64 = 150.0;
const DURABLE_P99_MS: f64 = 100.0;
const BACKWARD_SLOWER_AT_MOST: f64 = 0.2;
const TOTAL_ADDS_P99_MS: f64 = 5.0;
const DURABLE_RSS_MIB: f64 = 300.0;
const REPLAY_PER_S: f64 = 50_000.0;

#[derive(Default)]
pub struct Report {
    pub raw: Option<RawLimits>,
    pub ingest: Vec<IngestResult>,
    pub reads: Vec<ReadResult>,
    pub export: Option<ExportResult>,
    pub ledger: Option<LedgerResult>,
    pub live: Option<LiveResult>,
    pub durable: Option<DurableResult>,
    /// The API's resident memory after the ingest and reads scenarios, in MiB.
    pub heavy_rss_mib: Option<f64>,
}

impl Report {
    pub fn render(&self, sizes: &Sizes) -> String {
        let mut out = String::new();
        let mode = if sizes.quick { "quick run" } else { "full run" };
        let _ = writeln!(
            out,
            "### {} · commit {} · {mode}\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            git_commit()
        );
        let _ = writeln!(out, "Machine: {}  ", machine());
        let _ = writeln!(out, "Worker settings: {}\n", worker_settings());
        let _ = writeln!(out, "| Scenario | Done | Rate | p50 ms | p99 ms | Notes |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        for row in self.rows(sizes) {
            let _ = writeln!(out, "{row}");
        }
        let targets = self.targets();
        if !targets.is_empty() {
            let judged = if sizes.quick {
                " (a quick run is too small to judge them)"
            } else {
                ""
            };
            let _ = writeln!(out, "\nTargets{judged}:\n");
            let _ = writeln!(out, "| Target | Measured | Met |");
            let _ = writeln!(out, "|---|---|---|");
            for (target, measured, met) in targets {
                let met = if met { "yes" } else { "**no**" };
                let _ = writeln!(out, "| {target} | {measured} | {met} |");
            }
        }
        out
    }

    fn rows(&self, sizes: &Sizes) -> Vec<String> {
        let mut rows = Vec::new();
        if let Some(raw) = &self.raw {
            let limit = |name: &str, done: usize, rate: f64, unit: &str| {
                format!(
                    "| raw: {name} | {done} {unit} | {} {unit}/s | | | |",
                    thousands(rate)
                )
            };
            rows.push(limit(
                "PostgreSQL INSERT, 1000 rows a statement, 1 connection",
                sizes.raw_rows,
                raw.insert_rows_per_s,
                "rows",
            ));
            for (window, done, rate) in [
                (
                    "every 1000",
                    sizes.raw_messages_confirm_1000,
                    raw.publish_confirm_1000_per_s,
                ),
                (
                    "every 100",
                    sizes.raw_messages_confirm_100,
                    raw.publish_confirm_100_per_s,
                ),
                (
                    "each one",
                    sizes.raw_messages_confirm_each,
                    raw.publish_confirm_each_per_s,
                ),
            ] {
                let name = format!("RabbitMQ persistent 500 B publish, confirm {window}");
                rows.push(limit(&name, done, rate, "msgs"));
            }
            let consumed = sizes.raw_messages_confirm_1000
                + sizes.raw_messages_confirm_100
                + sizes.raw_messages_confirm_each;
            rows.push(limit(
                "RabbitMQ consume-and-ack, prefetch 1000",
                consumed,
                raw.consume_ack_per_s,
                "msgs",
            ));
        }
        for result in &self.ingest {
            let name = match result.shape {
                Shape::Batch(size) => {
                    format!("ingest: recordEvents ×{size}, {} clients", result.clients)
                }
                Shape::Single(concurrency) => {
                    format!("ingest: recordEvent, concurrency {concurrency}")
                }
            };
            let (a2c_p50, a2c_p99) = result.accept_to_commit_ms;
            let (c2c_p50, c2c_p99) = result.commit_to_checkpoint_ms;
            let b = &result.breakdown;
            let mut notes = format!(
                "mutation latency; accept→commit p50 {a2c_p50:.0} ms, p99 {a2c_p99:.0} ms; \
                 commit→signed checkpoint p50 {c2c_p50:.0} ms, p99 {c2c_p99:.0} ms; \
                 publish confirm {:.1} ms a message of {:.1} events; worker INSERTs of {:.0} \
                 events in {:.0} ms, busy {:.0} % of the time",
                b.publish_confirm_ms,
                b.message_events,
                b.batch_events,
                b.commit_ms,
                b.commit_busy * 100.0
            );
            let _ = write!(notes, "; {}", result.cpu);
            if let Some(raw) = &self.raw {
                let _ = write!(
                    notes,
                    "; {:.2}× confirm-each publish, {:.2}× confirm-1000 publish, {:.2}× raw INSERT",
                    result.events_per_s / raw.publish_confirm_each_per_s,
                    result.events_per_s / raw.publish_confirm_1000_per_s,
                    result.events_per_s / raw.insert_rows_per_s,
                );
            }
            rows.push(format!(
                "| {name} | {} events | {} events/s | {:.1} | {:.1} | {notes} |",
                result.events,
                thousands(result.events_per_s),
                result.mutation.p50_ms(),
                result.mutation.p99_ms(),
            ));
        }
        for result in &self.reads {
            rows.push(format!(
                "| reads: {}, {} | {} requests | {} req/s | {:.1} | {:.1} | {} |",
                result.name,
                clients(result.clients),
                result.requests,
                thousands(result.per_s),
                result.latency.p50_ms(),
                result.latency.p99_ms(),
                result.cpu,
            ));
        }
        if let Some(export) = &self.export {
            rows.push(format!(
                "| export: GET /export?format=ndjson, every stored event | {} rows | {} rows/s | | | one request, {:.1} s; API RSS {:.0} MiB before, at most {:.0} MiB while streaming; {} |",
                export.rows,
                thousands(export.rows as f64 / export.seconds),
                export.seconds,
                export.rss_before_mib,
                export.rss_peak_mib,
                export.cpu,
            ));
        }
        if let Some(ledger) = &self.ledger {
            let per_s = |seconds: f64| thousands(ledger.leaves as f64 / seconds);
            rows.push(format!(
                "| ledger: inclusionProof at a tree of {} leaves, 1 client | {} requests | {} req/s | {:.1} | {:.1} | proofs read tiles only |",
                ledger.leaves,
                ledger.proof_requests,
                thousands(ledger.proof_requests as f64 / ledger.proof_seconds),
                ledger.proofs.p50_ms(),
                ledger.proofs.p99_ms(),
            ));
            rows.push(format!(
                "| ledger: GET /export?proofs=true, one tenant | {} events | {} events/s | | | {:.1} s, {:.0} MiB |",
                ledger.export_rows,
                thousands(ledger.export_rows as f64 / ledger.export_seconds),
                ledger.export_seconds,
                ledger.export_mib,
            ));
            rows.push(format!(
                "| ledger: verify --export (offline, lines hashed on every core) | {} events | {} events/s | | | {:.1} s |",
                ledger.export_rows,
                thousands(ledger.export_rows as f64 / ledger.verify_export_seconds),
                ledger.verify_export_seconds,
            ));
            rows.push(format!(
                "| ledger: verify --online, one tenant | {} events | {} events/s | | | {:.1} s, events streamed from PostgreSQL |",
                ledger.leaves,
                per_s(ledger.verify_online_seconds),
                ledger.verify_online_seconds,
            ));
        }
        if let Some(rss) = self.heavy_rss_mib {
            rows.push(format!(
                "| memory: the API after the ingest and reads scenarios | | | | | resident {rss:.0} MiB at the end: the peak its embedded worker and the reads reached, kept by the allocator |"
            ));
        }
        if let Some(live) = &self.live {
            rows.push(format!(
                "| live: {} subscribers × {} events, on a freshly started API | {} deliveries | | {:.1} | {:.1} | from the mutation's answer to receipt ({} receipts came before the answer: 0 ms); from sending the mutation p50 {:.1} ms, p99 {:.1} ms; API RSS {:.0} MiB idle, {:.0} MiB with the subscribers; {} |",
                live.subscribers,
                live.events,
                live.latency.count(),
                live.latency.p50_ms(),
                live.latency.p99_ms(),
                live.before_answer,
                live.from_request.p50_ms(),
                live.from_request.p99_ms(),
                live.idle_rss_mib,
                live.connected_rss_mib,
                live.cpu,
            ));
        }
        if let Some(durable) = &self.durable {
            rows.push(format!(
                "| durable: {} subscribers ({} tenants × {}) × {} events at {} events/s, on a freshly started API | {} deliveries | | {:.1} | {:.1} | from the commit (its notice, as the benchmark heard it) to receipt; from the mutation's answer p50 {:.1} ms, p99 {:.1} ms (the worker's commit lag included); the readers ran {:.0} queries for {} commit notices of these tenants; API RSS {:.0} MiB; {} |",
                durable.subscribers,
                durable.tenants,
                durable.subscribers / durable.tenants.max(1),
                durable.events,
                thousands(durable.rate),
                durable.beyond_commit.count(),
                durable.beyond_commit.p50_ms(),
                durable.beyond_commit.p99_ms(),
                durable.from_answer.p50_ms(),
                durable.from_answer.p99_ms(),
                durable.reader_queries,
                durable.commit_notices,
                durable.rss_mib,
                durable.cpu,
            ));
            rows.push(format!(
                "| durable: replay from the beginning, one client | {} events | {} events/s | | | {:.1} s, 500 per query |",
                durable.replay_events,
                thousands(durable.replay_events as f64 / durable.replay_seconds),
                durable.replay_seconds,
            ));
        }
        rows
    }

    /// (target, what was measured, met) for each target this run has the numbers for.
    fn targets(&self) -> Vec<(String, String, bool)> {
        let mut targets = Vec::new();
        if let Some(ledger) = &self.ledger {
            let p99 = ledger.proofs.p99_ms();
            targets.push((
                format!("inclusionProof p99 < 5 ms at {} leaves", ledger.leaves),
                format!("{p99:.1} ms"),
                p99 < 5.0,
            ));
            let rate = ledger.export_rows as f64 / ledger.verify_export_seconds;
            targets.push((
                "verify --export ≥ 200,000 events/s".to_owned(),
                format!("{} events/s", thousands(rate)),
                rate >= 200_000.0,
            ));
        }
        for result in self
            .ingest
            .iter()
            .filter(|r| matches!(r.shape, Shape::Batch(_)))
        {
            let (_, p99) = result.commit_to_checkpoint_ms;
            targets.push((
                format!(
                    "commit→checkpoint p99 ≤ 2 s while ingesting (recordEvents ×{}, {} clients)",
                    match result.shape {
                        Shape::Batch(size) | Shape::Single(size) => size,
                    },
                    result.clients
                ),
                format!("{p99:.0} ms"),
                p99 <= 2_000.0,
            ));
        }
        let rate = |shape: fn(Shape) -> bool| {
            self.ingest
                .iter()
                .filter(|r| shape(r.shape))
                .map(|r| r.events_per_s)
                .fold(None, |best: Option<f64>, r| {
                    Some(best.map_or(r, |b| b.max(r)))
                })
        };
        if let Some(raw) = &self.raw {
            if let Some(batched) = rate(|s| matches!(s, Shape::Batch(_))) {
                let ratio = batched / raw.publish_confirm_each_per_s;
                targets.push((
                    format!("batched ingest ≥ {BATCH_VS_CONFIRM_EACH}× raw confirm-each publish"),
                    format!(
                        "{} events/s = {ratio:.2}× {} msgs/s",
                        thousands(batched),
                        thousands(raw.publish_confirm_each_per_s)
                    ),
                    ratio >= BATCH_VS_CONFIRM_EACH,
                ));
            }
            if let Some(single) = rate(|s| matches!(s, Shape::Single(32))) {
                let ratio = single / raw.publish_confirm_1000_per_s;
                targets.push((
                    format!(
                        "recordEvent at concurrency 32 ≥ {:.0} % of raw confirm-1000 publish",
                        SINGLE_C32_VS_CONFIRM_1000 * 100.0
                    ),
                    format!(
                        "{} events/s = {:.0} % of {} msgs/s",
                        thousands(single),
                        ratio * 100.0,
                        thousands(raw.publish_confirm_1000_per_s)
                    ),
                    ratio >= SINGLE_C32_VS_CONFIRM_1000,
                ));
            }
        }
        for read in &self.reads {
            let limit = if read.name.starts_with("auditEvents") {
                LIST_P99_MS
            } else if read.name == "auditEvent(id) warm" {
                WARM_GET_P99_MS
            } else {
                continue;
            };
            let p99 = read.latency.p99_ms();
            targets.push((
                format!("{} p99 < {limit} ms, {}", read.name, clients(read.clients)),
                format!("{p99:.1} ms"),
                p99 < limit,
            ));
        }
        let read = |name: &str| self.reads.iter().find(|r| r.name == name && r.clients == 1);
        if let (Some(forward), Some(backward)) = (
            read(reads::FORWARD_FROM_CURSOR),
            read(reads::BACKWARD_FROM_CURSOR),
        ) {
            let (f, b) = (forward.latency.p99_ms(), backward.latency.p99_ms());
            targets.push((
                "a page backwards p99 within 20 % of the page forwards, 1 client".to_owned(),
                format!("{b:.1} ms against {f:.1} ms"),
                b <= f * (1.0 + BACKWARD_SLOWER_AT_MOST),
            ));
        }
        if let (Some(plain), Some(total)) = (read(reads::NEWEST_PAGE), read(reads::WITH_TOTAL)) {
            let added = total.latency.p99_ms() - plain.latency.p99_ms();
            targets.push((
                format!("totalCount adds < {TOTAL_ADDS_P99_MS} ms p99 to a page, 1 client"),
                format!("{added:.1} ms"),
                added < TOTAL_ADDS_P99_MS,
            ));
        }
        if let Some(live) = &self.live {
            let p99 = live.latency.p99_ms();
            targets.push((
                format!(
                    "delivery p99 < {LIVE_P99_MS} ms with {} subscribers",
                    live.subscribers
                ),
                format!("{p99:.1} ms"),
                p99 < LIVE_P99_MS,
            ));
            targets.push((
                format!("API resident memory < {LIVE_RSS_MIB} MB with the subscribers"),
                format!("{:.0} MiB", live.connected_rss_mib),
                live.connected_rss_mib < LIVE_RSS_MIB,
            ));
        }
        if let Some(durable) = &self.durable {
            let p99 = durable.beyond_commit.p99_ms();
            targets.push((
                format!(
                    "durable: commit → delivery p99 < {DURABLE_P99_MS} ms with {} subscribers",
                    durable.subscribers
                ),
                format!("{p99:.1} ms"),
                p99 < DURABLE_P99_MS,
            ));
            targets.push((
                format!("durable: API resident memory < {DURABLE_RSS_MIB} MB with the subscribers"),
                format!("{:.0} MiB", durable.rss_mib),
                durable.rss_mib < DURABLE_RSS_MIB,
            ));
            targets.push((
                "durable: reader queries bounded by commits, not subscribers".to_owned(),
                format!(
                    "{:.0} queries for {} commit notices, {} subscribers",
                    durable.reader_queries, durable.commit_notices, durable.subscribers
                ),
                durable.reader_queries <= durable.commit_notices as f64,
            ));
            let rate = durable.replay_events as f64 / durable.replay_seconds;
            targets.push((
                format!(
                    "durable: replay ≥ {} events/s to one client",
                    thousands(REPLAY_PER_S)
                ),
                format!("{} events/s", thousands(rate)),
                rate >= REPLAY_PER_S,
            ));
        }
        targets
    }
}

/// "1 client", "16 clients".
fn clients(n: usize) -> String {
    if n == 1 {
        "1 client".to_owned()
    } else {
        format!("{n} clients")
    }
}

/// Appends `table` to the report file, after a blank line.
pub fn append(path: &Path, table: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "\n{table}")
}

fn thousands(rate: f64) -> String {
    let whole = rate.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The short commit, with `-dirty` when the tree has uncommitted changes.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{commit}-dirty"),
        _ => commit,
    }
}

/// Cores, memory, CPU model and the load when the run started (the machine may be shared).
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let proc_field = |file: &str, key: &str| {
        std::fs::read_to_string(file).ok().and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_once(':'))
                .map(|(_, value)| value.trim().to_owned())
        })
    };
    let memory = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|kib| kib.trim_end_matches(" kB").parse::<f64>().ok())
        .map_or("unknown memory".to_owned(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let cpu = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    format!("{cores} cores (nproc), {memory}, {cpu}; load average {load} at the end")
}

/// The knobs that shape ingest, as the API process read them.
fn worker_settings() -> String {
    match Config::from_env() {
        Ok(c) => format!(
            "TRACELEDGER_BATCH_SIZE={}, BATCH_TIMEOUT_MS={}, PREFETCH={}, DATABASE_MAX_CONNECTIONS={}, PUBLISH_TIMEOUT_MS={}",
            c.worker.batch_size,
            c.worker.batch_timeout_ms,
            c.worker.prefetch,
            c.database.max_connections,
            c.publish.timeout_ms
        ),
        Err(e) => format!("unreadable ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn rates_are_rounded_and_grouped_by_thousands() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.5), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
