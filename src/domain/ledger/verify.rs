//! Verifying a ledger without trusting whoever stores it: an export file checked line by line
//! ([`ExportCheck`]), or the stored events walked in index order against the sealed leaf
//! hashes and the signed checkpoints ([`LedgerWalk`]). Both rebuild the tree as they go, in
//! O(log n) memory, and name the index (and event) where what they read stops adding up.

use serde_json::Value;
use uuid::Uuid;

use super::canonical;
use super::proof::CompactRange;
use super::{decode_hash, leaf_hash, open_checkpoint, Hash};
use crate::domain::event::{LATER_FIELDS, LATER_PARTY_FIELDS};

/// The fields an export line adds to the event as the API returns it.
pub const EXPORT_INDEX_FIELD: &str = "ledgerIndex";
pub const EXPORT_LEAF_FIELD: &str = "leafHash";
/// The line that stands for leaves an export leaves out (filtered out or pruned).
pub const EXPORT_GAP_FIELD: &str = "ledgerGap";
/// The last line of an export with proofs.
pub const EXPORT_CHECKPOINT_FIELD: &str = "ledgerCheckpoint";

/// Something that does not add up, at a place in the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The event at this index is not what was sealed there.
    Changed { index: u64, id: Option<Uuid> },
    /// No event has this index (and no retention dropped it).
    Missing { from: u64, to: u64 },
    /// A second event, or one out of order, claims this index.
    Extra { index: u64, id: Option<Uuid> },
    /// The tree rebuilt from the events does not have the signed root of this checkpoint.
    RootMismatch { size: u64 },
    /// A checkpoint whose signature does not verify with the given keys.
    BadCheckpoint { size: Option<u64>, reason: String },
    /// A line that is not an event, a gap or a checkpoint.
    Unreadable { line: u64, reason: String },
    /// The export ends without a checkpoint, or does not reach it.
    Incomplete { reason: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = |id: &Option<Uuid>| id.map(|id| format!(" (event {id})")).unwrap_or_default();
        match self {
            Finding::Changed { index, id: event } => write!(
                f,
                "index {index}{}: the event is not what was sealed there (changed)",
                id(event)
            ),
            Finding::Missing { from, to } if to - from == 1 => {
                write!(f, "index {from}: no event (removed)")
            }
            Finding::Missing { from, to } => {
                write!(f, "indices {from}..{}: no events (removed)", to - 1)
            }
            Finding::Extra { index, id: event } => write!(
                f,
                "index {index}{}: an event that does not belong there (inserted, repeated or \
                 reordered)",
                id(event)
            ),
            Finding::RootMismatch { size } => write!(
                f,
                "checkpoint {size}: the events do not add up to its signed root"
            ),
            Finding::BadCheckpoint { size, reason } => match size {
                Some(size) => write!(f, "checkpoint {size}: {reason}"),
                None => write!(f, "checkpoint: {reason}"),
            },
            Finding::Unreadable { line, reason } => write!(f, "line {line}: {reason}"),
            Finding::Incomplete { reason } => f.write_str(reason),
        }
    }
}

/// The leaf of an event given as the JSON the API returns (an export line without its ledger
/// fields): RFC 8785 of it, `recordedBy` as null where absent and the later fields left out where
/// null, as [`super::leaf_bytes`] does.
pub fn leaf_bytes_of_json(mut event: Value) -> Vec<u8> {
    if let Value::Object(fields) = &mut event {
        fields.remove(EXPORT_INDEX_FIELD);
        fields.remove(EXPORT_LEAF_FIELD);
        fields.entry("recordedBy").or_insert(Value::Null);
        remove_nulls(fields, &LATER_FIELDS);
        for party in ["actor", "target"] {
            if let Some(Value::Object(party)) = fields.get_mut(party) {
                remove_nulls(party, &LATER_PARTY_FIELDS);
            }
        }
    }
    canonical::to_vec(&event)
}

/// A leaf has the fields added after the ledger began only where the event has a value, so that
/// events stored before them keep the leaves they were hashed with.
fn remove_nulls(fields: &mut serde_json::Map<String, Value>, names: &[&str]) {
    for name in names {
        if fields.get(*name).is_some_and(Value::is_null) {
            fields.remove(*name);
        }
    }
}

/// What a finished check found: the tree size it covered and every finding, first first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub events: u64,
    pub size: u64,
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One line of an export, read and (for an event) hashed: the part of checking that needs no
/// other line, so it can run ahead on other threads.
#[derive(Debug)]
pub enum ExportLine {
    Blank,
    Unreadable(String),
    Event(ExportedEvent),
    Gap(Value),
    Checkpoint(Value),
}

#[derive(Debug)]
pub struct ExportedEvent {
    index: Option<u64>,
    id: Option<Uuid>,
    tenant: Option<String>,
    /// The leaf hash the line says was sealed.
    claimed: Option<Hash>,
    /// The leaf hash of the line's event.
    leaf: Hash,
}

