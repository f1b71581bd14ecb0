//! Heavy hitters of flow records by bytes and by packets at once: two weighted Misra–Gries
//! summaries sharing one key table, so a record finds its key once for both measures, with
//! a hash its caller computed once for every summary keyed on it. Not a general top-N (see
//! `metrics::topn` for that): keys are small `Copy` values and the caller supplies hashes.
//!
//! # Algorithm, error bound
//!
//! Each measure `m` is a weighted Misra–Gries summary of at most `capacity` keys with a batch
//! purge: a key tracked in `m` adds its weight; a new key, when `capacity` keys are already
//! tracked in a measure it has weight in, first purges *both* measures in one pass: each
//! measure subtracts its `k`-th largest count `d`, `k = ⌈capacity/4⌉` (0 when it tracks fewer
//! than `k` keys), from all its counts, counts that reach 0 are dropped and `d` is added to the
//! measure's offset. A purge leaves at most `k - 1` keys in a full measure: it frees at least
//! three quarters, so purges (a selection and a pass over the entries each) come a third less
//! often than with a median purge, and one pass serves both measures. The two measures only
//! share storage and purge times: an entry lives while either measure tracks it. With `W` the
//! total weight of a measure and `c = k = ⌈capacity/4⌉`:
//!
//! * `count ≤ true ≤ count + offset = estimate` for tracked keys, `true ≤ offset` otherwise
//!   (a purge takes at most `d` from any key),
//! * `offset ≤ W / c`: each purge takes `d` from at least `c` keys, so `c · offset` is at most
//!   the weight ever counted. Every key with `true > W/c` is tracked and reported (no false
//!   negatives); counts are exact while no purge happened.
//!
//! Merging inserts the other summary's tracked counts (purging as insertion does) and adds
//! its offsets; the bound holds for the union by the same argument. Property tests check the
//! bound against exact counts (uniform and skewed streams, with merges) and the table against
//! a plain model of the algorithm.
//!
//! # Layout
//!
//! Entries are a dense array (never moved, freed slots reused) indexed by an open-addressing
//! table of `u32` words, `tag << 16 | (index + 1)`, at least four times the capacity, so
//! probes are short and a tag match almost always is the key: one table word and one entry
//! per lookup. A purge rebuilds the table in the pass that subtracts (no tombstones). Nothing is
//! allocated after the first insertion (but the thread's purge scratch the first time a
//! larger capacity purges): at most `2 · capacity` entries exist.

use std::cell::RefCell;
use std::cmp::Ordering;

/// Largest capacity per measure: entry indices (plus one) fit in the table word's 16 bits.
pub const MAX_CAPACITY: usize = 8192;

/// One key tracked by at least one measure, or a free slot (both counts 0). A measure
/// tracks the key exactly when its count is not 0: weights added are positive and a purge
/// keeps only counts above what it subtracts, so no separate flag is needed (and a purge is
/// one branch-free saturating subtraction per entry).
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
    /// `⌈capacity/4⌉`: the rank, from the top, of the count a purge subtracts.
    keep: usize,
    entries: Vec<Entry<K>>,
    free: Vec<u32>,
    /// `tag << 16 | (entry index + 1)`, 0 = empty.
    table: Vec<u32>,
    len: [usize; 2],
    offset: [u64; 2],
    total: [u64; 2],
}

