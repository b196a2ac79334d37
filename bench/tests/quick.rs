//! The benchmark's quick mode, so CI keeps every scenario working: it runs against the local
//! services, checks inside that every count matches (rows, messages, committed events, pages,
//! deliveries), and fails otherwise. No timing is asserted.

use std::process::Command;

#[test]
fn every_scenario_completes_with_matching_counts_in_quick_mode() {
    let output = Command::new(env!("CARGO_BIN_EXE_traceledger-bench"))
        .args(["all", "--quick"])
        .output()
        .expect("the benchmark runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the quick benchmark failed:\n{stdout}\n{stderr}"
    );
    for row in [
        "| raw: PostgreSQL INSERT, 1000 rows a statement, 1 connection | 2000 rows |",
        "| raw: RabbitMQ consume-and-ack, prefetch 1000 | 2550 msgs |",
        "| ingest: recordEvents ×100, 2 clients | 2000 events |",
        "| ingest: recordEvents ×1000, 2 clients | 2000 events |",
        "| ingest: recordEvent, concurrency 1 | 20 events |",
        "| ingest: recordEvent, concurrency 32 | 256 events |",
        "| ingest: recordEvent, concurrency 128 | 256 events |",
        "| reads: auditEvents(first: 50), 4 clients | 40 requests |",
        "| reads: auditEvents(first: 50) filtered, 4 clients | 40 requests |",
        "| reads: auditEvent(id) warm, 4 clients | 40 requests |",
        "| reads: auditEvent(id) cold, 4 clients | 40 requests |",
        "| reads: search (PostgreSQL), 2 clients | 6 requests |",
        "| reads: eventStats(HOUR, by SERVICE), one day, 2 clients | 6 requests |",
        "| reads: auditEvents(first: 50), 1 client | 40 requests |",
        "| reads: auditEvents(first: 50) filtered, 1 client | 40 requests |",
        "| reads: auditEvent(id) warm, 1 client | 40 requests |",
        "| reads: eventStats(HOUR, by SERVICE), one day, 1 client | 6 requests |",
        "| reads: eventStats(DAY, by SERVICE), all 30 days, 1 client | 6 requests |",
        "| reads: search (Elasticsearch backend on osmem-server), 2 clients | 12 requests |",
        "| export: GET /export?format=ndjson, every stored event | 5000 rows |",
        "| memory: the API after the ingest and reads scenarios |",
        "| live: 20 subscribers × 5 events, on a freshly started API | 100 deliveries |",
    ] {
        assert!(stdout.contains(row), "missing {row:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("Appended to"),
        "a quick run must not touch BENCHMARKS.md"
    );
}
