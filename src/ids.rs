//! Tables keyed by call id.
//!
//! A call in flight is entered in a table when it starts and removed when it ends, so every
//! call hashes its id a few times. `std`'s default hasher (SipHash) guards against inputs
//! chosen to collide, at a cost several times that of the lookup itself for a `u64`. Here
//! the id, keyed with a random value per process, goes through splitmix64's finalizer (two
//! multiplies, each after folding high bits down): every bit of the id reaches every bit of
//! the hash, so a peer that does not know the key cannot aim its call ids at one bucket, and
//! ids in sequence spread like random ones whatever the key; a table holds at most the calls
//! a connection may have in flight anyway.
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A table keyed by call id.
pub(crate) type CallMap<V> = HashMap<u64, V, IdHash>;

/// An empty [`CallMap`].
pub(crate) fn call_map<V>() -> CallMap<V> {
    HashMap::with_hasher(IdHash::default())
}

/// Builds [`IdHasher`]s with this process's key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHash(u64);

impl Default for IdHash {
    fn default() -> Self {
        static KEY: OnceLock<u64> = OnceLock::new();
        IdHash(*KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64)))
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// Hashes one `u64`: keyed, then mixed so that every bit counts at both ends (the table
/// takes bucket bits from the low end and a tag from the high end).
#[derive(Debug)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used for `u64` keys; correct for anything else all the same.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let mut z = self.0 ^ n;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_and_strided_ids_spread_over_buckets() {
        // Fixed keys, so that the test is the same every run; 256 random picks of 256
        // buckets hit about 162 of them.
        let mut key = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..64 {
            key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let hash = IdHash(key);
            // Ids that differ only in high bits too (a fold of the 64-bit product alone
            // left those in one bucket, whatever the key).
            for stride in [1u64, 2, 1 << 10, 1 << 32, 1 << 43, 1 << 55] {
                let buckets: std::collections::HashSet<u64> = (0..256u64)
                    .map(|i| hash.hash_one(i * stride) & 255)
                    .collect();
                assert!(
                    buckets.len() > 128,
                    "key {key:#x}, stride {stride}: {} buckets",
                    buckets.len()
                );
            }
        }
        let hash = IdHash::default();
        assert_ne!(hash.hash_one(1u64), hash.hash_one(2u64));
        let mut map = call_map();
        map.insert(7, "seven");
        assert_eq!(map.remove(&7), Some("seven"));
    }
}
