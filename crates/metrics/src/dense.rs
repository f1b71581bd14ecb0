//! Exact counters for 16-bit keys (ports, DNS qtypes and rcodes): one counter per possible
//! key in a lazily allocated table; it is not a sketch and has no error, but costs 512 KiB
//! once a key was added.
//!
//! For small key domains an exact table beats a heavy-hitter sketch on every count: an update
//! is one indexed add (no hashing, no probing, no purge), merge is element-wise addition
//! (exactly associative and commutative), and reported counts are the true counts.

use std::cmp::Ordering;
use std::fmt;

/// Number of distinct 16-bit keys.
const KEYS: usize = 1 << 16;

/// Exact per-key counts over `u16` keys.
///
/// Error bound: none (counts are exact; they saturate at `u64::MAX`). Memory: nothing until
/// the first non-zero add, then a table of 65 536 counters (512 KiB, zero pages untouched
/// by the allocator until written).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DenseCounts {
    /// `counts[key]`, allocated on the first non-zero add; always `KEYS` long when present.
    counts: Option<Box<[u64]>>,
    total: u64,
}

impl fmt::Debug for DenseCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenseCounts")
            .field("distinct", &self.distinct())
            .field("total", &self.total)
            .finish()
    }
}

impl DenseCounts {
    /// An empty counter table (allocates nothing).
    #[must_use]
    pub const fn new() -> Self {
        DenseCounts {
            counts: None,
            total: 0,
        }
    }

    /// Adds `n` occurrences of `key` (no-op for `n == 0`).
    #[inline]
    pub fn add(&mut self, key: u16, n: u64) {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        let counts = self
            .counts
            .get_or_insert_with(|| vec![0u64; KEYS].into_boxed_slice());
        // The table has one counter per u16 value, so the index is always in bounds.
        if let Some(c) = counts.get_mut(usize::from(key)) {
            *c = c.saturating_add(n);
        }
    }

    /// Count of `key`.
    #[must_use]
    pub fn get(&self, key: u16) -> u64 {
        self.counts
            .as_ref()
            .and_then(|c| c.get(usize::from(key)).copied())
            .unwrap_or(0)
    }

    /// Sum of all counts.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// True when nothing was counted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Number of keys with a non-zero count.
    #[must_use]
    pub fn distinct(&self) -> usize {
        self.counts
            .as_ref()
            .map_or(0, |c| c.iter().filter(|&&v| v != 0).count())
    }

    /// Adds every count of `other` (exact, associative and commutative).
    pub fn merge(&mut self, other: &Self) {
        let Some(theirs) = other.counts.as_ref() else {
            return;
        };
        self.total = self.total.saturating_add(other.total);
        match self.counts.as_mut() {
            None => self.counts = Some(theirs.clone()),
            Some(mine) => {
                for (a, &b) in mine.iter_mut().zip(theirs.iter()) {
                    *a = a.saturating_add(b);
                }
            }
        }
    }

    /// The `n` keys with the largest counts, as `(key, count)`, sorted by count descending
    /// then key ascending (the order [`crate::topn::TopN::top`] uses); zero counts are
    /// never reported.
    #[must_use]
    pub fn top(&self, n: usize) -> Vec<(u16, u64)> {
        let Some(counts) = self.counts.as_ref() else {
            return Vec::new();
        };
        // Eight counters at a time: most of the table is zero, and one OR tells a run of
        // eight empty keys (the export of a handful of ports otherwise walks 65 536 keys one
        // by one). Rows come out in key order, as before the sort.
        let mut rows: Vec<(u16, u64)> = Vec::new();
        for (i, run) in counts.chunks_exact(8).enumerate() {
            if run.iter().fold(0, |a, &c| a | c) == 0 {
                continue;
            }
            for (j, &c) in run.iter().enumerate() {
                if c != 0 {
                    // i * 8 + j < KEYS = 2^16: the key fits.
                    rows.push(((i * 8 + j) as u16, c));
                }
            }
        }
        rows.sort_unstable_by(row_order);
        rows.truncate(n);
        rows
    }

