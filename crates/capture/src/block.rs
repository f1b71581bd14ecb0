//! Reading one `TPACKET_V3` block: the block descriptor, the chain of `tpacket3_hdr` frame
//! headers and the `sockaddr_ll` after each, checked against the block's bounds.
//!
//! Everything here works on a plain byte slice, so it is safe code and can be tested on
//! hand-made blocks: the kernel's offsets are never trusted (a header pointing outside the
//! block is a [`Corrupt`] error, not a wild read). Not the ring (ownership of blocks, the
//! status handshake with the kernel): see `ring`.

use wire::bpf::Program;
use wire::capture::LinkType;

/// Size of `struct tpacket_block_desc` with its `tpacket_hdr_v1` (offset of the private
/// area when none is reserved).
pub const BLOCK_DESC_LEN: usize = 48;
/// Size of `struct tpacket3_hdr`, already a multiple of the ring alignment.
const FRAME_HDR_LEN: usize = 48;
/// `tpacket3_hdr` followed by `sockaddr_ll`: the fixed part before the frame's bytes.
const FRAME_FIXED_LEN: usize = FRAME_HDR_LEN + 20;

/// Offset of `block_status` in the block descriptor (read and written atomically by `ring`).
pub const OFF_BLOCK_STATUS: usize = 8;
const OFF_NUM_PKTS: usize = 12;
const OFF_FIRST_PKT: usize = 16;
const OFF_SEQ_NUM: usize = 24;

/// `TP_STATUS_VLAN_VALID`: `tp_vlan_tci` holds the stripped 802.1Q tag.
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `TP_STATUS_VLAN_TPID_VALID`: `tp_vlan_tpid` holds the stripped tag's TPID.
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// `TP_STATUS_LOSING`: the kernel dropped frames for this socket since the last statistics read.
pub const TP_STATUS_LOSING: u32 = 1 << 2;

/// `sll_pkttype` values (`PACKET_HOST` ...): to whom the frame was addressed, or that it was
/// sent by this host.
pub mod pkt_type {
    /// Addressed to this host.
    pub const HOST: u8 = 0;
    /// Link-layer broadcast.
    pub const BROADCAST: u8 = 1;
    /// Link-layer multicast.
    pub const MULTICAST: u8 = 2;
    /// Addressed to another host (seen in promiscuous mode, or on a veth/bridge).
    pub const OTHERHOST: u8 = 3;
    /// Sent by this host. On `any`, loopback traffic shows up twice: once outgoing, once
    /// incoming.
    pub const OUTGOING: u8 = 4;
}

/// High bit marking a [`LinkType::Other`] value that is an unknown `ARPHRD_*` number rather
/// than a `LINKTYPE_*` one (the low 16 bits are the ARPHRD value).
pub const UNKNOWN_ARPHRD: u32 = 0x8000_0000;

/// The link layer of frames captured from a device of hardware type `hatype` (`ARPHRD_*`)
/// on a `SOCK_RAW` packet socket, where every frame keeps its device's own link header.
///
/// Ethernet, loopback (a zeroed Ethernet header) and Token Ring-era 802 devices give
/// Ethernet; devices without a link header (tun, IP tunnels, PPP, raw IP) give bare IP;
/// a few others map to their `LINKTYPE_*`; the rest are `Other(UNKNOWN_ARPHRD | hatype)`.
pub fn link_type_for_hatype(hatype: u16) -> LinkType {
    match hatype {
        1 | 6 | 772 => LinkType::Ethernet,
        512 | 519 | 768 | 769 | 776 | 778 | 823 | 65534 | 65535 => LinkType::Raw,
        801 => LinkType::Other(105),
        803 => LinkType::Other(127),
        280 => LinkType::Other(227),
        824 => LinkType::Other(253),
        other => LinkType::Other(UNKNOWN_ARPHRD | u32::from(other)),
    }
}

