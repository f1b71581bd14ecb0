//! Bounded IPv4/IPv6 defragmentation: collects fragments per (addresses, ID, protocol, VLAN)
//! and hands back the rebuilt datagram, ready to be decoded again. It does not parse packets:
//! the caller passes the fragment's header bytes, offset, MF flag and payload.
//!
//! Bounds: at most `max_datagrams` datagrams in flight and `max_bytes` bytes buffered for them;
//! reaching either evicts the oldest datagram (counted in `evicted_cap`). Incomplete datagrams
//! are dropped `timeout_ns` after their first fragment (counted in `timed_out`).
//!
//! Overlap policy: a fragment that overlaps bytes already received is accepted only if the
//! overlapping bytes are identical (a duplicate or a retransmission by a router on a
//! different path); any difference drops the whole datagram and counts `overlaps`. Operating
//! systems disagree on which copy of a conflicting overlap wins, so a monitor that picked one
//! would decode something the real receiver may never have seen — the classic IDS evasion
//! (Ptacek & Newsham). RFC 5722 already requires IPv6 receivers to drop such datagrams, and no
//! legitimate sender produces conflicting overlaps. Among identical copies the first fragment's
//! header is kept (first wins).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use flow::defrag::{Defragmenter, FragKey};
//!
//! let key = FragKey {
//!     src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
//!     dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
//!     id: 7,
//!     proto: 17,
//!     vlan: 0,
//! };
//! let mut header = [0u8; 20];
//! header[0] = 0x45;
//! let mut d = Defragmenter::default();
//! // The last fragment first, then the first one completes the datagram.
//! assert!(d.insert(key, &header, 8, false, &[2; 4], 0).is_none());
//! let datagram = d.insert(key, &header, 0, true, &[1; 8], 0).unwrap();
//! assert_eq!(datagram.len(), 20 + 12);
//! assert_eq!(&datagram[2..4], &32u16.to_be_bytes()); // total length rewritten
//! ```

use core::net::IpAddr;

use crate::slab::LruSlab;

/// Identifies the datagram a fragment belongs to (RFC 791 / RFC 8200 plus the VLAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (16 bits in IPv4, 32 bits in IPv6).
    pub id: u32,
    /// Protocol (IPv4) or the Fragment header's next header (IPv6).
    pub proto: u8,
    /// Outer VLAN ID, 0 when untagged.
    pub vlan: u16,
}

impl core::hash::Hash for FragKey {
    /// Three wide writes instead of the derived walk through the `IpAddr` enums (runs once per
    /// fragment). An IPv4 address hashes like its IPv4-mapped IPv6 form; equality still tells
    /// them apart.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(crate::addr_bits(self.src));
        state.write_u128(crate::addr_bits(self.dst));
        state.write_u64(
            u64::from(self.id) << 32 | u64::from(self.proto) << 16 | u64::from(self.vlan),
        );
    }
}

impl Default for FragKey {
    fn default() -> Self {
        Self {
            src: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            id: 0,
            proto: 0,
            vlan: 0,
        }
    }
}

/// Limits of a [`Defragmenter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// Datagrams being reassembled at once (default 1024).
    pub max_datagrams: usize,
    /// Bytes buffered for all datagrams in flight, headers included (default 16 MiB).
    pub max_bytes: usize,
    /// Age of an incomplete datagram, from its first fragment, after which it is dropped
    /// (default 30 s, the upper end of RFC 791's suggested timer and Linux' `ipfrag_time`).
    pub timeout_ns: u64,
    /// Largest reassembled datagram, IP header included (default 65535).
    pub max_datagram_len: usize,
    /// Most disjoint byte ranges one datagram may have while incomplete (default 64); more
    /// means a deliberately shredded datagram and drops it (counted in `invalid`).
    pub max_pieces: usize,
    /// Seed of the table's hasher (pick a random one at start-up in production).
    pub hash_seed: u64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        Self {
            max_datagrams: 1024,
            max_bytes: 16 << 20,
            timeout_ns: 30_000_000_000,
            max_datagram_len: 65_535,
            max_pieces: 64,
            hash_seed: 0xdef4_a900_1234_5678,
        }
    }
}

/// Counters of a [`Defragmenter`]; they only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments passed to `insert`.
    pub fragments: u64,
    /// Datagrams completed and returned.
    pub reassembled: u64,
    /// Incomplete datagrams dropped by age.
    pub timed_out: u64,
    /// Datagrams dropped because two fragments disagreed about the same bytes.
    pub overlaps: u64,
    /// Fragments that only repeated bytes already held (ignored).
    pub duplicates: u64,
    /// Datagrams evicted to respect `max_datagrams` or `max_bytes`.
    pub evicted_cap: u64,
    /// Datagrams dropped because they would exceed `max_datagram_len`.
    pub too_big: u64,
    /// Datagrams or fragments dropped as malformed: a non-final fragment whose length is not a
    /// multiple of 8 or is empty, fragments past the end given by the last fragment,
    /// conflicting ends, too many pieces, an unusable first-fragment header.
    pub invalid: u64,
}

