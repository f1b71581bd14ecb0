//! Heavy-hitter (frequent items) sketch with no false negatives: weighted Misra–Gries with
//! batch purge; it reports upper-bound estimates for the most frequent keys, not exact
//! counts for every key.
//!
//! # Algorithm and why
//!
//! Misra–Gries with a batch purge (the DataSketches frequent-items scheme): each tracked key
//! has a counter; when a new key arrives and the table already holds `capacity` keys, the
//! median counter value `d` is subtracted from every counter, counters that reach zero are
//! dropped, and `d` is added to a global `offset`. Chosen over SpaceSaving because an
//! update of a tracked key is a single hash lookup and add (SpaceSaving needs a min-heap
//! or stream-summary, and weighted updates break the O(1) stream-summary), the O(capacity)
//! purge frees half the table so it costs O(1) amortized per new key, and Misra–Gries
//! summaries have a simple, provable merge.
//!
//! # Error bound
//!
//! Let `W` be the total inserted weight and `c = ⌈capacity/2⌉`. For every key:
//!
//! * `lower = count ≤ true ≤ count + offset = estimate` (tracked keys),
//! * `true ≤ offset` for untracked keys,
//! * `offset ≤ W / c`, i.e. `true ≤ estimate ≤ true + W/⌈capacity/2⌉ ≈ true + 2W/capacity`.
//!
//! Proof sketch: a purge with value `d` happens with `capacity` keys tracked; at least
//! `c` of them hold `≥ d` (d is the median), so it removes at least `c·d` counted weight.
//! Counters never go negative and only inserted weight is ever counted, so
//! `c · offset ≤ W`. Hence every key with `true > W/c` is tracked and reported
//! (no false negatives). While no purge happened (`offset == 0`), counts are exact.
//!
//! # Merge
//!
//! `merge(a, b)` inserts every tracked `(key, count)` of `b` into `a` (purging as needed)
//! and adds `b`'s offset. The purges of both sketches and of the merge each remove at least
//! `c` times their `d`, so the merged offset is still `≤ (W_a + W_b)/c` and the per-key
//! bounds hold for the union: merge is associative and commutative within the bound (and
//! exactly so while no purge happens anywhere).
//!
//! # Memory
//!
//! A byte-string key is copied into the sketch only when it becomes tracked, into its slot:
//! inline when short (up to [`INLINE_KEY_BYTES`], so a lookup touches no second heap
//! location), else into the slot's `Vec<u8>`, which keeps its capacity after the key is
//! evicted; after warm-up a flood of distinct keys does not allocate. Fixed-size keys are
//! stored inline.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use foldhash::quality::FixedState;
use hashbrown::HashTable;

/// Default number of tracked keys.
pub const DEFAULT_CAPACITY: usize = 2048;
/// Fixed seed of the key → slot hash map (determinism: no `RandomState`).
const MAP_SEED: u64 = 0x746f_706e_5f6b_6579;
/// Entries of the direct-mapped slot cache (a power of two; 2 KiB per sketch in use).
const CACHE_SLOTS: usize = 512;

/// A key type a [`TopN`] can track.
///
/// `insert` takes `&Self`, which may be unsized (`[u8]`, `str`): the key is copied into a
/// [`TopKey::Slot`] only when it becomes tracked, reusing the slot's storage when possible.
pub trait TopKey: Eq + Hash + Ord {
    /// Storage for a tracked key (e.g. `Vec<u8>` reused across evictions, or the key inline).
    type Slot: Clone + fmt::Debug;
    /// Owned form returned by [`TopN::top`].
    type Owned: Clone + fmt::Debug + Ord;

    /// Creates storage holding `self`.
    fn new_slot(&self) -> Self::Slot;
    /// Overwrites `slot` with `self`, reusing its allocation.
    fn store_into(&self, slot: &mut Self::Slot);
    /// Borrows the key held by `slot`.
    fn view(slot: &Self::Slot) -> &Self;
    /// Owned copy of the key.
    fn to_owned_key(&self) -> Self::Owned;
    /// Heap bytes held by `slot` beyond its inline size.
    fn slot_heap_bytes(_slot: &Self::Slot) -> usize {
        0
    }
    /// Whether `slot` holds `key` (key types override it with a cheaper comparison).
    #[inline]
    fn slot_eq(slot: &Self::Slot, key: &Self) -> bool {
        Self::view(slot) == key
    }
}

/// Longest byte key stored inline in its slot (DNS names are usually shorter): comparing a
/// tracked key then reads the slot itself, not a second heap location.
pub const INLINE_KEY_BYTES: usize = 46;

