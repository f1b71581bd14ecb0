//! A bounded slab of entries indexed by a seeded hash table and threaded on an intrusive
//! recency list; the shared storage of the defragmenter and the TCP reassembler (not a cache
//! policy: callers decide when to evict).
//!
//! Slots are reused after removal together with whatever their value owns (buffers keep their
//! capacity), so a table that has reached its working size stops allocating.
//!
//! The index is open addressing with linear probing over a power-of-two array kept at most half
//! full, each entry one `u64`: the slot number + 1 (0 = empty) and the upper half of the key's
//! hash, so a probe compares a key only when 32 bits of its hash already agree. Removal shifts
//! the entries after the hole back (no tombstones), so probe sequences stay as short as at
//! insertion. A hit costs one or two entry loads and one key comparison, about a third of a
//! general-purpose table's probe; the hash is still seeded (`foldhash`), so keys chosen to
//! collide cannot lengthen probes without the seed.

use core::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

/// Marks "no slot" in the intrusive list links.
const NIL: u32 = u32::MAX;

/// Smallest index array (entries).
const MIN_INDEX: usize = 16;

/// Open-addressing index from hash to slot (see the module documentation).
struct Index {
    /// `(hash >> 32) << 32 | (slot + 1)`, or 0 for an empty entry.
    entries: Vec<u64>,
    /// `entries.len() - 1` (a power of two minus one).
    mask: usize,
    /// Live entries.
    len: usize,
}

impl Index {
    fn with_entries(n: usize) -> Self {
        let n = n.max(MIN_INDEX).next_power_of_two();
        Self {
            // Zeroed memory: pages of a large reservation are touched only as entries land.
            entries: vec![0; n],
            mask: n - 1,
            len: 0,
        }
    }

    /// An index holding `capacity` entries without growing.
    fn for_capacity(capacity: usize) -> Self {
        Self::with_entries(capacity.saturating_mul(2))
    }

    #[inline]
    fn entry(hash: u64, slot: u32) -> u64 {
        (hash & 0xffff_ffff_0000_0000) | (u64::from(slot) + 1)
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// The slot whose entry carries `hash`'s tag and for which `is` holds.
    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = hash & 0xffff_ffff_0000_0000;
        let mut pos = self.home(hash);
        // At most half full: an empty entry ends every probe; the bound only guards the loop.
        for _ in 0..self.entries.len() {
            let e = *self.entries.get(pos)?;
            if e == 0 {
                return None;
            }
            if e & 0xffff_ffff_0000_0000 == tag {
                let slot = (e as u32).wrapping_sub(1);
                if is(slot) {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// Adds `slot` under `hash` (not present), growing first if that would pass half full;
    /// `hash_of` gives the hash of a slot already indexed (for rehashing).
    fn insert(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow(&hash_of);
        }
        self.place(Self::entry(hash, slot), hash);
        self.len += 1;
    }

    fn place(&mut self, e: u64, hash: u64) {
        let mut pos = self.home(hash);
        for _ in 0..self.entries.len() {
            match self.entries.get_mut(pos) {
                Some(x) if *x == 0 => {
                    *x = e;
                    return;
                }
                Some(_) => pos = (pos + 1) & self.mask,
                None => return,
            }
        }
    }

    fn grow(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let old = core::mem::take(&mut self.entries);
        let n = (old.len() * 2).max(MIN_INDEX);
        self.entries = vec![0; n];
        self.mask = n - 1;
        for e in old.into_iter().filter(|&e| e != 0) {
            let slot = (e as u32).wrapping_sub(1);
            self.place(e, hash_of(slot));
        }
    }

    /// Removes the entry of `slot` (indexed under `hash`); false if it is not there.
    fn remove(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        let want = Self::entry(hash, slot);
        let mut pos = self.home(hash);
        let mut found = None;
        for _ in 0..self.entries.len() {
            match self.entries.get(pos) {
                Some(&e) if e == want => {
                    found = Some(pos);
                    break;
                }
                Some(&0) | None => return false,
                Some(_) => pos = (pos + 1) & self.mask,
            }
        }
        let Some(mut hole) = found else {
            return false;
        };
        // Backward shift: move each following entry of the run into the hole when the hole
        // lies between its home and where it sits, so every entry stays reachable from its
        // home without crossing an empty entry.
        let mut j = hole;
        for _ in 0..self.entries.len() {
            j = (j + 1) & self.mask;
            let e = match self.entries.get(j) {
                Some(&e) if e != 0 => e,
                _ => break,
            };
            let home = self.home(hash_of((e as u32).wrapping_sub(1)));
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.entries.get_mut(hole) {
            *h = 0;
        }
        self.len -= 1;
        true
    }
}

struct Slot<K, V> {
    key: K,
    value: V,
    hash: u64,
    prev: u32,
    next: u32,
}

/// Slab + index + recency list. The head is the most recently touched entry, the tail the
/// least recently touched one.
pub(crate) struct LruSlab<K, V> {
    slots: Vec<Slot<K, V>>,
    free: Vec<u32>,
    index: Index,
    hasher: FixedState,
    head: u32,
    tail: u32,
    len: usize,
}

impl<K: Copy + Eq + Hash, V: Default> LruSlab<K, V> {
    /// An empty slab whose index hashes with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: Index::with_entries(MIN_INDEX),
            hasher: FixedState::with_seed(seed),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// An empty slab with room for `capacity` entries reserved up front, so a table that
    /// fills to its cap never reallocates on the packet path.
    pub(crate) fn with_capacity(seed: u64, capacity: usize) -> Self {
        let mut s = Self::new(seed);
        s.slots.reserve_exact(capacity);
        s.free.reserve_exact(capacity);
        s.index = Index::for_capacity(capacity);
        s
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slot of `key`, if present.
    pub(crate) fn find(&self, key: &K) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index.find(hash, |i| {
            slots
                .get(i as usize)
                .is_some_and(|s| s.hash == hash && s.key == *key)
        })
    }

    /// Inserts `key` (which must be absent) at the head and returns its slot. The slot's value
    /// is whatever the previous occupant left behind (or `V::default()`); the caller resets it.
    pub(crate) fn insert(&mut self, key: K) -> u32 {
        let hash = self.hasher.hash_one(key);
        let idx = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.key = key;
                    s.hash = hash;
                }
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).unwrap_or(NIL - 1);
                self.slots.push(Slot {
                    key,
                    value: V::default(),
                    hash,
                    prev: NIL,
                    next: NIL,
                });
                i
            }
        };
        let slots = &self.slots;
        self.index
            .insert(hash, idx, |i| slots.get(i as usize).map_or(0, |s| s.hash));
        self.link_head(idx);
        self.len += 1;
        idx
    }

