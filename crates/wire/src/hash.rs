//! Symmetric, deterministic flow hash: both directions of a conversation hash alike.
//!
//! Used to shard packets over workers (`flow_hash(p) % n`) so one worker sees a whole
//! connection. The key is fixed, so offline runs shard identically every time; this is not a
//! DoS-resistant hash for attacker-chosen table keys.

use std::net::IpAddr;

use crate::capture::LinkType;
use crate::packet::Packet;

/// Fixed multipliers (from wyhash), chosen for good avalanche, not secrecy.
const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let r = u128::from(a ^ K0) * u128::from(b ^ K1);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Address as two words; IPv4 is tagged so it cannot collide with an IPv6 address by accident.
#[inline]
fn words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(v4) => (u64::from(u32::from(v4)), 0x4),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            ((x >> 64) as u64, x as u64)
        }
    }
}

/// Hashes the 5-tuple `(a, ap) <-> (b, bp)` over protocol `proto`, independent of direction.
pub fn flow_hash_parts(a: IpAddr, ap: u16, b: IpAddr, bp: u16, proto: u8) -> u64 {
    let (a0, a1) = words(a);
    let (b0, b1) = words(b);
    // Canonical order: the smaller endpoint first, so swapping the endpoints changes nothing.
    let ((l0, l1, lp), (h0, h1, hp)) = if (a0, a1, ap) <= (b0, b1, bp) {
        ((a0, a1, ap), (b0, b1, bp))
    } else {
        ((b0, b1, bp), (a0, a1, ap))
    };
    let ports = (u64::from(lp) << 32) | (u64::from(hp) << 16) | u64::from(proto);
    let h = mix(l0 ^ K2, l1);
    let h = mix(h ^ h0, h1);
    mix(h ^ ports, K2)
}

/// Hashes the flow of a decoded packet (addresses, ports and IP protocol), direction-free.
///
/// DHCP (UDP with port 67, 68, 546 or 547 on either side) hashes to one value: a client's
/// broadcast and the server's answer are different 5-tuples, and only one worker seeing both
/// can match the transaction. DHCP traffic is small enough for one worker.
pub fn flow_hash(p: &Packet<'_>) -> u64 {
    let dhcp = |port: u16| matches!(port, 67 | 68 | 546 | 547);
    if p.ip_proto == 17 && (dhcp(p.src_port) || dhcp(p.dst_port)) {
        return DHCP_FLOW;
    }
    flow_hash_parts(p.src, p.src_port, p.dst, p.dst_port, p.ip_proto)
}

/// The flow hash of every DHCP packet (an arbitrary fixed value).
pub const DHCP_FLOW: u64 = 0xd4c9_0067_0068_0547;

