//! A bounded least-recently-used cache of geolocation and ASN strings per IP address, owned by one
//! worker (not shared, not locked); it allocates only while filling up, and evicted entries hand
//! their string buffers to the newcomer.

use std::net::IpAddr;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashMap;

use crate::db::{GeoDb, Location, UNKNOWN};

/// pktvisor's default cache size (`--geo-cache-size`).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// End-of-list marker for the intrusive recency list.
const NIL: u32 = u32::MAX;

/// Counters describing how the cache behaved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to the databases (every lookup when the capacity is 0).
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
}

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    location: Location,
    asn: String,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
}

impl Entry {
    fn fill(&mut self, db: &GeoDb, ip: IpAddr) {
        self.ip = ip;
        db.location_into(ip, &mut self.location);
        db.asn_into(ip, &mut self.asn);
    }
}

/// Per-worker LRU cache in front of a shared [`GeoDb`]: `ip → (Location, asn)`.
///
/// Entries live in a slab (`Vec`) linked into a recency list by index, and a hash map keyed by
/// the address finds them; a hit is one hash probe plus relinking. Capacity 0 disables caching
/// (every lookup asks the databases, reusing one scratch entry).
#[derive(Debug)]
pub struct GeoCache {
    db: Arc<GeoDb>,
    capacity: usize,
    map: HashMap<IpAddr, u32, RandomState>,
    entries: Vec<Entry>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to go.
    tail: u32,
    /// Answer for capacity 0 and for text that is not an address.
    scratch: Entry,
    /// The answer for text that is not an IP address (depends only on which databases exist).
    invalid: (Location, String),
    stats: CacheStats,
}

impl GeoCache {
    /// A cache holding at most `capacity` addresses (clamped below `u32::MAX`); 0 disables
    /// caching. Memory is reserved as entries arrive, not up front.
    pub fn new(db: Arc<GeoDb>, capacity: usize) -> Self {
        let capacity = capacity.min(NIL as usize - 1);
        let invalid_location = Location {
            location: if db.city_enabled() {
                UNKNOWN.to_string()
            } else {
                String::new()
            },
            ..Location::default()
        };
        let invalid_asn = if db.asn_enabled() {
            UNKNOWN.to_string()
        } else {
            String::new()
        };
        Self {
            db,
            capacity,
            map: HashMap::with_hasher(RandomState::default()),
            entries: Vec::new(),
            head: NIL,
            tail: NIL,
            scratch: Entry {
                ip: IpAddr::from([0u8; 4]),
                location: Location::default(),
                asn: String::new(),
                prev: NIL,
                next: NIL,
            },
            invalid: (invalid_location, invalid_asn),
            stats: CacheStats::default(),
        }
    }

    /// The databases behind this cache.
    pub fn db(&self) -> &Arc<GeoDb> {
        &self.db
    }

