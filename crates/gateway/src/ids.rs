//! Which events are stored, by their dedup key (`source/id`): an index kept up to date from the
//! events stream, so that a retry is answered as a duplicate however late it comes — JetStream's
//! own duplicate window only covers the last few minutes. It holds a 128-bit digest of each key
//! and the sequence it was stored at, never an event.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

#[derive(Default)]
struct Inner {
    by_key: HashMap<u128, u64>,
    /// The last stream sequence the follower took in.
    position: u64,
    /// The stream's end when the gateway started: until the follower has reached it, the index
    /// does not yet know every stored id.
    target: u64,
}

/// The index; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct StoredIds(Arc<RwLock<Inner>>);

fn digest(source: &str, id: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(timpora_bus::dedup_key(source, id).as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_be_bytes(first)
}

impl StoredIds {
    /// An index that is complete once it has taken in the stream up to `target`.
    pub fn until(target: u64) -> Self {
        let ids = Self::default();
        ids.0.write().unwrap_or_else(|e| e.into_inner()).target = target;
        ids
    }

    /// The event `source/id` stored at `sequence`, as the follower reads it (in order).
    pub fn follow(&self, sequence: u64, source: &str, id: &str) {
        let mut inner = self.0.write().unwrap_or_else(|e| e.into_inner());
        if sequence <= inner.position {
            return;
        }
        inner.position = sequence;
        inner.by_key.entry(digest(source, id)).or_insert(sequence);
    }

    /// The event `source/id` just stored at `sequence` (before the follower gets to it).
    pub fn stored_now(&self, sequence: u64, source: &str, id: &str) {
        let mut inner = self.0.write().unwrap_or_else(|e| e.into_inner());
        inner.by_key.entry(digest(source, id)).or_insert(sequence);
    }
}

/// Ids known (for `Debug`, which shows no id).
impl std::fmt::Debug for StoredIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIds")
            .field("ids", &self.len())
            .finish()
    }
}

impl StoredIds {
    /// Where `source/id` was stored, if it was.
    pub fn stored(&self, source: &str, id: &str) -> Option<u64> {
        let inner = self.0.read().unwrap_or_else(|e| e.into_inner());
        inner.by_key.get(&digest(source, id)).copied()
    }

    /// Whether the index knows every id stored before the gateway started.
    pub fn complete(&self) -> bool {
        let inner = self.0.read().unwrap_or_else(|e| e.into_inner());
        inner.position >= inner.target
    }

    /// How far the index has read the events stream, and where the stream ended when the
    /// gateway started (complete once the first reaches the second).
    pub fn progress(&self) -> (u64, u64) {
        let inner = self.0.read().unwrap_or_else(|e| e.into_inner());
        (inner.position, inner.target)
    }

    /// Ids known.
    pub fn len(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }

    /// Whether it knows no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_known_once_stored_per_source() {
        let ids = StoredIds::until(2);
        assert!(!ids.complete());
        ids.follow(1, "imigrasi/kanim-kendari", "e-1");
        ids.stored_now(3, "polri/polda-sultra", "e-1");
        assert_eq!(ids.stored("imigrasi/kanim-kendari", "e-1"), Some(1));
        assert_eq!(ids.stored("polri/polda-sultra", "e-1"), Some(3));
        assert_eq!(ids.stored("imigrasi/kanim-kendari", "e-2"), None);
        ids.follow(2, "imigrasi/kanim-kendari", "e-2");
        assert!(ids.complete());
        // The follower reaching an id stored just now changes nothing; old positions are ignored.
        ids.follow(3, "polri/polda-sultra", "e-1");
        ids.follow(1, "x/y", "z");
        assert_eq!(ids.stored("x/y", "z"), None);
        assert_eq!(ids.len(), 3);
    }
}
