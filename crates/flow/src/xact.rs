//! Request/response matching with a time-to-live: the bounded table of open DNS transactions
//! keyed by (flow hash, message ID). It knows nothing about DNS itself; the analyzer decides what
//! starts and what finishes a transaction.
//!
//! Semantics follow pktvisor's `DnsTransactionManager`: a query opens a transaction (a second
//! query with the same key replaces the first), a reply closes it; a reply arriving more than
//! `ttl_ns` after its query counts as timed out, and `purge` (run at bucket rotation) drops open
//! transactions older than the TTL so they can be added to `timed_out`.
//!
//! ```
//! use flow::xact::{Finish, Pending, XactKey, XactTable};
//!
//! let mut t = XactTable::default();
//! let key = XactKey { flow: 0xfeed, id: 42 };
//! t.start(key, Pending { start_ns: 1_000, query_size: 40, filtered: false, tag: 0 });
//! match t.finish(key, 251_000) {
//!     Finish::Matched { elapsed_ns, pending } => {
//!         assert_eq!(elapsed_ns, 250_000);
//!         assert_eq!(pending.query_size, 40);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(t.finish(key, 300_000), Finish::Orphan);
//! ```

use core::mem::size_of;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

/// Identifies one transaction: the symmetric flow hash (both directions give the same value; 0
/// when the source has no flow) and the protocol's message ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct XactKey {
    /// Symmetric 5-tuple hash of the flow, or 0.
    pub flow: u64,
    /// Message ID (the DNS header ID).
    pub id: u16,
}

/// Limits of an [`XactTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XactConfig {
    /// Most transactions open at once; a start beyond it is refused and counted.
    ///
    /// The default, 917 504, is 7/8 of 2^20: the most entries a hashbrown table holds in 2^20
    /// buckets. Each bucket costs [`XactTable::BYTES_PER_BUCKET`] (41) bytes, so a full table is
    /// about 41 MiB, under the 64 MiB budget; one more entry would double it to 82 MiB.
    pub max_open: usize,
    /// Transaction time-to-live in nanoseconds (pktvisor's `xact_ttl_ms`, default 5 s).
    pub ttl_ns: u64,
    /// Seed of the table's hasher. Keys are derived from attacker-chosen packets, so production
    /// callers should pick a random seed at start-up; tests use a fixed one.
    pub hash_seed: u64,
}

impl Default for XactConfig {
    fn default() -> Self {
        Self {
            max_open: 917_504,
            ttl_ns: 5_000_000_000,
            hash_seed: 0x5eed_f10d_da7a_u64,
        }
    }
}

/// What the table remembers about an open transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pending {
    /// Packet time of the request.
    pub start_ns: u64,
    /// Size of the request message in bytes (for the response/request size ratio).
    pub query_size: u32,
    /// Whether the request was filtered out; the response inherits the decision.
    pub filtered: bool,
    /// Free for the caller (e.g. an index into its own side table); returned unchanged.
    pub tag: u32,
}

/// Outcome of [`XactTable::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The response closed an open transaction within the TTL.
    Matched {
        /// What `start` stored.
        pending: Pending,
        /// Response time minus request time (0 if the response is stamped earlier).
        elapsed_ns: u64,
    },
    /// The response closed an open transaction, but later than the TTL.
    TimedOut {
        /// What `start` stored.
        pending: Pending,
    },
    /// No open transaction had this key.
    Orphan,
}

/// Counters of an [`XactTable`]; they only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XactStats {
    /// Transactions opened (including replacements).
    pub started: u64,
    /// Starts whose key was already open; the older one was replaced.
    pub replaced: u64,
    /// Starts refused because the table was full.
    pub refused_cap: u64,
    /// Responses that matched within the TTL.
    pub matched: u64,
    /// Responses that matched later than the TTL.
    pub timed_out_late: u64,
    /// Responses with no open transaction.
    pub orphans: u64,
    /// Open transactions dropped by `purge` (explicit or on a full table).
    pub purged: u64,
}

/// Bounded table of open transactions.
pub struct XactTable {
    map: HashMap<XactKey, Pending, FixedState>,
    cfg: XactConfig,
    stats: XactStats,
    /// Packet time of the last purge forced by a full table; limits those O(n) sweeps to one
    /// per TTL even under a flood.
    last_full_purge_ns: Option<u64>,
}

impl Default for XactTable {
    fn default() -> Self {
        Self::new(XactConfig::default())
    }
}