/// Bytes a freed datagram's buffers may keep for reuse; larger ones are released so idle slots
/// cannot pin more than `max_datagrams * (RETAIN_DATA + RETAIN_HEADER)` bytes.
const RETAIN_DATA: usize = 8 * 1024;
const RETAIN_HEADER: usize = 256;
/// Minimum payload buffer, so a datagram built from in-order fragments does not grow its
/// buffer on each of its first few fragments.
const MIN_DATA_CAP: usize = 2048;
/// Incomplete datagrams that each `insert` may expire on the way, keeping the table clean
/// without a separate timer and with a bounded cost per packet.
const EXPIRE_PER_INSERT: usize = 4;

#[derive(Default)]
struct Datagram {
    /// Header of the offset-0 fragment (empty until it arrives).
    header: Vec<u8>,
    have_header: bool,
    /// Payload bytes at their offsets; `len()` is the highest end seen.
    data: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and non-adjacent.
    ranges: Vec<(u32, u32)>,
    /// Payload length, known once the last fragment (MF clear) arrived.
    total: Option<u32>,
    first_ns: u64,
    /// Bytes charged to the budget for this datagram (capacity of both buffers).
    charged: usize,
}

impl Datagram {
    fn reset(&mut self, now_ns: u64) {
        self.header.clear();
        self.have_header = false;
        self.data.clear();
        self.ranges.clear();
        self.total = None;
        self.first_ns = now_ns;
        self.charged = self.data.capacity() + self.header.capacity();
    }

    fn release(&mut self) {
        if self.data.capacity() > RETAIN_DATA {
            self.data = Vec::new();
        }
        if self.header.capacity() > RETAIN_HEADER {
            self.header = Vec::new();
        }
        self.charged = 0;
    }
}

/// Why a fragment ends its datagram early.
enum Reject {
    Overlap,
    TooBig,
    Invalid,
    Cap,
}

/// Bounded IP fragment reassembly table.
pub struct Defragmenter {
    table: LruSlab<FragKey, Datagram>,
    cfg: DefragConfig,
    stats: DefragStats,
    /// Sum of `charged` over live datagrams.
    buffered: usize,
    /// The last reassembled datagram; returned slices borrow it.
    out: Vec<u8>,
}

impl Default for Defragmenter {
    fn default() -> Self {
        Self::new(DefragConfig::default())
    }
}

impl Defragmenter {
    /// An empty defragmenter.
    pub fn new(cfg: DefragConfig) -> Self {
        Self {
            table: LruSlab::new(cfg.hash_seed),
            cfg,
            stats: DefragStats::default(),
            buffered: 0,
            out: Vec::new(),
        }
    }

