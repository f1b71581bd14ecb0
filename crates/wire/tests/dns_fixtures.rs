//! Parses the DNS payloads of pktvisor's UDP fixture captures and checks them against the
//! values pktvisor's own tests (and tshark) report. The pcap reading here is a deliberately
//! tiny, test-only walker (classic pcap, Ethernet/VLAN, IPv4/IPv6, UDP; fragments skipped); it
//! is not the packet decoder wirelens uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use wire::dns::{self, NameBuf, PublicSuffixList, aggregate_qname};

/// `/work/shared/fixtures/pktvisor`, or `None` (skip) when the shared tree is absent outside CI.
fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/pktvisor");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("fixture directory {} is missing", dir.display());
    }
    eprintln!("note: {} not found, skipping fixture test", dir.display());
    None
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// UDP payloads whose source or destination port is 53, in capture order.
fn dns_udp_payloads(pcap: &[u8]) -> Vec<Vec<u8>> {
    let magic: [u8; 4] = pcap[..4].try_into().expect("magic");
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        other => panic!("not a classic pcap file: {other:02x?}"),
    };
    let u32_at = |at: usize| -> u32 {
        let b: [u8; 4] = pcap[at..at + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "fixtures are Ethernet captures");
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= pcap.len() {
        let caplen = u32_at(pos + 8) as usize;
        let frame = &pcap[pos + 16..pos + 16 + caplen];
        pos += 16 + caplen;
        if let Some(payload) = udp53_payload(frame) {
            out.push(payload.to_vec());
        }
    }
    out
}

fn udp53_payload(frame: &[u8]) -> Option<&[u8]> {
    let mut ethertype = be16(frame, 12)?;
    let mut l3 = 14;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(frame, l3 + 2)?;
        l3 += 4;
    }
    let ip = frame.get(l3..)?;
    let (proto, l4) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let frag = be16(ip, 6)?;
            if frag & 0x3fff != 0 {
                return None; // fragment
            }
            let total = usize::from(be16(ip, 2)?);
            (*ip.get(9)?, ip.get(ihl..total)?)
        }
        0x86dd => {
            let payload_len = usize::from(be16(ip, 4)?);
            let mut next = *ip.get(6)?;
            let mut at = 40;
            let end = 40 + payload_len;
            // Hop-by-hop, routing and destination options; fragments are skipped.
            while matches!(next, 0 | 43 | 60) {
                next = *ip.get(at)?;
                at += (usize::from(*ip.get(at + 1)?) + 1) * 8;
            }
            if next == 44 {
                return None;
            }
            (next, ip.get(at..end)?)
        }
        _ => return None,
    };
    if proto != 17 {
        return None;
    }
    let (sport, dport) = (be16(l4, 0)?, be16(l4, 2)?);
    if sport != 53 && dport != 53 {
        return None;
    }
    let udp_len = usize::from(be16(l4, 4)?);
    l4.get(8..udp_len)
}

fn load(name: &str) -> Option<Vec<Vec<u8>>> {
    let dir = fixtures_dir()?;
    let bytes = std::fs::read(dir.join(name)).expect("fixture readable");
    Some(dns_udp_payloads(&bytes))
}

fn qname(m: &dns::DnsMessage<'_>) -> String {
    let mut buf = NameBuf::new();
    m.question()
        .expect("question")
        .name
        .write_lower(&mut buf)
        .expect("valid name");
    buf.as_str().to_string()
}

