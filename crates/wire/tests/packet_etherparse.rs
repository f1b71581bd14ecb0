//! Differential tests of `wire::packet::decode` against the `etherparse` crate.
//!
//! On frames both decoders accept, addresses, ports, TCP fields and payload slices must be
//! identical. Frames come from the shared captures (when present) and from a builder.

use std::path::Path;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use inputs::file::CaptureFile;
use proptest::prelude::*;
use wire::capture::LinkType;
use wire::packet::{L3, L4, Packet, decode};

/// Compares one frame: `Ok(true)` when both decoded an IP packet and agree, `Ok(false)` when
/// there is nothing to compare, `Err(what)` on disagreement.
fn compare(link: LinkType, frame: &[u8]) -> Result<bool, String> {
    let theirs = match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame),
        LinkType::LinuxSll => SlicedPacket::from_linux_sll(frame),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => SlicedPacket::from_ip(frame),
        _ => return Ok(false),
    };
    let Ok(theirs) = theirs else { return Ok(false) };
    let Some(net) = &theirs.net else {
        return Ok(false);
    };
    let ours = match decode(link, frame) {
        Ok(p) => p,
        // Deliberate difference: evasion captures chain hundreds of IPv6 extension headers;
        // wirelens bounds the walk and reports them, etherparse stops early and accepts.
        Err(wire::packet::DecodeError::TooManyIpv6Ext) => return Ok(false),
        Err(e) => return Err(format!("we fail ({}), etherparse decodes", e.reason())),
    };
    let (src, dst, ip) = match net {
        NetSlice::Ipv4(v4) => {
            check(ours.l3 == L3::Ipv4, "l3")?;
            (
                std::net::IpAddr::V4(v4.header().source_addr()),
                std::net::IpAddr::V4(v4.header().destination_addr()),
                v4.payload(),
            )
        }
        NetSlice::Ipv6(v6) => {
            check(ours.l3 == L3::Ipv6, "l3")?;
            (
                std::net::IpAddr::V6(v6.header().source_addr()),
                std::net::IpAddr::V6(v6.header().destination_addr()),
                v6.payload(),
            )
        }
        NetSlice::Arp(_) => {
            check(ours.l3 == L3::Other(0x0806), "arp")?;
            return Ok(false);
        }
    };
    check(ours.src == src && ours.dst == dst, "addresses")?;
    check(ours.ip_proto == ip.ip_number.0, "ip protocol")?;
    check(ours.ip_payload == ip.payload, "ip payload")?;
    check(ours.fragment.is_some() == ip.fragmented, "fragmented")?;
    if ip.fragmented {
        return Ok(true);
    }
    match &theirs.transport {
        Some(TransportSlice::Udp(u)) => {
            check(ours.l4 == L4::Udp, "l4 udp")?;
            check(
                (ours.src_port, ours.dst_port) == (u.source_port(), u.destination_port()),
                "udp ports",
            )?;
            check(ours.payload == u.payload(), "udp payload")?;
        }
        Some(TransportSlice::Tcp(t)) => {
            check(ours.l4 == L4::Tcp, "l4 tcp")?;
            check(
                (ours.src_port, ours.dst_port) == (t.source_port(), t.destination_port()),
                "tcp ports",
            )?;
            check(
                (ours.tcp_seq, ours.tcp_ack, ours.tcp_window)
                    == (
                        t.sequence_number(),
                        t.acknowledgment_number(),
                        t.window_size(),
                    ),
                "tcp fields",
            )?;
            check(ours.payload == t.payload(), "tcp payload")?;
        }
        Some(TransportSlice::Icmpv4(_) | TransportSlice::Icmpv6(_)) => {
            check(ours.l4 == L4::Icmp, "l4 icmp")?;
        }
        _ => {}
    }
    Ok(true)
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what} differ"))
    }
}

fn compare_file(path: &Path, agreed: &mut u64, failures: &mut Vec<String>) {
    let Ok(mut f) = CaptureFile::open(path) else {
        return;
    };
    let mut n = 0;
    while let Ok(Some(rec)) = f.next_record() {
        n += 1;
        // Bounded per file so the test stays fast in debug builds.
        if n > 3000 {
            break;
        }
        match compare(rec.link, rec.data) {
            Ok(true) => *agreed += 1,
            Ok(false) => {}
            Err(e) => failures.push(format!("{} #{n}: {e}", path.display())),
        }
    }
}

#[test]
fn agrees_with_etherparse_on_shared_captures() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if !shared.is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "shared reference data missing"
        );
        eprintln!("note: shared data not found, skipping");
        return;
    }
    let mut files = Vec::new();
    for dir in [
        "fixtures/pktvisor",
        "corpus/pktvisor",
        "corpus/suricata-verify",
        "corpus/zeek",
        "corpus/arkime",
        "corpus/dnscap",
        "corpus/gopacket",
    ] {
        collect(&shared.join(dir), &mut files);
    }
    files.sort();
    let (mut agreed, mut failures) = (0u64, Vec::new());
    for f in &files {
        compare_file(f, &mut agreed, &mut failures);
    }
    eprintln!(
        "{} files, {agreed} frames agree, {} disagree",
        files.len(),
        failures.len()
    );
    for f in failures.iter().take(40) {
        eprintln!("  {f}");
    }
    assert!(agreed > 20_000, "only {agreed} frames compared");
    assert_eq!(failures, Vec::<String>::new());
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "pcap" || x == "pcapng" || x == "cap")
        {
            out.push(p);
        }
    }
}

fn build(v6: bool, vlan: Option<u16>, tcp: bool, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
    let ip = match (vlan, v6) {
        (Some(id), false) => {
            eth.single_vlan(id.try_into().unwrap())
                .ipv4([10, 1, 2, 3], [192, 168, 0, 1], 64)
        }
        (Some(id), true) => eth.single_vlan(id.try_into().unwrap()).ipv6(
            [0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        ),
        (None, false) => eth.ipv4([10, 1, 2, 3], [192, 168, 0, 1], 64),
        (None, true) => eth.ipv6(
            [0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        ),
    };
    let mut out = Vec::new();
    if tcp {
        let b = ip.tcp(ports.0, ports.1, 77, 4000).ack(99).syn();
        b.write(&mut out, payload).unwrap();
    } else {
        let b = ip.udp(ports.0, ports.1);
        b.write(&mut out, payload).unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn agrees_on_built_frames(
        v6: bool,
        vlan in proptest::option::of(0u16..4095),
        tcp: bool,
        ports: (u16, u16),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        pad in 0usize..20,
    ) {
        let mut frame = build(v6, vlan, tcp, ports, &payload);
        // Trailing Ethernet padding must be cut by both decoders.
        frame.extend(std::iter::repeat_n(0u8, pad));
        prop_assert_eq!(compare(LinkType::Ethernet, &frame), Ok(true));
        let p: Packet<'_> = decode(LinkType::Ethernet, &frame).unwrap();
        prop_assert_eq!(p.payload, &payload[..]);
        prop_assert_eq!(p.vlan, vlan.unwrap_or(0));
        prop_assert_eq!((p.src_port, p.dst_port), ports);
        if tcp {
            prop_assert_eq!((p.tcp_seq, p.tcp_ack, p.tcp_window), (77, 99, 4000));
            prop_assert_eq!(p.tcp_flags & 0x12, 0x12);
        }
    }
}
