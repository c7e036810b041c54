//! A part of the group keys, for correlators that share the work: group key `k` belongs to part
//! `fnv1a(k) mod count`. The hash is fixed (FNV-1a, 64 bits) so that a key stays in its part
//! across processes, hosts and releases, as checkpoints of a part require.

/// Part `index` of `count` (`0 ≤ index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// Which part.
    pub index: u32,
    /// Of how many.
    pub count: u32,
}

impl Partition {
    /// The whole: one part of one.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Whether group key `key` is in this part.
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || fnv1a(key.as_bytes()) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-of-{}", self.index, self.count)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_exactly_one_part_and_stays_there() {
        let parts: Vec<Partition> = (0..3).map(|index| Partition { index, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for i in 0..3_000 {
            let key = format!("person:{i:016x}");
            let owners: Vec<_> = parts.iter().filter(|p| p.owns(&key)).collect();
            assert_eq!(owners.len(), 1, "{key}");
            sizes[owners[0].index as usize] += 1;
        }
        // Spread evenly enough that each part carries about a third.
        assert!(sizes.iter().all(|&n| (800..1200).contains(&n)), "{sizes:?}");
        // Fixed: the same key is in the same part on every host and in every release.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert!(Partition::WHOLE.owns("anything"));
        assert_eq!(Partition { index: 1, count: 4 }.to_string(), "1-of-4");
    }
}