/// One captured frame, borrowed from a block of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Receive time, nanoseconds since the Unix epoch (`tp_sec`, `tp_nsec`).
    pub ts_ns: u64,
    /// The captured bytes, starting at the device's link header (at most the snap length).
    /// A VLAN tag the kernel stripped is not in here: see [`Frame::vlan_tci`].
    pub data: &'a [u8],
    /// Length of the frame on the wire (`tp_len`), without a stripped VLAN tag.
    pub orig_len: u32,
    /// Index of the interface the frame was seen on (`sll_ifindex`).
    pub ifindex: i32,
    /// Link layer of `data`, from the device's hardware type.
    pub link_type: LinkType,
    /// The device's hardware type (`sll_hatype`, an `ARPHRD_*` number).
    pub hatype: u16,
    /// To whom the frame was addressed (see [`pkt_type`]).
    pub pkt_type: u8,
    /// Link-layer protocol (`sll_protocol`, an ethertype, host byte order).
    pub protocol: u16,
    /// The 802.1Q tag control information the kernel stripped (`tp_vlan_tci`), if any:
    /// VLAN id in the low 12 bits.
    pub vlan_tci: Option<u16>,
    /// The TPID of the stripped tag (0x8100, 0x88a8), when the kernel reports it.
    pub vlan_tpid: Option<u16>,
    /// The frame's `tp_status` bits (`TP_STATUS_*`).
    pub status: u32,
}

impl Frame<'_> {
    /// The VLAN id of the stripped tag, if any.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci.map(|t| t & 0x0fff)
    }
}

/// A block whose headers do not fit inside it; the reason names the broken bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

/// What the block descriptor says, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Number of frames in the block.
    pub num_pkts: u32,
    /// Offset of the first frame header.
    pub first: u32,
    /// The kernel's sequence number of the block (increments by one per block filled).
    pub seq: u64,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_ne_bytes(s))
}

/// Reads the block descriptor and walks every frame header once, checking that each header
/// and each frame's bytes lie inside `block`. The walk is bounded: every step moves forward
/// by at least a header's size and must stay inside the block.
pub fn validate(block: &[u8]) -> Result<BlockInfo, Corrupt> {
    let num_pkts =
        u32_at(block, OFF_NUM_PKTS).ok_or(Corrupt("block shorter than its descriptor"))?;
    let first = u32_at(block, OFF_FIRST_PKT).ok_or(Corrupt("block shorter than its descriptor"))?;
    let seq = u64_at(block, OFF_SEQ_NUM).ok_or(Corrupt("block shorter than its descriptor"))?;
    let info = BlockInfo {
        num_pkts,
        first,
        seq,
    };
    if num_pkts == 0 {
        return Ok(info);
    }
    let mut off = first as usize;
    if off < BLOCK_DESC_LEN {
        return Err(Corrupt("first frame overlaps the block descriptor"));
    }
    for i in 0..num_pkts {
        let (_, next) = frame_at(block, off)?;
        if i + 1 < num_pkts {
            if (next as usize) < FRAME_FIXED_LEN {
                return Err(Corrupt("frame offset does not move past the frame header"));
            }
            off = off
                .checked_add(next as usize)
                .filter(|&o| o < block.len())
                .ok_or(Corrupt("next frame offset points outside the block"))?;
        }
    }
    Ok(info)
}

