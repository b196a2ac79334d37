//! RFC 9162 tree hashes and proofs over any source of complete-subtree hashes: leaves in memory
//! (tests, exports) or stored tiles (the service). The recursion is the RFC's; every hash it
//! needs is the hash of a complete, aligned subtree, so a source only has to answer those.

use super::{node_hash, Hash, EMPTY_ROOT};

/// Where the hashes of complete subtrees come from.
pub trait Subtrees {
    /// The hash of the complete subtree of `2^level` leaves that starts at leaf
    /// `index << level`; `None` when the source does not hold it.
    fn subtree(&self, level: u32, index: u64) -> Option<Hash>;
}

/// The largest power of two smaller than `n` (`n` ≥ 2): where RFC 9162 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of a complete tree of leaf hashes (its length a power of two).
pub(super) fn complete_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

/// `MTH(D[lo:hi])` for a range the RFC recursion produces (`lo` a multiple of the range's split);
/// `hi > lo`.
fn range_hash(source: &(impl Subtrees + ?Sized), lo: u64, hi: u64) -> Option<Hash> {
    let n = hi.checked_sub(lo).filter(|&n| n > 0)?;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return source.subtree(n.trailing_zeros(), lo >> n.trailing_zeros());
    }
    let k = split(n);
    Some(node_hash(
        &range_hash(source, lo, lo + k)?,
        &range_hash(source, lo + k, hi)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn tree_hash(source: &(impl Subtrees + ?Sized), size: u64) -> Option<Hash> {
    if size == 0 {
        return Some(EMPTY_ROOT);
    }
    range_hash(source, 0, size)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), leaf side
/// first; `None` when there is no such leaf or the source lacks a hash.
pub fn inclusion(source: &(impl Subtrees + ?Sized), index: u64, size: u64) -> Option<Vec<Hash>> {
    fn path(
        s: &(impl Subtrees + ?Sized),
        index: u64,
        lo: u64,
        hi: u64,
        out: &mut Vec<Hash>,
    ) -> Option<()> {
        if hi - lo <= 1 {
            return Some(());
        }
        let k = split(hi - lo);
        if index < lo + k {
            path(s, index, lo, lo + k, out)?;
            out.push(range_hash(s, lo + k, hi)?);
        } else {
            path(s, index, lo + k, hi, out)?;
            out.push(range_hash(s, lo, lo + k)?);
        }
        Some(())
    }
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    path(source, index, 0, size, &mut out)?;
    Some(out)
}

/// The proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves
/// (RFC 9162 §2.1.4.1); `None` unless `0 < old_size ≤ new_size`.
pub fn consistency(
    source: &(impl Subtrees + ?Sized),
    old_size: u64,
    new_size: u64,
) -> Option<Vec<Hash>> {
    fn subproof(
        s: &(impl Subtrees + ?Sized),
        m: u64,
        lo: u64,
        hi: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Option<()> {
        if m == hi {
            if !whole {
                out.push(range_hash(s, lo, hi)?);
            }
            return Some(());
        }
        let k = split(hi - lo);
        if m <= lo + k {
            subproof(s, m, lo, lo + k, whole, out)?;
            out.push(range_hash(s, lo + k, hi)?);
        } else {
            subproof(s, m, lo + k, hi, false, out)?;
            out.push(range_hash(s, lo, lo + k)?);
        }
        Some(())
    }
    if old_size == 0 || old_size > new_size {
        return None;
    }
    let mut out = Vec::new();
    subproof(source, old_size, 0, new_size, true, &mut out)?;
    Some(out)
}

/// A tree built by appending in index order, keeping only the right edge (one hash per level):
/// what a verifier walking millions of leaves needs, in O(log n) memory. Appends are leaves or
/// complete aligned subtrees (a stretch of the tree whose leaves are not at hand).
#[derive(Clone, Debug, Default)]
pub struct CompactRange {
    size: u64,
    /// Complete subtrees covering `[0, size)`, largest first, as (level, hash).
    edge: Vec<(u32, Hash)>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves it covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push_leaf(&mut self, leaf: Hash) {
        self.push_subtree(0, leaf);
    }

    /// Appends the complete subtree of `2^level` leaves starting at [`Self::size`], which must
    /// be a multiple of `2^level` (as [`Self::gap`] yields them).
    pub fn push_subtree(&mut self, level: u32, hash: Hash) {
        debug_assert_eq!(self.size % (1 << level), 0);
        self.size += 1 << level;
        let (mut level, mut hash) = (level, hash);
        while let Some(&(top_level, top)) = self.edge.last() {
            if top_level != level {
                break;
            }
            self.edge.pop();
            hash = node_hash(&top, &hash);
            level += 1;
        }
        self.edge.push((level, hash));
    }

    /// The root of the tree of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev().map(|(_, h)| *h);
        let Some(last) = hashes.next() else {
            return EMPTY_ROOT;
        };
        hashes.fold(last, |right, left| node_hash(&left, &right))
    }

    /// The complete aligned subtrees, as (level, index), that cover the leaves `[from, to)`:
    /// how a stretch without its leaves is described (at most two per level).
    pub fn gap(from: u64, to: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let mut level = if at == 0 { 63 } else { at.trailing_zeros() };
            while level > 0 && (1u64 << level > to - at) {
                level -= 1;
            }
            out.push((level, at >> level));
            at += 1 << level;
        }
        out
    }
}
