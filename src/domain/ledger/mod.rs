//! The ledger's hashing, without I/O: an event's leaf (the RFC 8785 canonical JSON of the event
//! as the API returns it, its ledger index left out), leaf and node hashes as RFC 9162 (SHA-256
//! with a `0x00` or `0x01` prefix), the root of a tree of leaf hashes, and inclusion and
//! consistency proofs (RFC 9162 §2.1.3, §2.1.4) with their verification; the tiles the tree is
//! kept in (C2SP tlog-tiles) and the signed checkpoints (C2SP tlog-checkpoint, signed-note).
//! What stores them and how is the store's business.

use sha2::{Digest, Sha256};

use super::AuditEvent;

mod canonical;
mod checkpoint;
mod proof;
mod tiles;
mod verify;

pub use checkpoint::{
    checkpoint_origin, open_checkpoint, Checkpoint, CheckpointError, LedgerSigner, SignerKeyError,
};
pub use proof::{consistency, inclusion, tree_hash, CompactRange, Subtrees};
pub use tiles::{edge_tiles, Tile, TileKey, TilePathError, TileSet, TILE_WIDTH};
pub use verify::{
    leaf_bytes_of_json, ExportCheck, ExportLine, Finding, LedgerWalk, Verdict,
    EXPORT_CHECKPOINT_FIELD, EXPORT_GAP_FIELD, EXPORT_INDEX_FIELD, EXPORT_LEAF_FIELD,
};

/// A stored event with its place in its tenant's ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    pub index: u64,
    pub event: AuditEvent,
}

/// A SHA-256 hash: of a leaf, of a node, or a tree's root.
pub type Hash = [u8; 32];

/// The root of the empty tree, `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The bytes an event is committed to the ledger as: every field the API returns (`recordedBy`
/// as null where the event has none; `group`, `crud`, `actor.href` and `target.href`, added
/// later, only where the event has them), canonicalized by RFC 8785.
pub fn leaf_bytes(event: &AuditEvent) -> Result<Vec<u8>, serde_json::Error> {
    Ok(leaf_bytes_of_json(serde_json::to_value(event)?))
}

/// A hash as the API, exports and C2SP notes write it: standard base64.
pub fn encode_hash(hash: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// A hash written by [`encode_hash`]; `None` for anything else.
pub fn decode_hash(text: &str) -> Option<Hash> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?
        .try_into()
        .ok()
}

/// RFC 9162 §2.1.1: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// RFC 9162 §2.1.1: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The Merkle tree hash of `leaves` (leaf hashes in index order); of no leaves, `SHA-256("")`.
pub fn root(leaves: &[Hash]) -> Hash {
    proof::tree_hash(&Leaves(leaves), leaves.len() as u64).unwrap_or(EMPTY_ROOT)
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1), leaf side first;
/// `None` when there is no such leaf.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    proof::inclusion(&Leaves(leaves), index as u64, leaves.len() as u64)
}

/// The proof that the tree of the first `old_size` leaves is a prefix of the tree of `leaves`
/// (RFC 9162 §2.1.4.1); `None` unless `0 < old_size ≤ leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    proof::consistency(&Leaves(leaves), old_size as u64, leaves.len() as u64)
}

/// Leaf hashes in memory as a [`Subtrees`] source.
struct Leaves<'a>(&'a [Hash]);

impl Subtrees for Leaves<'_> {
    fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
        let width = 1usize.checked_shl(level)?;
        let first = usize::try_from(index).ok()?.checked_mul(width)?;
        let leaves = self.0.get(first..first.checked_add(width)?)?;
        Some(proof::complete_root(leaves))
    }
}

