//! Heavy hitters of flow records by bytes and by packets at once: two weighted Misra–Gries
//! summaries sharing one key table, so a record finds its key once for both measures, with
//! a hash its caller computed once for every summary keyed on it. Not a general top-N (see
//! `metrics::topn` for that): keys are small `Copy` values and the caller supplies hashes.
//!
//! # Algorithm, error bound
//!
//! Each measure `m` is exactly the summary of `metrics::topn::TopN` with the same capacity
//! (weighted Misra–Gries with median batch purge): a key tracked in `m` adds its weight; a
//! new key, when `capacity` keys are already tracked in `m`, first purges `m` (the median
//! count `d` of `m` is subtracted from every count of `m`, counts that reach 0 are dropped,
//! `d` is added to `m`'s offset). The two measures only share storage: an entry lives while
//! either measure tracks it. So, fed the same updates, each measure reports the same keys and
//! estimates as a `TopN` (a property test checks this), and carries its bound: with `W` the
//! total weight of the measure and `c = ⌈capacity/2⌉`,
//!
//! * `count ≤ true ≤ count + offset = estimate` for tracked keys, `true ≤ offset` otherwise,
//! * `offset ≤ W / c`: every key with `true > W/c` is tracked and reported (no false
//!   negatives); counts are exact while no purge happened.
//!
//! Merging inserts the other summary's tracked counts and adds its offsets; the bound holds
//! for the union as for `TopN` (the result may differ from a `TopN` merge within the bound,
//! because the order in which tracked keys are merged decides where a purge falls).
//!
//! # Layout
//!
//! Entries are a dense array (never moved, freed slots reused) indexed by an open-addressing
//! table of `u32` words, `tag << 16 | (index + 1)`, at least four times the capacity, so
//! probes are short and a tag match almost always is the key: one table word and one entry
//! per lookup. A purge rebuilds the table in the pass that subtracts (no tombstones). Nothing is
//! allocated after the first insertion: at most `2 · capacity` entries exist.

use std::cmp::Ordering;

/// Largest capacity per measure: entry indices (plus one) fit in the table word's 16 bits.
pub const MAX_CAPACITY: usize = 8192;

/// One key tracked by at least one measure, or a free slot (both counts 0). A measure
/// tracks the key exactly when its count is not 0: weights added are positive and a purge
/// keeps only counts above the median it subtracts, so no separate flag is needed (and a
/// purge is one branch-free saturating subtraction per entry).
#[derive(Clone, Copy, Debug)]
struct Entry<K> {
    key: K,
    /// Low 32 bits of the key hash: table position (low 15 bits) and tag (high 16).
    hash: u32,
    count: [u64; 2],
}

/// Two weighted Misra–Gries summaries (measure 0 and 1, e.g. bytes and packets) over the
/// same keys; see the module documentation for the bound.
#[derive(Clone, Debug)]
pub struct DualTop<K> {
    capacity: usize,
    entries: Vec<Entry<K>>,
    free: Vec<u32>,
    /// `tag << 16 | (entry index + 1)`, 0 = empty.
    table: Vec<u32>,
    len: [usize; 2],
    offset: [u64; 2],
    total: [u64; 2],
    scratch: Vec<u64>,
}