/// Storage of a tracked byte-string key: inline up to [`INLINE_KEY_BYTES`], else in a
/// `Vec` whose capacity is kept for later (longer) keys, so evictions never allocate.
#[derive(Clone)]
pub struct ByteSlot {
    len: u16,
    inline: [u8; INLINE_KEY_BYTES],
    spill: Vec<u8>,
}

impl ByteSlot {
    /// The stored key.
    #[inline]
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        let len = usize::from(self.len);
        if len <= INLINE_KEY_BYTES {
            self.inline.get(..len).unwrap_or_default()
        } else {
            self.spill.as_slice()
        }
    }

    #[inline]
    fn store(&mut self, key: &[u8]) {
        if let Some(dst) = self.inline.get_mut(..key.len()) {
            dst.copy_from_slice(key);
            // key.len() ≤ INLINE_KEY_BYTES here, so it fits in u16.
            self.len = key.len() as u16;
        } else {
            self.spill.clear();
            self.spill.extend_from_slice(key);
            // Anything longer than the inline room reads from `spill`; the marker only has
            // to exceed the inline length.
            self.len = u16::MAX;
        }
    }
}

/// Equality of two byte strings of the same length, eight bytes at a time: the keys are
/// short, and a call to `memcmp` costs more than the comparison itself.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |s: &[u8], i: usize| {
        s.get(i..)
            .and_then(|r| r.first_chunk::<8>())
            .map(|w| u64::from_ne_bytes(*w))
    };
    let n = a.len();
    if b.len() != n {
        return false;
    }
    if n < 8 {
        // Short keys (HTTP methods, short labels) without a call to `memcmp`: two overlapping
        // four-byte words, or the first, middle and last bytes, cover every byte.
        let half = |s: &[u8], i: usize| {
            s.get(i..)
                .and_then(|r| r.first_chunk::<4>())
                .map(|w| u32::from_ne_bytes(*w))
        };
        return if n >= 4 {
            half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
        } else {
            n == 0
                || (a.first() == b.first() && a.get(n / 2) == b.get(n / 2) && a.last() == b.last())
        };
    }
    // Whole words from the front, then the last eight bytes (overlapping the previous word).
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

impl fmt::Debug for ByteSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ByteSlot")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

impl TopKey for [u8] {
    type Slot = ByteSlot;
    type Owned = Vec<u8>;

    fn new_slot(&self) -> ByteSlot {
        let mut slot = ByteSlot {
            len: 0,
            inline: [0; INLINE_KEY_BYTES],
            spill: Vec::new(),
        };
        slot.store(self);
        slot
    }
    #[inline]
    fn store_into(&self, slot: &mut ByteSlot) {
        slot.store(self);
    }
    #[inline]
    fn view(slot: &ByteSlot) -> &[u8] {
        slot.as_bytes()
    }
    fn to_owned_key(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn slot_heap_bytes(slot: &ByteSlot) -> usize {
        slot.spill.capacity()
    }
    #[inline]
    fn slot_eq(slot: &ByteSlot, key: &[u8]) -> bool {
        let stored = slot.as_bytes();
        stored.len() == key.len() && same_bytes(stored, key)
    }
}

impl TopKey for str {
    type Slot = String;
    type Owned = String;

    fn new_slot(&self) -> String {
        self.to_owned()
    }
    fn store_into(&self, slot: &mut String) {
        slot.clear();
        slot.push_str(self);
    }
    fn view(slot: &String) -> &str {
        slot.as_str()
    }
    fn to_owned_key(&self) -> String {
        self.to_owned()
    }
    fn slot_heap_bytes(slot: &String) -> usize {
        slot.capacity()
    }
}

/// Implements [`TopKey`] for small `Copy` keys stored inline.
macro_rules! inline_key {
    ($($t:ty),* $(,)?) => {$(
        impl TopKey for $t {
            type Slot = $t;
            type Owned = $t;

            fn new_slot(&self) -> $t {
                *self
            }
            fn store_into(&self, slot: &mut $t) {
                *slot = *self;
            }
            fn view(slot: &$t) -> &$t {
                slot
            }
            fn to_owned_key(&self) -> $t {
                *self
            }
        }
    )*};
}

inline_key!(u8, u16, u32, u64, u128, IpAddr, Ipv4Addr, Ipv6Addr);

impl<const N: usize> TopKey for [u8; N] {
    type Slot = [u8; N];
    type Owned = [u8; N];

