//! Verification, the auditor's side of the ledger: an export checked offline against a
//! verifier key, or a tenant's stored events walked against their sealed leaves and every
//! signed checkpoint (an operator's audit job). Ranges retention dropped are reported as
//! pruned, with the `retention.purge` event that lists them, never as tampering.

use std::io::BufRead;

use futures::StreamExt;
use uuid::Uuid;

use crate::app::ledger::TileCursor;
use crate::domain::ledger::{
    leaf_bytes, open_checkpoint, CompactRange, ExportCheck, ExportLine, Finding, LedgerWalk,
    Verdict,
};
use crate::domain::EventFilter;
use crate::store::{Store, StoreError};

/// Lines parsed and hashed at once, split over the machine's cores.
const PARALLEL_LINES: usize = 8192;

/// Checks an export made with `proofs=true`; `progress` hears the bytes read so far. Lines are
/// parsed and hashed on every core, then checked in order.
pub fn verify_export(
    reader: impl BufRead,
    keys: Vec<String>,
    mut progress: impl FnMut(u64),
) -> std::io::Result<Verdict> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut check = ExportCheck::new(keys);
    let mut read = 0u64;
    let mut lines = reader.lines();
    loop {
        let chunk = lines
            .by_ref()
            .take(PARALLEL_LINES)
            .collect::<std::io::Result<Vec<String>>>()?;
        if chunk.is_empty() {
            break;
        }
        read += chunk.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
        let part = chunk.len().div_ceil(threads);
        let parsed: std::io::Result<Vec<Vec<ExportLine>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = chunk
                .chunks(part)
                .map(|lines| {
                    scope.spawn(move || lines.iter().map(|l| ExportLine::parse(l)).collect())
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .map_err(|_| std::io::Error::other("a verifying thread failed"))
                })
                .collect()
        });
        for line in parsed?.into_iter().flatten() {
            check.read(line);
        }
        progress(read);
    }
    Ok(check.finish())
}

/// What walking one tenant's ledger found.
#[derive(Debug)]
pub struct TenantReport {
    pub tenant: String,
    pub verdict: Verdict,
    /// Index ranges `[from, to)` retention dropped, with the purge event that lists each.
    pub pruned: Vec<(u64, u64, Uuid)>,
    pub checkpoints: u64,
}

/// The tenants that have a ledger.
pub async fn ledger_tenants(store: &Store) -> Result<Vec<String>, StoreError> {
    store.ledger_tenants().await
}

/// Walks `tenant`'s stored events against the sealed leaves and every checkpoint, verified
/// with `keys` (the keys the service lists when `None`). `progress(done, total)` hears how far
/// the walk is.
pub async fn verify_online(
    store: &Store,
    tenant: &str,
    keys: Option<Vec<String>>,
    mut progress: impl FnMut(u64, u64),
) -> Result<TenantReport, StoreError> {
    let keys = match keys {
        Some(keys) => keys,
        None => store
            .ledger_keys()
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
    };
    let mut findings = Vec::new();
    let mut signed = Vec::new();
    let mut after = None;
    loop {
        let page = store.checkpoints(tenant, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.size);
        for stored in page {
            let bad = |reason: String| Finding::BadCheckpoint {
                size: Some(stored.size),
                reason,
            };
            match open_checkpoint(&stored.note, &keys) {
                Ok(opened) if !opened.is_of(tenant) => findings.push(bad(format!(
                    "signed for {}, not for this tenant",
                    opened.origin
                ))),
                Ok(opened) if opened.size != stored.size || opened.root != stored.root => {
                    findings.push(bad("the stored size or root differs from the signed".into()))
                }
                Ok(opened) => signed.push((opened.size, opened.root)),
                Err(e) => findings.push(bad(e.to_string())),
            }
        }
    }
    let checkpoints = signed.len() as u64;
    let size = signed.iter().map(|(size, _)| *size).max().unwrap_or(0);
    let pruned = store.pruned_ranges(tenant).await?;
    let mut walk = LedgerWalk::new(signed);
    for finding in findings {
        walk.report(finding);
    }
    let mut cursor = TileCursor::new(store, tenant);
    let events = store
        .stream_ledger_matching(tenant.to_owned(), EventFilter::default(), size)
        .peekable();
    futures::pin_mut!(events);
    let mut ranges = pruned.iter().peekable();
    while walk.size() < size {
        let index = walk.size();
        if let Some(&&(from, to, _)) = ranges.peek() {
            if from <= index {
                ranges.next();
                if to > index {
                    let to = to.min(size);
                    let mut subtrees = Vec::new();
                    for (level, at) in CompactRange::gap(index, to) {
                        subtrees.push((level, cursor.subtree(level, at).await?));
                    }
                    walk.pruned(&subtrees);
                }
                continue;
            }
        }
        let mut stored = Vec::new();
        loop {
            match events.as_mut().peek().await {
                None => break,
                Some(Ok((at, _))) if *at > index => break,
                // An error is taken and returned below.
                Some(_) => {}
            }
            let Some(item) = events.next().await else {
                break;
            };
            let (at, event) = item?;
            let leaf = leaf_bytes(&event).map_err(|e| StoreError::Corrupt {
                id: event.id,
                reason: e.to_string(),
            })?;
            if at < index {
                // Only an index already walked: a second row with it.
                walk.report(Finding::Extra {
                    index: at,
                    id: Some(event.id),
                });
            } else {
                stored.push((event.id, leaf));
            }
        }
        let sealed = cursor.subtree(0, index).await?;
        walk.index(&stored, sealed);
        if index.is_multiple_of(4096) {
            progress(index, size);
        }
    }
    progress(size, size);
    // Rows past the head belong to no commit: inserted by hand.
    let head = store.ledger_head(tenant).await?;
    let beyond = store
        .events_from_index(tenant, head)
        .await?
        .into_iter()
        .map(|(index, id)| Finding::Extra {
            index,
            id: Some(id),
        })
        .collect();
    Ok(TenantReport {
        tenant: tenant.to_owned(),
        verdict: walk.finish(beyond),
        pruned,
        checkpoints,
    })
}