impl<K: Copy + Eq + Ord> DualTop<K> {
    /// An empty summary tracking up to `capacity` keys per measure (clamped to
    /// `1..=MAX_CAPACITY`); allocates nothing until the first insertion.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.clamp(1, MAX_CAPACITY),
            entries: Vec::new(),
            free: Vec::new(),
            table: Vec::new(),
            len: [0; 2],
            offset: [0; 2],
            total: [0; 2],
            scratch: Vec::new(),
        }
    }

    /// Adds `w[m]` to `key` in measure `m` (a zero weight leaves that measure alone).
    /// `hash` must be a well-mixed hash of `key`, the same every time the key is seen.
    #[inline]
    pub fn insert(&mut self, key: &K, hash: u64, w: [u64; 2]) {
        if w == [0, 0] {
            return;
        }
        self.total[0] = self.total[0].saturating_add(w[0]);
        self.total[1] = self.total[1].saturating_add(w[1]);
        self.add_counted(key, hash as u32, w);
    }

    /// Adds counted weight without touching the totals (shared by insert and merge).
    #[inline]
    fn add_counted(&mut self, key: &K, hash: u32, w: [u64; 2]) {
        let found = self.find(key, hash);
        if let Some(i) = found
            && let Some(e) = self.entries.get_mut(i)
            && (e.count[0] != 0 || w[0] == 0)
            && (e.count[1] != 0 || w[1] == 0)
        {
            // Tracked wherever it has weight: the common case, one lookup and two adds.
            e.count[0] = e.count[0].saturating_add(w[0]);
            e.count[1] = e.count[1].saturating_add(w[1]);
            return;
        }
        self.add_new(key, hash, w, found);
    }

    /// The key is new to at least one measure it has weight in: purges as needed, then
    /// tracks it there. Out of line: the common update stays small.
    // Measure indices address the weights and the per-measure state at once.
    #[allow(clippy::needless_range_loop)]
    #[inline(never)]
    fn add_new(&mut self, key: &K, hash: u32, w: [u64; 2], found: Option<usize>) {
        if self.table.is_empty() {
            let cap = self.capacity;
            self.table = vec![0; (4 * cap).next_power_of_two()];
            self.entries.reserve_exact(2 * cap);
            self.free.reserve_exact(2 * cap);
            self.scratch.reserve_exact(cap);
        }
        // `found` is the caller's lookup of the same key in the same state.
        let mut idx = found;
        if idx.is_none()
            && (w[0] == 0 || self.len[0] < self.capacity)
            && (w[1] == 0 || self.len[1] < self.capacity)
        {
            // A new key and room in every measure it has weight in: the loop below with
            // nothing to decide.
            let i = self.alloc(key, hash);
            if let Some(e) = self.entries.get_mut(i) {
                e.count = w;
            }
            self.len[0] += usize::from(w[0] != 0);
            self.len[1] += usize::from(w[1] != 0);
            return;
        }
        // When both measures must purge before taking the key (with keys new to both, the
        // usual case), one pass purges both. Same result as purging one measure, tracking
        // the key there, then purging the other: a purge of one measure leaves the other's
        // counts alone, and the key is not tracked in the other yet (its count there is 0
        // either way, so it is not in that measure's median and no subtraction touches it).
        // Only entry indices and table positions can differ, and they decide where a key is
        // stored, not what is counted.
        let due = |m: usize| {
            w[m] != 0
                && self.len[m] >= self.capacity
                && idx
                    .and_then(|i| self.entries.get(i))
                    .is_none_or(|e| e.count[m] == 0)
        };
        if due(0) && due(1) {
            self.purge_both();
            idx = self.find(key, hash);
        }
        for m in 0..2 {
            let weight = w[m];
            if weight == 0 {
                continue;
            }
            if let Some(e) = idx.and_then(|i| self.entries.get_mut(i))
                && e.count[m] != 0
            {
                e.count[m] = e.count[m].saturating_add(weight);
                continue;
            }
            if self.len[m] >= self.capacity {
                // A purge of `m` never frees this key's entry if it exists (the other
                // measure tracks it), but it may move it in the table: look it up again.
                self.purge(m);
                idx = self.find(key, hash);
            }
            let i = match idx {
                Some(i) => i,
                None => {
                    let i = self.alloc(key, hash);
                    idx = Some(i);
                    i
                }
            };
            if let Some(e) = self.entries.get_mut(i) {
                e.count[m] = weight;
                self.len[m] += 1;
            }
        }
    }

    /// Loads the table word and the entry (if any) where `hash` probes first, and returns
    /// something derived from them. A record updates a dozen summaries whose tables are far
    /// apart in memory; touching them all before updating any lets the processor fetch them
    /// in parallel instead of one cache miss after another. No effect on the state.
    #[inline]
    #[must_use]
    pub fn warm(&self, hash: u64) -> u64 {
        let mask = self.table.len().wrapping_sub(1);
        let t = self
            .table
            .get(hash as u32 as usize & mask)
            .copied()
            .unwrap_or(0);
        let i = ((t & 0xFFFF) as usize).wrapping_sub(1);
        let c = self.entries.get(i).map_or(0, |e| e.count[0]);
        // The next free entry, which a new key takes.
        let f = self
            .free
            .last()
            .and_then(|&f| self.entries.get(f as usize))
            .map_or(0, |e| e.count[1]);
        u64::from(t) ^ c ^ f
    }

    /// Index of the entry holding `key`.
    #[inline]
    fn find(&self, key: &K, hash: u32) -> Option<usize> {
        let mask = self.table.len().wrapping_sub(1);
        let tag = hash >> 16;
        let mut pos = hash as usize & mask;
        // The table is at most half full, so an empty word ends every probe; the bound only
        // guards against a logic error.
        for _ in 0..self.table.len() {
            let t = *self.table.get(pos)?;
            if t == 0 {
                return None;
            }
            if t >> 16 == tag {
                let i = ((t & 0xFFFF) as usize).wrapping_sub(1);
                if self.entries.get(i).is_some_and(|e| e.key == *key) {
                    return Some(i);
                }
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    /// Puts entry `i` (hash `hash`) in the table.
    fn place(table: &mut [u32], hash: u32, i: usize) {
        let mask = table.len().wrapping_sub(1);
        let mut pos = hash as usize & mask;
        for _ in 0..table.len() {
            if let Some(t) = table.get_mut(pos)
                && *t == 0
            {
                // i < 2 · MAX_CAPACITY < 2^16: the index fits beside the tag.
                *t = (hash >> 16) << 16 | (i as u32 + 1);
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// A fresh entry (tracked nowhere yet) for `key`, placed in the table.
    fn alloc(&mut self, key: &K, hash: u32) -> usize {
        let e = Entry {
            key: *key,
            hash,
            count: [0; 2],
        };
        let i = match self.free.pop() {
            Some(i) if (i as usize) < self.entries.len() => {
                if let Some(slot) = self.entries.get_mut(i as usize) {
                    *slot = e;
                }
                i as usize
            }
            _ => {
                self.entries.push(e);
                self.entries.len() - 1
            }
        };
        Self::place(&mut self.table, hash, i);
        i
    }

    /// The median of the counts of measure `m` that are not 0 (what a purge subtracts), or
    /// `None` when `m` tracks nothing.
    fn median(&mut self, m: usize) -> Option<u64> {
        let m = m & 1;
        self.scratch.clear();
        self.scratch
            .extend(self.entries.iter().map(|e| e.count[m]).filter(|&c| c != 0));
        if self.scratch.is_empty() {
            return None;
        }
        let mid = self.scratch.len() / 2;
        Some(*self.scratch.select_nth_unstable(mid).1)
    }

    /// [`Self::purge`] of both measures in one pass over the entries (one table rebuild).
    #[inline(never)]
    fn purge_both(&mut self) {
        let d = [self.median(0).unwrap_or(0), self.median(1).unwrap_or(0)];
        for (o, d) in self.offset.iter_mut().zip(d) {
            *o = o.saturating_add(d);
        }
        self.table.fill(0);
        self.free.clear();
        let mut len = [0; 2];
        for (i, e) in self.entries.iter_mut().enumerate() {
            e.count[0] = e.count[0].saturating_sub(d[0]);
            e.count[1] = e.count[1].saturating_sub(d[1]);
            len[0] += usize::from(e.count[0] != 0);
            len[1] += usize::from(e.count[1] != 0);
            if e.count == [0, 0] {
                self.free.push(i as u32);
            } else {
                Self::place(&mut self.table, e.hash, i);
            }
        }
        self.len = len;
    }

    /// Subtracts the median count of measure `m` from its counts, untracks those that reach
    /// 0 and adds the median to `m`'s offset; entries tracked nowhere are freed.
    #[inline(never)]
    fn purge(&mut self, m: usize) {
        let Some(d) = self.median(m) else {
            return;
        };
        self.offset[m] = self.offset[m].saturating_add(d);
        // One pass subtracts, rebuilds the table and the free list. Rebuilding when nothing
        // was freed would be harmless: the free list is always ascending (rebuilt ascending,
        // only popped from the end), so it comes out the same, and table positions only
        // decide where a key is found, not what is found.
        self.table.fill(0);
        self.free.clear();
        let mut len = 0;
        for (i, e) in self.entries.iter_mut().enumerate() {
            // Counts above the median keep the difference, the others (and free slots) 0.
            e.count[m & 1] = e.count[m & 1].saturating_sub(d);
            len += usize::from(e.count[m & 1] != 0);
            if e.count == [0, 0] {
                // Entries never exceed 2 · MAX_CAPACITY, so the index fits.
                self.free.push(i as u32);
            } else {
                Self::place(&mut self.table, e.hash, i);
            }
        }
        self.len[m] = len;
    }

    /// The `n` keys of measure `m` with the largest estimates, as `(key, estimate)`, sorted
    /// by estimate descending then key ascending (as `TopN::top`). Estimates are upper
    /// bounds (count + offset).
    #[must_use]
    pub fn top(&self, m: usize, n: usize) -> Vec<(K, u64)> {
        let m = m & 1;
        let mut rows: Vec<(K, u64)> = self
            .entries
            .iter()
            .filter(|e| e.count[m] != 0)
            .map(|e| (e.key, e.count[m]))
            .collect();
        rows.sort_unstable_by(|a, b| match b.1.cmp(&a.1) {
            Ordering::Equal => a.0.cmp(&b.0),
            o => o,
        });
        rows.truncate(n);
        let off = self.offset[m];
        for r in &mut rows {
            r.1 = r.1.saturating_add(off);
        }
        rows
    }

    /// Maximum over-estimate of measure `m` (its offset); 0 means its counts are exact.
    #[must_use]
    pub fn max_error(&self, m: usize) -> u64 {
        self.offset[m & 1]
    }

    /// Total weight inserted in measure `m` (including merged summaries).
    #[must_use]
    pub fn total_weight(&self, m: usize) -> u64 {
        self.total[m & 1]
    }

    /// Keys tracked by measure `m`.
    #[must_use]
    pub fn len(&self, m: usize) -> usize {
        self.len[m & 1]
    }

    /// True when nothing was inserted (or merged in).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == [0, 0]
    }

    /// Merges `other` into `self` (see the module documentation for the bound).
    pub fn merge(&mut self, other: &Self) {
        for e in &other.entries {
            if e.count != [0, 0] {
                self.add_counted(&e.key, e.hash, e.count);
            }
        }
        for m in 0..2 {
            self.offset[m] = self.offset[m].saturating_add(other.offset[m]);
            self.total[m] = self.total[m].saturating_add(other.total[m]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::topn::TopN;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn h(k: u16) -> u64 {
        metrics::hash::hash_u64(u64::from(k))
    }

    #[test]
    fn counts_exactly_until_full_then_purges_each_measure_alone() {
        let mut t: DualTop<u16> = DualTop::with_capacity(2);
        t.insert(&1, h(1), [10, 1]);
        t.insert(&2, h(2), [20, 0]);
        t.insert(&1, h(1), [5, 1]);
        assert_eq!(t.top(0, 5), vec![(2, 20), (1, 15)]);
        assert_eq!(t.top(1, 5), vec![(1, 2)]);
        assert_eq!(t.max_error(0), 0);
        // Measure 0 is full: key 3 purges it (median 20: both dropped), measure 1 is not.
        t.insert(&3, h(3), [7, 3]);
        assert_eq!(t.max_error(0), 20);
        assert_eq!(t.top(0, 5), vec![(3, 27)]);
        assert_eq!(t.top(1, 5), vec![(3, 3), (1, 2)]);
        assert_eq!((t.len(0), t.len(1)), (1, 2));
        assert_eq!((t.total_weight(0), t.total_weight(1)), (42, 5));
    }

    /// A stream of (key, bytes, packets) with few distinct keys, so purges happen.
    fn stream() -> impl Strategy<Value = Vec<(u16, u64, u64)>> {
        prop::collection::vec((0u16..40, 0u64..1000, 0u64..5), 0..400)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Each measure reports exactly what a `TopN` of the same capacity fed the same
        /// weights reports, so it shares its bound and its results.
        #[test]
        fn each_measure_equals_topn(s in stream(), cap in 1usize..12) {
            let mut d: DualTop<u16> = DualTop::with_capacity(cap);
            let mut a: TopN<u16> = TopN::with_capacity(cap);
            let mut b: TopN<u16> = TopN::with_capacity(cap);
            for &(k, wb, wp) in &s {
                d.insert(&k, h(k), [wb, wp]);
                a.insert(&k, wb);
                b.insert(&k, wp);
            }
            prop_assert_eq!(d.top(0, usize::MAX), a.top(usize::MAX));
            prop_assert_eq!(d.top(1, usize::MAX), b.top(usize::MAX));
            prop_assert_eq!(d.max_error(0), a.max_error());
            prop_assert_eq!(d.max_error(1), b.max_error());
            prop_assert_eq!(d.total_weight(0), a.total_weight());
        }

        /// The bound against exact counts, also after a merge of two summaries.
        #[allow(clippy::needless_range_loop)]
        #[test]
        fn bound_holds_against_exact_counts(s in stream(), t in stream(), cap in 1usize..12) {
            let mut d: DualTop<u16> = DualTop::with_capacity(cap);
            let mut e: DualTop<u16> = DualTop::with_capacity(cap);
            let mut truth = [BTreeMap::new(), BTreeMap::new()];
            for (part, sk) in [(&mut d, &s), (&mut e, &t)] {
                for &(k, wb, wp) in sk {
                    part.insert(&k, h(k), [wb, wp]);
                    *truth[0].entry(k).or_insert(0u64) += wb;
                    *truth[1].entry(k).or_insert(0u64) += wp;
                }
            }
            d.merge(&e);
            let c = cap.div_ceil(2) as u64;
            for m in 0..2 {
                let w: u64 = truth[m].values().sum();
                prop_assert_eq!(d.total_weight(m), w);
                prop_assert!(d.max_error(m) * c <= w);
                prop_assert!(d.len(m) <= cap);
                let top: BTreeMap<u16, u64> = d.top(m, usize::MAX).into_iter().collect();
                for (k, &tr) in &truth[m] {
                    match top.get(k) {
                        Some(&est) => {
                            prop_assert!(tr <= est && est <= tr + d.max_error(m));
                        }
                        None => {
                            prop_assert!(tr <= d.max_error(m));
                            prop_assert!(tr * c <= w, "false negative {} {}", k, tr);
                        }
                    }
                }
            }
        }
    }
}