thread_local! {
    /// The purge's selection space, shared by every summary of a thread: a purge is
    /// rare and needs `2 · capacity` counts for a moment; one buffer that stays in cache
    /// serves them all, instead of one per summary (8 KiB at capacity 512) that is cold
    /// whenever it is used.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl<K: Copy + Eq + Ord> DualTop<K> {
    /// An empty summary tracking up to `capacity` keys per measure (clamped to
    /// `1..=MAX_CAPACITY`); allocates nothing until the first insertion.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        Self {
            capacity,
            keep: capacity.div_ceil(4),
            entries: Vec::new(),
            free: Vec::new(),
            table: Vec::new(),
            len: [0; 2],
            offset: [0; 2],
            total: [0; 2],
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
    #[inline(always)]
    fn add_counted(&mut self, key: &K, hash: u32, w: [u64; 2]) {
        let (found, vacant) = self.probe(key, hash);
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
        if found.is_none()
            && !self.table.is_empty()
            && (w[0] == 0 || self.len[0] < self.capacity)
            && (w[1] == 0 || self.len[1] < self.capacity)
        {
            // A new key and room in every measure it has weight in (with many distinct
            // keys, the usual case): a fresh entry in the table word where the lookup
            // ended, no purge to consider.
            self.track_new(key, hash, w, vacant);
            return;
        }
        self.add_new(key, hash, w, found);
    }

    /// A fresh entry for `key` with counts `w`, where every measure `w` has weight in has
    /// room for it.
    #[inline(always)]
    fn track_new(&mut self, key: &K, hash: u32, w: [u64; 2], vacant: usize) {
        let i = self.alloc_at(key, hash, vacant);
        if let Some(e) = self.entries.get_mut(i) {
            e.count = w;
        }
        self.len[0] += usize::from(w[0] != 0);
        self.len[1] += usize::from(w[1] != 0);
    }

    /// The key is new to at least one measure it has weight in: purges as needed, then
    /// tracks it there. Out of line: the common update stays small.
    #[inline(never)]
    fn add_new(&mut self, key: &K, hash: u32, w: [u64; 2], found: Option<usize>) {
        if self.table.is_empty() {
            let cap = self.capacity;
            self.table = vec![0; (4 * cap).next_power_of_two()];
            self.entries.reserve_exact(2 * cap);
            self.free.reserve_exact(2 * cap);
        }
        // `found` is the caller's lookup of the same key in the same state.
        let mut idx = found;
        let entry = idx.and_then(|i| self.entries.get(i));
        let due = (0..2).any(|m| {
            w[m] != 0 && self.len[m] >= self.capacity && entry.is_none_or(|e| e.count[m] == 0)
        });
        if due {
            // Afterwards no measure is full: the full ones keep fewer than `keep` keys.
            self.purge();
            // The purge may have freed the key's entry or moved it in the table.
            idx = self.probe(key, hash).0;
        }
        let i = match idx {
            Some(i) => i,
            None => {
                let vacant = self.probe(key, hash).1;
                self.alloc_at(key, hash, vacant)
            }
        };
        if let Some(e) = self.entries.get_mut(i) {
            for (m, (c, &wm)) in e.count.iter_mut().zip(&w).enumerate() {
                if wm != 0 {
                    self.len[m] += usize::from(*c == 0);
                    *c = c.saturating_add(wm);
                }
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

    /// Index of the entry holding `key`, and the table position where the lookup ended:
    /// the empty word a new entry for `key` takes when it is not found.
    #[inline(always)]
    fn probe(&self, key: &K, hash: u32) -> (Option<usize>, usize) {
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
                return (None, pos);
            }
            if t >> 16 == tag {
                let i = ((t & 0xFFFF) as usize).wrapping_sub(1);
                if self.entries.get(i).is_some_and(|e| e.key == *key) {
                    return (Some(i), pos);
                }
            }
            pos = (pos + 1) & mask;
        }
        (None, usize::MAX)
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

    /// A fresh entry (tracked nowhere yet) for `key`, put in table word `vacant`: the empty
    /// word where a lookup of `key` in the current table ended.
    #[inline(always)]
    fn alloc_at(&mut self, key: &K, hash: u32, vacant: usize) -> usize {
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
        match self.table.get_mut(vacant) {
            // i < 2 · MAX_CAPACITY < 2^16: the index fits beside the tag.
            Some(t) if *t == 0 => *t = (hash >> 16) << 16 | (i as u32 + 1),
            // Only a logic error leaves no vacant word: place it the long way.
            _ => Self::place(&mut self.table, hash, i),
        }
        i
    }

    /// The `keep`-th largest count of each measure (what a purge subtracts from it), or 0
    /// for a measure that tracks fewer than `keep` keys (nothing to subtract).
    fn kth_largest(&self) -> [u64; 2] {
        SCRATCH.with_borrow_mut(|scratch| self.kth_largest_in(scratch))
    }

    /// [`Self::kth_largest`] with `scratch` as selection space (grown to `2 · capacity`).
    fn kth_largest_in(&self, scratch: &mut Vec<u64>) -> [u64; 2] {
        // Both measures' tracked counts, side by side: at most `capacity` each.
        let half = self.capacity;
        if scratch.len() < 2 * half {
            scratch.resize(2 * half, 0);
        }
        let (a, rest) = scratch.split_at_mut(half);
        // Exactly `capacity` each, whatever larger summary grew the buffer before.
        let b = rest.get_mut(..half).unwrap_or_default();
        // One pass gathers both measures' tracked counts: every count is written, the
        // cursor only moves past those that are not 0 (no branch to mispredict). A measure
        // tracks at most `capacity` keys, so its half holds them all; a write past the half
        // can only be a 0 that would be overwritten.
        let (mut na, mut nb) = (0, 0);
        for e in &self.entries {
            if let Some(x) = a.get_mut(na) {
                *x = e.count[0];
            }
            if let Some(x) = b.get_mut(nb) {
                *x = e.count[1];
            }
            na += usize::from(e.count[0] != 0);
            nb += usize::from(e.count[1] != 0);
        }
        let keep = self.keep;
        let kth = |v: &mut [u64], n: usize| match v.get_mut(..n) {
            Some(v) if n >= keep => *v.select_nth_unstable(n - keep).1,
            _ => 0,
        };
        [kth(a, na), kth(b, nb)]
    }

    /// Subtracts from each measure its `keep`-th largest count, untracks the keys that reach
    /// 0 and adds what it subtracted to the measure's offset; entries tracked nowhere are
    /// freed. One pass over the entries subtracts and rebuilds the table and the free list
    /// (always ascending: rebuilt ascending, only popped from the end).
    #[inline(never)]
    fn purge(&mut self) {
        let d = self.kth_largest();
        for (o, d) in self.offset.iter_mut().zip(d) {
            *o = o.saturating_add(d);
        }
        self.table.fill(0);
        self.free.clear();
        let mut len = [0; 2];
        for (i, e) in self.entries.iter_mut().enumerate() {
            // Counts above the subtrahend keep the difference, the others (and free slots) 0.
            e.count[0] = e.count[0].saturating_sub(d[0]);
            e.count[1] = e.count[1].saturating_sub(d[1]);
            len[0] += usize::from(e.count[0] != 0);
            len[1] += usize::from(e.count[1] != 0);
            if e.count == [0, 0] {
                // Entries never exceed 2 · MAX_CAPACITY, so the index fits.
                self.free.push(i as u32);
            } else {
                Self::place(&mut self.table, e.hash, i);
            }
        }
        self.len = len;
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
        // Estimate descending, then key ascending: a total order (keys are distinct), so
        // selecting the first `n` and sorting only them gives the full sort's first `n`.
        let order = |a: &(K, u64), b: &(K, u64)| match b.1.cmp(&a.1) {
            Ordering::Equal => a.0.cmp(&b.0),
            o => o,
        };
        if n == 0 {
            rows.clear();
        } else if n < rows.len() {
            rows.select_nth_unstable_by(n - 1, order);
            rows.truncate(n);
        }
        rows.sort_unstable_by(order);
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
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn h(k: u16) -> u64 {
        metrics::hash::hash_u64(u64::from(k))
    }

    #[test]
    fn counts_exactly_until_full_then_purges_both_measures() {
        // Capacity 4: a purge subtracts each measure's largest count (k = 1).
        let mut t: DualTop<u16> = DualTop::with_capacity(4);
        t.insert(&1, h(1), [10, 1]);
        t.insert(&2, h(2), [20, 0]);
        t.insert(&3, h(3), [30, 2]);
        t.insert(&1, h(1), [5, 1]);
        t.insert(&4, h(4), [1, 1]);
        assert_eq!(t.top(0, 9), vec![(3, 30), (2, 20), (1, 15), (4, 1)]);
        assert_eq!(t.top(1, 9), vec![(1, 2), (3, 2), (4, 1)]);
        assert_eq!((t.max_error(0), t.max_error(1)), (0, 0));
        // Measure 0 is full: key 5 purges both (d = 30 and 2): everything is dropped.
        t.insert(&5, h(5), [7, 3]);
        assert_eq!((t.max_error(0), t.max_error(1)), (30, 2));
        assert_eq!(t.top(0, 9), vec![(5, 37)]);
        assert_eq!(t.top(1, 9), vec![(5, 5)]);
        assert_eq!((t.len(0), t.len(1)), (1, 1));
        assert_eq!((t.total_weight(0), t.total_weight(1)), (73, 8));
        // Capacity 8 (k = 2): the second largest is subtracted, the largest key stays.
        let mut t: DualTop<u16> = DualTop::with_capacity(8);
        for k in 0..8u16 {
            t.insert(&k, h(k), [u64::from(k) + 1, 1]);
        }
        t.insert(&100, h(100), [4, 4]);
        assert_eq!(t.max_error(0), 7);
        assert_eq!(t.max_error(1), 1);
        assert_eq!(
            t.top(0, 9),
            vec![(7, 8), (100, 11)]
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
        );
        assert_eq!(t.top(1, 9), vec![(100, 5)]);
    }

    /// The algorithm of the module documentation, written plainly: one ordered map of counts
    /// per measure, the purge a sort.
    #[derive(Default)]
    struct Model {
        cap: usize,
        counts: [BTreeMap<u16, u64>; 2],
        offset: [u64; 2],
    }

    impl Model {
        // Measure indices address the weights and the per-measure state at once.
        #[allow(clippy::needless_range_loop)]
        fn insert(&mut self, k: u16, w: [u64; 2]) {
            let due = (0..2).any(|m| {
                w[m] != 0 && self.counts[m].len() >= self.cap && !self.counts[m].contains_key(&k)
            });
            if due {
                let keep = self.cap.div_ceil(4);
                for m in 0..2 {
                    let mut v: Vec<u64> = self.counts[m].values().copied().collect();
                    v.sort_unstable_by(|a, b| b.cmp(a));
                    let d = v.get(keep - 1).copied().unwrap_or(0);
                    self.offset[m] += d;
                    self.counts[m].retain(|_, c| {
                        *c = c.saturating_sub(d);
                        *c != 0
                    });
                }
            }
            for m in 0..2 {
                if w[m] != 0 {
                    *self.counts[m].entry(k).or_insert(0) += w[m];
                }
            }
        }

        fn top(&self, m: usize) -> Vec<(u16, u64)> {
            let mut rows: Vec<(u16, u64)> = self.counts[m]
                .iter()
                .map(|(k, c)| (*k, c + self.offset[m]))
                .collect();
            rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            rows
        }
    }

    /// A stream of (key, bytes, packets) with few distinct keys, so purges happen.
    fn stream() -> impl Strategy<Value = Vec<(u16, u64, u64)>> {
        prop::collection::vec((0u16..40, 0u64..1000, 0u64..5), 0..400)
    }

    /// Many distinct keys, nearly every one new (the worst case for the purge).
    fn uniform() -> impl Strategy<Value = Vec<(u16, u64, u64)>> {
        prop::collection::vec((any::<u16>(), 1u64..1500, 1u64..4), 0..600)
    }

    /// Heavy-tailed keys: key `⌊2^(16·u³)⌋` for uniform `u`, so small keys are frequent;
    /// the weights of the frequent keys are larger.
    fn skewed() -> impl Strategy<Value = Vec<(u16, u64, u64)>> {
        prop::collection::vec((0u32..1000, 1u64..100, 1u64..4), 0..600).prop_map(|v| {
            v.into_iter()
                .map(|(u, b, p)| {
                    let x = f64::from(u) / 1000.0;
                    let k = 2f64.powf(16.0 * x * x * x) as u16;
                    let heavy = u64::from(k < 4) * 50;
                    (k, b * (1 + heavy), p)
                })
                .collect()
        })
    }

    fn any_stream() -> impl Strategy<Value = Vec<(u16, u64, u64)>> {
        prop_oneof![stream(), uniform(), skewed()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The table, the free list and the one-pass purge report exactly what the plain
        /// model of the algorithm reports.
        #[test]
        fn equals_plain_model(s in any_stream(), cap in 1usize..40) {
            let mut d: DualTop<u16> = DualTop::with_capacity(cap);
            let mut model = Model { cap, ..Model::default() };
            for &(k, wb, wp) in &s {
                d.insert(&k, h(k), [wb, wp]);
                model.insert(k, [wb, wp]);
                for m in 0..2 {
                    prop_assert_eq!(d.len(m), model.counts[m].len());
                }
            }
            for m in 0..2 {
                prop_assert_eq!(d.top(m, usize::MAX), model.top(m));
                prop_assert_eq!(d.max_error(m), model.offset[m]);
            }
        }

        /// A short list is the first rows of the full list (the partial selection agrees
        /// with the full sort, ties broken by key).
        #[test]
        fn short_top_is_a_prefix_of_the_full_list(
            s in any_stream(),
            cap in 1usize..40,
            n in 0usize..24,
        ) {
            let mut d: DualTop<u16> = DualTop::with_capacity(cap);
            for &(k, wb, wp) in &s {
                d.insert(&k, h(k), [wb, wp]);
            }
            for m in 0..2 {
                let full = d.top(m, usize::MAX);
                let short = d.top(m, n);
                prop_assert_eq!(&short[..], &full[..n.min(full.len())]);
            }
        }

        /// The bound against exact counts, also after a merge of two summaries.
        #[allow(clippy::needless_range_loop)]
        #[test]
        fn bound_holds_against_exact_counts(
            s in any_stream(),
            t in any_stream(),
            cap in 1usize..64,
        ) {
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
            let c = cap.div_ceil(4) as u64;
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
