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
//! measure subtracts a count `d` from all its counts, counts that reach 0 are dropped and `d`
//! is added to the measure's offset. With `k = ⌈capacity/4⌉` and
//! `s = min(max(k, ⌊3·capacity/8⌋), capacity - 1)`, `d` is any count with
//!
//! * `#{count ≥ d} ≥ k`: at least `k` keys lose all of `d` (the bound below), and
//! * `#{count > d} ≤ s`: at most `s` keys survive, so a full measure frees at least five
//!   eighths of its keys and purges stay rare (the exact `k`-th largest count leaves `k - 1`),
//!
//! or 0 when the measure tracks fewer than `k` keys (nothing to subtract). The exact `k`-th
//! largest count fits, but selecting it costs a gather and a partition per purge; instead one
//! counting pass makes a histogram of each measure's counts in 64 buckets of width
//! `2^b ≤ max(1, g/16)`, `g` the measure's previous `d` (the counts at one purge look much
//! like those at the previous one), and `d` is the lower edge of the highest bucket where the
//! counts from the top reach `k`, if at most `s` counts lie above it (bucket edges are counts
//! too: exact at width 1, else all of that bucket counted as above) and the bucket is neither
//! the first (counts below `2^b`, and untracked zeros) nor the last (counts `≥ 64·2^b`).
//! Otherwise (no previous `d`, a distribution that moved far) it selects the `k`-th largest
//! count. The two measures only share storage and purge times: an entry lives while either
//! measure tracks it. With `W` the total weight of a measure and `c = k = ⌈capacity/4⌉`:
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
//! Entries are a dense array of the keys some measure tracks, indexed by an open-addressing
//! table of `u32` words, `tag << 16 | (index + 1)`, at least four times the capacity, so
//! probes are short and a tag match almost always is the key: one table word and one entry
//! per lookup. A new key is appended. A purge compacts the survivors to the front (in their
//! order) in the pass that subtracts, then rebuilds the table (no tombstones, no free list),
//! so the array stays as short as the tracked keys and the next new keys land beside each
//! other. Nothing is allocated after the first insertion (but the thread's purge scratch the
//! first time a larger capacity selects): at most `2 · capacity` entries exist.

use std::cell::RefCell;
use std::cmp::Ordering;

use metrics::prefetch::prefetch;

/// Largest capacity per measure: entry indices (plus one) fit in the table word's 16 bits.
pub const MAX_CAPACITY: usize = 8192;

/// One key tracked by at least one measure. A measure tracks the key exactly when its
/// count is not 0: weights added are positive and a purge keeps only counts above what it
/// subtracts, so no separate flag is needed (and a purge is one branch-free saturating
/// subtraction per entry).
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
    /// `⌈capacity/4⌉`: keys a purge's subtrahend must not exceed the count of.
    keep: usize,
    /// `min(max(keep, ⌊3·capacity/8⌋), capacity - 1)`: most keys a purge may leave in a
    /// measure.
    most: usize,
    /// Tracked keys, in insertion order but for purges (which compact them).
    entries: Vec<Entry<K>>,
    /// `tag << 16 | (entry index + 1)`, 0 = empty.
    table: Vec<u32>,
    len: [usize; 2],
    offset: [u64; 2],
    /// Each measure's subtrahend at the previous purge (0: none yet), tried first.
    last_d: [u64; 2],
}