    /// Heap bytes held (0 before the first add).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.counts.as_ref().map_or(0, |c| size_of_val(&**c))
    }
}

/// Count descending, then key ascending.
fn row_order(a: &(u16, u64), b: &(u16, u64)) -> Ordering {
    b.1.cmp(&a.1).then(a.0.cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::topn::TopN;

    #[test]
    fn empty_allocates_nothing() {
        let mut d = DenseCounts::new();
        d.add(7, 0);
        assert_eq!(d.heap_bytes(), 0);
        assert!(d.is_empty());
        assert_eq!(d.top(10), Vec::<(u16, u64)>::new());
        assert_eq!(d.get(7), 0);
    }

    #[test]
    fn counts_are_exact_and_ordered() {
        let mut d = DenseCounts::new();
        for (k, n) in [(53u16, 5u64), (1, 2), (65535, 5), (0, 1), (1, 3)] {
            d.add(k, n);
        }
        assert_eq!(d.get(1), 5);
        assert_eq!(d.get(65535), 5);
        assert_eq!(d.total(), 16);
        assert_eq!(d.distinct(), 4);
        assert_eq!(d.top(3), vec![(1, 5), (53, 5), (65535, 5)]);
        assert_eq!(d.top(10).last(), Some(&(0, 1)));
        assert_eq!(d.heap_bytes(), 65536 * 8);
    }

    #[test]
    fn merge_adds_and_handles_empty_sides() {
        let mut a = DenseCounts::new();
        let mut b = DenseCounts::new();
        b.add(9, 4);
        a.merge(&DenseCounts::new());
        assert!(a.is_empty());
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.get(9), 8);
        assert_eq!(a.total(), 8);
        b.merge(&DenseCounts::new());
        assert_eq!(b.get(9), 4);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut d = DenseCounts::new();
        d.add(1, u64::MAX);
        d.add(1, 5);
        assert_eq!(d.get(1), u64::MAX);
        assert_eq!(d.total(), u64::MAX);
    }

    #[test]
    fn top_sees_keys_at_both_ends_and_around_runs() {
        let mut d = DenseCounts::new();
        for (k, w) in [
            (0u16, 1u64),
            (7, 2),
            (8, 2),
            (65_535, 3),
            (65_528, 1),
            (4_095, 5),
        ] {
            d.add(k, w);
        }
        assert_eq!(
            d.top(10),
            vec![(4_095, 5), (65_535, 3), (7, 2), (8, 2), (0, 1), (65_528, 1)]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Same rows as an exact top-N sketch that never purged, and merge equals the
        /// concatenated stream.
        #[test]
        fn matches_exact_topn_and_merges(
            a in proptest::collection::vec((any::<u16>(), 1u64..100), 0..200),
            b in proptest::collection::vec((any::<u16>(), 1u64..100), 0..200),
            n in 0usize..20,
        ) {
            let mut da = DenseCounts::new();
            let mut db = DenseCounts::new();
            let mut all = DenseCounts::new();
            let mut t: TopN<u16> = TopN::with_capacity(1024);
            let mut truth = BTreeMap::new();
            for &(k, w) in &a {
                da.add(k, w);
                all.add(k, w);
                t.insert(&k, w);
                *truth.entry(k).or_insert(0u64) += w;
            }
            for &(k, w) in &b {
                db.add(k, w);
                all.add(k, w);
                t.insert(&k, w);
                *truth.entry(k).or_insert(0u64) += w;
            }
            prop_assert_eq!(t.max_error(), 0);
            prop_assert_eq!(all.top(n), t.top(n));
            for (&k, &v) in &truth {
                prop_assert_eq!(all.get(k), v);
            }
            let mut ab = da.clone();
            ab.merge(&db);
            let mut ba = db.clone();
            ba.merge(&da);
            prop_assert_eq!(ab.top(usize::MAX), all.top(usize::MAX));
            prop_assert_eq!(ba.top(usize::MAX), all.top(usize::MAX));
            prop_assert_eq!(ab.total(), all.total());
        }
    }
}
