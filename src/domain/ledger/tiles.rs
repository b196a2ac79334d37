//! The tree as C2SP tlog-tiles keep it: tile `(L, N)` holds up to 256 hashes of tree level
//! `8·L` (leaf hashes at L = 0), those of indices `256·N …`. Any complete subtree's hash is
//! recomputed from at most 128 hashes of one tile, so tiles are all that is stored and proofs
//! never touch the events. A partial tile (the right edge) only ever grows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::proof::{complete_root, Subtrees};
use super::Hash;

/// Hashes per full tile (C2SP: tile height 8).
pub const TILE_WIDTH: usize = 256;
const HEIGHT: u32 = 8;

/// Which tile: its level and its index within the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileKey {
    pub level: u8,
    pub index: u64,
}

/// A tile as a reader names it: which one and how many hashes (1 to 256) of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub key: TileKey,
    pub width: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a tile path (tile/<L>/<N>[.p/<W>]): {0}")]
pub struct TilePathError(String);

impl Tile {
    /// Parses a C2SP tile path: `tile/<L>/<N>[.p/<W>]`, N in zero-padded 3-digit elements of
    /// which all but the last carry an `x` (`tile/0/x001/234.p/7`). Data tiles
    /// (`tile/entries/…`) are not served: events are read through the API.
    pub fn parse(path: &str) -> Result<Tile, TilePathError> {
        let bad = || TilePathError(path.chars().take(80).collect());
        let mut parts = path.split('/');
        if parts.next() != Some("tile") {
            return Err(bad());
        }
        let level = parts
            .next()
            .filter(|l| !l.is_empty() && l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u8>().ok())
            .filter(|&l| l < 8)
            .ok_or_else(bad)?;
        let rest: Vec<&str> = parts.collect();
        let (digits, width) = match rest.as_slice() {
            [.., last, w] if last.ends_with(".p") => {
                let width = w
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| (1..TILE_WIDTH).contains(&n) && n.to_string() == *w)
                    .ok_or_else(bad)?;
                let mut digits = rest[..rest.len() - 1].to_vec();
                let last = digits.len() - 1;
                digits[last] = &digits[last][..digits[last].len() - 2];
                (digits, width)
            }
            _ => (rest.clone(), TILE_WIDTH),
        };
        if digits.is_empty() || digits.len() > 7 {
            return Err(bad());
        }
        let mut index: u64 = 0;
        for (i, element) in digits.iter().enumerate() {
            let number = if i + 1 < digits.len() {
                element.strip_prefix('x').ok_or_else(bad)?
            } else {
                element
            };
            if number.len() != 3 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let value: u64 = number.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(value))
                .ok_or_else(bad)?;
        }
        Ok(Tile {
            key: TileKey { level, index },
            width,
        })
    }

    /// The C2SP path of this tile.
    pub fn path(&self) -> String {
        let mut elements = vec![format!("{:03}", self.key.index % 1000)];
        let mut rest = self.key.index / 1000;
        while rest > 0 {
            elements.push(format!("x{:03}", rest % 1000));
            rest /= 1000;
        }
        elements.reverse();
        let partial = if self.width < TILE_WIDTH {
            format!(".p/{}", self.width)
        } else {
            String::new()
        };
        format!("tile/{}/{}{partial}", self.key.level, elements.join("/"))
    }
}

/// The partial tiles at the right edge of a tree of `size` leaves: what appending to it
/// changes first (full tiles never change).
pub fn edge_tiles(size: u64) -> Vec<TileKey> {
    let mut out = Vec::new();
    let mut count = size;
    let mut level = 0u8;
    while count > 0 {
        if !count.is_multiple_of(TILE_WIDTH as u64) {
            out.push(TileKey {
                level,
                index: count / TILE_WIDTH as u64,
            });
        }
        count /= TILE_WIDTH as u64;
        level += 1;
    }
    out
}

/// Some tiles of one tree, in memory: enough to answer proofs, or the right edge the sealer
/// appends to.
#[derive(Clone, Debug, Default)]
pub struct TileSet {
    tiles: HashMap<TileKey, Vec<Hash>>,
    changed: BTreeSet<TileKey>,
}