    /// Removes the entry in `idx` from the index and the list; the slot (and its value's
    /// buffers) is kept for reuse.
    pub(crate) fn remove(&mut self, idx: u32) {
        let Some(hash) = self.slots.get(idx as usize).map(|s| s.hash) else {
            return;
        };
        let slots = &self.slots;
        if self
            .index
            .remove(hash, idx, |i| slots.get(i as usize).map_or(0, |s| s.hash))
        {
            self.unlink(idx);
            self.free.push(idx);
            self.len -= 1;
        }
    }

    /// Moves `idx` to the head of the recency list.
    pub(crate) fn touch(&mut self, idx: u32) {
        if self.head != idx {
            self.unlink(idx);
            self.link_head(idx);
        }
    }

    /// The least recently touched (or oldest inserted) live entry.
    pub(crate) fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// The value stored in `idx`.
    pub(crate) fn value(&self, idx: u32) -> Option<&V> {
        self.slots.get(idx as usize).map(|s| &s.value)
    }

    /// Number of slots (live or free); indices below it are valid for `key_value_mut`.
    pub(crate) fn slot_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The key and value stored in `idx` (free slots keep a stale key and a reset value).
    pub(crate) fn key_value_mut(&mut self, idx: u32) -> Option<(&K, &mut V)> {
        self.slots
            .get_mut(idx as usize)
            .map(|s| (&s.key, &mut s.value))
    }

    /// The value stored in `idx`, mutably.
    pub(crate) fn value_mut(&mut self, idx: u32) -> Option<&mut V> {
        self.slots.get_mut(idx as usize).map(|s| &mut s.value)
    }

    fn link_head(&mut self, idx: u32) {
        let old_head = self.head;
        if let Some(s) = self.slots.get_mut(idx as usize) {
            s.prev = NIL;
            s.next = old_head;
        }
        if let Some(h) = self.slots.get_mut(old_head as usize) {
            h.prev = idx;
        }
        self.head = idx;
        if self.tail == NIL {
            self.tail = idx;
        }
    }