impl XactTable {
    /// Heap bytes one hash bucket costs: the key, the value and one control byte.
    pub const BYTES_PER_BUCKET: usize = size_of::<(XactKey, Pending)>() + 1;

    /// An empty table; memory grows with use up to the cap.
    pub fn new(cfg: XactConfig) -> Self {
        Self {
            map: HashMap::with_hasher(FixedState::with_seed(cfg.hash_seed)),
            cfg,
            stats: XactStats::default(),
            last_full_purge_ns: None,
        }
    }

    /// Opens a transaction. Returns false (and counts `refused_cap`) when the table is full and
    /// the key is not already open; a key already open is replaced (counted).
    pub fn start(&mut self, key: XactKey, pending: Pending) -> bool {
        // Common case, room left: one hash and one probe for both "replace" and "insert".
        if self.map.len() < self.cfg.max_open {
            match self.map.entry(key) {
                Entry::Occupied(mut o) => {
                    *o.get_mut() = pending;
                    self.stats.replaced += 1;
                }
                Entry::Vacant(v) => {
                    v.insert(pending);
                }
            }
            self.stats.started += 1;
            return true;
        }
        if let Some(slot) = self.map.get_mut(&key) {
            *slot = pending;
            self.stats.started += 1;
            self.stats.replaced += 1;
            return true;
        }
        if self.map.len() >= self.cfg.max_open {
            // Without a clock of our own the table would stay full of dead entries until the
            // next rotation; sweep once per TTL using the request's packet time.
            let now = pending.start_ns;
            let due = self
                .last_full_purge_ns
                .is_none_or(|t| now.saturating_sub(t) >= self.cfg.ttl_ns);
            if due {
                self.last_full_purge_ns = Some(now);
                self.purge(now);
            }
            if self.map.len() >= self.cfg.max_open {
                self.stats.refused_cap += 1;
                return false;
            }
        }
        self.map.insert(key, pending);
        self.stats.started += 1;
        true
    }

    /// Closes the transaction `key` with a response seen at `now_ns`.
    pub fn finish(&mut self, key: XactKey, now_ns: u64) -> Finish {
        match self.map.remove(&key) {
            None => {
                self.stats.orphans += 1;
                Finish::Orphan
            }
            Some(pending) => {
                let elapsed_ns = now_ns.saturating_sub(pending.start_ns);
                if elapsed_ns > self.cfg.ttl_ns {
                    self.stats.timed_out_late += 1;
                    Finish::TimedOut { pending }
                } else {
                    self.stats.matched += 1;
                    Finish::Matched {
                        pending,
                        elapsed_ns,
                    }
                }
            }
        }
    }

    /// Drops open transactions older than the TTL at `now_ns` and returns how many.
    pub fn purge(&mut self, now_ns: u64) -> u64 {
        let ttl = self.cfg.ttl_ns;
        let before = self.map.len();
        self.map
            .retain(|_, p| now_ns.saturating_sub(p.start_ns) <= ttl);
        let removed = (before - self.map.len()) as u64;
        self.stats.purged += removed;
        removed
    }