impl TileSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: TileKey, hashes: Vec<Hash>) {
        self.tiles.insert(key, hashes);
    }

    pub fn remove(&mut self, key: &TileKey) {
        self.tiles.remove(key);
    }

    /// Takes a tile's hashes out of the set.
    pub fn take(&mut self, key: &TileKey) -> Option<Vec<Hash>> {
        self.tiles.remove(key)
    }

    pub fn get(&self, key: &TileKey) -> Option<&[Hash]> {
        self.tiles.get(key).map(Vec::as_slice)
    }

    /// The tiles a computation needs, each with how many of its first hashes it reads: runs it
    /// against a source that only notes what is asked.
    pub fn needed<T>(compute: impl FnOnce(&dyn Subtrees) -> T) -> Vec<Tile> {
        struct Noting(std::cell::RefCell<BTreeMap<TileKey, usize>>);
        impl Subtrees for Noting {
            fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
                let (key, range) = locate(level, index)?;
                let mut widths = self.0.borrow_mut();
                let width = widths.entry(key).or_default();
                *width = (*width).max(range.end);
                Some([0; 32])
            }
        }
        let noting = Noting(Default::default());
        compute(&noting);
        noting
            .0
            .into_inner()
            .into_iter()
            .map(|(key, width)| Tile { key, width })
            .collect()
    }

    /// Appends leaf hashes to the tree of `size` leaves whose edge tiles this set holds, carrying
    /// each tile that fills up into the level above. Returns the new size, or `None` when the
    /// set lacks an edge tile (nothing is appended then).
    pub fn append(&mut self, mut size: u64, leaves: &[Hash]) -> Option<u64> {
        let holds_edge = edge_tiles(size).iter().all(|key| {
            self.tiles.get(key).map(Vec::len)
                == Some((size >> (8 * u32::from(key.level))) as usize % TILE_WIDTH)
        });
        if !holds_edge {
            return None;
        }
        for leaf in leaves {
            let mut level = 0u8;
            let mut position = size;
            let mut hash = *leaf;
            loop {
                let key = TileKey {
                    level,
                    index: position / TILE_WIDTH as u64,
                };
                let tile = self.tiles.entry(key).or_default();
                tile.push(hash);
                self.changed.insert(key);
                if tile.len() < TILE_WIDTH {
                    break;
                }
                hash = complete_root(tile);
                position /= TILE_WIDTH as u64;
                level += 1;
            }
            size += 1;
        }
        Some(size)
    }

    /// The tiles [`Self::append`] changed, with their hashes, and forgets that they changed.
    pub fn take_changed(&mut self) -> Vec<(TileKey, &[Hash])> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .filter_map(|key| self.tiles.get(&key).map(|h| (key, h.as_slice())))
            .collect()
    }
}

/// Which tile holds what a subtree's hash is computed from, and which of its hashes.
fn locate(level: u32, index: u64) -> Option<(TileKey, std::ops::Range<usize>)> {
    let tile_level = u8::try_from(level / HEIGHT).ok()?;
    let within = level % HEIGHT;
    let first = index.checked_shl(within)?;
    let position = (first % TILE_WIDTH as u64) as usize;
    Some((
        TileKey {
            level: tile_level,
            index: first / TILE_WIDTH as u64,
        },
        position..position + (1 << within),
    ))
}

impl Subtrees for TileSet {
    fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
        let (key, range) = locate(level, index)?;
        let hashes = self.tiles.get(&key)?.get(range)?;
        Some(complete_root(hashes))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{consistency, consistency_proof, inclusion, inclusion_proof, leaf_hash};
    use super::super::{root, tree_hash};
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Proofs read from tiles (loaded as a proof asks for them) are those of the leaves
        /// themselves, at any size, leaf and older size, across tile boundaries.
        #[test]
        fn proofs_from_tiles_are_proofs_from_the_leaves(n in 1u64..3_000, a in 0u64..3_000, b in 1u64..3_000) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let mut all = TileSet::new();
            all.append(0, &leaves).unwrap();
            let (index, old) = (a % n, 1 + (b - 1) % n);
            let needed = TileSet::needed(|s| {
                let _ = (inclusion(s, index, n), consistency(s, old, n), tree_hash(s, n));
            });
            // Only the hashes each tile is said to be read up to.
            let mut loaded = TileSet::new();
            for tile in needed {
                loaded.insert(tile.key, all.get(&tile.key).unwrap()[..tile.width].to_vec());
            }
            prop_assert_eq!(inclusion(&loaded, index, n), inclusion_proof(&leaves, index as usize));
            prop_assert_eq!(consistency(&loaded, old, n), consistency_proof(&leaves, old as usize));
            prop_assert_eq!(tree_hash(&loaded, n), Some(root(&leaves)));
        }
    }

    #[test]
    fn paths_round_trip_as_c2sp_writes_them() {
        let tile = Tile::parse("tile/0/x001/x234/067.p/8").unwrap();
        assert_eq!(
            tile.key,
            TileKey {
                level: 0,
                index: 1_234_067
            }
        );
        assert_eq!(tile.width, 8);
        assert_eq!(tile.path(), "tile/0/x001/x234/067.p/8");
        assert_eq!(Tile::parse("tile/1/000").unwrap().width, 256);
        for bad in [
            "tile/0/1",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/x001",
            "tile/entries/000",
            "tile/0/001/002",
            "tile/0/../001",
            "tile/0/001.p/08",
            "tiles/0/001",
            "tile/9/000",
        ] {
            assert!(Tile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn appended_tiles_give_the_same_roots_as_the_leaves() {
        let leaves: Vec<Hash> = (0..70_000u32)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut tiles = TileSet::new();
        let mut size = 0;
        // Appended in uneven rounds, as the sealer does, reloading only the edge each time.
        for chunk in leaves.chunks(9_999) {
            let mut edge = TileSet::new();
            for key in edge_tiles(size) {
                edge.insert(key, tiles.get(&key).unwrap().to_vec());
            }
            size = edge.append(size, chunk).unwrap();
            for (key, hashes) in edge.take_changed() {
                tiles.insert(key, hashes.to_vec());
            }
            assert_eq!(tree_hash(&edge, size), Some(root(&leaves[..size as usize])));
        }
        for size in [1u64, 255, 256, 257, 65_535, 65_536, 65_537, 70_000] {
            assert_eq!(
                tree_hash(&tiles, size),
                Some(root(&leaves[..size as usize]))
            );
        }
    }
}