impl ExportLine {
    pub fn parse(text: &str) -> ExportLine {
        if text.trim().is_empty() {
            return ExportLine::Blank;
        }
        let mut value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => return ExportLine::Unreadable(format!("not JSON: {e}")),
        };
        if let Some(gap) = value.get_mut(EXPORT_GAP_FIELD) {
            return ExportLine::Gap(gap.take());
        }
        if let Some(checkpoint) = value.get_mut(EXPORT_CHECKPOINT_FIELD) {
            return ExportLine::Checkpoint(checkpoint.take());
        }
        let text_of = |field: &str| value.get(field).and_then(Value::as_str);
        ExportLine::Event(ExportedEvent {
            index: value.get(EXPORT_INDEX_FIELD).and_then(Value::as_u64),
            id: text_of("id").and_then(|id| Uuid::try_parse(id).ok()),
            tenant: text_of("tenant").map(str::to_owned),
            claimed: text_of(EXPORT_LEAF_FIELD).and_then(decode_hash),
            leaf: leaf_hash(&leaf_bytes_of_json(value)),
        })
    }
}

/// Checks an export made with `proofs=true`, fed one line at a time.
pub struct ExportCheck {
    keys: Vec<String>,
    tree: CompactRange,
    /// Whether the tree still means anything (no leaf could be placed once one is missing).
    whole: bool,
    /// The index the next line must start at.
    next: u64,
    line: u64,
    events: u64,
    checkpoint: Option<(u64, Hash)>,
    tenant: Option<String>,
    findings: Vec<Finding>,
}

impl ExportCheck {
    /// Checkpoints are verified with any of `keys` (verifier keys, `<name>+<id>+<base64>`).
    pub fn new(keys: Vec<String>) -> Self {
        Self {
            keys,
            tree: CompactRange::new(),
            whole: true,
            next: 0,
            line: 0,
            events: 0,
            checkpoint: None,
            tenant: None,
            findings: Vec::new(),
        }
    }

    pub fn line(&mut self, text: &str) {
        self.read(ExportLine::parse(text));
    }

    /// The next line, parsed (and its leaf hashed) ahead, perhaps on another thread.
    pub fn read(&mut self, line: ExportLine) {
        self.line += 1;
        let unreadable = |reason: String| Finding::Unreadable {
            line: self.line,
            reason,
        };
        if matches!(line, ExportLine::Blank) {
            return;
        }
        if self.checkpoint.is_some() {
            self.findings
                .push(unreadable("a line after the checkpoint".into()));
            return;
        }
        match line {
            ExportLine::Blank => {}
            ExportLine::Unreadable(reason) => self.findings.push(unreadable(reason)),
            ExportLine::Gap(gap) => self.gap(&gap),
            ExportLine::Checkpoint(checkpoint) => self.checkpoint(&checkpoint),
            ExportLine::Event(event) => self.event(event),
        }
    }

    fn event(&mut self, event: ExportedEvent) {
        self.events += 1;
        let ExportedEvent {
            id,
            tenant,
            claimed,
            leaf,
            index,
        } = event;
        let Some(index) = index else {
            return self.findings.push(Finding::Unreadable {
                line: self.line,
                reason: format!("an event without {EXPORT_INDEX_FIELD}"),
            });
        };
        if let Some(tenant) = tenant {
            self.tenant.get_or_insert(tenant);
        }
        if !self.advance_to(index, id) {
            return;
        }
        if claimed != Some(leaf) {
            self.findings.push(Finding::Changed { index, id });
        }
        if self.whole {
            self.tree.push_leaf(leaf);
        }
        self.next = index + 1;
    }

    /// Whether what starts at `index` comes next; names what is missing before it, or the
    /// line that comes out of order.
    fn advance_to(&mut self, index: u64, id: Option<Uuid>) -> bool {
        if index < self.next {
            self.findings.push(Finding::Extra { index, id });
            return false;
        }
        if index > self.next {
            self.findings.push(Finding::Missing {
                from: self.next,
                to: index,
            });
            // Without those leaves the root cannot be rebuilt; the lines are still checked.
            self.whole = false;
        }
        true
    }

    fn gap(&mut self, gap: &Value) {
        let from = gap.get("from").and_then(Value::as_u64);
        let to = gap.get("to").and_then(Value::as_u64);
        let hashes: Option<Vec<Hash>> = gap.get("hashes").and_then(Value::as_array).and_then(|a| {
            a.iter()
                .map(|h| h.as_str().and_then(decode_hash))
                .collect::<Option<Vec<_>>>()
        });
        let (Some(from), Some(to), Some(hashes)) = (from, to, hashes) else {
            return self.findings.push(Finding::Unreadable {
                line: self.line,
                reason: "a gap without from, to and base64 hashes".into(),
            });
        };
        if to <= from || !self.advance_to(from, None) {
            return;
        }
        let subtrees = CompactRange::gap(from, to);
        if subtrees.len() != hashes.len() {
            self.findings.push(Finding::Unreadable {
                line: self.line,
                reason: format!("a gap of {from}..{to} needs {} hashes", subtrees.len()),
            });
            self.whole = false;
        } else if self.whole {
            for ((level, _), hash) in subtrees.into_iter().zip(hashes) {
                self.tree.push_subtree(level, hash);
            }
        }
        self.next = to;
    }

