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
//! Three parallel arrays, never moved, freed slots reused: keys, key hashes and the pair of
//! counts. A purge reads only the counts (16 bytes an entry) and a table rebuild only the
//! counts and hashes, so neither drags the keys through the cache. An open-addressing table
//! of `u32` words, `tag << 16 | (index + 1)`, at least four times the capacity, indexes the
//! entries: probes are short and a tag match almost always is the key. A lookup that misses
//! ends on the empty word where the key goes, so a new key is placed without a second probe.
//! A purge rebuilds the table in the pass that subtracts (no tombstones). Nothing is allocated after
//! the first insertion: at most `2 · capacity` entries exist.

use std::cmp::Ordering;

/// Largest capacity per measure: entry indices (plus one) fit in the table word's 16 bits.
pub const MAX_CAPACITY: usize = 8192;

/// Two weighted Misra–Gries summaries (measure 0 and 1, e.g. bytes and packets) over the
/// same keys; see the module documentation for the bound.
///
/// Entry `i` is `keys[i]`, `hashes[i]` (low 32 bits of the key hash: table position and, in
/// the high 16 bits, tag) and `counts[i]`. A measure tracks the key exactly when its count
/// is not 0: weights added are positive and a purge keeps only counts above the median it
/// subtracts, so no separate flag is needed. Both counts 0: a free slot.
#[derive(Clone, Debug)]
pub struct DualTop<K> {
    capacity: usize,
    keys: Vec<K>,
    hashes: Vec<u32>,
    counts: Vec<[u64; 2]>,
    free: Vec<u32>,
    /// `tag << 16 | (entry index + 1)`, 0 = empty.
    table: Vec<u32>,
    len: [usize; 2],
    offset: [u64; 2],
    total: [u64; 2],
    scratch: Vec<u64>,
}

/// Where a lookup ended: the entry holding the key, or the empty table word where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Found(usize),
    Vacant(usize),
}

