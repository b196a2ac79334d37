//! `traceledger verify`: an export checked offline, or the stored ledger walked online. Prints
//! what it checked and every finding; fails (exit 1) unless everything holds.

use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use traceledger::app::verify::{self, TenantReport};
use traceledger::domain::ledger::Verdict;
use traceledger::store::DatabaseSettings;

use super::operator::migrated;

fn bar(len: u64, unit: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit}, {{per_sec}}, eta {{eta}}"
        ))
        .context("progress bar template")?,
    );
    Ok(bar)
}

/// Prints the findings; whether everything held.
fn report(what: &str, verdict: &Verdict) -> bool {
    if verdict.holds() {
        println!(
            "{what}: {} events in a tree of {}: verified",
            verdict.events, verdict.size
        );
        return true;
    }
    println!(
        "{what}: {} events in a tree of {}: {} problem(s), first at the top",
        verdict.events,
        verdict.size,
        verdict.findings.len()
    );
    for finding in &verdict.findings {
        println!("  {finding}");
    }
    false
}

pub(super) async fn export(file: &Path, keys: Vec<String>) -> anyhow::Result<()> {
    if keys.is_empty() {
        bail!("--export needs the verifier key the checkpoint is signed with: --key NAME+ID+BASE64 (GET /ledger/key serves it)");
    }
    let opened = std::fs::File::open(file)
        .with_context(|| format!("cannot read the export {}", file.display()))?;
    let length = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = bar(length, "bytes")?;
    let verdict = verify::verify_export(BufReader::with_capacity(1 << 20, opened), keys, |read| {
        progress.set_position(read)
    })
    .with_context(|| format!("reading the export {}", file.display()))?;
    progress.finish_and_clear();
    if !report(&format!("export {}", file.display()), &verdict) {
        bail!("the export does not verify");
    }
    Ok(())
}

pub(super) async fn online(
    database: &DatabaseSettings,
    tenant: Option<String>,
    keys: Vec<String>,
) -> anyhow::Result<()> {
    let store = migrated(database).await?;
    let tenants = match tenant {
        Some(tenant) => vec![tenant],
        None => verify::ledger_tenants(&store).await?,
    };
    let keys = (!keys.is_empty()).then_some(keys);
    let mut failed = 0;
    for tenant in tenants {
        let progress = bar(0, "events")?;
        let TenantReport {
            tenant,
            verdict,
            pruned,
            checkpoints,
        } = verify::verify_online(&store, &tenant, keys.clone(), |done, total| {
            progress.set_length(total);
            progress.set_position(done);
        })
        .await
        .with_context(|| format!("walking the ledger of tenant {tenant}"))?;
        progress.finish_and_clear();
        for (from, to, purge) in &pruned {
            println!(
                "tenant {tenant}: indices {from}..{} pruned by retention (event {purge})",
                to - 1
            );
        }
        if checkpoints == 0 && verdict.size == 0 && verdict.holds() {
            println!("tenant {tenant}: no checkpoint yet");
            continue;
        }
        if !report(
            &format!("tenant {tenant} ({checkpoints} checkpoints)"),
            &verdict,
        ) {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("the ledger of {failed} tenant(s) does not verify");
    }
    Ok(())
}