    fn checkpoint(&mut self, checkpoint: &Value) {
        let note = checkpoint.get("note").and_then(Value::as_str).unwrap_or("");
        match open_checkpoint(note, &self.keys) {
            Ok(opened) => {
                if let Some(tenant) = &self.tenant {
                    if !opened.is_of(tenant) {
                        self.findings.push(Finding::BadCheckpoint {
                            size: Some(opened.size),
                            reason: format!(
                                "it is the checkpoint of {}, not of tenant {tenant}",
                                opened.origin
                            ),
                        });
                    }
                }
                self.checkpoint = Some((opened.size, opened.root));
            }
            Err(e) => {
                self.findings.push(Finding::BadCheckpoint {
                    size: None,
                    reason: e.to_string(),
                });
                self.checkpoint = Some((0, [0; 32]));
            }
        }
    }

    pub fn finish(mut self) -> Verdict {
        match self.checkpoint {
            None => self.findings.push(Finding::Incomplete {
                reason: "the export ends without its checkpoint (cut short?)".into(),
            }),
            Some((size, root)) if size > 0 => {
                if self.next < size {
                    self.findings.push(Finding::Missing {
                        from: self.next,
                        to: size,
                    });
                } else if self.next > size {
                    self.findings.push(Finding::Extra {
                        index: size,
                        id: None,
                    });
                } else if self.whole && self.tree.root() != root && self.findings.is_empty() {
                    // Every line matched its own leaf hash, yet not the signed root: the leaf
                    // hashes themselves were changed.
                    self.findings.push(Finding::RootMismatch { size });
                }
            }
            Some(_) => {}
        }
        Verdict {
            events: self.events,
            size: self.next,
            findings: self.findings,
        }
    }
}

/// Walks a tenant's stored events in index order against the sealed leaf hashes and the signed
/// checkpoints. Fed, for each index from 0, the events stored at it (none, one, or — tampered —
/// several) and the leaf hash sealed there; pruned stretches are fed as such.
pub struct LedgerWalk {
    tree: CompactRange,
    /// Signed checkpoints still ahead, smallest last: (size, root).
    ahead: Vec<(u64, Hash)>,
    missing: Option<(u64, u64)>,
    events: u64,
    findings: Vec<Finding>,
}

impl LedgerWalk {
    /// `checkpoints`: the (size, root) of every checkpoint whose signature verified.
    pub fn new(mut checkpoints: Vec<(u64, Hash)>) -> Self {
        checkpoints.sort_by_key(|c| std::cmp::Reverse(c.0));
        Self {
            tree: CompactRange::new(),
            ahead: checkpoints,
            missing: None,
            events: 0,
            findings: Vec::new(),
        }
    }

    pub fn report(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// The next index: what is stored there, and the leaf hash sealed there.
    pub fn index(&mut self, stored: &[(Uuid, Vec<u8>)], sealed: Hash) {
        let index = self.tree.size();
        match stored.split_first() {
            None => {
                let (from, _) = self.missing.get_or_insert((index, index));
                self.missing = Some((*from, index + 1));
                // The sealed hash stands in, so later checkpoints can still be checked.
                self.tree.push_leaf(sealed);
            }
            Some(((id, leaf), extra)) => {
                self.flush_missing();
                self.events += 1 + extra.len() as u64;
                let hash = leaf_hash(leaf);
                if hash != sealed {
                    self.findings.push(Finding::Changed {
                        index,
                        id: Some(*id),
                    });
                }
                for (id, _) in extra {
                    self.findings.push(Finding::Extra {
                        index,
                        id: Some(*id),
                    });
                }
                self.tree.push_leaf(hash);
            }
        }
        self.check_checkpoints();
    }

    /// A stretch retention dropped: its sealed hashes, as complete subtrees of
    /// [`CompactRange::gap`] (`[size, size + n)`).
    pub fn pruned(&mut self, subtrees: &[(u32, Hash)]) {
        self.flush_missing();
        for (level, hash) in subtrees {
            self.tree.push_subtree(*level, *hash);
            self.check_checkpoints();
        }
    }

    /// How many leaves it has walked.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    fn flush_missing(&mut self) {
        if let Some((from, to)) = self.missing.take() {
            self.findings.push(Finding::Missing { from, to });
        }
    }

    fn check_checkpoints(&mut self) {
        while let Some(&(size, root)) = self.ahead.last() {
            if size > self.tree.size() {
                break;
            }
            self.ahead.pop();
            let first = !self
                .findings
                .iter()
                .any(|f| matches!(f, Finding::RootMismatch { .. }));
            // Once one checkpoint diverges every later one does: the first says where.
            if size == self.tree.size() && root != self.tree.root() && first {
                self.findings.push(Finding::RootMismatch { size });
            }
        }
    }

    pub fn finish(mut self, extra: Vec<Finding>) -> Verdict {
        self.flush_missing();
        self.findings.extend(extra);
        Verdict {
            events: self.events,
            size: self.tree.size(),
            findings: self.findings,
        }
    }
}