impl<K: Copy + Eq + Ord> DualTop<K> {
    /// An empty summary tracking up to `capacity` keys per measure (clamped to
    /// `1..=MAX_CAPACITY`); allocates nothing until the first insertion.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.clamp(1, MAX_CAPACITY),
            keys: Vec::new(),
            hashes: Vec::new(),
            counts: Vec::new(),
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
        let slot = self.find(key, hash);
        if let Slot::Found(i) = slot
            && let Some(c) = self.counts.get_mut(i)
            && (c[0] != 0 || w[0] == 0)
            && (c[1] != 0 || w[1] == 0)
        {
            // Tracked wherever it has weight: the common case, one lookup and two adds.
            c[0] = c[0].saturating_add(w[0]);
            c[1] = c[1].saturating_add(w[1]);
            return;
        }
        self.add_new(key, hash, w, slot);
    }

    /// The key is new to at least one measure it has weight in (`slot`: where its lookup
    /// ended): purges as needed, then tracks it there. Out of line: the common update stays
    /// small.
    // Measure indices address the weights and the per-measure state at once.
    #[allow(clippy::needless_range_loop)]
    #[inline(never)]
    fn add_new(&mut self, key: &K, hash: u32, w: [u64; 2], mut slot: Slot) {
        if self.table.is_empty() {
            let cap = self.capacity;
            self.table = vec![0; (4 * cap).next_power_of_two()];
            self.keys.reserve_exact(2 * cap);
            self.hashes.reserve_exact(2 * cap);
            self.counts.reserve_exact(2 * cap);
            self.free.reserve_exact(2 * cap);
            self.scratch = vec![0; 2 * cap];
            slot = self.find(key, hash);
        }
        for m in 0..2 {
            let weight = w[m];
            if weight == 0 {
                continue;
            }
            if let Slot::Found(i) = slot
                && let Some(c) = self.counts.get_mut(i)
                && c[m] != 0
            {
                c[m] = c[m].saturating_add(weight);
                continue;
            }
            if self.len[m] >= self.capacity {
                // A purge of `m` never frees this key's entry if it exists (the other
                // measure tracks it), but it may move it in the table: look it up again.
                self.purge(m);
                slot = self.find(key, hash);
            }
            let i = match slot {
                Slot::Found(i) => i,
                Slot::Vacant(pos) => {
                    let i = self.alloc(key, hash, pos);
                    slot = Slot::Found(i);
                    i
                }
            };
            if let Some(c) = self.counts.get_mut(i) {
                c[m] = weight;
                self.len[m] += 1;
            }
        }
    }

    /// Loads the table word and the entry (if any) where `hash` probes first, and the free
    /// slot a new key would take, and returns something derived from them. A record updates
    /// a dozen summaries whose tables are far apart in memory; touching them all before
    /// updating any lets the processor fetch them in parallel instead of one cache miss
    /// after another. No effect on the state.
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
        let c = self.counts.get(i).map_or(0, |c| c[0]);
        let h = self.hashes.get(i).copied().unwrap_or(0);
        // The next free entry, which a new key takes.
        let f = self
            .free
            .last()
            .and_then(|&f| self.counts.get(f as usize))
            .map_or(0, |c| c[1]);
        u64::from(t) ^ c ^ f ^ u64::from(h)
    }

    /// Where `key` is: its entry, or the empty table word its probe ended on. An empty
    /// table (nothing inserted yet) gives `Vacant(usize::MAX)`, never used: the first
    /// insertion allocates the table and looks again.
    #[inline]
    fn find(&self, key: &K, hash: u32) -> Slot {
        let mask = self.table.len().wrapping_sub(1);
        let tag = hash >> 16;
        let mut pos = hash as usize & mask;
        // The table is at most half full, so an empty word ends every probe; the bound only
        // guards against a logic error.
        for _ in 0..self.table.len() {
            let Some(&t) = self.table.get(pos) else {
                break;
            };
            if t == 0 {
                return Slot::Vacant(pos);
            }
            if t >> 16 == tag {
                let i = ((t & 0xFFFF) as usize).wrapping_sub(1);
                if self.keys.get(i).is_some_and(|k| k == key) {
                    return Slot::Found(i);
                }
            }
            pos = (pos + 1) & mask;
        }
        Slot::Vacant(usize::MAX)
    }

    /// The table word for entry `i` of hash `hash`.
    #[inline]
    fn word(hash: u32, i: usize) -> u32 {
        // i < 2 · MAX_CAPACITY < 2^16: the index fits beside the tag.
        (hash >> 16) << 16 | (i as u32 + 1)
    }

    /// Puts entry `i` (hash `hash`) in the table.
    #[inline]
    fn place(table: &mut [u32], hash: u32, i: usize) {
        let mask = table.len().wrapping_sub(1);
        let mut pos = hash as usize & mask;
        for _ in 0..table.len() {
            if let Some(t) = table.get_mut(pos)
                && *t == 0
            {
                *t = Self::word(hash, i);
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// A fresh entry (tracked nowhere yet) for `key`, put in the table at `pos`, the empty
    /// word its lookup ended on.
    fn alloc(&mut self, key: &K, hash: u32, pos: usize) -> usize {
        let i = match self.free.pop() {
            Some(i) if (i as usize) < self.counts.len() => {
                let i = i as usize;
                if let (Some(k), Some(h), Some(c)) = (
                    self.keys.get_mut(i),
                    self.hashes.get_mut(i),
                    self.counts.get_mut(i),
                ) {
                    *k = *key;
                    *h = hash;
                    *c = [0; 2];
                }
                i
            }
            _ => {
                self.keys.push(*key);
                self.hashes.push(hash);
                self.counts.push([0; 2]);
                self.counts.len() - 1
            }
        };
        match self.table.get_mut(pos) {
            Some(t) if *t == 0 => *t = Self::word(hash, i),
            _ => Self::place(&mut self.table, hash, i),
        }
        i
    }

    /// Subtracts the median count of measure `m` from its counts, untracks those that reach
    /// 0 and adds the median to `m`'s offset; entries tracked nowhere are freed.
    #[inline(never)]
    fn purge(&mut self, m: usize) {
        // The tracked counts of `m`, gathered without a branch per entry (whether a slot is
        // tracked follows no pattern a predictor could learn): every count is written, the
        // cursor only moves past the non-zero ones.
        let mut n = 0;
        for c in &self.counts {
            let v = c[m & 1];
            if let Some(s) = self.scratch.get_mut(n) {
                *s = v;
            }
            n += usize::from(v != 0);
        }
        let Some(live) = self.scratch.get_mut(..n) else {
            return;
        };
        if live.is_empty() {
            return;
        }
        let mid = live.len() / 2;
        let d = *live.select_nth_unstable(mid).1;
        self.offset[m] = self.offset[m].saturating_add(d);
        // One pass subtracts, rebuilds the table and the free list. Rebuilding when nothing
        // was freed would be harmless: the free list is always ascending (rebuilt ascending,
        // only popped from the end), so it comes out the same, and table positions only
        // decide where a key is found, not what is found.
        self.table.fill(0);
        self.free.clear();
        let mut len = 0;
        for (i, (c, &h)) in self.counts.iter_mut().zip(&self.hashes).enumerate() {
            // Counts above the median keep the difference, the others (and free slots) 0.
            c[m & 1] = c[m & 1].saturating_sub(d);
            len += usize::from(c[m & 1] != 0);
            if *c == [0, 0] {
                // Entries never exceed 2 · MAX_CAPACITY, so the index fits.
                self.free.push(i as u32);
            } else {
                Self::place(&mut self.table, h, i);
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
            .keys
            .iter()
            .zip(&self.counts)
            .filter(|(_, c)| c[m] != 0)
            .map(|(k, c)| (*k, c[m]))
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
        for ((k, &h), &c) in other.keys.iter().zip(&other.hashes).zip(&other.counts) {
            if c != [0, 0] {
                self.add_counted(k, h, c);
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
