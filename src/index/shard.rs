//! Which shard a change belongs to.
//!
//! The hash is XXH3-64 (seed 0) over `bucket`, a 0x00 byte, and `key`, taken
//! modulo the shard count. XXH3 has a published specification and its output
//! does not depend on the platform or the crate version, so a shard number
//! computed today is the same after an upgrade or on another machine — which
//! matters because the RADOS backend names objects by shard and several
//! instances must agree. The version id is left out on purpose: all versions
//! of one object land in the same shard, so their order is kept in one place.
//! The 0x00 separator cannot occur in a bucket name, so ("ab","c") and
//! ("a","bc") hash differently.

use xxhash_rust::xxh3::Xxh3;

/// The shard of an object among `shards`: xxh3 of `bucket`, 0x00, `key`.
pub fn shard_of(bucket: &str, key: &str, shards: u32) -> u32 {
    debug_assert!(shards > 0);
    let mut hasher = Xxh3::new();
    hasher.update(bucket.as_bytes());
    hasher.update(&[0]);
    hasher.update(key.as_bytes());
    (hasher.digest() % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values: if this test fails, existing indexes would be read with
    /// the wrong shard layout. Never change these numbers.
    #[test]
    fn shard_values_are_pinned() {
        assert_eq!(shard_of("photos", "2026/a.jpg", 64), PINNED[0]);
        assert_eq!(shard_of("photos", "2026/b.jpg", 64), PINNED[1]);
        assert_eq!(shard_of("backup-01", "ü/ñ/日本", 64), PINNED[2]);
        assert_eq!(shard_of("ab", "c", 1024), PINNED[3]);
        assert_eq!(shard_of("a", "bc", 1024), PINNED[4]);
        assert_eq!(shard_of("anything", "at all", 1), 0);
    }

    const PINNED: [u32; 5] = [20, 5, 57, 845, 927];

    #[test]
    fn spreads_keys_evenly() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[shard_of("bucket", &format!("key-{i}"), 16) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
