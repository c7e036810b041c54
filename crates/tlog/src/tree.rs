//! The append-only Merkle tree of one log (RFC 6962 / RFC 9162 hashing): every stored hash kept
//! in order (Crosby–Wallach layout, as Go's `tlog` and the C2SP `tlog-tiles` do), roots at any
//! size, inclusion and consistency proofs, and the tiles that keep the hashes outside the process.
//! The arithmetic is Cloudflare's `tlog_tiles` (a port of Go's `golang.org/x/mod/sumdb/tlog`).

use tlog_tiles::{HashReader, Tile};

use crate::error::{Error, ErrorKind, Result};
use tlog_tiles::Hash;

/// Tile height of the C2SP `tlog-tiles` layout: 256 hashes per full tile.
pub const TILE_HEIGHT: u8 = 8;

/// A log's tree: its size and the hashes it stored — every one, unless [`Tree::forget`] let the
/// lower levels of a part go once its tiles were written elsewhere.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    size: u64,
    /// The stored hashes from index `base` on, in order.
    hashes: Vec<Hash>,
    /// Index of the first hash in `hashes`: every hash before it at a level below
    /// [`TILE_HEIGHT`] is forgotten.
    base: u64,
    /// Leaves whose lower hashes are forgotten (a multiple of the tile width).
    forgotten: u64,
    /// The hashes before `base` at levels [`TILE_HEIGHT`] and up (one for every 128 leaves):
    /// what roots, appends and the upper tiles still read.
    upper: std::collections::BTreeMap<u64, Hash>,
}

/// Reads stored hashes from the tree's memory.
struct Reader<'a>(&'a Tree);

impl HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let t = self.0;
        indexes
            .iter()
            .map(|&i| {
                let found = match i.checked_sub(t.base) {
                    Some(at) => usize::try_from(at).ok().and_then(|at| t.hashes.get(at)),
                    None => t.upper.get(&i),
                };
                found.copied().ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn out_of_range(e: tlog_tiles::Error) -> Error {
    Error::new(ErrorKind::OutOfRange, e.to_string())
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves it holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf by its hash (`Leaf::hash`) and returns its index.
    pub fn push(&mut self, leaf: Hash) -> Result<u64> {
        let n = self.size;
        let new = tlog_tiles::stored_hashes_for_record_hash(n, leaf, &Reader(self))
            .map_err(out_of_range)?;
        self.hashes.extend(new);
        self.size += 1;
        Ok(n)
    }

    /// The root hash of the whole tree.
    pub fn root(&self) -> Hash {
        // The tree holds every hash its own size needs.
        self.root_at(self.size).unwrap_or(tlog_tiles::EMPTY_HASH)
    }

    /// The root hash the tree had at `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        if size > self.size {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!("the tree holds {} leaves, not {size}", self.size),
            ));
        }
        tlog_tiles::tree_hash(size, &Reader(self)).map_err(out_of_range)
    }

    /// The hash of the leaf at `index`.
    pub fn leaf(&self, index: u64) -> Result<Hash> {
        if index >= self.size {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!("no leaf {index} in a tree of {}", self.size),
            ));
        }
        let i = tlog_tiles::stored_hash_index(0, index);
        Reader(self)
            .read_hashes(&[i])
            .map_err(out_of_range)
            .map(|h| h[0])
    }

    /// The inclusion proof of the leaf at `index` in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        if size > self.size {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!("the tree holds {} leaves, not {size}", self.size),
            ));
        }
        tlog_tiles::prove_record(size, index, &Reader(self)).map_err(out_of_range)
    }

    /// The consistency proof that the tree of `new` leaves extends the tree of `old` leaves.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        if new > self.size || old > new {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "no consistency proof from {old} to {new} leaves in a tree of {}",
                    self.size
                ),
            ));
        }
        if old == 0 {
            // Every tree extends the empty one.
            return Ok(Vec::new());
        }
        tlog_tiles::prove_tree(new, old, &Reader(self)).map_err(out_of_range)
    }

    /// The C2SP `tlog-tiles` tiles that growing from `old` to `new` leaves wrote or completed, as
    /// (path, bytes): `tile/<L>/<N>[.p/<W>]`, each a run of 32-byte hashes.
    pub fn tiles(&self, old: u64, new: u64) -> Result<Vec<(String, Vec<u8>)>> {
        if new > self.size || old > new {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "no tiles from {old} to {new} leaves in a tree of {}",
                    self.size
                ),
            ));
        }
        Tile::new_tiles(TILE_HEIGHT, old, new)
            .into_iter()
            .map(|t| {
                let data = t.read_data(&Reader(self)).map_err(out_of_range)?;
                Ok((c2sp_path(&t), data))
            })
            .collect()
    }

    /// Let go of the hashes below [`TILE_HEIGHT`] of every full tile of leaves before `below`
    /// (rounded down to a tile), keeping those above, which roots, appends and the upper tiles
    /// read: memory then grows by about 0.3 bytes a leaf instead of 64. Call it only for leaves
    /// whose tiles are stored elsewhere ([`Tree::tiles`]); after it, roots and proofs that
    /// need a forgotten hash are `OutOfRange`.
    pub fn forget(&mut self, below: u64) {
        let width = 1u64 << TILE_HEIGHT;
        let until = (below.min(self.size) / width) * width;
        if until <= self.forgotten {
            return;
        }
        let new_base = tlog_tiles::stored_hash_index(0, until);
        for n in self.forgotten..until {
            let start = tlog_tiles::stored_hash_index(0, n);
            let run = tlog_tiles::stored_hash_index(0, n + 1) - start;
            for level in u64::from(TILE_HEIGHT)..run {
                let i = start + level;
                if let Some(h) = usize::try_from(i - self.base)
                    .ok()
                    .and_then(|at| self.hashes.get(at))
                {
                    self.upper.insert(i, *h);
                }
            }
        }
        let drop = usize::try_from(new_base - self.base).unwrap_or(self.hashes.len());
        self.hashes.drain(..drop.min(self.hashes.len()));
        self.base = new_base;
        self.forgotten = until;
    }

    /// Hashes held in memory.
    pub fn hashes_held(&self) -> usize {
        self.hashes.len() + self.upper.len()
    }

    /// Rebuilds a tree from the contents of its level-0 tiles ([`leaf_tiles`]) in order.
    pub fn from_leaf_tiles(data: &[u8]) -> Result<Self> {
        if !data.len().is_multiple_of(32) {
            return Err(Error::malformed(
                "tile data is not a whole number of hashes",
            ));
        }
        Self::from_leaves(data.chunks_exact(32).map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        }))
    }

    /// Rebuilds a tree from its leaf hashes in order (as the level-0 tiles hold them).
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Result<Self> {
        let mut tree = Self::new();
        for h in leaves {
            tree.push(h)?;
        }
        Ok(tree)
    }
}