    /// Adds one fragment. `header` = the IP header bytes of this fragment (for IPv4: the header
    /// of the offset-0 fragment is reused for the reassembled datagram with total length /
    /// flags / offset / checksum rewritten; for IPv6: the fixed header plus the unfragmentable
    /// extension headers, without the Fragment header; the next-header field that pointed to
    /// the Fragment header and the payload length are fixed). `offset` is in bytes, `more` is
    /// the MF flag, `data` the fragment's payload.
    ///
    /// Returns the complete datagram (IP header + payload, ready for re-decoding) when this
    /// fragment completes one; the slice borrows an internal buffer valid until the next call.
    pub fn insert(
        &mut self,
        key: FragKey,
        header: &[u8],
        offset: u16,
        more: bool,
        data: &[u8],
        now_ns: u64,
    ) -> Option<&[u8]> {
        self.stats.fragments += 1;
        self.expire_some(now_ns, EXPIRE_PER_INSERT);

        let start = u32::from(offset);
        let Some(end) = u32::try_from(data.len())
            .ok()
            .and_then(|l| start.checked_add(l))
        else {
            self.stats.too_big += 1;
            return None;
        };
        // Every fragment but the last carries a multiple of 8 bytes (RFC 791, RFC 8200).
        if more && (data.is_empty() || !data.len().is_multiple_of(8)) {
            self.stats.invalid += 1;
            return None;
        }
        let existing = self.table.find(&key);
        if (end as usize).saturating_add(header.len()) > self.cfg.max_datagram_len {
            self.stats.too_big += 1;
            if let Some(idx) = existing {
                self.free(idx);
            }
            return None;
        }

        let idx = match existing {
            Some(idx) => idx,
            None => {
                if self.cfg.max_datagrams == 0 {
                    self.stats.evicted_cap += 1;
                    return None;
                }
                while self.table.len() >= self.cfg.max_datagrams {
                    let Some(oldest) = self.table.tail() else {
                        break;
                    };
                    self.free(oldest);
                    self.stats.evicted_cap += 1;
                }
                let idx = self.table.insert(key);
                if let Some(d) = self.table.value_mut(idx) {
                    d.reset(now_ns);
                    self.buffered += d.charged;
                }
                // The reused slot may bring retained capacity that must fit the budget too.
                if !self.make_room(idx, 0) {
                    self.stats.evicted_cap += 1;
                    self.free(idx);
                    return None;
                }
                idx
            }
        };

        match self.add(idx, header, start, end, more, data) {
            Ok(true) => {}
            Ok(false) => {
                self.stats.duplicates += 1;
                return None;
            }
            Err(reason) => {
                match reason {
                    Reject::Overlap => self.stats.overlaps += 1,
                    Reject::TooBig => self.stats.too_big += 1,
                    Reject::Invalid => self.stats.invalid += 1,
                    Reject::Cap => self.stats.evicted_cap += 1,
                }
                self.free(idx);
                return None;
            }
        }

        // Complete?
        let complete = self.table.value(idx).is_some_and(|d| {
            d.have_header && d.total.is_some_and(|t| d.ranges.as_slice() == [(0, t)])
        });
        if !complete {
            return None;
        }
        let built = self.build(idx, key);
        self.free(idx);
        match built {
            Ok(()) => {
                self.stats.reassembled += 1;
                Some(&self.out)
            }
            Err(reason) => {
                match reason {
                    Reject::TooBig => self.stats.too_big += 1,
                    _ => self.stats.invalid += 1,
                }
                None
            }
        }
    }

