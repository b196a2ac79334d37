//! The benchmark's quick mode, so CI keeps every scenario working: it runs against the local
//! services, checks inside that every count matches (rows, messages, committed events, pages,
//! deliveries), and fails otherwise. This test reads the table it prints: every scenario has
//! its row, with a positive count and rate. No timing is asserted, and no row's wording.

use std::process::Command;

/// One table row: the scenario's name and the cells after it.
struct Row {
    name: String,
    cells: Vec<String>,
}

/// The rows of the results table (the one headed `| Scenario |`), not of the targets after it.
fn rows(report: &str) -> Vec<Row> {
    report
        .lines()
        .skip_while(|line| !line.starts_with("| Scenario"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let mut cells = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned());
            let name = cells.next()?;
            name.contains(": ").then(|| Row {
                name,
                cells: cells.collect(),
            })
        })
        .collect()
}

/// `2,000 events` → 2000.
fn count(cell: &str) -> Option<f64> {
    cell.split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

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
    let rows = rows(&stdout);
    // Every group of scenarios is there, with as many rows as it measures.
    for (group, at_least) in [
        ("raw: ", 5),
        ("ingest: ", 5),
        ("reads: ", 15),
        ("export: ", 1),
        ("memory: ", 1),
        ("live: ", 1),
        ("durable: ", 2),
    ] {
        let found = rows.iter().filter(|r| r.name.starts_with(group)).count();
        assert!(
            found >= at_least,
            "{found} {group}rows, expected at least {at_least}:\n{stdout}"
        );
    }
    // Both search backends were measured.
    for backend in ["PostgreSQL", "Elasticsearch"] {
        assert!(
            rows.iter()
                .any(|r| r.name.starts_with("reads: search") && r.name.contains(backend)),
            "no search row for {backend}:\n{stdout}"
        );
    }
    // Each measured row did something, and says how fast.
    for row in rows.iter().filter(|r| !r.name.starts_with("memory: ")) {
        let done = row.cells.first().and_then(|c| count(c));
        assert!(
            done.is_some_and(|n| n > 0.0),
            "{}: no count in {:?}",
            row.name,
            row.cells
        );
        // Delivery to subscribers is measured by its latency, everything else by its rate.
        let by_latency = row.name.starts_with("live: ") || row.name.contains(" subscribers (");
        let measured = if by_latency { 2 } else { 1 };
        let value = row.cells.get(measured).and_then(|c| count(c));
        assert!(
            value.is_some_and(|v| v >= 0.0) && !row.cells[measured].is_empty(),
            "{}: nothing measured in {:?}",
            row.name,
            row.cells
        );
    }
    assert!(
        !stdout.contains("Appended to"),
        "a quick run must not touch BENCHMARKS.md"
    );
}
