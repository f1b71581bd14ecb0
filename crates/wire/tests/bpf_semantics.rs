//! Filter semantics on hand-built frames: the libpcap behaviours that captures rarely show
//! (IPv4 options and fragments, VLAN offset shifts, IPv6 fragment headers, truncation).

use wire::bpf::{Insn, MATCH_RET, Program, op};
use wire::capture::LinkType;

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xaa; 12];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header (with `opt_words` 4-byte option words) followed by a UDP header.
fn ipv4_udp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    frag: u16,
    opt_words: u8,
) -> Vec<u8> {
    let mut p = vec![0x45 + opt_words, 0, 0, 0, 0, 0];
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend(std::iter::repeat_n(1u8, usize::from(opt_words) * 4));
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 8, 0, 0]);
    p
}

/// IPv6 header with next header `nh` followed by `rest`.
fn ipv6(nh: u8, src_last: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, nh, 64];
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[15] = src_last;
    p.extend_from_slice(&a);
    a[15] = 0x99;
    p.extend_from_slice(&a);
    p.extend_from_slice(rest);
    p
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

fn keeps(expr: &str, link: LinkType, frame: &[u8]) -> bool {
    let p = Program::compile(expr, link).unwrap_or_else(|e| panic!("{expr}: {e}"));
    p.matches(frame, frame.len() as u32)
}

fn on_eth(expr: &str, frame: &[u8]) -> bool {
    keeps(expr, LinkType::Ethernet, frame)
}

#[test]
fn same_program_as_libpcap_for_ip() {
    // `tcpdump -y EN10MB -d ip`: ldh [12]; jeq #0x800 jt 2 jf 3; ret #262144; ret #0
    let p = Program::compile("ip", LinkType::Ethernet).unwrap();
    assert_eq!(
        p.insns(),
        &[
            Insn::stmt(op::LD | op::H | op::ABS, 12),
            Insn::jump(op::JMP | op::JEQ | op::K, 0x800, 0, 1),
            Insn::stmt(op::RET | op::K, MATCH_RET),
            Insn::stmt(op::RET | op::K, 0),
        ]
    );
    assert_eq!(
        Program::compile("", LinkType::Raw).unwrap().insns().len(),
        1
    );
}

#[test]
fn ports_follow_ipv4_options() {
    let f = eth(
        0x0800,
        &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, 0, 2),
    );
    assert!(on_eth("udp port 53", &f));
    assert!(on_eth("udp dst port 53 and src port 1234", &f));
    assert!(!on_eth("tcp port 53", &f));
    assert!(!on_eth("udp src port 53", &f));
    assert!(on_eth("portrange 50-60", &f));
    assert!(on_eth("portrange 60-50", &f));
    assert!(!on_eth("portrange 54-1000", &f));
}

#[test]
fn port_tests_only_on_first_fragments() {
    let later = eth(
        0x0800,
        &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 53, 53, 0x0004, 0),
    );
    assert!(on_eth("udp", &later));
    assert!(!on_eth("port 53", &later));
    assert!(on_eth("not port 53", &later));
    // More-fragments set but offset 0: the first fragment carries the ports.
    let first = eth(
        0x0800,
        &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 53, 53, 0x2000, 0),
    );
    assert!(on_eth("port 53", &first));
}

#[test]
fn hosts_nets_and_arp() {
    let f = eth(
        0x0800,
        &ipv4_udp([192, 168, 1, 7], [10, 1, 2, 3], 1, 2, 0, 0),
    );
    assert!(on_eth("host 192.168.1.7", &f));
    assert!(on_eth("src host 192.168.1.7 and dst net 10.0.0.0/8", &f));
    assert!(!on_eth("dst host 192.168.1.7", &f));
    assert!(on_eth("src and dst net 0.0.0.0/0", &f));
    assert!(!on_eth("src and dst net 192.168", &f));
    assert!(on_eth("net 10.1 or 172.16", &f));
    assert!(on_eth("net 10.1.0.0 mask 255.255.0.0", &f));
    // ARP request: sender 10.0.0.1 at ARP offset 14, target 10.0.0.9 at 24.
    let mut arp = vec![
        0, 1, 8, 0, 6, 4, 0, 1, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 10, 0, 0, 1,
    ];
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[10, 0, 0, 9]);
    let f = eth(0x0806, &arp);
    assert!(on_eth("host 10.0.0.1", &f));
    assert!(on_eth("dst 10.0.0.9", &f));
    assert!(on_eth("arp src host 10.0.0.1", &f));
    assert!(!on_eth("ip host 10.0.0.1", &f));
    assert!(on_eth("arp", &f));
    assert!(!on_eth("rarp", &f));
}