    fn new_slot(&self) -> [u8; N] {
        *self
    }
    fn store_into(&self, slot: &mut [u8; N]) {
        *slot = *self;
    }
    fn view(slot: &[u8; N]) -> &[u8; N] {
        slot
    }
    fn to_owned_key(&self) -> [u8; N] {
        *self
    }
}

/// One tracked (or free, reusable) key slot.
#[derive(Clone, Debug)]
struct Entry<S> {
    key: S,
    count: u64,
    hash: u64,
}

/// Frequent-items sketch (weighted Misra–Gries with median batch purge), no false negatives.
///
/// Error bound: `true ≤ estimate ≤ true + W/⌈capacity/2⌉` for every tracked key, every key
/// with `true > W/⌈capacity/2⌉` is tracked, counts are exact while [`Self::max_error`] is 0.
/// See the module documentation for the proof and the merge bound.
pub struct TopN<K: TopKey + ?Sized> {
    capacity: usize,
    /// Key hash → index into `slots`.
    table: HashTable<u32>,
    slots: Vec<Entry<K::Slot>>,
    /// Indices of evicted slots, reused (with their storage) for new keys.
    free: Vec<u32>,
    offset: u64,
    total: u64,
    purges: u64,
    /// Reused buffer for the purge's median selection.
    scratch: Vec<u64>,
    hasher: FixedState,
    /// Direct-mapped cache, by key hash, of slots found recently (`index + 1`, 0 = empty):
    /// most updates are to a tracked key, and this finds its slot without probing the
    /// table. It only short-cuts lookups (the table and its operations are unchanged, so
    /// results are identical); purges, the only place slots are freed, clear it, so a hit
    /// is always a tracked slot. Allocated at the first insertion.
    cache: Vec<u32>,
    /// The slot [`TopN::insert_repeating`] last counted into (`index + 1`, 0 = none): like a
    /// cache entry, always a tracked slot (purges clear it).
    last: u32,
}

impl<K: TopKey + ?Sized> Clone for TopN<K> {
    fn clone(&self) -> Self {
        TopN {
            capacity: self.capacity,
            table: self.table.clone(),
            slots: self.slots.clone(),
            free: self.free.clone(),
            offset: self.offset,
            total: self.total,
            purges: self.purges,
            scratch: Vec::new(),
            hasher: self.hasher.clone(),
            cache: Vec::new(),
            last: 0,
        }
    }
}

impl<K: TopKey + ?Sized> fmt::Debug for TopN<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopN")
            .field("capacity", &self.capacity)
            .field("tracked", &self.table.len())
            .field("offset", &self.offset)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl<K: TopKey + ?Sized> Default for TopN<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: TopKey + ?Sized> TopN<K> {
    /// Creates an empty sketch tracking up to [`DEFAULT_CAPACITY`] keys.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// Creates an empty sketch tracking up to `capacity` keys (at least 1). Allocates
    /// nothing until the first insertion.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        TopN {
            capacity: capacity.clamp(1, u32::MAX as usize),
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            offset: 0,
            total: 0,
            purges: 0,
            scratch: Vec::new(),
            hasher: FixedState::with_seed(MAP_SEED),
            cache: Vec::new(),
            last: 0,
        }
    }

    /// Adds `weight` occurrences of `key` (no-op for weight 0).
    #[inline]
    pub fn insert(&mut self, key: &K, weight: u64) {
        if weight == 0 {
            return;
        }
        self.total = self.total.saturating_add(weight);
        let hash = self.hasher.hash_one(key);
        self.add_counted(key, hash, weight);
    }

    /// [`Self::insert`] for keys that often repeat the one inserted just before this way (the
    /// Host or User-Agent of consecutive requests): the slot of that key is compared first,
    /// and a repeat is counted without hashing. The result is exactly that of `insert`; a key
    /// that does not repeat costs one extra comparison.
    #[inline]
    pub fn insert_repeating(&mut self, key: &K, weight: u64) {
        if weight == 0 {
            return;
        }
        if let Some(e) = self.slots.get_mut((self.last as usize).wrapping_sub(1))
            && K::slot_eq(&e.key, key)
        {
            self.total = self.total.saturating_add(weight);
            e.count = e.count.saturating_add(weight);
            return;
        }
        self.insert_new_repeat(key, weight);
    }

    /// [`Self::insert_repeating`] when the key is not the previous one: out of line, so the
    /// repeat stays small enough to inline.
    #[inline(never)]
    fn insert_new_repeat(&mut self, key: &K, weight: u64) {
        self.total = self.total.saturating_add(weight);
        let hash = self.hasher.hash_one(key);
        let slot = self.add_counted(key, hash, weight);
        self.last = slot.wrapping_add(1);
    }

    /// Adds counted weight for `key` without touching the total (shared by insert and merge);
    /// returns the key's slot.
    #[inline]
    fn add_counted(&mut self, key: &K, hash: u64, weight: u64) -> u32 {
        let at = hash as usize & (CACHE_SLOTS - 1);
        if let Some(&c) = self.cache.get(at)
            && let Some(e) = self.slots.get_mut((c as usize).wrapping_sub(1))
            && e.hash == hash
            && K::slot_eq(&e.key, key)
        {
            e.count = e.count.saturating_add(weight);
            return c.wrapping_sub(1);
        }
        self.add_uncached(key, hash, weight, at)
    }

    /// [`Self::add_counted`] past the cache: the table lookup, or a new key. Out of line so
    /// that the cache hit stays small enough to inline.
    #[inline(never)]
    fn add_uncached(&mut self, key: &K, hash: u64, weight: u64, at: usize) -> u32 {
        if self.cache.is_empty() {
            self.cache = vec![0; CACHE_SLOTS];
        }
        let slots = &mut self.slots;
        if let Some(&i) = self.table.find(hash, |&i| {
            slots
                .get(i as usize)
                .is_some_and(|e| e.hash == hash && K::slot_eq(&e.key, key))
        }) {
            if let Some(e) = slots.get_mut(i as usize) {
                e.count = e.count.saturating_add(weight);
            }
            if let Some(c) = self.cache.get_mut(at) {
                *c = i.wrapping_add(1);
            }
            return i;
        }
        if self.table.len() >= self.capacity {
            self.purge();
        }
        let i = self.alloc_slot(key, hash, weight);
        let slots = &self.slots;
        self.table
            .insert_unique(hash, i, |&j| slots.get(j as usize).map_or(0, |e| e.hash));
        if let Some(c) = self.cache.get_mut(at) {
            *c = i.wrapping_add(1);
        }
        i
    }

    /// Stores `key` in a free slot (reusing its storage) or a new one; returns its index.
    fn alloc_slot(&mut self, key: &K, hash: u64, count: u64) -> u32 {
        if let Some(i) = self.free.pop()
            && let Some(e) = self.slots.get_mut(i as usize)
        {
            key.store_into(&mut e.key);
            e.count = count;
            e.hash = hash;
            return i;
        }
        self.slots.push(Entry {
            key: key.new_slot(),
            count,
            hash,
        });
        // slots.len() ≤ capacity ≤ u32::MAX, so the index fits.
        (self.slots.len() - 1) as u32
    }

    /// Subtracts the median counter from all counters, drops the non-positive ones and adds
    /// the median to the offset.
    // Cold path (once per ~capacity/2 new keys): kept out of line so the update stays small.
    #[inline(never)]
    fn purge(&mut self) {
        let slots = &mut self.slots;
        self.scratch.clear();
        self.scratch.extend(
            self.table
                .iter()
                .filter_map(|&i| slots.get(i as usize).map(|e| e.count)),
        );
        if self.scratch.is_empty() {
            return;
        }
        let mid = self.scratch.len() / 2;
        let d = *self.scratch.select_nth_unstable(mid).1;
        // Slots are freed below: forget every cached one.
        self.cache.fill(0);
        self.last = 0;
        self.offset = self.offset.saturating_add(d);
        self.purges += 1;
        // Rebuild the table instead of erasing in place: erasures leave tombstones that
        // lengthen every later probe, and a purge already touches every entry anyway.
        // `clear` keeps the allocation, so a purge does not allocate.
        self.scratch.clear();
        for &i in self.table.iter() {
            match slots.get_mut(i as usize) {
                Some(e) if e.count > d => {
                    e.count -= d;
                    self.scratch.push(u64::from(i));
                }
                _ => self.free.push(i),
            }
        }
        self.table.clear();
        for &i in &self.scratch {
            // Indices come from `u32` slots, so the conversion is lossless.
            let i = i as u32;
            let hash = slots.get(i as usize).map_or(0, |e| e.hash);
            self.table
                .insert_unique(hash, i, |&j| slots.get(j as usize).map_or(0, |e| e.hash));
        }
    }

    /// The `n` keys with the largest estimates, as `(key, estimate)`, sorted by estimate
    /// descending then key ascending (deterministic). Estimates are upper bounds
    /// (count + offset), as DataSketches reports with NO_FALSE_NEGATIVES.
    #[must_use]
    pub fn top(&self, n: usize) -> Vec<(K::Owned, u64)> {
        let mut idx: Vec<&Entry<K::Slot>> = self
            .table
            .iter()
            .filter_map(|&i| self.slots.get(i as usize))
            .collect();
        idx.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| K::view(&a.key).cmp(K::view(&b.key)))
        });
        idx.into_iter()
            .take(n)
            .map(|e| {
                (
                    K::view(&e.key).to_owned_key(),
                    e.count.saturating_add(self.offset),
                )
            })
            .collect()
    }

    /// Upper-bound estimate (count + offset) of a tracked key, 0 for an untracked key
    /// (DataSketches' `get_estimate`).
    #[must_use]
    pub fn estimate(&self, key: &K) -> u64 {
        self.count_of(key)
            .map_or(0, |c| c.saturating_add(self.offset))
    }

    /// Upper bound of the true weight of any key (offset for untracked keys).
    #[must_use]
    pub fn upper_bound(&self, key: &K) -> u64 {
        self.count_of(key).unwrap_or(0).saturating_add(self.offset)
    }

    /// Lower bound of the true weight of any key (0 for untracked keys).
    #[must_use]
    pub fn lower_bound(&self, key: &K) -> u64 {
        self.count_of(key).unwrap_or(0)
    }

    fn count_of(&self, key: &K) -> Option<u64> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.table
            .find(hash, |&i| {
                slots
                    .get(i as usize)
                    .is_some_and(|e| e.hash == hash && K::slot_eq(&e.key, key))
            })
            .and_then(|&i| slots.get(i as usize).map(|e| e.count))
    }

    /// Maximum over-estimate of any reported value (the offset); 0 means counts are exact.
    #[must_use]
    pub fn max_error(&self) -> u64 {
        self.offset
    }

    /// Number of purges so far (including those of merged sketches); a cost diagnostic.
    #[must_use]
    pub fn purges(&self) -> u64 {
        self.purges
    }

    /// Total inserted weight `W` (including merged sketches).
    #[must_use]
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// Number of keys currently tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Maximum number of tracked keys.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when nothing was inserted (or merged in).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Merges `other` into `self` (see the module documentation for the bound). Uses
    /// `self`'s capacity; the bound then holds with the smaller of the two capacities.
    pub fn merge(&mut self, other: &Self) {
        for &i in other.table.iter() {
            if let Some(e) = other.slots.get(i as usize) {
                self.add_counted(K::view(&e.key), e.hash, e.count);
            }
        }
        self.offset = self.offset.saturating_add(other.offset);
        self.total = self.total.saturating_add(other.total);
        self.purges = self.purges.saturating_add(other.purges);
    }

    /// Heap bytes held: slot array, key storage, hash table and scratch buffers. Bounded by
    /// `capacity` and the longest key ever stored, whatever the number of distinct keys.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Entry<K::Slot>>()
            + self
                .slots
                .iter()
                .map(|e| K::slot_heap_bytes(&e.key))
                .sum::<usize>()
            + self.table.allocation_size()
            + self.free.capacity() * size_of::<u32>()
            + self.scratch.capacity() * size_of::<u64>()
            + self.cache.capacity() * size_of::<u32>()
    }
}

