//! A hash map cut into shards that are each shared copy-on-write, so that a copy of the whole
//! (a checkpoint's snapshot) costs one pointer per shard, and the engine pays for copying a shard
//! only when it next changes it — spread over the events after a checkpoint, a shard at a time,
//! instead of one pause as long as the state is large.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Hash maps of the state: keys are pseudonymised tokens, so a fast hasher is safe.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Shards per map: enough that copying one is short (a 64th of the map), few enough that an
/// empty map stays small.
const SHARDS: usize = 64;

/// The shard of a key: the top bits of a fixed hash (the shards' own maps hash with random
/// seeds, so the two are independent).
fn shard_of<Q: Hash + ?Sized>(q: &Q) -> usize {
    const PICK: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7469_6d70);
    (PICK.hash_one(q) >> (u64::BITS - SHARDS.trailing_zeros())) as usize
}

/// See the module documentation. Iteration order is unspecified, as for a `HashMap`; it is
/// serialised as one map (the same bytes as a `HashMap` with these entries).
#[derive(Clone)]
pub(crate) struct Sharded<K, V> {
    shards: Box<[Arc<Map<K, V>>]>,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(Map::default())).collect(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    pub(crate) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(k)].get(k)
    }

    /// The value of `k`, to change (its shard is copied first if a snapshot shares it).
    pub(crate) fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = &mut self.shards[shard_of(k)];
        if !shard.contains_key(k) {
            return None;
        }
        Arc::make_mut(shard).get_mut(k)
    }

    pub(crate) fn entry(&mut self, k: K) -> Entry<'_, K, V> {
        Arc::make_mut(&mut self.shards[shard_of(&k)]).entry(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        Arc::make_mut(&mut self.shards[shard_of(&k)]).insert(k, v)
    }

    pub(crate) fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = &mut self.shards[shard_of(k)];
        if !shard.contains_key(k) {
            return None;
        }
        Arc::make_mut(shard).remove(k)
    }

    /// Keep only the entries `keep` says to; a shard where all stay is not touched.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        for shard in self.shards.iter_mut() {
            if shard.iter().all(|(k, v)| keep(k, v)) {
                continue;
            }
            Arc::make_mut(shard).retain(|k, v| keep(k, v));
        }
    }

    /// Apply `change` to the values `needs` picks; a shard where none is picked is not touched.
    pub(crate) fn update(&mut self, needs: impl Fn(&V) -> bool, mut change: impl FnMut(&mut V)) {
        for shard in self.shards.iter_mut() {
            if !shard.values().any(&needs) {
                continue;
            }
            for v in Arc::make_mut(shard).values_mut() {
                if needs(v) {
                    change(v);
                }
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

impl<K, V> Sharded<K, V> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for Sharded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for Sharded<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, K, V> Deserialize<'de> for Sharded<K, V>
where
    K: Deserialize<'de> + Hash + Eq + Clone,
    V: Deserialize<'de> + Clone,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Deserialize<'de> + Hash + Eq + Clone,
            V: Deserialize<'de> + Clone,
        {
            type Value = Sharded<K, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Sharded::default();
                while let Some((k, v)) = m.next_entry()? {
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_its_entries_while_the_original_changes_and_only_changed_shards_are_copied() {
        let mut m: Sharded<Arc<str>, u32> = Sharded::default();
        for i in 0..1_000u32 {
            m.insert(Arc::from(format!("psn_{i}")), i);
        }
        let copy = m.clone();
        assert!(
            m.shards
                .iter()
                .zip(copy.shards.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
        );
        *m.get_mut("psn_7").unwrap() = 70;
        m.remove("psn_8");
        m.retain(|_, v| *v != 9);
        assert_eq!(copy.get("psn_7"), Some(&7));
        assert_eq!(copy.get("psn_8"), Some(&8));
        assert_eq!(copy.len(), 1_000);
        assert_eq!(m.get("psn_7"), Some(&70));
        assert_eq!(m.get("psn_8"), None);
        assert_eq!(m.len(), 998);
        let copied = m
            .shards
            .iter()
            .zip(copy.shards.iter())
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .count();
        assert!((1..=3).contains(&copied), "{copied} shards copied");
        // Nothing to change: nothing copied.
        let copy = m.clone();
        m.retain(|_, _| true);
        m.update(|v| *v > 5_000, |v| *v = 0);
        assert_eq!(m.get_mut("absent"), None);
        assert_eq!(m.remove("absent"), None);
        assert!(
            m.shards
                .iter()
                .zip(copy.shards.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
        );
    }

    #[test]
    fn it_is_serialised_as_a_hash_map_with_the_same_entries() {
        let mut m: Sharded<String, u64> = Sharded::default();
        let mut h: Map<String, u64> = Map::default();
        for i in 0..50u64 {
            m.insert(format!("k{i}"), i * 3);
            h.insert(format!("k{i}"), i * 3);
        }
        let bytes = postcard::to_allocvec(&m).unwrap();
        let back: Map<String, u64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, h);
        let again: Sharded<String, u64> =
            postcard::from_bytes(&postcard::to_allocvec(&h).unwrap()).unwrap();
        assert_eq!(again.len(), 50);
        assert!(h.iter().all(|(k, v)| again.get(k.as_str()) == Some(v)));
    }
}