/// `tlog_tiles` writes Go's sumdb path, with the height; C2SP leaves it out.
fn c2sp_path(t: &Tile) -> String {
    let path = t.path();
    match path.strip_prefix(&format!("tile/{TILE_HEIGHT}/")) {
        Some(rest) => format!("tile/{rest}"),
        None => path,
    }
}

/// The paths of the level-0 tiles (the leaf hashes, 256 to a full tile) of a tree of `size`
/// leaves, in order.
pub fn leaf_tiles(size: u64) -> Vec<String> {
    Tile::new_tiles(TILE_HEIGHT, 0, size)
        .iter()
        .filter(|t| t.level() == 0)
        .map(c2sp_path)
        .collect()
}

/// Checks that `proof` shows the leaf hashed `leaf` at `index` in the tree of `size` leaves whose
/// root is `root`.
pub fn verify_inclusion(
    proof: &[Hash],
    index: u64,
    leaf: Hash,
    size: u64,
    root: Hash,
) -> Result<()> {
    if index >= size {
        return Err(Error::invalid(format!(
            "leaf {index} is not in a tree of {size}"
        )));
    }
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).map_err(|_| {
        Error::invalid(format!(
            "the inclusion proof of leaf {index} does not lead to the root of the tree of {size}"
        ))
    })
}