impl<K: TopKey + ?Sized> PartialEq for TopN<K> {
    /// Equal when the tracked keys, their counts, the offset and the total weight agree
    /// (table layout and capacity of buffers do not matter).
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.total == other.total
            && self.len() == other.len()
            && self.top(usize::MAX) == other.top(usize::MAX)
    }
}

/// Orders `(key, estimate)` rows as [`TopN::top`] does (estimate descending, key ascending).
#[must_use]
pub fn row_order<O: Ord>(a: &(O, u64), b: &(O, u64)) -> Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn cache_never_counts_into_a_freed_slot() {
        let mut t: TopN<[u8]> = TopN::with_capacity(2);
        t.insert(b"a", 1);
        t.insert(b"b", 10);
        // Full: this purges (median 10), freeing both slots, and takes one of them.
        t.insert(b"c", 10);
        assert_eq!(t.max_error(), 10);
        assert_eq!(t.lower_bound(b"a"), 0);
        // "a" was cached before the purge; it must be counted as a new key now.
        t.insert(b"a", 1);
        t.insert(b"a", 2);
        assert_eq!(t.lower_bound(b"a"), 3);
        assert_eq!(t.lower_bound(b"c"), 10);
        assert_eq!(t.len(), 2);
        assert_eq!(t.top(5), vec![(b"c".to_vec(), 20), (b"a".to_vec(), 13)]);
    }

    proptest! {
        /// Word, half-word and byte comparisons agree with `==` at every length, for strings
        /// that differ in one byte anywhere.
        #[test]
        fn same_bytes_is_slice_equality(
            a in proptest::collection::vec(any::<u8>(), 0..24),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
            other_len in 0usize..24,
        ) {
            prop_assert!(same_bytes(&a, &a));
            let mut b = a.clone();
            if !b.is_empty() {
                let i = at.index(b.len());
                b[i] ^= flip;
            }
            prop_assert_eq!(same_bytes(&a, &b), a == b);
            let c: Vec<u8> = a.iter().copied().cycle().take(other_len).collect();
            prop_assert_eq!(same_bytes(&a, &c), a == c);
        }
    }

    #[test]
    fn byte_keys_compare_by_words_and_tail() {
        for (a, b, eq) in [
            (&b"0123456789abcdef"[..], &b"0123456789abcdef"[..], true),
            (b"0123456789abcdef", b"0123456789abcdeF", false),
            (b"0123456X89abcdef", b"0123456789abcdef", false),
            (b"0123456789", b"0123456789", true),
            (b"0123456789", b"0123456788", false),
            (b"", b"", true),
        ] {
            assert_eq!(same_bytes(a, b), eq, "{a:?} {b:?}");
            let slot = a.new_slot();
            assert_eq!(<[u8]>::slot_eq(&slot, b), eq);
        }
        let long = vec![7u8; 100];
        let slot = long.as_slice().new_slot();
        assert!(<[u8]>::slot_eq(&slot, &long));
        assert!(!<[u8]>::slot_eq(&slot, &long[..99]));
    }

    fn exact(stream: &[(u16, u64)]) -> BTreeMap<u16, u64> {
        let mut m = BTreeMap::new();
        for &(k, w) in stream {
            *m.entry(k).or_insert(0) += w;
        }
        m
    }

    fn build(stream: &[(u16, u64)], cap: usize) -> TopN<u16> {
        let mut t = TopN::with_capacity(cap);
        for (k, w) in stream {
            t.insert(k, *w);
        }
        t
    }

    /// Checks every per-key bound of the module documentation against exact counts.
    fn check_bounds(t: &TopN<u16>, truth: &BTreeMap<u16, u64>, cap: usize) -> Result<(), String> {
        let w: u64 = truth.values().sum();
        let c = cap.div_ceil(2) as u64;
        if t.total_weight() != w {
            return Err(format!("total {} != {w}", t.total_weight()));
        }
        if t.max_error() * c > w {
            return Err(format!("offset {} > W/c = {w}/{c}", t.max_error()));
        }
        for (&k, &tr) in truth {
            let lo = t.lower_bound(&k);
            let hi = t.upper_bound(&k);
            if !(lo <= tr && tr <= hi) {
                return Err(format!("key {k}: {lo} <= {tr} <= {hi} fails"));
            }
            if tr * c > w && t.estimate(&k) == 0 {
                return Err(format!("false negative {k} true {tr}"));
            }
        }
        if t.len() > cap {
            return Err(format!("tracks {} > {cap}", t.len()));
        }
        Ok(())
    }

    #[test]
    fn exact_without_purge_and_deterministic_order() {
        let mut t: TopN<[u8]> = TopN::new();
        for (name, w) in [
            (&b"b.com"[..], 3),
            (b"a.com", 3),
            (b"c.com", 5),
            (b"a.com", 1),
        ] {
            t.insert(name, w);
        }
        assert_eq!(t.max_error(), 0);
        assert_eq!(
            t.top(10),
            vec![
                (b"c.com".to_vec(), 5),
                (b"a.com".to_vec(), 4),
                (b"b.com".to_vec(), 3)
            ]
        );
        assert_eq!(t.top(1), vec![(b"c.com".to_vec(), 5)]);
        assert_eq!(t.estimate(b"zzz"), 0);
        assert_eq!(t.total_weight(), 12);
    }

    #[test]
    fn ties_break_by_key_ascending() {
        let mut t: TopN<u16> = TopN::new();
        for k in [53u16, 443, 80, 22] {
            t.insert(&k, 7);
        }
        let keys: Vec<u16> = t.top(4).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![22, 53, 80, 443]);
    }

    #[test]
    fn fixed_keys_and_strings_work() {
        let mut ips: TopN<IpAddr> = TopN::with_capacity(4);
        ips.insert(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 2);
        ips.insert(&IpAddr::V6(Ipv6Addr::LOCALHOST), 1);
        assert_eq!(
            ips.top(1),
            vec![(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 2)]
        );
        let mut raw: TopN<[u8; 16]> = TopN::new();
        raw.insert(&[1; 16], 9);
        assert_eq!(raw.estimate(&[1; 16]), 9);
        let mut s: TopN<str> = TopN::new();
        s.insert("x", 1);
        assert_eq!(s.top(5), vec![("x".to_owned(), 1)]);
    }

    #[test]
    fn purge_keeps_heavy_hitter_and_bound() {
        let mut stream = Vec::new();
        for i in 0..10_000u16 {
            stream.push((i % 5_000 + 100, 1));
            if i % 4 == 0 {
                stream.push((7, 1));
            }
        }
        let t = build(&stream, 64);
        assert!(t.max_error() > 0);
        check_bounds(&t, &exact(&stream), 64).unwrap();
        assert_eq!(t.top(1)[0].0, 7);
    }

    #[test]
    fn inline_and_spilled_byte_keys_round_trip() {
        let short = b"a.example".to_vec();
        let edge = vec![b'e'; INLINE_KEY_BYTES];
        let long = vec![b'l'; INLINE_KEY_BYTES + 1];
        let mut t: TopN<[u8]> = TopN::with_capacity(2);
        t.insert(&long, 3);
        t.insert(&edge, 2);
        assert_eq!(t.top(2), vec![(long.clone(), 3), (edge.clone(), 2)]);
        // Evicts both (median purge), then reuses their slots: a short key lands in the slot
        // that held a spilled key and the other way round.
        t.insert(&short, 9);
        t.insert(&long, 9);
        t.insert(&short, 1);
        assert_eq!(t.estimate(&short) - t.max_error(), 10);
        assert_eq!(t.lower_bound(&long), 9);
        assert_eq!(t.lower_bound(&edge), 0);
        assert_eq!(t.lower_bound(b""), 0);
        t.insert(b"", 4);
        assert!(t.top(3).iter().any(|(k, _)| k.is_empty()));
        let slot = <[u8] as TopKey>::new_slot(&long[..]);
        assert_eq!(slot.as_bytes(), &long[..]);
        assert!(format!("{slot:?}").contains("lll"));
    }

    #[test]
    fn flood_of_distinct_names_has_bounded_memory() {
        let mut t: TopN<[u8]> = TopN::new();
        let mut name = *b"host00000000.flood.example.com";
        let mut at_half = 0;
        for i in 0..1_000_000u32 {
            let mut x = i;
            for d in name[4..12].iter_mut().rev() {
                *d = b'0' + (x % 10) as u8;
                x /= 10;
            }
            t.insert(&name[..], 1);
            if i % 7 == 0 {
                t.insert(b"popular.example.com", 1);
            }
            if i == 499_999 {
                at_half = t.heap_bytes();
            }
        }
        let end = t.heap_bytes();
        assert_eq!(end, at_half, "memory grew after warm-up");
        assert!(end < 1024 * 1024, "heap {end}");
        assert!(t.len() <= DEFAULT_CAPACITY);
        assert_eq!(t.top(1)[0].0, b"popular.example.com".to_vec());
        // Untracked keys are bounded by the offset, tracked keys by count + offset.
        assert!(t.max_error() * (DEFAULT_CAPACITY as u64 / 2) <= t.total_weight());
    }

    #[test]
    fn zero_weight_is_ignored_and_capacity_is_clamped() {
        let mut t: TopN<u32> = TopN::with_capacity(0);
        assert_eq!(t.capacity(), 1);
        t.insert(&1, 0);
        assert!(t.is_empty());
        t.insert(&1, 2);
        t.insert(&2, 1);
        assert_eq!(t.len(), 1);
        check_bounds(
            &{
                let mut u = TopN::with_capacity(1);
                u.insert(&1u16, 2);
                u.insert(&2u16, 1);
                u
            },
            &BTreeMap::from([(1, 2), (2, 1)]),
            1,
        )
        .unwrap();
    }

    #[test]
    fn row_order_matches_top() {
        let mut rows = vec![(3u16, 1u64), (1, 5), (2, 5)];
        rows.sort_by(row_order);
        assert_eq!(rows, vec![(1, 5), (2, 5), (3, 1)]);
    }

    fn stream_strategy() -> impl Strategy<Value = Vec<(u16, u64)>> {
        proptest::collection::vec(
            (
                prop_oneof![3 => 0u16..8, 2 => 0u16..64, 1 => 0u16..2_000],
                1u64..20,
            ),
            0..600,
        )
    }

    /// The scheme itself, written plainly: tracked counts and offset after `stream`.
    fn reference_misra_gries(stream: &[(u16, u64)], cap: usize) -> (BTreeMap<u16, u64>, u64) {
        let mut m = BTreeMap::new();
        let mut offset = 0;
        for &(k, w) in stream {
            if w == 0 {
                continue;
            }
            if let Some(c) = m.get_mut(&k) {
                *c += w;
                continue;
            }
            if m.len() >= cap {
                let mut counts: Vec<u64> = m.values().copied().collect();
                counts.sort_unstable();
                let d = counts[counts.len() / 2];
                offset += d;
                m.retain(|_, c| {
                    let keep = *c > d;
                    *c = c.saturating_sub(d);
                    keep
                });
            }
            m.insert(k, w);
        }
        (m, offset)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Inserting through the repeat check (any mix with plain inserts and merges) builds
        /// exactly the sketch plain inserts build.
        #[test]
        fn repeating_inserts_equal_plain_inserts(
            stream in stream_strategy(),
            how in proptest::collection::vec(any::<bool>(), 0..64),
            other in stream_strategy(),
            cap in 1usize..40,
        ) {
            let names = |k: u16| format!("k{}", k % 9).into_bytes();
            let mut plain: TopN<[u8]> = TopN::with_capacity(cap);
            let mut memo: TopN<[u8]> = TopN::with_capacity(cap);
            let mut extra: TopN<[u8]> = TopN::with_capacity(cap);
            for (k, w) in &other {
                extra.insert(&names(*k), *w);
            }
            for (i, (k, w)) in stream.iter().enumerate() {
                let key = names(*k);
                plain.insert(&key, *w);
                match how.get(i % how.len().max(1)) {
                    Some(true) => memo.insert_repeating(&key, *w),
                    _ => memo.insert(&key, *w),
                }
                if i == stream.len() / 2 {
                    plain.merge(&extra);
                    memo.merge(&extra);
                }
            }
            prop_assert_eq!(&memo, &plain);
            prop_assert_eq!(memo.top(usize::MAX), plain.top(usize::MAX));
            prop_assert_eq!(memo.max_error(), plain.max_error());
        }

        /// The table (slot cache, free-slot reuse, purge rebuild) tracks exactly what the plain
        /// scheme tracks, so no speed-up of the table can change an estimate.
        #[test]
        fn tracks_exactly_what_the_plain_scheme_tracks(
            stream in stream_strategy(),
            cap in 1usize..40,
        ) {
            let t = build(&stream, cap);
            let (want, offset) = reference_misra_gries(&stream, cap);
            prop_assert_eq!(t.max_error(), offset);
            prop_assert_eq!(t.len(), want.len());
            for (k, c) in &want {
                prop_assert_eq!(t.lower_bound(k), *c);
            }
        }

        #[test]
        fn bounds_hold_and_no_false_negatives(stream in stream_strategy(), cap in 1usize..40) {
            let t = build(&stream, cap);
            let truth = exact(&stream);
            prop_assert_eq!(check_bounds(&t, &truth, cap), Ok(()));
            if t.max_error() == 0 {
                for (k, v) in &truth {
                    prop_assert_eq!(t.estimate(k), *v);
                }
            }
            let top = t.top(usize::MAX);
            prop_assert!(top.windows(2).all(|w| row_order(&w[0], &w[1]) != Ordering::Greater));
        }

        #[test]
        fn merge_within_bound_associative_commutative(
            a in stream_strategy(),
            b in stream_strategy(),
            c in stream_strategy(),
            cap in 2usize..40,
        ) {
            let all: Vec<(u16, u64)> = a.iter().chain(&b).chain(&c).copied().collect();
            let truth = exact(&all);
            let (ta, tb, tc) = (build(&a, cap), build(&b, cap), build(&c, cap));
            let mut ab_c = ta.clone();
            ab_c.merge(&tb);
            ab_c.merge(&tc);
            let mut bc = tb.clone();
            bc.merge(&tc);
            let mut a_bc = ta.clone();
            a_bc.merge(&bc);
            let mut cba = tc.clone();
            cba.merge(&tb);
            cba.merge(&ta);
            for m in [&ab_c, &a_bc, &cba] {
                prop_assert_eq!(check_bounds(m, &truth, cap), Ok(()));
            }
            // Without any purge anywhere, merging is exact in every order.
            let single = build(&all, cap);
            if ab_c.max_error() == 0 && a_bc.max_error() == 0 && cba.max_error() == 0 {
                prop_assert_eq!(&ab_c, &single);
                prop_assert_eq!(&a_bc, &single);
                prop_assert_eq!(&cba, &single);
            }
        }
    }
}