#[test]
fn vlan_shifts_later_offsets() {
    let inner = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, 0, 0);
    let mut tagged = vec![0x20, 0x0b]; // priority 1, id 11
    tagged.extend_from_slice(&0x0800u16.to_be_bytes());
    tagged.extend_from_slice(&inner);
    let f = eth(0x8100, &tagged);
    assert!(on_eth("vlan", &f));
    assert!(on_eth("vlan 11 and udp port 53", &f));
    assert!(!on_eth("vlan 12", &f));
    // Without `vlan` first, offsets are those of an untagged frame, as in libpcap.
    assert!(!on_eth("udp", &f));
    assert!(!on_eth("udp and vlan", &f));
    assert!(on_eth("vlan and host 10.0.0.2", &f));
    // QinQ: two tags, two `vlan` keywords.
    let mut outer = vec![0x00, 0x05];
    outer.extend_from_slice(&0x8100u16.to_be_bytes());
    outer.extend_from_slice(&tagged);
    let f = eth(0x88a8, &outer);
    assert!(on_eth("vlan 5 and vlan 11 and udp", &f));
    assert!(!on_eth("vlan 5 and udp", &f));
}

#[test]
fn ipv6_protocols_and_ports() {
    let f = eth(0x86dd, &ipv6(17, 1, &udp(5353, 53)));
    assert!(on_eth("ip6 and udp port 53", &f));
    assert!(on_eth("host 2001::1 and dst host 2001::99", &f));
    assert!(on_eth("src net 2001::/16", &f));
    assert!(!on_eth("src net 2002::/16", &f));
    assert!(!on_eth("ip", &f));
    // Behind a fragment header: `udp` sees it, port tests do not (libpcap only reads the
    // fixed header's next header).
    let mut frag = vec![17, 0, 0, 0, 0, 0, 0, 1];
    frag.extend_from_slice(&udp(5353, 53));
    let f = eth(0x86dd, &ipv6(44, 1, &frag));
    assert!(on_eth("udp", &f));
    assert!(on_eth("ip6 proto 17", &f));
    assert!(!on_eth("udp port 53", &f));
}

#[test]
fn truncated_frames_are_rejected_even_under_not() {
    let full = eth(0x0800, &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 0, 0));
    let cut = &full[..30];
    assert!(on_eth("not port 53", &full));
    // The port load falls off the captured bytes: the kernel and libpcap reject.
    assert!(!keeps("not port 53", LinkType::Ethernet, cut));
    assert!(keeps("ip", LinkType::Ethernet, cut));
}

#[test]
fn lengths_use_the_wire_length() {
    let p = Program::compile("greater 1000", LinkType::Ethernet).unwrap();
    assert!(p.matches(&[0; 10], 1000));
    assert!(!p.matches(&[0; 10], 999));
    let p = Program::compile("less 100", LinkType::Ethernet).unwrap();
    assert!(p.matches(&[0; 10], 100));
    assert!(!p.matches(&[0; 200], 101));
}

#[test]
fn other_link_layers() {
    let v4 = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 53, 0, 0);
    let v6 = ipv6(17, 1, &udp(1, 53));
    for (link, frame, ip6) in [
        (LinkType::Raw, v4.clone(), false),
        (LinkType::Raw, v6.clone(), true),
        (LinkType::Ipv4, v4.clone(), false),
        (LinkType::Ipv6, v6.clone(), true),
    ] {
        assert_eq!(keeps("ip6", link, &frame), ip6, "{link:?}");
        assert_eq!(keeps("ip", link, &frame), !ip6, "{link:?}");
        assert!(keeps("udp port 53", link, &frame), "{link:?}");
    }
    // SLL: protocol at 14, network header at 16.
    let mut sll = vec![0; 14];
    sll.extend_from_slice(&0x0800u16.to_be_bytes());
    sll.extend_from_slice(&v4);
    assert!(keeps(
        "udp port 53 and host 10.0.0.1",
        LinkType::LinuxSll,
        &sll
    ));
    // SLL2: protocol at 0, network header at 20.
    let mut sll2 = 0x86ddu16.to_be_bytes().to_vec();
    sll2.extend_from_slice(&[0; 18]);
    sll2.extend_from_slice(&v6);
    assert!(keeps("ip6 and dst port 53", LinkType::LinuxSll2, &sll2));
    assert!(!keeps("ip", LinkType::LinuxSll2, &sll2));
    // NULL in either byte order, LOOP in network order; AF_INET6 as on the BSDs.
    for (link, af) in [
        (LinkType::Null, 2u32.to_le_bytes()),
        (LinkType::Null, 2u32.to_be_bytes()),
        (LinkType::Loop, 2u32.to_be_bytes()),
    ] {
        let mut f = af.to_vec();
        f.extend_from_slice(&v4);
        assert!(keeps("ip and port 53", link, &f), "{link:?} {af:?}");
    }
    let mut f = 30u32.to_le_bytes().to_vec();
    f.extend_from_slice(&v6);
    assert!(keeps("ip6 and udp", LinkType::Null, &f));
    assert!(Program::compile("vlan", LinkType::Raw).is_err());
    assert!(Program::compile("ip", LinkType::Other(147)).is_err());
}