    fn unlink(&mut self, idx: u32) {
        let Some((prev, next)) = self.slots.get(idx as usize).map(|s| (s.prev, s.next)) else {
            return;
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(s) = self.slots.get_mut(idx as usize) {
            s.prev = NIL;
            s.next = NIL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_and_reuse() {
        let mut s: LruSlab<u32, Vec<u8>> = LruSlab::new(7);
        let a = s.insert(10);
        let b = s.insert(20);
        assert_eq!(s.len(), 2);
        assert_eq!(s.find(&10), Some(a));
        assert_eq!(s.find(&20), Some(b));
        assert_eq!(s.find(&30), None);
        if let Some(v) = s.value_mut(a) {
            v.extend_from_slice(b"xyz");
        }
        s.remove(a);
        assert_eq!(s.find(&10), None);
        assert_eq!(s.len(), 1);
        let c = s.insert(30);
        assert_eq!(c, a, "freed slot is reused");
        assert_eq!(
            s.value(c).map(Vec::len),
            Some(3),
            "value is left for the caller to reset"
        );
    }

    #[test]
    fn recency_order() {
        let mut s: LruSlab<u32, ()> = LruSlab::new(0);
        let a = s.insert(1);
        let b = s.insert(2);
        let c = s.insert(3);
        assert_eq!(s.tail(), Some(a));
        s.touch(a);
        assert_eq!(s.tail(), Some(b));
        s.remove(b);
        assert_eq!(s.tail(), Some(c));
        s.remove(c);
        assert_eq!(s.tail(), Some(a));
        s.remove(a);
        assert_eq!(s.tail(), None);
        assert_eq!(s.len(), 0);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// The open-addressing index against a map, with hashes that collide on purpose
            /// (few homes, few tags) so long runs form and removal shifts entries back across
            /// the wrap-around of the array.
            #[test]
            fn index_matches_a_map_under_collisions(
                ops in proptest::collection::vec((any::<bool>(), 0u16..64), 0..400),
                homes in 1u64..6,
                tags in 1u64..4,
            ) {
                let hash = |k: u16| {
                    let k = u64::from(k);
                    // Homes near the end of the 16-entry array, so runs wrap.
                    ((k % tags) << 32) | (13 + k % homes)
                };
                let mut keys: Vec<u16> = Vec::new();
                let mut free: Vec<u32> = Vec::new();
                let mut model: std::collections::HashMap<u16, u32> = Default::default();
                let mut ix = Index::with_entries(MIN_INDEX);
                for (add, k) in ops {
                    let found = {
                        let keys = &keys;
                        ix.find(hash(k), |i| keys.get(i as usize) == Some(&k))
                    };
                    prop_assert_eq!(found, model.get(&k).copied());
                    match (add, found) {
                        (true, None) => {
                            let slot = match free.pop() {
                                Some(i) => {
                                    keys[i as usize] = k;
                                    i
                                }
                                None => {
                                    keys.push(k);
                                    (keys.len() - 1) as u32
                                }
                            };
                            let keys2 = &keys;
                            ix.insert(hash(k), slot, |i| hash(keys2[i as usize]));
                            model.insert(k, slot);
                        }
                        (false, Some(slot)) => {
                            let keys2 = &keys;
                            prop_assert!(ix.remove(hash(k), slot, |i| hash(keys2[i as usize])));
                            model.remove(&k);
                            free.push(slot);
                        }
                        _ => {}
                    }
                    prop_assert_eq!(ix.len, model.len());
                    prop_assert!(ix.len * 2 <= ix.entries.len());
                    for (&m, &slot) in &model {
                        let keys = &keys;
                        prop_assert_eq!(ix.find(hash(m), |i| keys.get(i as usize) == Some(&m)), Some(slot));
                    }
                }
            }

            /// Against a naive model (a Vec ordered from least to most recent): membership,
            /// length and eviction order agree after any sequence of operations.
            #[test]
            fn matches_naive_model(ops in proptest::collection::vec((0u8..4, 0u16..24), 0..300)) {
                let mut s: LruSlab<u16, u16> = LruSlab::new(99);
                let mut model: Vec<u16> = Vec::new();
                for (op, k) in ops {
                    match op {
                        0 => {
                            if s.find(&k).is_none() {
                                let i = s.insert(k);
                                if let Some(v) = s.value_mut(i) {
                                    *v = k;
                                }
                                model.push(k);
                            }
                        }
                        1 => {
                            if let Some(i) = s.find(&k) {
                                s.remove(i);
                                model.retain(|&m| m != k);
                            }
                        }
                        2 => {
                            if let Some(i) = s.find(&k) {
                                s.touch(i);
                                model.retain(|&m| m != k);
                                model.push(k);
                            }
                        }
                        _ => {
                            // Evict the least recent, as the tables do at their cap.
                            if let Some(t) = s.tail() {
                                prop_assert_eq!(s.value(t).copied(), model.first().copied());
                                s.remove(t);
                                model.remove(0);
                            } else {
                                prop_assert!(model.is_empty());
                            }
                        }
                    }
                    prop_assert_eq!(s.len(), model.len());
                    for &m in &model {
                        let i = s.find(&m);
                        prop_assert!(i.is_some());
                        prop_assert_eq!(i.and_then(|i| s.value(i)).copied(), Some(m));
                    }
                }
            }
        }
    }
}
