//! Reading and proving the ledger: checkpoints, the keys that sign them, inclusion and
//! consistency proofs, tiles. Proofs are computed from the stored tiles, never from the events,
//! against a tree size the sealer has reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ApiError;
use crate::domain::ledger::{
    consistency, inclusion, tree_hash, Hash, Subtrees, Tile, TileKey, TileSet,
};
use crate::store::{Store, StoreError, StoredCheckpoint};

/// Checkpoints served in one page at most.
pub const MAX_CHECKPOINT_PAGE: usize = 100;

/// A key that signs (or signed) checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerKey {
    pub verifier_key: String,
    pub first_used: DateTime<Utc>,
    /// Whether it is the newest: the one that signs from now on.
    pub current: bool,
}

/// An inclusion proof with what it is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub event_id: Uuid,
    pub index: u64,
    pub tree_size: u64,
    /// The leaf hash as sealed.
    pub leaf_hash: Hash,
    pub root: Hash,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint of this tree size, when one was signed at it.
    pub checkpoint: Option<StoredCheckpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub to_size: u64,
    pub from_root: Hash,
    pub to_root: Hash,
    pub hashes: Vec<Hash>,
}

/// How long the list of keys is served from memory: `GET /ledger/key` needs no credentials, so
/// a flood of it must not become a flood of queries.
const KEYS_FRESH_FOR: Duration = Duration::from_secs(5);

/// How many tiles (8 KiB each when full) the proofs keep in memory. A tile's hashes never
/// change once sealed (a partial tile only grows), so a kept copy serves every later proof that
/// reads no more of it than it holds: proofs of a growing tree share its upper tiles.
const KEPT_TILES: usize = 2048;

#[derive(Clone)]
pub struct Ledger {
    store: Store,
    keys: Arc<Mutex<Option<KeysRead>>>,
    tiles: Arc<KeptTiles>,
}

/// Tiles by tenant and key, with the hashes read of each.
type KeptTiles = quick_cache::sync::Cache<(String, TileKey), Arc<[Hash]>>;

/// The list of keys, and when it was read.
type KeysRead = (Instant, Vec<LedgerKey>);