#[test]
fn mixed_rcode_counts_names_and_types() {
    let Some(payloads) = load("dns_udp_mixed_rcode.pcap") else {
        return;
    };
    assert_eq!(payloads.len(), 24);
    let mut queries = 0;
    let mut rcodes: BTreeMap<&str, u32> = BTreeMap::new();
    let mut names = BTreeSet::new();
    let mut qtypes = BTreeSet::new();
    let mut nodata = 0;
    let mut nxdomain_names = Vec::new();
    for p in &payloads {
        let m = dns::parse(p).expect("parses");
        assert!(m.faults().is_empty(), "faults {:?}", m.faults());
        let name = qname(&m);
        qtypes.insert(m.question().expect("question").qtype);
        if m.is_response() {
            let rc = dns::rcode_name(u16::from(m.rcode())).expect("known rcode");
            *rcodes.entry(rc).or_default() += 1;
            if m.rcode() == 0 && m.ancount() == 0 {
                nodata += 1;
            }
            if m.rcode() == 3 {
                nxdomain_names.push(name.clone());
            }
        } else {
            queries += 1;
        }
        names.insert(name);
    }
    assert_eq!(queries, 12);
    assert_eq!(payloads.len() - queries, 12);
    assert_eq!(
        rcodes,
        BTreeMap::from([("NOERROR", 10), ("NXDOMAIN", 1), ("REFUSED", 1)])
    );
    assert_eq!(nodata, 4);
    assert_eq!(nxdomain_names, ["nonexistent.google.com"]);
    let expected: BTreeSet<String> = [
        "google.com",
        "play.google.com",
        "nonexistent.google.com",
        "refused.com",
        "sirius.mwbsys.com",
        "dns1.p01.nsone.net",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, expected);
    assert_eq!(qtypes, BTreeSet::from([1, 28, 65]));
    let named: BTreeSet<&str> = qtypes.iter().filter_map(|&t| dns::qtype_name(t)).collect();
    assert_eq!(named, BTreeSet::from(["A", "AAAA", "HTTPS"]));

    // public_suffix_list: true → sirius.mwbsys.com aggregates to .mwbsys.com / itself.
    let psl = PublicSuffixList::builtin();
    let name = b"sirius.mwbsys.com";
    let (q2, q3) = aggregate_qname(name, psl.suffix_len(name));
    assert_eq!(q2, b".mwbsys.com");
    assert_eq!(q3, Some(&name[..]));
    let (q2, q3) = aggregate_qname(b"play.google.com", 0);
    assert_eq!(
        (q2, q3),
        (&b".google.com"[..], Some(&b"play.google.com"[..]))
    );
}

#[test]
fn dnssec_responses_with_rrsig_answers() {
    let Some(payloads) = load("dnssec.pcap") else {
        return;
    };
    assert_eq!(payloads.len(), 14);
    let mut signed: BTreeMap<&str, u32> = BTreeMap::new();
    let mut signed_names = BTreeSet::new();
    let mut replies = 0;
    for p in &payloads {
        let m = dns::parse(p).expect("parses");
        assert!(m.faults().is_empty(), "faults {:?}", m.faults());
        let edns = m.edns().expect("every message carries OPT");
        assert!(edns.dnssec_ok);
        if !m.is_response() {
            assert!(!m.has_rrsig_answer());
            continue;
        }
        replies += 1;
        assert!(m.ad(), "replies are authenticated");
        if m.has_rrsig_answer() {
            let q = m.question().expect("question");
            *signed
                .entry(dns::qtype_name(q.qtype).expect("known"))
                .or_default() += 1;
            signed_names.insert(qname(&m));
        }
    }
    assert_eq!(replies, 7);
    // pktvisor only_dnssec_response: 6 replies, DNSKEY 3, DS 2, A 1.
    assert_eq!(signed, BTreeMap::from([("DNSKEY", 3), ("DS", 2), ("A", 1)]));
    let expected: BTreeSet<String> = ["", "org", "ietf.org", "www.ietf.org"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(signed_names, expected);
}

#[test]
fn ecs_queries_carry_the_client_subnet() {
    let Some(payloads) = load("ecs.pcap") else {
        return;
    };
    // 32 unfragmented UDP DNS messages, as pktvisor counts (`udp` 32); the 4 IPv4 and 3 IPv6
    // fragmented DNSKEY replies that tshark reassembles are skipped.
    assert_eq!(payloads.len(), 32);
    let mut ecs_queries = Vec::new();
    let mut ecs_replies = 0;
    for p in &payloads {
        let m = dns::parse(p).expect("parses");
        assert!(!m.faults().is_truncated(), "faults {:?}", m.faults());
        let Some(ecs) = m.edns().and_then(|e| e.ecs) else {
            continue;
        };
        if m.is_response() {
            ecs_replies += 1;
        } else {
            ecs_queries.push((qname(&m), ecs));
        }
    }
    assert_eq!(ecs_queries.len(), 5);
    // Replies echo the option too; three of the five echoing replies are IPv6-fragmented.
    assert_eq!(ecs_replies, 2);
    for (name, ecs) in &ecs_queries {
        assert!(name.ends_with("weberlab.de"), "{name}");
        assert_eq!(ecs.family, 2);
        assert_eq!(ecs.source_prefix, 56);
        assert_eq!(ecs.addr.to_string(), "2001:470:1f0b:1600::");
    }
}
