//! Symmetric, deterministic flow hash: both directions of a conversation hash alike.
//!
//! Used to shard packets over workers (`flow_hash(p) % n`) so one worker sees a whole
//! connection. The key is fixed, so offline runs shard identically every time; this is not a
//! DoS-resistant hash for attacker-chosen table keys.

use std::net::IpAddr;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn symmetric(a in addr(), ap: u16, b in addr(), bp: u16, proto: u8, n in 1u64..64) {
            let x = flow_hash_parts(a, ap, b, bp, proto);
            let y = flow_hash_parts(b, bp, a, ap, proto);
            prop_assert_eq!(x, y);
            prop_assert_eq!(x % n, y % n);
        }
    }
}
