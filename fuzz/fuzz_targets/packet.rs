//! Fuzz target: the header walker for every link type over arbitrary frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::capture::LinkType;
use wire::packet::decode;

const LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Other(147),
];

fuzz_target!(|data: &[u8]| {
    for link in LINKS {
        if let Ok(p) = decode(link, data) {
            assert!(p.ip_header.len() + p.ip_payload.len() <= data.len());
            assert!(p.payload.len() <= p.ip_payload.len());
            // The shard hash is symmetric: the reply direction lands on the same worker
            // (DHCP, whose two directions differ in addresses, hashes to one fixed value).
            let reply = wire::packet::Packet {
                src: p.dst,
                dst: p.src,
                src_port: p.dst_port,
                dst_port: p.src_port,
                ..p
            };
            assert_eq!(wire::hash::flow_hash(&p), wire::hash::flow_hash(&reply));
        }
    }
});