/// Parses the frame header at `off`; returns the frame (unfiltered, unclipped) and
/// `tp_next_offset`.
fn frame_at(block: &[u8], off: usize) -> Result<(Frame<'_>, u32), Corrupt> {
    const OUT: Corrupt = Corrupt("frame header outside the block");
    let end = off.checked_add(FRAME_FIXED_LEN).ok_or(OUT)?;
    let h = block.get(off..end).ok_or(OUT)?;
    let next = u32_at(h, 0).ok_or(OUT)?;
    let sec = u32_at(h, 4).ok_or(OUT)?;
    let nsec = u32_at(h, 8).ok_or(OUT)?;
    let snaplen = u32_at(h, 12).ok_or(OUT)?;
    let len = u32_at(h, 16).ok_or(OUT)?;
    let status = u32_at(h, 20).ok_or(OUT)?;
    let mac = u16_at(h, 24).ok_or(OUT)?;
    let tci = u32_at(h, 32).ok_or(OUT)?;
    let tpid = u16_at(h, 36).ok_or(OUT)?;
    let proto = u16_at(h, 50).ok_or(OUT)?;
    let ifindex = u32_at(h, 52).ok_or(OUT)?;
    let hatype = u16_at(h, 56).ok_or(OUT)?;
    let pkttype = *h.get(58).ok_or(OUT)?;
    let start = off
        .checked_add(usize::from(mac))
        .ok_or(Corrupt("frame data offset overflows"))?;
    let stop = start
        .checked_add(snaplen as usize)
        .ok_or(Corrupt("frame data length overflows"))?;
    let data = block
        .get(start..stop)
        .ok_or(Corrupt("frame data outside the block"))?;
    let frame = Frame {
        ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(nsec),
        data,
        orig_len: len,
        ifindex: ifindex as i32,
        link_type: link_type_for_hatype(hatype),
        hatype,
        pkt_type: pkttype,
        protocol: u16::from_be(proto),
        vlan_tci: (status & TP_STATUS_VLAN_VALID != 0).then_some(tci as u16),
        vlan_tpid: (status & TP_STATUS_VLAN_TPID_VALID != 0).then_some(tpid),
        status,
    };
    Ok((frame, next))
}

/// Iterates the frames of a validated block, skipping those a user-space filter rejects and
/// clipping each to the snap length. Never panics: if the bytes change shape under it (they
/// cannot once validated, but it does not rely on that) it simply ends.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    block: &'a [u8],
    off: usize,
    left: u32,
    snaplen: u32,
    filter: Option<&'a Program>,
}