thread_local! {
    /// The purge's selection space, shared by every summary of a thread: a selection is
    /// rare and needs `2 · capacity` counts for a moment; one buffer that stays in cache
    /// serves them all, instead of one per summary (8 KiB at capacity 512) that is cold
    /// whenever it is used.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Entries ahead of the purge's first pass that it asks the processor for.
const PURGE_AHEAD: usize = 64;

/// Copies of a purge's histograms that consecutive entries rotate through.
const HIST_COPIES: usize = 4;

/// Buckets of a purge's count histogram.
const BUCKETS: usize = 64;

/// The bucket width (as a shift) of a purge's count histogram for previous subtrahend `g`:
/// the largest power of two at most `max(1, g/16)`, so 64 buckets span at least `2g`.
#[inline]
fn bucket_shift(g: u64) -> u32 {
    (g >> 4).max(1).ilog2()
}

/// The subtrahend a count histogram `h` (bucket shift `shift`) shows, if it fits the window
/// (see the module documentation).
#[inline]
fn from_histogram(h: &[u32; BUCKETS], shift: u32, keep: usize, most: usize) -> Option<u64> {
    let mut cum = 0;
    for b in (1..BUCKETS).rev() {
        let above = cum;
        cum += h.get(b).map_or(0, |&n| n as usize);
        if cum >= keep {
            // The top bucket is open-ended: its lower edge may be far below the k-th count.
            if b == BUCKETS - 1 {
                return None;
            }
            // At width 1 the bucket is one count: exactly `above` counts exceed it.
            let gt = if shift == 0 { above } else { cum };
            return (gt <= most).then_some((b as u64) << shift);
        }
    }
    None
}

/// What a purge subtracts from a measure with tracked counts `counts` (the others 0) and
/// previous subtrahend `guess`: see the module documentation. The plain rule, for the
/// summary's tests.
#[cfg(test)]
fn subtrahend_rule(counts: &[u64], keep: usize, most: usize, guess: u64) -> u64 {
    let tracked: Vec<u64> = counts.iter().copied().filter(|&c| c != 0).collect();
    if tracked.len() < keep {
        return 0;
    }
    if guess != 0 {
        let shift = bucket_shift(guess);
        let mut h = [0u32; BUCKETS];
        for &c in &tracked {
            h[((c >> shift) as usize).min(BUCKETS - 1)] += 1;
        }
        if let Some(d) = from_histogram(&h, shift, keep, most) {
            return d;
        }
    }
    let mut v = tracked;
    v.sort_unstable_by(|a, b| b.cmp(a));
    v[keep - 1]
}

impl<K: Copy + Eq + Ord> DualTop<K> {
    /// An empty summary tracking up to `capacity` keys per measure (clamped to
    /// `1..=MAX_CAPACITY`); allocates nothing until the first insertion.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let keep = capacity.div_ceil(4);
        Self {
            capacity,
            keep,
            // Below the capacity, so that a purge makes room (capacity 1: keep nothing).
            most: keep.max(capacity * 3 / 8).min(capacity - 1),
            entries: Vec::new(),
            table: Vec::new(),
            len: [0; 2],
            offset: [0; 2],
            last_d: [0; 2],
        }
    }

    /// Adds `w[m]` to `key` in measure `m` (a zero weight leaves that measure alone).
    /// `hash` must be a well-mixed hash of `key`, the same every time the key is seen.
    #[inline]
    pub fn insert(&mut self, key: &K, hash: u64, w: [u64; 2]) {
        if w == [0, 0] {
            return;
        }
        self.add_counted(key, hash as u32, w);
    }

    /// Adds weight (not `[0, 0]`; shared by insert and merge).
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
            self.alloc_at(key, hash, w, vacant);
            self.len[0] += usize::from(w[0] != 0);
            self.len[1] += usize::from(w[1] != 0);
            return;
        }
        self.add_new(key, hash, w, found);
    }

    /// The key is new to at least one measure it has weight in: purges as needed, then
    /// tracks it there. Out of line: the common update stays small.
    #[inline(never)]
    fn add_new(&mut self, key: &K, hash: u32, w: [u64; 2], found: Option<usize>) {
        if self.table.is_empty() {
            let cap = self.capacity;
            self.table = vec![0; (4 * cap).next_power_of_two()];
            self.entries.reserve_exact(2 * cap);
        }
        // `found` is the caller's lookup of the same key in the same state.
        let mut idx = found;
        let entry = idx.and_then(|i| self.entries.get(i));
        let due = (0..2).any(|m| {
            w[m] != 0 && self.len[m] >= self.capacity && entry.is_none_or(|e| e.count[m] == 0)
        });
        if due {
            // Afterwards no measure is full: the full ones keep at most `most` keys.
            self.purge();
            // The purge may have dropped the key's entry or moved it.
            idx = self.probe(key, hash).0;
        }
        let i = match idx {
            Some(i) => i,
            None => {
                let vacant = self.probe(key, hash).1;
                self.alloc_at(key, hash, [0, 0], vacant)
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

    /// Asks for the table word where a lookup of `hash` starts and for the place where a
    /// new entry would be appended, for an update the caller will make soon (see
    /// [`metrics::prefetch`]). Changes nothing.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        let mask = self.table.len().wrapping_sub(1);
        if !self.table.is_empty() {
            prefetch(
                self.table
                    .as_ptr()
                    .wrapping_add(hash as u32 as usize & mask),
            );
            // Room for `2 · capacity` entries is reserved with the table: the append place
            // is inside the allocation.
            self.prefetch_at(self.entries.len());
        }
    }

    /// Asks for entry place `i`: its first and last byte, as an entry may straddle two
    /// cache lines.
    #[inline(always)]
    fn prefetch_at(&self, i: usize) {
        let p = self.entries.as_ptr().wrapping_add(i).cast::<u8>();
        prefetch(p);
        prefetch(p.wrapping_add(size_of::<Entry<K>>() - 1));
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
    #[inline(always)]
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

    /// Appends an entry for `key` with counts `w`, put in table word `vacant`: the empty
    /// word where a lookup of `key` in the current table ended.
    #[inline(always)]
    fn alloc_at(&mut self, key: &K, hash: u32, w: [u64; 2], vacant: usize) -> usize {
        let i = self.entries.len();
        self.entries.push(Entry {
            key: *key,
            hash,
            count: w,
        });
        match self.table.get_mut(vacant) {
            // i < 2 · MAX_CAPACITY < 2^16: the index fits beside the tag.
            Some(t) if *t == 0 => *t = (hash >> 16) << 16 | (i as u32 + 1),
            // Only a logic error leaves no vacant word: place it the long way.
            _ => Self::place(&mut self.table, hash, i),
        }
        i
    }

    /// What the purge subtracts from each measure (see the module documentation): read from
    /// a histogram of its counts when that shows one in the window, else its `keep`-th
    /// largest count.
    // Measure indices address the histograms, the shifts and the results at once.
    #[allow(clippy::needless_range_loop)]
    fn subtrahends(&self) -> [u64; 2] {
        let shift = self.last_d.map(bucket_shift);
        // One pass, no branch: bucket 0 takes the zeros (and the smallest counts), the last
        // bucket everything above the histogram's span. Consecutive entries count into
        // different copies of the histograms: counts of one purge crowd into few buckets, and
        // increments of one memory word in a row wait for each other.
        let mut h = [[[0u32; BUCKETS]; 2]; HIST_COPIES];
        for (i, e) in self.entries.iter().enumerate() {
            // The entries were written long ago and are far down the cache hierarchy; the
            // processor's own prefetcher does not keep up with a pass this short. (The
            // pass below finds them cached.)
            self.prefetch_at(i + PURGE_AHEAD);
            let copy = &mut h[i % HIST_COPIES];
            for m in 0..2 {
                let b = ((e.count[m] >> shift[m]) as usize).min(BUCKETS - 1);
                if let Some(n) = copy[m].get_mut(b) {
                    *n += 1;
                }
            }
        }
        let mut total = [[0u32; BUCKETS]; 2];
        for copy in &h {
            for m in 0..2 {
                for (t, n) in total[m].iter_mut().zip(&copy[m]) {
                    *t += n;
                }
            }
        }
        let h = total;
        let mut d = [0; 2];
        let mut select = [false; 2];
        for m in 0..2 {
            if self.len[m] < self.keep {
                continue;
            }
            match from_histogram(&h[m], shift[m], self.keep, self.most) {
                Some(x) if self.last_d[m] != 0 => d[m] = x,
                _ => select[m] = true,
            }
        }
        if select != [false, false] {
            let r = SCRATCH.with_borrow_mut(|scratch| self.kth_largest_in(scratch, select));
            for m in 0..2 {
                if select[m] {
                    d[m] = r[m];
                }
            }
        }
        d
    }

    /// The `keep`-th largest count of each measure in `select`, or 0 for a measure that
    /// tracks fewer than `keep` keys, with `scratch` as selection space (grown to
    /// `2 · capacity`).
    fn kth_largest_in(&self, scratch: &mut Vec<u64>, select: [bool; 2]) -> [u64; 2] {
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
        let kth = |v: &mut [u64], n: usize, on: bool| match v.get_mut(..n) {
            Some(v) if on && n >= keep => *v.select_nth_unstable(n - keep).1,
            _ => 0,
        };
        [kth(a, na, select[0]), kth(b, nb, select[1])]
    }

    /// Subtracts from each measure its subtrahend, untracks the keys that reach 0 and adds
    /// what it subtracted to the measure's offset; entries tracked nowhere are dropped. One
    /// pass over the entries subtracts and compacts the survivors, one over the survivors
    /// rebuilds the table.
    // Measure indices address the subtrahends and the per-measure state at once.
    #[allow(clippy::needless_range_loop)]
    #[inline(never)]
    fn purge(&mut self) {
        let d = self.subtrahends();
        for m in 0..2 {
            self.offset[m] = self.offset[m].saturating_add(d[m]);
            if d[m] != 0 {
                self.last_d[m] = d[m];
            }
        }
        // Local slices: the stores below cannot move the vectors, so their buffers and
        // lengths stay in registers.
        let table = self.table.as_mut_slice();
        table.fill(0);
        let entries = self.entries.as_mut_slice();
        let mut len = [0; 2];
        let mut j = 0;
        // Survival is a coin toss to the branch predictor: every entry is written to the
        // next free place and only a survivor moves the cursor, so a dropped entry is
        // overwritten (the `j`-th survivor moves down to index `j <= i`).
        for i in 0..entries.len() {
            let Some(&e) = entries.get(i) else {
                break;
            };
            // Counts above the subtrahend keep the difference, the others 0.
            let c = [
                e.count[0].saturating_sub(d[0]),
                e.count[1].saturating_sub(d[1]),
            ];
            if let Some(s) = entries.get_mut(j) {
                *s = Entry { count: c, ..e };
            }
            len[0] += usize::from(c[0] != 0);
            len[1] += usize::from(c[1] != 0);
            j += usize::from(c[0] | c[1] != 0);
        }
        // The survivors, cached now, go into the cleared table.
        for (i, e) in entries.iter().take(j).enumerate() {
            Self::place(table, e.hash, i);
        }
        self.entries.truncate(j);
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

    /// Keys tracked by measure `m`.
    #[must_use]
    pub fn len(&self, m: usize) -> usize {
        self.len[m & 1]
    }

    /// True when nothing was inserted (or merged in). Whatever was inserted is still
    /// tracked or, once purged, in an offset: a key is dropped only when every count it
    /// had was subtracted, by a purge that then added at least that much to the offsets.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.offset == [0, 0]
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
        assert!(t.is_empty());
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
        assert!(!t.is_empty());
        // Capacity 8 (k = 2, s = 3): no previous subtrahend, so each measure subtracts its
        // second largest count: bytes 700 (key 7 stays), packets 1 (none stays).
        let mut t: DualTop<u16> = DualTop::with_capacity(8);
        for k in 0..8u16 {
            t.insert(&k, h(k), [(u64::from(k) + 1) * 100, 1]);
        }
        t.insert(&100, h(100), [400, 4]);
        assert_eq!((t.max_error(0), t.max_error(1)), (700, 1));
        assert_eq!(t.top(0, 9), vec![(100, 1100), (7, 800)]);
        assert_eq!(t.top(1, 9), vec![(100, 5)]);
        assert_eq!((t.len(0), t.len(1)), (2, 1));
        // Six more keys fill measure 0 again: counts 100, 400, 50, 60, 900, 1000, 1250, 90.
        // Buckets of 32 (700/16 rounded down to a power of two): 1250 and 1000 reach k = 2
        // in bucket 31, so 992 (not the exact 1000) is subtracted; two counts lie above it.
        for (k, b) in (200..206u16).zip([50, 60, 900, 1000, 1250, 90]) {
            t.insert(&k, h(k), [b, 1]);
        }
        t.insert(&300, h(300), [1, 1]);
        assert_eq!(t.max_error(0), 1692);
        assert_eq!(t.top(0, 9), vec![(204, 1950), (203, 1700), (300, 1693)]);
        // Packets: counts 4 and six 1s, width-1 buckets: the exact second largest, 1.
        assert_eq!(t.max_error(1), 2);
        assert_eq!(t.top(1, 9), vec![(100, 5), (300, 3)]);
    }

    #[test]
    fn subtrahend_rule_keeps_the_window() {
        // keep 2, most 3.
        let small = [5, 0, 9, 1, 7, 7, 3, 0, 2];
        // No previous subtrahend: the exact second largest; width-1 buckets find it too.
        assert_eq!(subtrahend_rule(&small, 2, 3, 0), 7);
        assert_eq!(subtrahend_rule(&small, 2, 3, 6), 7);
        let large = [500, 0, 900, 100, 700, 720, 300, 0, 200];
        assert_eq!(subtrahend_rule(&large, 2, 3, 0), 720);
        // Width 32 (previous 700): 900 and 720 reach two in bucket 22, lower edge 704.
        assert_eq!(subtrahend_rule(&large, 2, 3, 700), 704);
        // The previous subtrahend far too small (the top bucket) or far too large (the
        // first bucket): the exact selection.
        assert_eq!(subtrahend_rule(&large, 2, 3, 10), 720);
        assert_eq!(subtrahend_rule(&[10, 20, 30], 2, 2, 2000), 20);
        // Too many in the bucket (k = 1, s = 1: 720, 710, 705 share bucket 22).
        assert_eq!(subtrahend_rule(&[700, 710, 705, 720], 1, 1, 700), 720);
        // Fewer than `keep` tracked: nothing.
        assert_eq!(subtrahend_rule(&[0, 4, 0], 2, 3, 4), 0);
    }

    /// The algorithm of the module documentation, written plainly: one ordered map of counts
    /// per measure, the subtrahend by [`subtrahend_rule`] (a sort).
    #[derive(Default)]
    struct Model {
        cap: usize,
        counts: [BTreeMap<u16, u64>; 2],
        offset: [u64; 2],
        last_d: [u64; 2],
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
                let most = keep.max(self.cap * 3 / 8).min(self.cap - 1);
                for m in 0..2 {
                    let v: Vec<u64> = self.counts[m].values().copied().collect();
                    let d = subtrahend_rule(&v, keep, most, self.last_d[m]);
                    // The window: at least `keep` lose all of `d`, at most `most` survive.
                    if d != 0 {
                        assert!(v.iter().filter(|&&c| c >= d).count() >= keep);
                        assert!(v.iter().filter(|&&c| c > d).count() <= most);
                        self.last_d[m] = d;
                    }
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
            let all: u64 = truth.iter().flat_map(|t| t.values()).sum();
            prop_assert_eq!(d.is_empty(), all == 0);
            let c = cap.div_ceil(4) as u64;
            for m in 0..2 {
                let w: u64 = truth[m].values().sum();
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