/// Whether `proof` shows the leaf with hash `leaf` at `index` in the tree of `size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows the tree of `old_size` leaves with root `old_root` to be a prefix of
/// the tree of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use ct_merkle::{ConsistencyProof, InclusionProof};
    use proptest::prelude::*;
    use sha2_for_tests::Sha256 as OtherSha256;

    use super::*;

    fn leaves(n: usize) -> (Vec<Vec<u8>>, Vec<Hash>) {
        let data: Vec<Vec<u8>> = (0..n).map(|i| format!("event {i}").into_bytes()).collect();
        let hashes = data.iter().map(|d| leaf_hash(d)).collect();
        (data, hashes)
    }

    fn other_tree(data: &[Vec<u8>]) -> MemoryBackedTree<OtherSha256, Vec<u8>> {
        let mut tree = MemoryBackedTree::new();
        for d in data {
            tree.push(d.clone());
        }
        tree
    }

    #[test]
    fn the_empty_tree_and_a_known_vector() {
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962's test vector: the leaf hash of the empty leaf.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Roots and proofs agree with an independent implementation (ct-merkle), and each
        /// side's proofs verify with the other's code.
        #[test]
        fn agrees_with_an_independent_implementation(n in 1usize..70, a in 0usize..70, b in 1usize..70) {
            let (data, hashes) = leaves(n);
            let other = other_tree(&data);
            let ours = root(&hashes);
            let their_bytes = other.root().as_bytes().to_vec();
            prop_assert_eq!(their_bytes.as_slice(), ours.as_slice());

            let index = a % n;
            let proof = inclusion_proof(&hashes, index).unwrap();
            prop_assert!(verify_inclusion(&hashes[index], index as u64, n as u64, &proof, &ours));
            let theirs = other.prove_inclusion(index);
            let flat = proof.concat();
            prop_assert_eq!(theirs.as_bytes(), flat.as_slice());
            let their_root = other.root();
            let ours_as_theirs = InclusionProof::<OtherSha256>::from_bytes(proof.concat());
            prop_assert!(their_root.verify_inclusion(&data[index], index as u64, &ours_as_theirs).is_ok());

            let old = 1 + (b - 1) % n;
            let consistency = consistency_proof(&hashes, old).unwrap();
            let old_root = root(&hashes[..old]);
            prop_assert!(verify_consistency(old as u64, n as u64, &old_root, &ours, &consistency));
            if old < n {
                let old_other = other_tree(&data[..old]);
                let theirs = ConsistencyProof::<OtherSha256>::try_from_bytes(consistency.concat()).unwrap();
                prop_assert!(their_root.verify_consistency(&old_other.root(), &theirs).is_ok());
                let theirs = other.prove_consistency(n - old);
                let flat = consistency.concat();
                prop_assert_eq!(theirs.as_bytes(), flat.as_slice());
            }
        }

        /// A changed leaf, index, size or proof hash never verifies.
        #[test]
        fn tampering_never_verifies(n in 2usize..50, a in 0usize..50, flip in 0usize..32) {
            let (_, hashes) = leaves(n);
            let tree_root = root(&hashes);
            let index = a % n;
            let proof = inclusion_proof(&hashes, index).unwrap();
            let mut forged = hashes[index];
            forged[flip] ^= 1;
            prop_assert!(!verify_inclusion(&forged, index as u64, n as u64, &proof, &tree_root));
            let other = (index + 1) % n;
            prop_assert!(!verify_inclusion(&hashes[index], other as u64, n as u64, &proof, &tree_root));
            if let Some((first, _)) = proof.split_first() {
                let mut bad = proof.clone();
                bad[0] = { let mut h = *first; h[flip] ^= 1; h };
                prop_assert!(!verify_inclusion(&hashes[index], index as u64, n as u64, &bad, &tree_root));
            }
            let old = 1 + index % (n - 1);
            let consistency = consistency_proof(&hashes, old).unwrap();
            let mut old_root = root(&hashes[..old]);
            old_root[flip] ^= 1;
            prop_assert!(!verify_consistency(old as u64, n as u64, &old_root, &tree_root, &consistency));
        }
    }

    #[test]
    fn a_leaf_is_the_canonical_api_json_without_the_index() {
        let event: AuditEvent = serde_json::from_value(serde_json::json!({
            "id": "0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b", "tenant": "acme",
            "occurredAt": "2026-01-02T03:04:05.120Z", "receivedAt": "2026-01-02T03:04:06Z",
            "action": "invoice.paid", "outcome": "SUCCESS", "severity": "INFO", "service": "billing",
            "actor": { "id": "u1", "type": "user", "name": null, "ip": null },
            "target": null, "message": "paid", "metadata": { "b": 1.5, "a": [true, "x"] },
            "idempotencyKey": null, "requestId": null, "traceId": null
        }))
        .unwrap();
        let bytes = String::from_utf8(leaf_bytes(&event).unwrap()).unwrap();
        // Keys sorted, no whitespace, recordedBy present as null, timestamps as the API writes them.
        assert_eq!(
            bytes,
            r#"{"action":"invoice.paid","actor":{"id":"u1","ip":null,"name":null,"type":"user"},"id":"0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b","idempotencyKey":null,"message":"paid","metadata":{"a":[true,"x"],"b":1.5},"occurredAt":"2026-01-02T03:04:05.120Z","outcome":"SUCCESS","receivedAt":"2026-01-02T03:04:06Z","recordedBy":null,"requestId":null,"service":"billing","severity":"INFO","target":null,"tenant":"acme","traceId":null}"#
        );
    }

    #[test]
    fn fields_added_later_are_in_a_leaf_only_where_the_event_has_them() {
        let api_json = |extra: serde_json::Value| {
            let mut event = serde_json::json!({
                "id": "0190b2b4-8d4e-7c3a-9b1e-1c2d3e4f5a6b", "tenant": "acme",
                "occurredAt": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:06Z",
                "action": "invoice.paid", "outcome": "SUCCESS", "severity": "INFO",
                "service": "billing",
                "actor": { "id": "u1", "type": "user", "name": null, "ip": null, "href": null },
                "target": { "id": "i1", "type": "invoice", "name": null, "href": null },
                "message": null, "metadata": null, "idempotencyKey": null, "requestId": null,
                "traceId": null, "recordedBy": null, "group": null, "crud": null
            });
            for (key, value) in extra.as_object().unwrap() {
                event[key] = value.clone();
            }
            event
        };
        // As the API returns an event without them (nulls): the leaf an earlier event had.
        let plain: AuditEvent = serde_json::from_value(api_json(serde_json::json!({}))).unwrap();
        let leaf = String::from_utf8(leaf_bytes(&plain).unwrap()).unwrap();
        assert!(!leaf.contains("group") && !leaf.contains("crud") && !leaf.contains("href"));
        assert_eq!(
            leaf_bytes_of_json(api_json(serde_json::json!({}))),
            leaf.as_bytes()
        );
        // With them: in the leaf, and the API's JSON gives the same leaf.
        let full = api_json(serde_json::json!({
            "group": { "id": "org_1", "name": null }, "crud": "U",
            "actor": { "id": "u1", "type": "user", "name": null, "ip": null, "href": "/u/1" },
        }));
        let event: AuditEvent = serde_json::from_value(full.clone()).unwrap();
        let leaf = String::from_utf8(leaf_bytes(&event).unwrap()).unwrap();
        assert!(
            leaf.contains(r#""group":{"id":"org_1","name":null}"#),
            "{leaf}"
        );
        assert!(leaf.contains(r#""crud":"U""#) && leaf.contains(r#""href":"/u/1""#));
        assert_eq!(leaf_bytes_of_json(full), leaf.as_bytes());
    }
}