    /// Drops incomplete datagrams whose first fragment is older than the timeout at `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        self.expire_some(now_ns, usize::MAX);
    }

    /// Counters so far.
    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Datagrams currently being reassembled.
    pub fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Bytes currently charged to the `max_bytes` budget.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// The limits this defragmenter was built with.
    pub fn config(&self) -> &DefragConfig {
        &self.cfg
    }

    fn expire_some(&mut self, now_ns: u64, limit: usize) {
        let mut n = 0;
        while n < limit {
            let Some(oldest) = self.table.tail() else {
                break;
            };
            let old = self
                .table
                .value(oldest)
                .is_some_and(|d| now_ns.saturating_sub(d.first_ns) > self.cfg.timeout_ns);
            if !old {
                break;
            }
            self.free(oldest);
            self.stats.timed_out += 1;
            n += 1;
        }
    }

    fn free(&mut self, idx: u32) {
        if let Some(d) = self.table.value_mut(idx) {
            self.buffered = self.buffered.saturating_sub(d.charged);
            d.release();
        }
        self.table.remove(idx);
    }

    /// Evicts the oldest other datagrams until `extra` more bytes fit the budget.
    fn make_room(&mut self, idx: u32, extra: usize) -> bool {
        let own = self.table.value(idx).map_or(0, |d| d.charged);
        if own.saturating_add(extra) > self.cfg.max_bytes {
            // Evicting others could never make this datagram fit.
            return false;
        }
        while self.buffered.saturating_add(extra) > self.cfg.max_bytes {
            match self.table.tail() {
                Some(oldest) if oldest != idx => {
                    self.free(oldest);
                    self.stats.evicted_cap += 1;
                }
                // Only this datagram (the oldest) is left over budget.
                _ => return false,
            }
        }
        true
    }

    /// Adds the fragment to datagram `idx`. `Ok(false)` = nothing new (duplicate).
    fn add(
        &mut self,
        idx: u32,
        header: &[u8],
        start: u32,
        end: u32,
        more: bool,
        frag: &[u8],
    ) -> Result<bool, Reject> {
        let max_pieces = self.cfg.max_pieces;
        let (need_data, need_header) = {
            let d = self.table.value(idx).ok_or(Reject::Invalid)?;
            match (more, d.total) {
                (false, Some(t)) if t != end => return Err(Reject::Invalid),
                (false, None) if d.ranges.last().is_some_and(|r| r.1 > end) => {
                    return Err(Reject::Invalid);
                }
                (true, Some(t)) if end > t => return Err(Reject::Invalid),
                _ => {}
            }
            // Overlap check against every range the fragment touches.
            for &(s, e) in &d.ranges {
                if e <= start || s >= end {
                    continue;
                }
                if s <= start && end <= e {
                    // Entirely inside one range: identical bytes make it a duplicate.
                    let held = d.data.get(start as usize..end as usize);
                    if held != Some(frag) {
                        return Err(Reject::Overlap);
                    }
                    if !more && d.total.is_none() {
                        break;
                    }
                    return Ok(false);
                }
                let lo = s.max(start);
                let hi = e.min(end);
                let held = d.data.get(lo as usize..hi as usize);
                let new = frag.get((lo - start) as usize..(hi - start) as usize);
                if held != new {
                    return Err(Reject::Overlap);
                }
            }
            let need_data = (end as usize).saturating_sub(d.data.capacity());
            let need_header = if start == 0 && !d.have_header {
                header.len().saturating_sub(d.header.capacity())
            } else {
                0
            };
            (need_data > 0, need_header)
        };

        // Budget: work out the new capacities first, evict if needed, then grow.
        let (new_data_cap, extra) = {
            let d = self.table.value(idx).ok_or(Reject::Invalid)?;
            let new_cap = if need_data {
                (end as usize)
                    .max(d.data.capacity().saturating_mul(2))
                    .max(MIN_DATA_CAP)
                    .min(self.cfg.max_datagram_len.max(end as usize))
            } else {
                d.data.capacity()
            };
            (new_cap, new_cap - d.data.capacity() + need_header)
        };
        if extra > 0 && !self.make_room(idx, extra) {
            return Err(Reject::Cap);
        }

        let d = self.table.value_mut(idx).ok_or(Reject::Invalid)?;
        let before = d.data.capacity() + d.header.capacity();
        if new_data_cap > d.data.capacity() {
            d.data.reserve_exact(new_data_cap - d.data.len());
        }
        if start == 0 && !d.have_header {
            d.header.clear();
            d.header.extend_from_slice(header);
            d.have_header = true;
        }
        if d.data.len() < end as usize {
            d.data.resize(end as usize, 0);
        }
        if let Some(dst) = d.data.get_mut(start as usize..end as usize) {
            dst.copy_from_slice(frag);
        }
        if !more {
            d.total = Some(end);
        }
        insert_range(&mut d.ranges, start, end);
        let after = d.data.capacity() + d.header.capacity();
        d.charged = d.charged + after - before;
        let pieces = d.ranges.len();
        self.buffered = self.buffered + after - before;
        if pieces > max_pieces {
            return Err(Reject::Invalid);
        }
        Ok(true)
    }

    /// Writes datagram `idx` (header + payload) into `self.out` with the header fixed up.
    fn build(&mut self, idx: u32, key: FragKey) -> Result<(), Reject> {
        let d = self.table.value(idx).ok_or(Reject::Invalid)?;
        let total = d.total.unwrap_or(0) as usize;
        let hlen = d.header.len();
        if hlen + total > self.cfg.max_datagram_len {
            return Err(Reject::TooBig);
        }
        let payload = d.data.get(..total).ok_or(Reject::Invalid)?;
        self.out.clear();
        self.out.extend_from_slice(&d.header);
        self.out.extend_from_slice(payload);
        match key.src {
            IpAddr::V4(_) => fix_ipv4(&mut self.out, hlen),
            IpAddr::V6(_) => fix_ipv6(&mut self.out, hlen, key.proto),
        }
    }
}

/// Inserts [start, end) into sorted, disjoint, non-adjacent `ranges`, merging neighbours.
fn insert_range(ranges: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    let mut s = start;
    let mut e = end;
    // First range that ends at or after `s` (may touch or overlap).
    let first = ranges.partition_point(|r| r.1 < s);
    let mut last = first;
    while let Some(&(rs, re)) = ranges.get(last) {
        if rs > e {
            break;
        }
        s = s.min(rs);
        e = e.max(re);
        last += 1;
    }
    ranges.splice(first..last, core::iter::once((s, e)));
}