/// Checks that `proof` shows the tree of `new` leaves (root `new_root`) extends the tree of `old`
/// leaves (root `old_root`): nothing in the old tree was changed, removed or reordered.
pub fn verify_consistency(
    proof: &[Hash],
    old: u64,
    old_root: Hash,
    new: u64,
    new_root: Hash,
) -> Result<()> {
    let fail = || {
        Error::invalid(format!(
            "the tree of {new} leaves is not an extension of the tree of {old} leaves"
        ))
    };
    if old > new {
        return Err(fail());
    }
    if old == 0 {
        return if proof.is_empty() && old_root == tlog_tiles::EMPTY_HASH {
            Ok(())
        } else {
            Err(fail())
        };
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(fail())
        };
    }
    tlog_tiles::check_tree(&proof.to_vec(), new, new_root, old, old_root).map_err(|_| fail())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h(s: &str) -> Hash {
        Hash(unhex(s).try_into().unwrap())
    }

    // The Certificate Transparency reference leaves and tree heads (RFC 6962 test vectors, as
    // published with transparency-dev/merkle and Google's CT implementations).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference() -> Tree {
        Tree::from_leaves(LEAVES.iter().map(|l| tlog_tiles::record_hash(&unhex(l)))).unwrap()
    }

    #[test]
    fn a_tree_that_forgets_its_stored_tiles_answers_as_the_whole_tree_in_bounded_memory() {
        let leaf = |i: u64| tlog_tiles::record_hash(&i.to_be_bytes());
        let (mut whole, mut lean) = (Tree::new(), Tree::new());
        let mut checkpoint = 0;
        let mut most = 0;
        for i in 0..5_000u64 {
            whole.push(leaf(i)).unwrap();
            lean.push(leaf(i)).unwrap();
            // A checkpoint every 301 leaves, as the sealer takes them: tiles, root, a proof
            // from the previous checkpoint, then what is stored is forgotten.
            if i % 301 == 300 {
                let size = lean.size();
                assert_eq!(
                    lean.tiles(checkpoint, size).unwrap(),
                    whole.tiles(checkpoint, size).unwrap()
                );
                assert_eq!(lean.root(), whole.root());
                assert_eq!(
                    lean.consistency(checkpoint, size).unwrap(),
                    whole.consistency(checkpoint, size).unwrap()
                );
                lean.forget(size);
                checkpoint = size;
                most = most.max(lean.hashes_held());
            }
        }
        assert_eq!(lean.root(), whole.root());
        assert_eq!(lean.size(), 5_000);
        // The whole tree holds about two hashes a leaf; the lean one the open tiles' and one
        // for every 128 leaves.
        assert!(whole.hashes_held() > 9_900, "{}", whole.hashes_held());
        assert!(most < 2 * 512 + 5_000 / 100, "{most}");
        // What was forgotten is out of range, not wrong.
        let e = lean.consistency(100, 5_000).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert_eq!(
            lean.consistency(4_816, 5_000).unwrap(),
            whole.consistency(4_816, 5_000).unwrap()
        );
    }

    #[test]
    fn roots_are_the_rfc_6962_reference_roots() {
        let t = reference();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(t.root_at(n as u64).unwrap(), h(want), "size {n}");
        }
        assert_eq!(t.root(), h(ROOTS[8]));
    }

    #[test]
    fn proofs_are_the_reference_proofs() {
        let t = reference();
        // Inclusion of leaf 0 and leaf 5 in the tree of 8 (RFC 6962 reference paths).
        let p0 = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        let p5 = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(t.inclusion(0, 8).unwrap(), p0.map(h).to_vec());
        assert_eq!(t.inclusion(5, 8).unwrap(), p5.map(h).to_vec());
        // Consistency from 2 to 8: the sibling subtrees' hashes.
        let c = t.consistency(2, 8).unwrap();
        assert_eq!(c[..2], [p0[1], p0[2]].map(h));
        verify_consistency(&c, 2, h(ROOTS[2]), 8, h(ROOTS[8])).unwrap();
    }

    #[test]
    fn every_proof_of_every_size_verifies_and_a_changed_one_does_not() {
        let mut t = Tree::new();
        let leaves: Vec<Hash> = (0u32..70)
            .map(|i| tlog_tiles::record_hash(&i.to_be_bytes()))
            .collect();
        for l in &leaves {
            t.push(*l).unwrap();
        }
        for size in 1..=70u64 {
            let root = t.root_at(size).unwrap();
            for i in 0..size {
                let p = t.inclusion(i, size).unwrap();
                verify_inclusion(&p, i, leaves[i as usize], size, root).unwrap();
                assert!(
                    verify_inclusion(&p, i, leaves[(i as usize + 1) % 70], size, root).is_err()
                );
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0].0[0] ^= *first.0.first().unwrap() | 1;
                    assert!(verify_inclusion(&bad, i, leaves[i as usize], size, root).is_err());
                }
            }
            for old in 0..=size {
                let p = t.consistency(old, size).unwrap();
                let old_root = t.root_at(old).unwrap();
                verify_consistency(&p, old, old_root, size, root).unwrap();
                if old > 0 && old < size {
                    // A different old tree (one leaf changed) is not extended by this one.
                    let mut other = leaves[..old as usize].to_vec();
                    other[0].0[5] ^= 1;
                    let other_root = Tree::from_leaves(other).unwrap().root();
                    assert!(verify_consistency(&p, old, other_root, size, root).is_err());
                }
            }
        }
    }

    #[test]
    fn tiles_hold_the_leaf_hashes_and_rebuild_the_tree() {
        let mut t = Tree::new();
        for i in 0u32..600 {
            t.push(tlog_tiles::record_hash(&i.to_be_bytes())).unwrap();
        }
        let tiles = t.tiles(0, 600).unwrap();
        let paths: Vec<&str> = tiles.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tile/0/000",
                "tile/0/001",
                "tile/0/002.p/88",
                "tile/1/000.p/2"
            ]
        );
        let level0: Vec<Hash> = tiles[..3]
            .iter()
            .flat_map(|(_, d)| {
                d.chunks(32)
                    .map(|c| Hash(c.try_into().unwrap()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(Tree::from_leaves(level0).unwrap().root(), t.root());
        assert_eq!(
            leaf_tiles(600),
            ["tile/0/000", "tile/0/001", "tile/0/002.p/88"]
        );
        let data: Vec<u8> = tiles[..3].iter().flat_map(|(_, d)| d.clone()).collect();
        assert_eq!(Tree::from_leaf_tiles(&data).unwrap().root(), t.root());
        assert!(Tree::from_leaf_tiles(&data[1..]).is_err());
        // Growing by a few leaves rewrites only the partial tiles.
        t.push(tlog_tiles::record_hash(b"more")).unwrap();
        let paths: Vec<String> = t
            .tiles(600, 601)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["tile/0/002.p/89"]);
    }
}
