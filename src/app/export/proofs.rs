//! An export that proves itself (`proofs=true`): the matching events in ledger order, each with
//! its `ledgerIndex` and sealed `leafHash`; for every stretch of indices left out (filtered
//! out, or dropped by retention) a `ledgerGap` line with the hashes of the complete subtrees
//! that cover it; and last the signed checkpoint the export reaches. `traceledger verify
//! --export` rebuilds the checkpoint's root from it with no database.

use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use super::{ExportError, CHUNK_EVENTS};
use crate::app::ledger::TileCursor;
use crate::domain::ledger::{
    encode_hash, CompactRange, EXPORT_CHECKPOINT_FIELD, EXPORT_GAP_FIELD, EXPORT_INDEX_FIELD,
    EXPORT_LEAF_FIELD,
};
use crate::domain::{AuditEvent, EventFilter};
use crate::store::{Store, StoreError, StoredCheckpoint};

/// The export's lines up to `checkpoint` (events committed after it are left to the next
/// export), in chunks.
pub(super) fn lines(
    store: Store,
    tenant: String,
    filter: EventFilter,
    checkpoint: StoredCheckpoint,
) -> impl Stream<Item = Result<Vec<u8>, ExportError>> + Send {
    async_stream::try_stream! {
        let events = store
            .stream_ledger_matching(tenant.clone(), filter, checkpoint.size)
            .ready_chunks(CHUNK_EVENTS);
        futures::pin_mut!(events);
        let mut cursor = TileCursor::new(&store, &tenant);
        let mut next = 0;
        while let Some(chunk) = events.next().await {
            let mut out = Vec::new();
            for item in chunk {
                let (index, event) = item?;
                if index > next {
                    gap_line(&mut cursor, next, index, &mut out).await?;
                }
                event_line(&mut cursor, index, &event, &mut out).await?;
                next = index + 1;
            }
            yield out;
        }
        let mut out = Vec::new();
        if next < checkpoint.size {
            gap_line(&mut cursor, next, checkpoint.size, &mut out).await?;
        }
        let last = json!({ EXPORT_CHECKPOINT_FIELD: {
            "size": checkpoint.size, "note": checkpoint.note, "verifierKey": checkpoint.verifier_key,
        } });
        serde_json::to_writer(&mut out, &last)?;
        out.push(b'\n');
        yield out;
    }
}

async fn event_line(
    cursor: &mut TileCursor<'_>,
    index: u64,
    event: &AuditEvent,
    out: &mut Vec<u8>,
) -> Result<(), ExportError> {
    let mut line = event.api_json()?;
    if let Value::Object(fields) = &mut line {
        fields.insert(EXPORT_INDEX_FIELD.into(), json!(index));
        let sealed = cursor.subtree(0, index).await?;
        fields.insert(EXPORT_LEAF_FIELD.into(), json!(encode_hash(&sealed)));
    }
    serde_json::to_writer(&mut *out, &line)?;
    out.push(b'\n');
    Ok(())
}

async fn gap_line(
    cursor: &mut TileCursor<'_>,
    from: u64,
    to: u64,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let mut hashes = Vec::new();
    for (level, index) in CompactRange::gap(from, to) {
        hashes.push(encode_hash(&cursor.subtree(level, index).await?));
    }
    let line = json!({ EXPORT_GAP_FIELD: { "from": from, "to": to, "hashes": hashes } });
    // A JSON value of strings and numbers always serializes.
    out.extend_from_slice(line.to_string().as_bytes());
    out.push(b'\n');
    Ok(())
}
