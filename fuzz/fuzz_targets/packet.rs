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
            let h = wire::hash::flow_hash(&p);
            let back =
                wire::hash::flow_hash_parts(p.dst, p.dst_port, p.src, p.src_port, p.ip_proto);
            assert_eq!(h, back);
        }
    }
});
