//! A bounded slab of entries indexed by a seeded hash table and threaded on an intrusive
//! recency list; the shared storage of the defragmenter and the TCP reassembler (not a cache
//! policy: callers decide when to evict).
//!
//! Slots are reused after removal together with whatever their value owns (buffers keep their
//! capacity), so a table that has reached its working size stops allocating.

use core::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// Marks "no slot" in the intrusive list links.
const NIL: u32 = u32::MAX;

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
    index: HashTable<u32>,
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
            index: HashTable::new(),
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
        s.index.reserve(capacity, |_| 0);
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
        self.index
            .find(hash, |&i| {
                slots
                    .get(i as usize)
                    .is_some_and(|s| s.hash == hash && s.key == *key)
            })
            .copied()
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
            .insert_unique(hash, idx, |&i| slots.get(i as usize).map_or(0, |s| s.hash));
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
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == idx) {
            entry.remove();
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
