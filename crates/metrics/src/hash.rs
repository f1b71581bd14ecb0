//! Fixed-seed 64-bit key hashing for the sketches; not a keyed (DoS-resistant) hash.
//!
//! Sketch state must be reproducible across runs and merge across workers, so every hash
//! here uses a compile-time seed instead of `RandomState`. XXH3 is used because the
//! HyperLogLog error bound assumes uniformly distributed, independent hash bits.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed shared by every sketch in wirelens; changing it changes every cardinality estimate
/// (within the stated bounds) and makes old and new sketches unmergeable.
pub const SEED: u64 = 0x7769_7265_6c65_6e73; // "wirelens"

/// Hashes a byte string with XXH3-64 and the fixed [`SEED`].
#[inline]
#[must_use]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, SEED)
}

/// Hashes a 64-bit key; equal to `hash_bytes(&v.to_le_bytes())`, so a key inserted as a
/// number and as its little-endian bytes counts once.
#[inline]
#[must_use]
pub fn hash_u64(v: u64) -> u64 {
    hash_bytes(&v.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_hash_matches_little_endian_bytes() {
        assert_eq!(
            hash_u64(0x0102_0304),
            hash_bytes(&0x0102_0304u64.to_le_bytes())
        );
    }

    #[test]
    fn hash_is_fixed_and_spreads() {
        assert_eq!(hash_bytes(b"example.com"), hash_bytes(b"example.com"));
        assert_ne!(hash_bytes(b"example.com"), hash_bytes(b"example.org"));
        // Consecutive integers must not produce consecutive hashes (HLL needs mixing).
        let a = hash_u64(1);
        let b = hash_u64(2);
        assert!((a ^ b).count_ones() > 10, "{a:x} {b:x}");
    }
}
