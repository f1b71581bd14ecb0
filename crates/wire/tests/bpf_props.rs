//! Property tests of the filter compiler and interpreter: no panics on any text or bytes,
//! and boolean operators behave as booleans on frames long enough for every load.

use proptest::prelude::*;
use wire::bpf::Program;
use wire::capture::LinkType;

const LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Other(147),
];

/// Primitives that compile on Ethernet (so combinations of them do too). `vlan` moves the
/// offsets of everything after it, so it is left out where expressions are recombined.
fn primitive(vlan: bool) -> impl Strategy<Value = String> {
    let vlans = if vlan {
        vec!["vlan", "vlan 1", "vlan 4095"]
    } else {
        vec!["ip"]
    };
    prop_oneof![
        prop::sample::select(vec![
            "ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vlans).prop_map(str::to_string),
        (
            any::<u16>(),
            prop::sample::select(vec!["", "src ", "dst ", "tcp ", "udp dst "])
        )
            .prop_map(|(p, q)| format!("{q}port {p}")),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("portrange {a}-{b}")),
        any::<[u8; 4]>().prop_map(|a| format!("host {}.{}.{}.{}", a[0], a[1], a[2], a[3])),
        (any::<u8>(), 0u32..=8).prop_map(|(a, l)| {
            let a = u32::from(a) & (0xff00 >> l) & 0xff;
            format!("src net {a}.0.0.0/{l}")
        }),
        any::<[u16; 8]>().prop_map(|w| format!(
            "ip6 dst host {:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
            w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
        )),
        Just("net fe80::/10".to_string()),
        (any::<u8>()).prop_map(|p| format!("proto {p}")),
        (any::<u8>()).prop_map(|p| format!("ip6 proto {p}")),
        (0u32..2000).prop_map(|n| format!("less {n}")),
        (0u32..2000).prop_map(|n| format!("greater {n}")),
    ]
}

fn expr_with(vlan: bool) -> impl Strategy<Value = String> {
    primitive(vlan).prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn expr() -> impl Strategy<Value = String> {
    expr_with(true)
}

fn plain_expr() -> impl Strategy<Value = String> {
    expr_with(false)
}

/// Text made of filter words and punctuation, to reach deeper into the parser than
/// random characters do.
fn wordy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "host",
            "net",
            "port",
            "portrange",
            "proto",
            "src",
            "dst",
            "and",
            "or",
            "not",
            "!",
            "&&",
            "||",
            "(",
            ")",
            "ip",
            "ip6",
            "tcp",
            "udp",
            "vlan",
            "less",
            "greater",
            "mask",
            "1.2.3.4",
            "10",
            "10/8",
            "::1",
            "fe80::/10",
            "53",
            "1-2",
            "65536",
            "0x35",
            "arp",
            "255.0.0.0",
            "\\tcp",
            "foo",
            "",
            "-",
            "/",
            ":",
        ]),
        0..12,
    )
    .prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compile_never_panics_on_any_text(s in any::<String>()) {
        for link in LINKS {
            let _ = Program::compile(&s, link);
        }
    }

    #[test]
    fn compile_never_panics_on_filter_words(s in wordy()) {
        for link in LINKS {
            if let Ok(p) = Program::compile(&s, link) {
                prop_assert!(!p.insns().is_empty());
            }
        }
    }

    #[test]
    fn matches_never_panics_on_any_frame(
        e in expr(),
        frame in prop::collection::vec(any::<u8>(), 0..128),
        wire_len in any::<u32>(),
    ) {
        let p = Program::compile(&e, LinkType::Ethernet);
        prop_assert!(p.is_ok(), "{e}: {:?}", p.err());
        for link in LINKS {
            if let Ok(p) = Program::compile(&e, link) {
                let _ = p.matches(&frame, wire_len);
            }
        }
    }

    #[test]
    fn operators_are_boolean_on_long_frames(
        a in plain_expr(),
        b in plain_expr(),
        head in prop::collection::vec(any::<u8>(), 0..80),
        fill in any::<u8>(),
    ) {
        // 256 bytes cover every offset the compiler emits (link + IPv6 + 60-byte IPv4
        // header + ports), so no load falls off the end and rejects the frame.
        let mut frame = head;
        frame.resize(256, fill);
        let len = frame.len() as u32;
        let link = LinkType::Ethernet;
        let m = |e: &str| Program::compile(e, link).map(|p| p.matches(&frame, len));
        let (ma, mb) = (m(&a).unwrap(), m(&b).unwrap());
        prop_assert_eq!(m(&format!("({a}) and ({b})")).unwrap(), ma && mb);
        prop_assert_eq!(m(&format!("({a}) or ({b})")).unwrap(), ma || mb);
        prop_assert_eq!(m(&format!("not ({a})")).unwrap(), !ma);
    }

    #[test]
    fn and_is_exact_even_on_short_frames(
        a in plain_expr(),
        b in plain_expr(),
        frame in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // A failed load rejects the whole frame, which for `and` is the same as either
        // side being false.
        let len = frame.len() as u32;
        let m = |e: &str| Program::compile(e, LinkType::Ethernet).unwrap().matches(&frame, len);
        prop_assert_eq!(m(&format!("({a}) and ({b})")), m(&a) && m(&b));
    }
}