/// Rewrites an IPv4 header for the reassembled datagram: total length, flags (MF and offset
/// cleared, DF kept) and checksum.
fn fix_ipv4(out: &mut [u8], hlen: usize) -> Result<(), Reject> {
    if hlen < 20 || out.first().is_none_or(|b| b >> 4 != 4) {
        return Err(Reject::Invalid);
    }
    let total = u16::try_from(out.len()).map_err(|_| Reject::TooBig)?;
    let h = out.get_mut(..hlen).ok_or(Reject::Invalid)?;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6] &= 0x40;
    h[7] = 0;
    h[10] = 0;
    h[11] = 0;
    let sum = ipv4_checksum(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Internet checksum (RFC 1071) of an IPv4 header whose checksum field is zero.
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in h.chunks(2) {
        let hi = u32::from(pair.first().copied().unwrap_or(0));
        let lo = u32::from(pair.get(1).copied().unwrap_or(0));
        sum += (hi << 8) | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Rewrites an IPv6 header for the reassembled datagram: payload length, and the next-header
/// field of the last unfragmentable header (which named the Fragment header) set to `proto`.
fn fix_ipv6(out: &mut [u8], hlen: usize, proto: u8) -> Result<(), Reject> {
    if hlen < 40 || out.first().is_none_or(|b| b >> 4 != 6) {
        return Err(Reject::Invalid);
    }
    let payload_len = u16::try_from(out.len() - 40).map_err(|_| Reject::TooBig)?;
    out[4..6].copy_from_slice(&payload_len.to_be_bytes());
    // Walk the unfragmentable extension headers to find the last next-header field. Each step
    // advances by at least 8 bytes, so the walk is bounded by the header length.
    let mut nh_pos = 6usize;
    let mut pos = 40usize;
    while pos < hlen {
        let nh = *out.get(nh_pos).ok_or(Reject::Invalid)?;
        let len_byte = usize::from(*out.get(pos + 1).ok_or(Reject::Invalid)?);
        let len = if nh == 51 {
            (len_byte + 2) * 4 // Authentication Header counts 4-byte units minus 2
        } else {
            (len_byte + 1) * 8
        };
        nh_pos = pos;
        pos += len;
    }
    if pos != hlen {
        return Err(Reject::Invalid);
    }
    *out.get_mut(nh_pos).ok_or(Reject::Invalid)? = proto;
    Ok(())
}

/// Fuzz body: interprets `data` as a sequence of fragment inserts and expiries on a small
/// defragmenter and checks its invariants (no panic, caps respected, outputs well formed).
pub fn fuzz_defrag(data: &[u8]) {
    let cfg = DefragConfig {
        max_datagrams: 4,
        max_bytes: 8 * 1024,
        timeout_ns: 1_000,
        max_datagram_len: 4096,
        max_pieces: 8,
        hash_seed: 1,
    };
    let mut d = Defragmenter::new(cfg);
    let v4 = [
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let mut v6 = [0u8; 48];
    v6[0] = 0x60;
    v6[6] = 0; // hop-by-hop options header follows
    v6[40] = 44;
    let mut now = 0u64;
    let mut rest = data;
    let mut steps = 0;
    while let [op, sel, off_hi, off_lo, len, tail @ ..] = rest {
        steps += 1;
        if steps > 10_000 {
            break;
        }
        if op % 8 == 7 {
            now += u64::from(*len) * 16;
            d.expire(now);
            rest = tail;
            continue;
        }
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        now += u64::from(op >> 3);
        let is_v6 = sel & 1 == 1;
        let key = FragKey {
            src: if is_v6 {
                IpAddr::V6(core::net::Ipv6Addr::LOCALHOST)
            } else {
                IpAddr::V4(core::net::Ipv4Addr::LOCALHOST)
            },
            dst: IpAddr::V4(core::net::Ipv4Addr::BROADCAST),
            id: u32::from(sel >> 1),
            proto: 17,
            vlan: 0,
        };
        let header: &[u8] = if is_v6 {
            &v6[..if sel & 2 == 2 { 48 } else { 40 }]
        } else {
            &v4
        };
        let offset = u16::from_be_bytes([*off_hi, *off_lo]) & 0xfff8;
        let more = op & 1 == 1;
        if let Some(out) = d.insert(key, header, offset, more, payload, now) {
            assert!(out.len() <= cfg.max_datagram_len);
            assert!(out.len() >= header.len());
        }
        assert!(d.in_flight() <= cfg.max_datagrams);
        assert!(d.buffered_bytes() <= cfg.max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const S: u64 = 1_000_000_000;

    fn key4(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            id,
            proto: 17,
            vlan: 0,
        }
    }

    /// IPv4 header of a fragment (offset/MF/length as on the wire; the defragmenter rewrites
    /// them).
    fn hdr4(id: u16, offset: u16, more: bool, payload_len: usize) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let fo = (offset / 8) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[8] = 64;
        h[9] = 17;
        h[12..16].copy_from_slice(&[192, 0, 2, 1]);
        h[16..20].copy_from_slice(&[198, 51, 100, 2]);
        let c = ipv4_checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    /// The expected reassembled IPv4 datagram, built independently of the defragmenter.
    fn expected4(id: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = hdr4(id, 0, false, payload.len()).to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Splits `p` into fragments of `size` bytes (multiple of 8): (offset, more, bytes).
    fn split(p: &[u8], size: usize) -> Vec<(u16, bool, Vec<u8>)> {
        let mut v = Vec::new();
        let mut off = 0;
        while off < p.len() {
            let end = (off + size).min(p.len());
            v.push((off as u16, end < p.len(), p[off..end].to_vec()));
            off = end;
        }
        v
    }

    fn feed4(
        d: &mut Defragmenter,
        id: u16,
        frags: &[(u16, bool, Vec<u8>)],
        now: u64,
    ) -> Vec<Vec<u8>> {
        let mut outs = Vec::new();
        for (off, more, bytes) in frags {
            let h = hdr4(id, *off, *more, bytes.len());
            if let Some(o) = d.insert(key4(u32::from(id)), &h, *off, *more, bytes, now) {
                outs.push(o.to_vec());
            }
        }
        outs
    }

    #[test]
    fn in_order_fragments_reassemble() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(3000);
        let outs = feed4(&mut d, 9, &split(&p, 1480), 0);
        assert_eq!(outs, vec![expected4(9, &p)]);
        assert_eq!(d.stats().reassembled, 1);
        assert_eq!(d.stats().fragments, 3);
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn reversed_fragments_reassemble() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(1000);
        let mut f = split(&p, 104);
        f.reverse();
        let outs = feed4(&mut d, 1, &f, 0);
        assert_eq!(outs, vec![expected4(1, &p)]);
    }

    #[test]
    fn df_bit_is_kept() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let mut h0 = hdr4(2, 0, true, 8);
        h0[6] |= 0x40;
        assert!(d.insert(key4(2), &h0, 0, true, &[1; 8], 0).is_none());
        let h1 = hdr4(2, 8, false, 4);
        let out = d
            .insert(key4(2), &h1, 8, false, &[2; 4], 0)
            .unwrap()
            .to_vec();
        assert_eq!(&out[6..8], &[0x40, 0]);
        assert_eq!(&out[2..4], &32u16.to_be_bytes());
        let mut hdr = out[..20].to_vec();
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(ipv4_checksum(&hdr).to_be_bytes(), [out[10], out[11]]);
    }

    #[test]
    fn duplicated_fragments_are_ignored() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(600);
        let f = split(&p, 200);
        let dup = vec![
            f[0].clone(),
            f[0].clone(),
            f[1].clone(),
            f[1].clone(),
            f[2].clone(),
        ];
        let outs = feed4(&mut d, 3, &dup, 0);
        assert_eq!(outs, vec![expected4(3, &p)]);
        assert_eq!(d.stats().duplicates, 2);
        assert_eq!(d.stats().overlaps, 0);
    }

    #[test]
    fn identical_partial_overlap_is_accepted() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(64);
        let f = vec![
            (0u16, true, p[0..32].to_vec()),
            (16u16, true, p[16..48].to_vec()),
            (40u16, false, p[40..64].to_vec()),
        ];
        let outs = feed4(&mut d, 4, &f, 0);
        assert_eq!(outs, vec![expected4(4, &p)]);
        assert_eq!(d.stats().overlaps, 0);
    }

    #[test]
    fn conflicting_overlap_drops_datagram() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(64);
        let mut evil = p[16..48].to_vec();
        evil[4] ^= 0xff; // absolute byte 20, inside the overlap with the first fragment
        let f = vec![
            (0u16, true, p[0..32].to_vec()),
            (16u16, true, evil),
            (32u16, false, p[32..64].to_vec()),
        ];
        let outs = feed4(&mut d, 5, &f, 0);
        assert!(outs.is_empty());
        assert_eq!(d.stats().overlaps, 1);
        // The last fragment started a fresh, incomplete datagram.
        assert_eq!(d.in_flight(), 1);
        assert_eq!(d.stats().reassembled, 0);
    }

    #[test]
    fn malformed_fragments_are_counted() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let h = hdr4(6, 0, true, 10);
        // Non-final fragment not a multiple of 8.
        assert!(d.insert(key4(6), &h, 0, true, &[0; 10], 0).is_none());
        assert_eq!(d.stats().invalid, 1);
        assert_eq!(d.in_flight(), 0);
        // Last fragment ends at 16, then a fragment past the end.
        assert!(d.insert(key4(6), &h, 8, false, &[0; 8], 0).is_none());
        assert!(d.insert(key4(6), &h, 16, true, &[0; 8], 0).is_none());
        assert_eq!(d.stats().invalid, 2);
        assert_eq!(d.in_flight(), 0);
        // Two different ends.
        assert!(d.insert(key4(6), &h, 8, false, &[0; 8], 0).is_none());
        assert!(d.insert(key4(6), &h, 8, false, &[0; 16], 0).is_none());
        assert_eq!(d.stats().invalid, 3);
    }

    #[test]
    fn too_big_datagram_is_dropped() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let h = hdr4(7, 0, true, 8);
        assert!(d.insert(key4(7), &h, 0, true, &[0; 8], 0).is_none());
        assert!(d.insert(key4(7), &h, 65528, false, &[0; 8], 0).is_none());
        assert_eq!(d.stats().too_big, 1);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn incomplete_datagram_times_out() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(300);
        let f = split(&p, 104);
        feed4(&mut d, 8, &f[..2], 0);
        assert_eq!(d.in_flight(), 1);
        d.expire(30 * S);
        assert_eq!(d.in_flight(), 1, "exactly the timeout is still alive");
        d.expire(30 * S + 1);
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.stats().timed_out, 1);
        assert_eq!(d.buffered_bytes(), 0);
        // The late last fragment cannot complete anything now.
        assert!(feed4(&mut d, 8, &f[2..], 31 * S).is_empty());
    }

    #[test]
    fn insert_expires_old_datagrams_on_the_way() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let h = hdr4(1, 0, true, 8);
        d.insert(key4(1), &h, 0, true, &[0; 8], 0);
        d.insert(key4(2), &h, 0, true, &[0; 8], 100 * S);
        assert_eq!(d.in_flight(), 1);
        assert_eq!(d.stats().timed_out, 1);
    }

    #[test]
    fn flood_of_first_fragments_stays_bounded() {
        let cfg = DefragConfig {
            max_datagrams: 100,
            max_bytes: 256 * 1024,
            ..DefragConfig::default()
        };
        let mut d = Defragmenter::new(cfg);
        let data = [0xaau8; 1480];
        for id in 0..10_000u32 {
            let h = hdr4(id as u16, 0, true, data.len());
            assert!(d.insert(key4(id), &h, 0, true, &data, 0).is_none());
            assert!(d.in_flight() <= 100);
            assert!(d.buffered_bytes() <= 256 * 1024);
        }
        assert_eq!(d.stats().evicted_cap, 10_000 - d.in_flight() as u64);
        // The newest datagram survived and can still complete.
        let id = 9_999u32;
        let h = hdr4(id as u16, 1480, false, 8);
        let out = d.insert(key4(id), &h, 1480, false, &[1; 8], 0).unwrap();
        assert_eq!(out.len(), 20 + 1488);
    }

    #[test]
    fn byte_budget_evicts_oldest() {
        let cfg = DefragConfig {
            max_bytes: 40 * 1024,
            ..DefragConfig::default()
        };
        let mut d = Defragmenter::new(cfg);
        let big = vec![1u8; 16 * 1024];
        for id in 0..4u32 {
            let h = hdr4(id as u16, 0, true, big.len());
            d.insert(key4(id), &h, 0, true, &big, 0);
        }
        assert!(d.buffered_bytes() <= 40 * 1024);
        assert_eq!(d.in_flight(), 2);
        assert_eq!(d.stats().evicted_cap, 2);
        // One datagram alone larger than the budget is refused.
        let huge = vec![1u8; 48 * 1024];
        let h = hdr4(99, 0, true, huge.len());
        assert!(d.insert(key4(99), &h, 0, true, &huge, 0).is_none());
        assert!(d.buffered_bytes() <= 40 * 1024);
    }

    #[test]
    fn too_many_pieces_is_invalid() {
        let cfg = DefragConfig {
            max_pieces: 4,
            ..DefragConfig::default()
        };
        let mut d = Defragmenter::new(cfg);
        let h = hdr4(1, 0, true, 8);
        for i in 0..5u16 {
            d.insert(key4(1), &h, i * 16, true, &[0; 8], 0);
        }
        assert_eq!(d.stats().invalid, 1);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn vlan_and_proto_separate_datagrams() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let h = hdr4(1, 0, true, 8);
        let k = key4(1);
        d.insert(k, &h, 0, true, &[0; 8], 0);
        d.insert(FragKey { vlan: 5, ..k }, &h, 0, true, &[0; 8], 0);
        d.insert(FragKey { proto: 6, ..k }, &h, 0, true, &[0; 8], 0);
        assert_eq!(d.in_flight(), 3);
    }

    fn hdr6(ext: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[6] = if ext.is_empty() { 44 } else { 0 };
        h[7] = 64;
        h[8..24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        h[24..40].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        h.extend_from_slice(ext);
        h
    }

    fn key6(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::LOCALHOST),
            id,
            proto: 17,
            vlan: 0,
        }
    }

    #[test]
    fn ipv6_reassembles_and_fixes_next_header() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let h = hdr6(&[]);
        let p = payload(2000);
        let mut out = None;
        for (off, more, bytes) in split(&p, 1232).into_iter().rev() {
            if let Some(o) = d.insert(key6(0x1234_5678), &h, off, more, &bytes, 0) {
                out = Some(o.to_vec());
            }
        }
        let out = out.unwrap();
        assert_eq!(out.len(), 40 + 2000);
        assert_eq!(&out[4..6], &2000u16.to_be_bytes());
        assert_eq!(out[6], 17);
        assert_eq!(&out[40..], &p[..]);
    }

    #[test]
    fn ipv6_with_hop_by_hop_fixes_last_next_header() {
        let mut d = Defragmenter::new(DefragConfig::default());
        // Hop-by-hop options (8 bytes) whose next header is the Fragment header (44).
        let h = hdr6(&[44, 0, 1, 4, 0, 0, 0, 0]);
        let p = payload(24);
        assert!(d.insert(key6(1), &h, 0, true, &p[..16], 0).is_none());
        let out = d.insert(key6(1), &h, 16, false, &p[16..], 0).unwrap();
        assert_eq!(out.len(), 48 + 24);
        assert_eq!(&out[4..6], &32u16.to_be_bytes());
        assert_eq!(out[6], 0, "fixed header still points to hop-by-hop");
        assert_eq!(out[40], 17, "hop-by-hop now points to UDP");
    }

    #[test]
    fn ipv6_inconsistent_extension_chain_is_invalid() {
        let mut d = Defragmenter::new(DefragConfig::default());
        // Claims a 16-byte extension header but only 8 bytes are present.
        let h = hdr6(&[44, 1, 0, 0, 0, 0, 0, 0]);
        assert!(d.insert(key6(1), &h, 0, false, &[1, 2, 3], 0).is_none());
        assert_eq!(d.stats().invalid, 1);
    }

    #[test]
    fn steady_state_reuses_buffers() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let p = payload(3000);
        let f = split(&p, 1480);
        feed4(&mut d, 1, &f, 0);
        let cap_before = d.out.capacity();
        for id in 2..50u16 {
            assert_eq!(feed4(&mut d, id, &f, 0).len(), 1);
        }
        assert_eq!(d.out.capacity(), cap_before);
        assert_eq!(d.stats().reassembled, 49);
    }

    #[test]
    fn insert_range_merges() {
        let mut r = Vec::new();
        insert_range(&mut r, 10, 20);
        insert_range(&mut r, 30, 40);
        assert_eq!(r, vec![(10, 20), (30, 40)]);
        insert_range(&mut r, 20, 30);
        assert_eq!(r, vec![(10, 40)]);
        insert_range(&mut r, 0, 5);
        insert_range(&mut r, 50, 60);
        insert_range(&mut r, 3, 55);
        assert_eq!(r, vec![(0, 60)]);
    }

    #[test]
    fn fuzz_body_survives_samples() {
        fuzz_defrag(&[]);
        fuzz_defrag(&[1, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 8, 2, 9, 9]);
        fuzz_defrag(&[0xff; 300]);
        let seq: Vec<u8> = (0..2000u32).map(|i| (i * 131 % 251) as u8).collect();
        fuzz_defrag(&seq);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            /// Random fragmentation of a random datagram, delivered in random order with random
            /// duplicates, gives back exactly the original datagram, once.
            #[test]
            fn random_fragmentation_reassembles(
                len in 1usize..4000,
                seed in any::<u64>(),
                unit in 1usize..64,
                dups in proptest::collection::vec(any::<u16>(), 0..4),
            ) {
                let p: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed).wrapping_mul(0x9e37) as u8).collect();
                // Random cut points on 8-byte boundaries, derived from the seed.
                let mut frags = Vec::new();
                let mut off = 0usize;
                let mut s = seed | 1;
                while off < len {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                    let size = 8 * (1 + (s as usize % unit));
                    let end = (off + size).min(len);
                    frags.push((off as u16, end < len, p[off..end].to_vec()));
                    off = end;
                }
                for k in &dups {
                    let f = frags[*k as usize % frags.len()].clone();
                    frags.push(f);
                }
                // Shuffle (Fisher-Yates with the xorshift above).
                for i in (1..frags.len()).rev() {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                    frags.swap(i, s as usize % (i + 1));
                }
                // Up to 500 eight-byte fragments: allow as many pieces.
                let cfg = DefragConfig { max_pieces: 512, ..DefragConfig::default() };
                let mut d = Defragmenter::new(cfg);
                let outs = feed4(&mut d, 77, &frags, 0);
                // Duplicates arriving after completion start a new incomplete datagram, so
                // exactly one datagram is produced.
                // Duplicates arriving after completion start a new datagram, which completes
                // again only if the duplicates cover it all.
                prop_assert!(!outs.is_empty());
                prop_assert!(outs.len() <= 1 + dups.len());
                for o in &outs {
                    prop_assert_eq!(o, &expected4(77, &p));
                }
                prop_assert_eq!(d.stats().overlaps, 0);
            }

            #[test]
            fn fuzz_body_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
                fuzz_defrag(&data);
            }
        }
    }
}