    /// Number of open transactions.
    pub fn open(&self) -> usize {
        self.map.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> &XactStats {
        &self.stats
    }

    /// Heap bytes held by the table (its bucket array).
    pub fn heap_bytes(&self) -> usize {
        self.map.allocation_size()
    }

    /// The limits this table was built with.
    pub fn config(&self) -> &XactConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(flow: u64, id: u16) -> XactKey {
        XactKey { flow, id }
    }

    fn pend(start_ns: u64, query_size: u32) -> Pending {
        Pending {
            start_ns,
            query_size,
            filtered: false,
            tag: 0,
        }
    }

    #[test]
    fn match_reports_elapsed_and_pending() {
        let mut t = XactTable::new(XactConfig::default());
        assert!(t.start(key(1, 7), pend(10 * S, 40)));
        assert_eq!(t.open(), 1);
        let f = t.finish(key(1, 7), 10 * S + 2_500_000);
        assert_eq!(
            f,
            Finish::Matched {
                pending: pend(10 * S, 40),
                elapsed_ns: 2_500_000
            }
        );
        assert_eq!(t.open(), 0);
        assert_eq!(t.stats().matched, 1);
    }

    #[test]
    fn same_id_other_flow_is_orphan() {
        let mut t = XactTable::new(XactConfig::default());
        t.start(key(1, 7), pend(0, 40));
        assert_eq!(t.finish(key(2, 7), 1), Finish::Orphan);
        assert_eq!(t.finish(key(1, 8), 1), Finish::Orphan);
        assert_eq!(t.stats().orphans, 2);
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn late_reply_times_out_and_ttl_boundary_matches() {
        let mut t = XactTable::new(XactConfig::default());
        t.start(key(1, 1), pend(0, 10));
        t.start(key(1, 2), pend(0, 10));
        // Exactly the TTL still matches; one nanosecond more is late.
        assert!(
            matches!(t.finish(key(1, 1), 5 * S), Finish::Matched { elapsed_ns, .. } if elapsed_ns == 5 * S)
        );
        assert_eq!(
            t.finish(key(1, 2), 5 * S + 1),
            Finish::TimedOut {
                pending: pend(0, 10)
            }
        );
        assert_eq!(t.stats().timed_out_late, 1);
        assert_eq!(t.open(), 0);
    }

    #[test]
    fn reply_stamped_before_query_has_zero_elapsed() {
        let mut t = XactTable::new(XactConfig::default());
        t.start(key(3, 3), pend(100, 10));
        assert!(matches!(
            t.finish(key(3, 3), 50),
            Finish::Matched { elapsed_ns: 0, .. }
        ));
    }

    #[test]
    fn duplicate_start_replaces() {
        let mut t = XactTable::new(XactConfig::default());
        assert!(t.start(key(1, 1), pend(0, 10)));
        assert!(t.start(key(1, 1), pend(S, 20)));
        assert_eq!(t.open(), 1);
        assert_eq!(t.stats().replaced, 1);
        assert_eq!(
            t.finish(key(1, 1), 2 * S),
            Finish::Matched {
                pending: pend(S, 20),
                elapsed_ns: S
            }
        );
    }

    #[test]
    fn purge_removes_only_expired() {
        let mut t = XactTable::new(XactConfig::default());
        t.start(key(1, 1), pend(0, 10));
        t.start(key(1, 2), pend(3 * S, 10));
        t.start(key(1, 3), pend(6 * S, 10));
        assert_eq!(t.purge(8 * S), 1);
        assert_eq!(t.open(), 2);
        assert_eq!(t.purge(8 * S), 0);
        assert_eq!(t.purge(12 * S), 2);
        assert_eq!(t.open(), 0);
        assert_eq!(t.stats().purged, 3);
        assert_eq!(t.finish(key(1, 3), 12 * S), Finish::Orphan);
    }

    #[test]
    fn cap_refuses_then_sweeps_once_per_ttl() {
        let cfg = XactConfig {
            max_open: 2,
            ..XactConfig::default()
        };
        let mut t = XactTable::new(cfg);
        assert!(t.start(key(1, 1), pend(0, 1)));
        assert!(t.start(key(1, 2), pend(0, 1)));
        // Full and nothing expired yet: refused.
        assert!(!t.start(key(1, 3), pend(S, 1)));
        assert_eq!(t.stats().refused_cap, 1);
        // Replacing an open key is still allowed when full.
        assert!(t.start(key(1, 2), pend(S, 1)));
        // The forced sweep ran at 1 s; the next one is due at 6 s. At 5.5 s nothing is swept
        // even though key (1,1) has expired.
        assert!(!t.start(key(1, 4), pend(5 * S + S / 2, 1)));
        assert_eq!(t.open(), 2);
        // At 6 s the sweep drops (1,1) (age 6 s) but keeps (1,2) (age 5 s).
        assert!(t.start(key(1, 5), pend(6 * S, 1)));
        assert_eq!(t.open(), 2);
        assert_eq!(t.stats().refused_cap, 2);
        assert_eq!(t.stats().purged, 1);
        assert_eq!(t.finish(key(1, 1), 6 * S), Finish::Orphan);
    }

    #[test]
    fn million_unanswered_queries_stay_under_budget() {
        let mut t = XactTable::new(XactConfig::default());
        let cap = t.config().max_open;
        let mut accepted = 0u64;
        for i in 0..1_000_000u64 {
            // Distinct keys, all within the TTL so none can be swept.
            if t.start(key(i >> 16, i as u16), pend(i, 50)) {
                accepted += 1;
            }
        }
        assert_eq!(t.open(), cap);
        assert_eq!(accepted, cap as u64);
        assert_eq!(t.stats().refused_cap, 1_000_000 - cap as u64);
        assert_eq!(XactTable::BYTES_PER_BUCKET, 41);
        let bytes = t.heap_bytes();
        assert!(bytes <= 64 << 20, "table uses {bytes} bytes");
        assert!(bytes >= cap * XactTable::BYTES_PER_BUCKET);
    }
}