impl<'a> Frames<'a> {
    /// Frames of `block` described by `info`; `filter`, when set, is run on each frame.
    pub fn new(
        block: &'a [u8],
        info: BlockInfo,
        snaplen: u32,
        filter: Option<&'a Program>,
    ) -> Self {
        Self {
            block,
            off: info.first as usize,
            left: info.num_pkts,
            snaplen,
            filter,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        while self.left > 0 {
            self.left -= 1;
            let Ok((mut frame, next)) = frame_at(self.block, self.off) else {
                self.left = 0;
                return None;
            };
            if self.left > 0 {
                if (next as usize) < FRAME_FIXED_LEN {
                    self.left = 0;
                } else {
                    self.off = self.off.saturating_add(next as usize);
                }
            }
            if frame.data.len() > self.snaplen as usize {
                frame.data = frame
                    .data
                    .get(..self.snaplen as usize)
                    .unwrap_or(frame.data);
            }
            if let Some(p) = self.filter
                && !p.matches(frame.data, frame.orig_len)
            {
                continue;
            }
            return Some(frame);
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One frame to lay out in a test block.
    pub(crate) struct TestFrame<'a> {
        pub data: &'a [u8],
        pub ts_ns: u64,
        pub vlan: Option<u16>,
        pub hatype: u16,
        pub ifindex: i32,
    }

    /// Builds a block the way the kernel does: descriptor, then each frame header, its
    /// `sockaddr_ll`, padding to `mac`, the bytes, aligned to 16.
    pub(crate) fn build_block(size: usize, frames: &[TestFrame<'_>]) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        let put16 =
            |b: &mut Vec<u8>, o: usize, v: u16| b[o..o + 2].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, 0, 1);
        put32(&mut b, 4, BLOCK_DESC_LEN as u32);
        put32(&mut b, OFF_BLOCK_STATUS, 1);
        put32(&mut b, OFF_NUM_PKTS, frames.len() as u32);
        put32(&mut b, OFF_FIRST_PKT, BLOCK_DESC_LEN as u32);
        put32(&mut b, OFF_SEQ_NUM, 7);
        let mut off = BLOCK_DESC_LEN;
        for (i, f) in frames.iter().enumerate() {
            let mac = 82usize; // kernel: aligned header + sll, then room so the IP header is aligned
            let total = (mac + f.data.len()).next_multiple_of(16);
            let next = if i + 1 < frames.len() {
                total as u32
            } else {
                0
            };
            put32(&mut b, off, next);
            put32(&mut b, off + 4, (f.ts_ns / 1_000_000_000) as u32);
            put32(&mut b, off + 8, (f.ts_ns % 1_000_000_000) as u32);
            put32(&mut b, off + 12, f.data.len() as u32);
            put32(&mut b, off + 16, f.data.len() as u32 + 4);
            let status = 1 | if f.vlan.is_some() {
                TP_STATUS_VLAN_VALID
            } else {
                0
            };
            put32(&mut b, off + 20, status);
            put16(&mut b, off + 24, mac as u16);
            put16(&mut b, off + 26, mac as u16 + 14);
            put32(&mut b, off + 32, u32::from(f.vlan.unwrap_or(0)));
            put16(&mut b, off + 48, 17);
            put16(&mut b, off + 50, 0x0800u16.to_be());
            put32(&mut b, off + 52, f.ifindex as u32);
            put16(&mut b, off + 56, f.hatype);
            b[off + 58] = pkt_type::OTHERHOST;
            b[off + mac..off + mac + f.data.len()].copy_from_slice(f.data);
            off += total;
        }
        b
    }

    fn tf(data: &[u8]) -> TestFrame<'_> {
        TestFrame {
            data,
            ts_ns: 1_700_000_000_123_456_789,
            vlan: None,
            hatype: 1,
            ifindex: 3,
        }
    }

    #[test]
    fn frames_come_out_in_order_with_metadata() {
        let mut second = tf(b"second frame, longer");
        second.vlan = Some(0x2064);
        second.hatype = 65534;
        let b = build_block(4096, &[tf(b"first"), second, tf(b"3")]);
        let info = validate(&b).unwrap();
        assert_eq!(info.num_pkts, 3);
        assert_eq!(info.seq, 7);
        let frames: Vec<_> = Frames::new(&b, info, 65535, None).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].data, b"first");
        assert_eq!(frames[0].orig_len, 9);
        assert_eq!(frames[0].ts_ns, 1_700_000_000_123_456_789);
        assert_eq!(frames[0].ifindex, 3);
        assert_eq!(frames[0].link_type, LinkType::Ethernet);
        assert_eq!(frames[0].protocol, 0x0800);
        assert_eq!(frames[0].pkt_type, pkt_type::OTHERHOST);
        assert_eq!(frames[0].vlan_tci, None);
        assert_eq!(frames[1].data, b"second frame, longer");
        assert_eq!(frames[1].vlan_tci, Some(0x2064));
        assert_eq!(frames[1].vlan_id(), Some(0x064));
        assert_eq!(frames[1].link_type, LinkType::Raw);
        assert_eq!(frames[2].data, b"3");
    }

    #[test]
    fn snaplen_clips_and_filter_skips() {
        let b = build_block(4096, &[tf(b"abcdef"), tf(b"xyz")]);
        let info = validate(&b).unwrap();
        let frames: Vec<_> = Frames::new(&b, info, 4, None).map(|f| f.data).collect();
        assert_eq!(frames, vec![&b"abcd"[..], &b"xyz"[..]]);
        // "less 7" as a hand-written program: len <= 6 keeps... use "ld len; jgt 6 -> drop".
        use wire::bpf::{Insn, op};
        let p = Program::from_insns(vec![
            Insn::stmt(op::LD | op::W | op::LEN, 0),
            Insn::jump(op::JMP | op::JGT | op::K, 8, 0, 1),
            Insn::stmt(op::RET | op::K, 0),
            Insn::stmt(op::RET | op::K, 0xffff),
        ])
        .unwrap();
        // orig_len is data length + 4: 10 for "abcdef" (dropped), 7 for "xyz" (kept).
        let kept: Vec<_> = Frames::new(&b, info, 65535, Some(&p))
            .map(|f| f.data)
            .collect();
        assert_eq!(kept, vec![&b"xyz"[..]]);
    }

    #[test]
    fn empty_block_has_no_frames() {
        let b = build_block(4096, &[]);
        let info = validate(&b).unwrap();
        assert_eq!(Frames::new(&b, info, 100, None).count(), 0);
    }

    #[test]
    fn corrupt_offsets_are_errors() {
        let b = build_block(4096, &[tf(b"first"), tf(b"second")]);
        let mut c = b.clone();
        c[OFF_FIRST_PKT..OFF_FIRST_PKT + 4].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(validate(&c), Err(Corrupt("frame header outside the block")));
        let mut c = b.clone();
        c[OFF_FIRST_PKT..OFF_FIRST_PKT + 4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(validate(&c).is_err());
        let mut c = b.clone();
        c[BLOCK_DESC_LEN + 12..BLOCK_DESC_LEN + 16].copy_from_slice(&4000u32.to_ne_bytes());
        assert_eq!(validate(&c), Err(Corrupt("frame data outside the block")));
        let mut c = b.clone();
        c[BLOCK_DESC_LEN..BLOCK_DESC_LEN + 4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(
            validate(&c),
            Err(Corrupt("frame offset does not move past the frame header"))
        );
        let mut c = b.clone();
        c[OFF_NUM_PKTS..OFF_NUM_PKTS + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(validate(&c).is_err());
        assert!(validate(&b[..20]).is_err());
    }

    #[test]
    fn hatypes_map_to_link_types() {
        assert_eq!(link_type_for_hatype(1), LinkType::Ethernet);
        assert_eq!(link_type_for_hatype(772), LinkType::Ethernet);
        assert_eq!(link_type_for_hatype(65534), LinkType::Raw);
        assert_eq!(link_type_for_hatype(803), LinkType::Other(127));
        assert_eq!(
            link_type_for_hatype(9999),
            LinkType::Other(UNKNOWN_ARPHRD | 9999)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes at all: validation either accepts (and then iteration yields at most
        /// num_pkts frames, all inside the block) or rejects; nothing panics.
        #[test]
        fn arbitrary_blocks_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..600), first in 0u32..700, n in 0u32..40) {
            if bytes.len() >= 20 {
                bytes[OFF_NUM_PKTS..OFF_NUM_PKTS + 4].copy_from_slice(&n.to_ne_bytes());
                bytes[OFF_FIRST_PKT..OFF_FIRST_PKT + 4].copy_from_slice(&first.to_ne_bytes());
            }
            if let Ok(info) = validate(&bytes) {
                let frames: Vec<_> = Frames::new(&bytes, info, 1 << 20, None).collect();
                prop_assert_eq!(frames.len(), info.num_pkts as usize);
                let range = bytes.as_ptr_range();
                for f in frames {
                    prop_assert!(f.data.is_empty() || range.contains(&f.data.as_ptr()));
                }
            }
        }

        /// Corrupting one byte of a well-formed block never panics either.
        #[test]
        fn flipped_bytes_never_panic(pos in 0usize..512, val in any::<u8>()) {
            let mut b = build_block(512, &[tf(b"one frame"), tf(b"another frame"), tf(b"x")]);
            b[pos] = val;
            if let Ok(info) = validate(&b) {
                prop_assert!(Frames::new(&b, info, 1 << 20, None).count() <= info.num_pkts as usize);
            }
        }
    }
}