    /// Maximum number of cached addresses.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of cached addresses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `ip` is cached (does not touch recency or counters).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.map.contains_key(&ip)
    }

    /// Hit, miss and eviction counts since creation.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Location and ASN string of `ip` (see [`GeoDb::location`] and [`GeoDb::asn`]).
    pub fn lookup(&mut self, ip: IpAddr) -> (&Location, &str) {
        let entry = self.entry(ip);
        (&entry.location, entry.asn.as_str())
    }

    /// Location of `ip`.
    pub fn location(&mut self, ip: IpAddr) -> &Location {
        &self.entry(ip).location
    }

    /// ASN string of `ip`.
    pub fn asn(&mut self, ip: IpAddr) -> &str {
        self.entry(ip).asn.as_str()
    }

    /// Like [`GeoCache::lookup`] for an address given as text (an EDNS Client Subnet address);
    /// text that is not an IP address gives [`UNKNOWN`] (empty for a disabled database) and is
    /// not cached.
    pub fn lookup_str(&mut self, text: &str) -> (&Location, &str) {
        match text.parse::<IpAddr>() {
            Ok(ip) => self.lookup(ip),
            Err(_) => (&self.invalid.0, self.invalid.1.as_str()),
        }
    }

    /// Drops every entry (keeps the counters and the reserved memory).
    pub fn clear(&mut self) {
        self.map.clear();
        self.entries.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    fn entry(&mut self, ip: IpAddr) -> &Entry {
        if self.capacity == 0 {
            self.stats.misses += 1;
            self.scratch.fill(&self.db, ip);
            return &self.scratch;
        }
        if let Some(&idx) = self.map.get(&ip) {
            self.stats.hits += 1;
            self.move_to_front(idx);
            return &self.entries[idx as usize];
        }
        self.stats.misses += 1;
        let idx = if self.entries.len() < self.capacity {
            if self.entries.is_empty() {
                // Twice the capacity keeps hashbrown rehashing in place (never growing) once the
                // cache churns; reserved on first use so idle workers cost nothing.
                self.map
                    .reserve(self.capacity.saturating_mul(2).min(1 << 20));
            }
            let idx = self.entries.len() as u32;
            self.entries.push(Entry {
                ip,
                location: Location::default(),
                asn: String::new(),
                prev: NIL,
                next: NIL,
            });
            idx
        } else {
            let idx = self.tail;
            self.unlink(idx);
            self.map.remove(&self.entries[idx as usize].ip);
            self.stats.evictions += 1;
            idx
        };
        self.entries[idx as usize].fill(&self.db, ip);
        self.map.insert(ip, idx);
        self.push_front(idx);
        &self.entries[idx as usize]
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let e = &self.entries[idx as usize];
            (e.prev, e.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, idx: u32) {
        let old = self.head;
        {
            let e = &mut self.entries[idx as usize];
            e.prev = NIL;
            e.next = old;
        }
        if old == NIL {
            self.tail = idx;
        } else {
            self.entries[old as usize].prev = idx;
        }
        self.head = idx;
    }

    fn move_to_front(&mut self, idx: u32) {
        if self.head != idx {
            self.unlink(idx);
            self.push_front(idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    /// Addresses from most to least recently used, walking the links (checks them both ways).
    fn order(c: &GeoCache) -> Vec<IpAddr> {
        let mut fwd = Vec::new();
        let mut i = c.head;
        while i != NIL {
            fwd.push(c.entries[i as usize].ip);
            i = c.entries[i as usize].next;
        }
        let mut back = Vec::new();
        let mut i = c.tail;
        while i != NIL {
            back.push(c.entries[i as usize].ip);
            i = c.entries[i as usize].prev;
        }
        back.reverse();
        assert_eq!(fwd, back, "forward and backward links disagree");
        fwd
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = GeoCache::new(Arc::new(GeoDb::disabled()), 3);
        for n in 1..=3 {
            c.lookup(v4(n));
        }
        assert_eq!(order(&c), vec![v4(3), v4(2), v4(1)]);
        c.lookup(v4(1)); // 1 becomes most recent, so 2 is next to go
        assert_eq!(order(&c), vec![v4(1), v4(3), v4(2)]);
        c.lookup(v4(4));
        assert!(!c.contains(v4(2)));
        assert!(c.contains(v4(1)) && c.contains(v4(3)) && c.contains(v4(4)));
        assert_eq!(order(&c), vec![v4(4), v4(1), v4(3)]);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 1,
                misses: 4,
                evictions: 1
            }
        );
    }

    #[test]
    fn zero_capacity_never_caches() {
        let mut c = GeoCache::new(Arc::new(GeoDb::disabled()), 0);
        for _ in 0..3 {
            let (loc, asn) = c.lookup(v4(7));
            assert_eq!(loc, &Location::default());
            assert_eq!(asn, "");
        }
        assert!(c.is_empty());
        assert!(!c.contains(v4(7)));
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 0,
                misses: 3,
                evictions: 0
            }
        );
    }

    #[test]
    fn capacity_one_and_clear() {
        let mut c = GeoCache::new(Arc::new(GeoDb::disabled()), 1);
        c.lookup(v4(1));
        c.lookup(v4(1));
        c.lookup(v4(2));
        assert_eq!(order(&c), vec![v4(2)]);
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 1,
                misses: 2,
                evictions: 1
            }
        );
        c.clear();
        assert!(c.is_empty());
        assert_eq!(order(&c), Vec::<IpAddr>::new());
        c.lookup(v4(3));
        assert_eq!(order(&c), vec![v4(3)]);
    }

    #[test]
    fn invalid_text_on_disabled_db_is_empty() {
        let mut c = GeoCache::new(Arc::new(GeoDb::disabled()), 4);
        let (loc, asn) = c.lookup_str("2001:470:1f0b:1600::/56");
        assert_eq!(loc, &Location::default());
        assert_eq!(asn, "");
        assert!(c.is_empty());
        c.lookup_str("2001:470:1f0b:1600::");
        assert!(c.contains("2001:470:1f0b:1600::".parse().unwrap()));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::VecDeque;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// The cache agrees with a naive LRU model on membership, order and counters.
            #[test]
            fn matches_naive_lru(cap in 0usize..6, keys in proptest::collection::vec(0u32..10, 0..200)) {
                let mut c = GeoCache::new(Arc::new(GeoDb::disabled()), cap);
                let mut model: VecDeque<IpAddr> = VecDeque::new();
                let mut want = CacheStats::default();
                for k in keys {
                    let ip = v4(k);
                    c.lookup(ip);
                    if cap == 0 {
                        want.misses += 1;
                    } else if let Some(pos) = model.iter().position(|&x| x == ip) {
                        want.hits += 1;
                        model.remove(pos);
                        model.push_front(ip);
                    } else {
                        want.misses += 1;
                        if model.len() == cap {
                            model.pop_back();
                            want.evictions += 1;
                        }
                        model.push_front(ip);
                    }
                    prop_assert!(c.len() <= cap);
                }
                prop_assert_eq!(order(&c), Vec::from(model));
                prop_assert_eq!(c.stats(), want);
            }
        }
    }
}
