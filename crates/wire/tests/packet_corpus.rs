//! Header-walker checks on real captures of each encapsulation: MPLS (with and without a
//! pseudowire control word), 802.1ad, PPPoE (full and compressed PPP protocol), Linux SLL2,
//! BSD NULL in pcapng, and fragments.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use inputs::file::CaptureFile;
use wire::packet::{L3, L4, decode};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "shared corpus missing at {}",
        dir.display()
    );
    eprintln!("note: {} not found, skipping", dir.display());
    None
}

/// One decoded frame summarised as comparable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    l3: L3,
    l4: L4,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    vlan: u16,
}

fn frames(rel: &str) -> Vec<Result<Seen, &'static str>> {
    let dir = corpus().unwrap_or_default();
    let mut f = CaptureFile::open(&dir.join(rel)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = f.next_record().unwrap() {
        out.push(
            decode(r.link, r.data)
                .map(|p| Seen {
                    l3: p.l3,
                    l4: p.l4,
                    src: p.src,
                    sport: p.src_port,
                    dst: p.dst,
                    dport: p.dst_port,
                    vlan: p.vlan,
                })
                .map_err(|e| e.reason()),
        );
    }
    out
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn mpls_samples() {
    if corpus().is_none() {
        return;
    }
    let v4 = Seen {
        l3: L3::Ipv4,
        l4: L4::Tcp,
        src: ip("10.31.0.1"),
        sport: 11001,
        dst: ip("10.34.0.1"),
        dport: 23,
        vlan: 0,
    };
    for rel in [
        "akvorado/testdata/mpls-ipv4.pcap",
        "akvorado/testdata/mpls-explicit-null-ipv4.pcap",
        "akvorado/testdata/mpls-eompls-cw.pcap",
    ] {
        assert_eq!(frames(rel), vec![Ok(v4)], "{rel}");
    }
    let got = frames("akvorado/testdata/mpls-ipv6.pcap");
    assert_eq!(
        got,
        vec![Ok(Seen {
            l3: L3::Ipv6,
            l4: L4::Tcp,
            src: ip("2001:db8::1"),
            sport: 11001,
            dst: ip("2001:db8::2"),
            dport: 80,
            vlan: 0,
        })]
    );
    // A payload that is neither IP nor a control word stays an MPLS frame, not an error.
    let got = frames("akvorado/testdata/mpls-invalid-nibble.pcap");
    assert!(matches!(
        got.as_slice(),
        [Ok(Seen {
            l3: L3::Other(0x8847),
            ..
        })]
    ));
    let basic = frames("arkime/mpls-basic.pcap");
    assert_eq!(basic.len(), 58);
    // The rest are Ethernet loopback (0x9000) and 802.3 frames, which are not errors.
    let ipv4 = basic
        .iter()
        .filter(|s| matches!(s, Ok(Seen { l3: L3::Ipv4, .. })))
        .count();
    assert_eq!(ipv4, 52);
    assert!(basic.iter().all(Result::is_ok));
}

#[test]
fn vlan_pppoe_and_cooked_samples() {
    if corpus().is_none() {
        return;
    }
    let dot1ad = frames("arkime/dot1ad.pcap");
    let vlans: Vec<u16> = dot1ad.iter().flatten().map(|s| s.vlan).collect();
    assert_eq!(vlans, vec![1525, 1535]);
    assert!(dot1ad.iter().flatten().all(|s| s.l4 == L4::Icmp));

    for rel in [
        "arkime/pppoe.pcap",
        "suricata-verify/bug-4810/pppoe-session-http.pcap",
    ] {
        let got = frames(rel);
        let tcp = got
            .iter()
            .filter(|s| matches!(s, Ok(Seen { l4: L4::Tcp, .. })))
            .count();
        assert!(tcp * 10 >= got.len() * 9, "{rel}: {tcp}/{}", got.len());
    }

    let sll2 = frames("dnscap/sll2.pcap");
    assert_eq!(
        sll2.iter()
            .flatten()
            .map(|s| (s.sport, s.dport))
            .collect::<Vec<_>>(),
        vec![(37273, 53), (53, 37273)]
    );
    let sll2 = frames("suricata-verify/decode-sll2-01/input.pcap");
    assert_eq!(sll2.len(), 5);
    assert!(
        sll2.iter()
            .all(|s| matches!(s, Ok(Seen { l4: L4::Tcp, .. })))
    );

    let null = frames("ndpi/pcap/openwire.pcapng");
    assert_eq!(null.len(), 43);
    assert!(
        null.iter()
            .all(|s| matches!(s, Ok(Seen { l3: L3::Ipv6, .. })))
    );
}

#[test]
fn deep_encapsulation_is_reported() {
    if corpus().is_none() {
        return;
    }
    assert_eq!(
        frames("suricata-verify/decode-too-many-layers/input.pcap"),
        vec![Err("too many encapsulations")]
    );
}