/// [`flow_hash`] of the common frame read straight off its bytes, without decoding it: an
/// untagged Ethernet frame carrying an unfragmented IPv4 UDP or TCP packet without an
/// authentication header. `Some(h)` promises that [`decode`](crate::packet::decode) of the
/// same frame succeeds, is not a fragment, and that `flow_hash` of it is `h`; every other
/// frame (and any doubt) gives `None`, and the caller decodes it. Shards frames in a serial
/// reader whose workers decode them anyway.
#[inline]
pub fn quick_flow_hash(link: LinkType, frame: &[u8]) -> Option<u64> {
    if link != LinkType::Ethernet {
        return None;
    }
    let et = frame.get(12..14)?;
    if et != [0x08, 0x00] {
        return None;
    }
    let d = frame.get(14..)?;
    let hdr: &[u8; 20] = d.first_chunk::<20>()?;
    if hdr[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    if ihl < 20 || d.len() < ihl {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    let end = if total == 0 {
        d.len()
    } else if total < ihl {
        return None;
    } else {
        total.min(d.len())
    };
    // Fragments (more-fragments flag or an offset) are reassembled by the caller.
    if u16::from_be_bytes([hdr[6], hdr[7]]) & 0x3fff != 0 {
        return None;
    }
    let proto = hdr[9];
    let seg = d.get(ihl..end)?;
    match proto {
        17 => {
            let h = seg.first_chunk::<8>()?;
            let ulen = u16::from_be_bytes([h[4], h[5]]);
            if (1..8).contains(&ulen) {
                return None;
            }
        }
        6 => {
            let h = seg.first_chunk::<20>()?;
            let doff = usize::from(h[12] >> 4) * 4;
            if doff < 20 || doff > seg.len() {
                return None;
            }
        }
        _ => return None,
    }
    let sp = u16::from_be_bytes([*seg.first()?, *seg.get(1)?]);
    let dp = u16::from_be_bytes([*seg.get(2)?, *seg.get(3)?]);
    let dhcp = |port: u16| matches!(port, 67 | 68 | 546 | 547);
    if proto == 17 && (dhcp(sp) || dhcp(dp)) {
        return Some(DHCP_FLOW);
    }
    let src = u32::from_be_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
    let dst = u32::from_be_bytes([hdr[16], hdr[17], hdr[18], hdr[19]]);
    Some(flow_hash_v4(src, sp, dst, dp, proto))
}

/// [`flow_hash_parts`] of two IPv4 addresses (given as numbers), the same value computed
/// without the `IpAddr` matches: both addresses' second words are the IPv4 tag.
#[inline]
fn flow_hash_v4(a: u32, ap: u16, b: u32, bp: u16, proto: u8) -> u64 {
    let ((l0, lp), (h0, hp)) = if (a, ap) <= (b, bp) {
        ((a, ap), (b, bp))
    } else {
        ((b, bp), (a, ap))
    };
    let ports = (u64::from(lp) << 32) | (u64::from(hp) << 16) | u64::from(proto);
    let h = mix(u64::from(l0) ^ K2, 0x4);
    let h = mix(h ^ u64::from(h0), 0x4);
    mix(h ^ ports, K2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn deterministic_value() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let h = flow_hash_parts(a, 1234, b, 53, 17);
        // Pinned so a change of sharding (which reorders offline output) is deliberate.
        assert_eq!(h, flow_hash_parts(b, 53, a, 1234, 17));
        assert_eq!(h, 0xa208_738b_a145_d707);
        assert_ne!(h, flow_hash_parts(a, 1234, b, 53, 6));
        assert_ne!(h, flow_hash_parts(a, 1235, b, 53, 17));
        assert_ne!(h, flow_hash_parts(a, 53, b, 1234, 17));
    }

    #[test]
    fn packet_hash_matches_parts() {
        let p = Packet {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            src_port: 9,
            dst_port: 10,
            ip_proto: 6,
            ..Packet::default()
        };
        assert_eq!(
            flow_hash(&p),
            flow_hash_parts(p.dst, p.dst_port, p.src, p.src_port, 6)
        );
    }

    #[test]
    fn dhcp_exchanges_hash_alike() {
        let discover = Packet {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::BROADCAST),
            src_port: 68,
            dst_port: 67,
            ip_proto: 17,
            ..Packet::default()
        };
        let offer = Packet {
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 2, 248)),
            src_port: 67,
            dst_port: 68,
            ..discover
        };
        assert_eq!(flow_hash(&discover), flow_hash(&offer));
        assert_eq!(flow_hash(&offer), DHCP_FLOW);
        // TCP on the same ports is an ordinary flow.
        let tcp = Packet {
            ip_proto: 6,
            ..offer
        };
        assert_ne!(flow_hash(&tcp), DHCP_FLOW);
    }

    #[test]
    fn spreads_over_workers() {
        let mut buckets = [0u32; 4];
        for i in 0..4000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let b = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));
            buckets[(flow_hash_parts(a, 40000, b, 53, 17) % 4) as usize] += 1;
        }
        for n in buckets {
            assert!((800..1200).contains(&n), "{buckets:?}");
        }
    }

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|x| IpAddr::V4(Ipv4Addr::from(x))),
            any::<u128>().prop_map(|x| IpAddr::V6(Ipv6Addr::from(x))),
        ]
    }

    /// Ethernet + IPv4 (20-byte header) + a UDP or TCP header and `payload`.
    fn frame(proto: u8, sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let l4 = if proto == 6 { 20 } else { 8 };
        let total = (20 + l4 + payload.len()) as u16;
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 192, 168, 7, 9]);
        f.extend_from_slice(&sp.to_be_bytes());
        f.extend_from_slice(&dp.to_be_bytes());
        if proto == 6 {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 1, 0, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn quick_hash_of_common_frames_is_the_decoded_hash() {
        for (proto, sp, dp) in [(17, 40000, 53), (6, 53, 51000), (17, 68, 67), (6, 443, 1)] {
            let f = frame(proto, sp, dp, b"0123456789");
            let p = crate::packet::decode(LinkType::Ethernet, &f).expect("decodes");
            assert_eq!(quick_flow_hash(LinkType::Ethernet, &f), Some(flow_hash(&p)));
        }
        // Anything else is left to the decoder.
        let udp = frame(17, 1, 2, b"x");
        assert_eq!(quick_flow_hash(LinkType::Raw, &udp), None);
        let mut frag = udp.clone();
        frag[20] = 0x20; // more fragments
        assert_eq!(quick_flow_hash(LinkType::Ethernet, &frag), None);
        let mut icmp = udp.clone();
        icmp[23] = 1;
        assert_eq!(quick_flow_hash(LinkType::Ethernet, &icmp), None);
        assert_eq!(quick_flow_hash(LinkType::Ethernet, &udp[..40]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Whatever the bytes, a quick hash is only given for a frame that decodes, is not
        /// a fragment, and hashes to the same value once decoded.
        #[test]
        fn quick_hash_never_disagrees_with_decode(
            tcp: bool,
            sp: u16,
            dp in prop_oneof![Just(53u16), Just(67), any::<u16>()],
            payload in proptest::collection::vec(any::<u8>(), 0..24),
            edits in proptest::collection::vec((14usize..60, any::<u8>()), 0..4),
            cut in 0usize..80,
        ) {
            let mut f = frame(if tcp { 6 } else { 17 }, sp, dp, &payload);
            for (at, b) in edits {
                if let Some(x) = f.get_mut(at) {
                    *x = b;
                }
            }
            f.truncate(f.len().saturating_sub(cut % 8 * (cut / 8 % 2)));
            if let Some(h) = quick_flow_hash(LinkType::Ethernet, &f) {
                let p = crate::packet::decode(LinkType::Ethernet, &f);
                prop_assert!(p.is_ok(), "{:?}", p);
                let p = p.expect("checked");
                prop_assert!(p.fragment.is_none());
                prop_assert_eq!(h, flow_hash(&p));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn v4_hash_is_the_general_hash(a: u32, ap: u16, b: u32, bp: u16, proto: u8) {
            let (x, y) = (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)));
            prop_assert_eq!(flow_hash_v4(a, ap, b, bp, proto), flow_hash_parts(x, ap, y, bp, proto));
        }

        #[test]
        fn symmetric(a in addr(), ap: u16, b in addr(), bp: u16, proto: u8, n in 1u64..64) {
            let x = flow_hash_parts(a, ap, b, bp, proto);
            let y = flow_hash_parts(b, bp, a, ap, proto);
            prop_assert_eq!(x, y);
            prop_assert_eq!(x % n, y % n);
        }
    }
}