impl Ledger {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            keys: Arc::default(),
            tiles: Arc::new(KeptTiles::new(KEPT_TILES)),
        }
    }

    pub async fn latest_checkpoint(
        &self,
        tenant: &str,
    ) -> Result<Option<StoredCheckpoint>, ApiError> {
        Ok(self.store.latest_checkpoint(tenant).await?)
    }

    /// Up to `first` (at most [`MAX_CHECKPOINT_PAGE`]) checkpoints in size order after the
    /// size `after`, and whether more follow.
    pub async fn checkpoints(
        &self,
        tenant: &str,
        first: usize,
        after: Option<u64>,
    ) -> Result<(Vec<StoredCheckpoint>, bool), ApiError> {
        if first == 0 || first > MAX_CHECKPOINT_PAGE {
            return Err(ApiError::bad_input(
                "first",
                format!("must be between 1 and {MAX_CHECKPOINT_PAGE}"),
            ));
        }
        let mut page = self
            .store
            .checkpoints(tenant, after, first as i64 + 1)
            .await?;
        let more = page.len() > first;
        page.truncate(first);
        Ok((page, more))
    }

    /// Every key that ever signed, oldest first; the newest is current. At most a few seconds
    /// old (a rotation shows within [`KEYS_FRESH_FOR`]).
    pub async fn keys(&self) -> Result<Vec<LedgerKey>, ApiError> {
        if let Some((at, keys)) = &*self.keys.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < KEYS_FRESH_FOR {
                return Ok(keys.clone());
            }
        }
        let keys = self.store.ledger_keys().await?;
        let newest = keys.len().saturating_sub(1);
        let keys: Vec<LedgerKey> = keys
            .into_iter()
            .enumerate()
            .map(|(i, (verifier_key, first_used))| LedgerKey {
                verifier_key,
                first_used,
                current: i == newest,
            })
            .collect();
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// The ledger index of each of these events that is stored (events on the live feed may
    /// not be yet).
    pub async fn indices(&self, tenant: &str, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, ApiError> {
        Ok(self.store.ledger_indices(tenant, ids).await?)
    }

    /// The proof that the event is in the tree of `tree_size` leaves (the latest checkpoint's
    /// when not given).
    pub async fn inclusion_proof(
        &self,
        tenant: &str,
        event_id: Uuid,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, ApiError> {
        // The event's index, the sealed size and the checkpoint come in one query.
        let start = self
            .store
            .proof_start(tenant, event_id, tree_size)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no stored event {event_id}")))?;
        let index = start.index;
        let (size, checkpoint) = match tree_size {
            None => {
                let latest = start
                    .checkpoint
                    .ok_or_else(|| ApiError::NotFound("the ledger has no checkpoint yet".into()))?;
                (latest.size, Some(latest))
            }
            Some(size) if size == 0 || size > start.sealed => {
                return Err(ApiError::bad_input(
                    "treeSize",
                    format!(
                        "must be between 1 and the sealed tree size {}",
                        start.sealed
                    ),
                ))
            }
            Some(size) => (size, start.checkpoint.filter(|c| c.size == size)),
        };
        if index >= size {
            return Err(ApiError::bad_input(
                "treeSize",
                format!(
                    "event {event_id} has ledger index {index}, not in a tree of {size}: wait \
                     for the next checkpoint or ask for a larger tree"
                ),
            ));
        }
        // A signed tree's root is its checkpoint's: only the proof's own tiles are read.
        let signed_root = checkpoint.as_ref().map(|c| c.root);
        let tiles = self
            .tiles_for(tenant, |s| {
                let _ = (inclusion(s, index, size), s.subtree(0, index));
                if signed_root.is_none() {
                    let _ = tree_hash(s, size);
                }
            })
            .await?;
        let missing = || {
            tracing::error!(tenant, index, size, "ledger tiles are missing for a proof");
            ApiError::Internal
        };
        let root = match signed_root {
            Some(root) => root,
            None => tree_hash(&tiles, size).ok_or_else(missing)?,
        };
        Ok(InclusionProof {
            event_id,
            index,
            tree_size: size,
            leaf_hash: tiles.subtree(0, index).ok_or_else(missing)?,
            root,
            hashes: inclusion(&tiles, index, size).ok_or_else(missing)?,
            checkpoint,
        })
    }

    /// The proof that the tree of `from_size` leaves is a prefix of that of `to_size` (the
    /// latest checkpoint's when not given).
    pub async fn consistency_proof(
        &self,
        tenant: &str,
        from_size: u64,
        to_size: Option<u64>,
    ) -> Result<ConsistencyProof, ApiError> {
        let (to, _) = self.tree_at(tenant, to_size, "toSize").await?;
        if from_size == 0 || from_size > to {
            return Err(ApiError::bad_input(
                "fromSize",
                format!("must be between 1 and the tree size {to}"),
            ));
        }
        let tiles = self
            .tiles_for(tenant, |s| {
                let _ = (
                    consistency(s, from_size, to),
                    tree_hash(s, from_size),
                    tree_hash(s, to),
                );
            })
            .await?;
        let missing = || {
            tracing::error!(
                tenant,
                from_size,
                to,
                "ledger tiles are missing for a proof"
            );
            ApiError::Internal
        };
        Ok(ConsistencyProof {
            from_size,
            to_size: to,
            from_root: tree_hash(&tiles, from_size).ok_or_else(missing)?,
            to_root: tree_hash(&tiles, to).ok_or_else(missing)?,
            hashes: consistency(&tiles, from_size, to).ok_or_else(missing)?,
        })
    }

    /// A tile's bytes (its hashes, concatenated) as C2SP tlog-tiles serves it: `None` when the
    /// tree has not grown that far.
    pub async fn tile(&self, tenant: &str, tile: Tile) -> Result<Option<Vec<u8>>, ApiError> {
        let tiles = self.store.ledger_tiles(tenant, [tile.key]).await?;
        Ok(tiles
            .get(&tile.key)
            .filter(|hashes| hashes.len() >= tile.width)
            .map(|hashes| hashes[..tile.width].concat()))
    }

    /// The tree of `size` leaves (checked against what is sealed) with its checkpoint if one
    /// was signed at that size; or, without a size, the newest checkpoint's tree.
    async fn tree_at(
        &self,
        tenant: &str,
        size: Option<u64>,
        field: &str,
    ) -> Result<(u64, Option<StoredCheckpoint>), ApiError> {
        let Some(size) = size else {
            let latest = self
                .store
                .latest_checkpoint(tenant)
                .await?
                .ok_or_else(|| ApiError::NotFound("the ledger has no checkpoint yet".into()))?;
            return Ok((latest.size, Some(latest)));
        };
        let sealed = self.store.sealed_size(tenant).await?;
        if size == 0 || size > sealed {
            return Err(ApiError::bad_input(
                field,
                format!("must be between 1 and the sealed tree size {sealed}"),
            ));
        }
        Ok((size, self.store.checkpoint_of_size(tenant, size).await?))
    }

    /// The tiles `compute` reads: those kept from earlier proofs, the rest loaded in one query
    /// (and kept).
    async fn tiles_for(
        &self,
        tenant: &str,
        compute: impl FnOnce(&dyn Subtrees),
    ) -> Result<TileSet, ApiError> {
        let mut tiles = TileSet::new();
        let mut absent = Vec::new();
        for tile in TileSet::needed(compute) {
            match self.tiles.get(&(tenant.to_owned(), tile.key)) {
                Some(kept) if kept.len() >= tile.width => {
                    tiles.insert(tile.key, kept[..tile.width].to_vec())
                }
                _ => absent.push(tile.key),
            }
        }
        if !absent.is_empty() {
            let mut loaded = self
                .store
                .ledger_tiles(tenant, absent.iter().copied())
                .await?;
            for key in absent {
                if let Some(hashes) = loaded.take(&key) {
                    self.tiles
                        .insert((tenant.to_owned(), key), Arc::from(hashes.as_slice()));
                    tiles.insert(key, hashes);
                }
            }
        }
        Ok(tiles)
    }
}

/// A tenant's sealed hashes read in index order, holding one tile per level: what a walk over
/// millions of leaves (an export with proofs, a verification) needs, one query per tile.
pub struct TileCursor<'a> {
    store: &'a Store,
    tenant: &'a str,
    tiles: TileSet,
    held: HashMap<u8, TileKey>,
}

impl<'a> TileCursor<'a> {
    pub fn new(store: &'a Store, tenant: &'a str) -> Self {
        Self {
            store,
            tenant,
            tiles: TileSet::new(),
            held: HashMap::new(),
        }
    }

    /// The sealed hash of the complete subtree `(level, index)`.
    pub async fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, StoreError> {
        if let Some(hash) = self.tiles.subtree(level, index) {
            return Ok(hash);
        }
        let keys: Vec<TileKey> = TileSet::needed(|s| {
            let _ = s.subtree(level, index);
        })
        .into_iter()
        .map(|tile| tile.key)
        .collect();
        let mut loaded = self
            .store
            .ledger_tiles(self.tenant, keys.iter().copied())
            .await?;
        for key in keys {
            if let Some(old) = self.held.insert(key.level, key) {
                self.tiles.remove(&old);
            }
            if let Some(hashes) = loaded.take(&key) {
                self.tiles.insert(key, hashes);
            }
        }
        self.tiles
            .subtree(level, index)
            .ok_or_else(|| StoreError::Corrupt {
                id: Uuid::nil(),
                reason: format!(
                    "tenant {}: the ledger tiles lack the hash of subtree {level}/{index}",
                    self.tenant
                ),
            })
    }
}
