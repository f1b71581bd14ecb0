//! DHCP transactions: a request (DISCOVER, REQUEST, SOLICIT, REQUEST v6) matched with its
//! answer by client identity and transaction id, on top of `flow::xact`'s bounded TTL table.
//!
//! DHCP clients broadcast from 0.0.0.0 and servers answer to the offered address, so the two
//! directions are different flows: the key is a hash of (phase, client hardware address or
//! DUID, xid) instead. The client's host name rides along in a fixed ring of slots (the table
//! only holds a 32-bit tag), so a long-lived entry whose slot was reused reports no name
//! rather than a wrong one. Not a DHCP state machine: leases are not tracked.

use flow::xact::{Finish, Pending, XactConfig, XactKey, XactTable};

/// Longest host name kept for a transaction (a DHCP option carries at most 255 bytes).
pub const NAME_MAX: usize = 255;
/// Host-name slots (about 1.2 MB when all are used): a slot is reused after this many newer
/// requests, far more than open at once unless requests arrive by thousands per millisecond.
pub const NAME_SLOTS: usize = 4096;

/// Which request/answer pair a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    DiscoverOffer = 0,
    RequestAck = 1,
    SolicitAdvertise = 2,
    RequestReply = 3,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::DiscoverOffer,
        Phase::RequestAck,
        Phase::SolicitAdvertise,
        Phase::RequestReply,
    ];
}

#[derive(Clone)]
struct Slot {
    key: XactKey,
    start_ns: u64,
    len: u8,
    name: [u8; NAME_MAX],
}

/// A matched transaction: elapsed time and the host name the request carried (empty if none).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'s> {
    Matched { elapsed_ns: u64, hostname: &'s [u8] },
    TimedOut,
    Orphan,
}

/// Open DHCP transactions of one handler.
pub struct DhcpXacts {
    table: XactTable,
    slots: Vec<Slot>,
    next_slot: usize,
    /// Ring size of `slots`.
    ring: usize,
}

/// FNV-1a over the key material: the table hashes the result again with its seeded hasher,
/// so this only needs to spread distinct keys.
fn key_of(phase: Phase, client: &[u8], xid: u32) -> XactKey {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(phase as u8);
    for &b in client {
        eat(b);
    }
    for b in xid.to_be_bytes() {
        eat(b);
    }
    XactKey {
        flow: h,
        id: (xid & 0xffff) as u16,
    }
}

impl DhcpXacts {
    /// A table of at most `max_open` transactions that expire after `ttl_ns`.
    pub fn new(max_open: usize, ttl_ns: u64) -> Self {
        let cap = max_open.max(1);
        Self {
            table: XactTable::new(XactConfig {
                max_open: cap,
                ttl_ns,
                ..XactConfig::default()
            }),
            slots: Vec::new(),
            next_slot: 0,
            ring: cap.min(NAME_SLOTS),
        }
    }

    /// Opens (or restarts, for a retransmission) a transaction; `hostname` is kept for the
    /// answer (an empty one takes no slot).
    pub fn start(&mut self, phase: Phase, client: &[u8], xid: u32, ts_ns: u64, hostname: &[u8]) {
        let key = key_of(phase, client, xid);
        let tag = if hostname.is_empty() {
            u32::MAX
        } else {
            let idx = self.next_slot;
            self.next_slot = (self.next_slot + 1) % self.ring;
            let len = hostname.len().min(NAME_MAX);
            let mut slot = Slot {
                key,
                start_ns: ts_ns,
                len: len as u8,
                name: [0; NAME_MAX],
            };
            slot.name[..len].copy_from_slice(&hostname[..len]);
            if let Some(s) = self.slots.get_mut(idx) {
                *s = slot;
            } else {
                self.slots.push(slot);
            }
            idx as u32
        };
        self.table.start(
            key,
            Pending {
                start_ns: ts_ns,
                query_size: 0,
                filtered: false,
                tag,
            },
        );
    }

    /// Closes the transaction the answer belongs to.
    pub fn finish(&mut self, phase: Phase, client: &[u8], xid: u32, ts_ns: u64) -> Outcome<'_> {
        let key = key_of(phase, client, xid);
        match self.table.finish(key, ts_ns) {
            Finish::Matched {
                pending,
                elapsed_ns,
            } => {
                let hostname = self
                    .slots
                    .get(pending.tag as usize)
                    .filter(|s| s.key == key && s.start_ns == pending.start_ns)
                    .map_or(&[][..], |s| &s.name[..usize::from(s.len)]);
                Outcome::Matched {
                    elapsed_ns,
                    hostname,
                }
            }
            Finish::TimedOut { .. } => Outcome::TimedOut,
            Finish::Orphan => Outcome::Orphan,
        }
    }

    /// Drops transactions older than the TTL at `now_ns`; returns how many.
    pub fn purge(&mut self, now_ns: u64) -> u64 {
        self.table.purge(now_ns)
    }

    /// Open transactions.
    pub fn open(&self) -> usize {
        self.table.open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn matches_by_phase_client_and_xid_and_keeps_the_name() {
        let mut x = DhcpXacts::new(16, 5 * S);
        x.start(Phase::RequestAck, b"\x01\x02", 7, S, b"laptop");
        assert_eq!(
            x.finish(Phase::DiscoverOffer, b"\x01\x02", 7, S),
            Outcome::Orphan
        );
        assert_eq!(
            x.finish(Phase::RequestAck, b"\x01\x03", 7, S),
            Outcome::Orphan
        );
        assert_eq!(
            x.finish(Phase::RequestAck, b"\x01\x02", 7, S + 1_500),
            Outcome::Matched {
                elapsed_ns: 1_500,
                hostname: b"laptop"
            }
        );
        assert_eq!(x.open(), 0);
    }

    #[test]
    fn late_answers_time_out_and_purge_counts() {
        let mut x = DhcpXacts::new(16, 5 * S);
        x.start(Phase::DiscoverOffer, b"a", 1, S, b"");
        assert_eq!(
            x.finish(Phase::DiscoverOffer, b"a", 1, 7 * S),
            Outcome::TimedOut
        );
        x.start(Phase::DiscoverOffer, b"a", 2, S, b"");
        x.start(Phase::DiscoverOffer, b"b", 2, 4 * S, b"");
        assert_eq!(x.purge(8 * S), 1);
        assert_eq!(x.open(), 1);
    }

    #[test]
    fn reused_slot_reports_no_name_instead_of_a_wrong_one() {
        let mut x = DhcpXacts::new(2, 100 * S);
        x.start(Phase::RequestAck, b"a", 1, S, b"first");
        x.finish(Phase::RequestAck, b"z", 9, S);
        x.start(Phase::RequestAck, b"b", 2, 2 * S, b"second");
        assert_eq!(
            x.finish(Phase::RequestAck, b"b", 2, 3 * S),
            Outcome::Matched {
                elapsed_ns: S,
                hostname: b"second"
            }
        );
        // Slot 0 is reused by "c" while "a" is still open.
        x.start(Phase::RequestAck, b"c", 3, 4 * S, b"third");
        assert_eq!(
            x.finish(Phase::RequestAck, b"a", 1, 5 * S),
            Outcome::Matched {
                elapsed_ns: 4 * S,
                hostname: b""
            }
        );
    }
}
