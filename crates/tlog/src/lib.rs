//! The hub's transparency log, as a library without I/O: the canonical leaf of a stored message,
//! the append-only Merkle tree of a stream (RFC 6962 hashing, C2SP `tlog-tiles` layout), its
//! checkpoints as C2SP signed notes, witnesses' `cosignature/v1`, the policy that says whose
//! signatures a checkpoint needs, and inclusion and consistency proofs. The sealer, the witness
//! and `timpora audit` are built on it; an auditor can redo all of it from `docs/`.

mod error;
mod leaf;
mod note;
mod tree;

pub use error::{Error, ErrorKind};
pub use leaf::{LEAF_VERSION, Leaf, MSG_ID_HEADER, READ_HEADERS, Stored, content_hash};
pub use note::{Checkpoint, Cosignature, Key, Policy, Verified, checkpoint, cosign, sign};
pub use tlog_tiles::Hash;
pub use tree::{TILE_HEIGHT, Tree, leaf_tiles, verify_consistency, verify_inclusion};
