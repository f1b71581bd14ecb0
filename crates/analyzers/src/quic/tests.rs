//! Tests of the `quic` handler: the RFC 9001 client Initial read once whatever its
//! retransmissions, server Initials not counted as ClientHellos, non-QUIC datagrams ignored and
//! the table bounded.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

fn initial() -> Vec<u8> {
    let s = include_str!("../../../wire/tests/data/rfc9001-a2-client-initial.hex").trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn handler(max_pending: Option<u64>) -> Quic {
    let mut cfg = ConfigMap::new();
    if let Some(n) = max_pending {
        cfg.set("max_pending", crate::config::ConfigValue::Int(n));
    }
    Quic::new(&cfg, WindowConfig::default(), &[], &[]).expect("builds")
}

#[test]
fn client_initial_is_read_once() {
    let mut q = handler(None);
    let p = initial();
    q.on_datagram(C, 50_000, &p, 1);
    q.on_datagram(C, 50_000, &p, 2);
    let b = q.window.live().clone();
    assert_eq!((b.initials, b.initials_opened, b.client_hellos), (2, 1, 1));
    assert_eq!((b.malformed, b.client_hellos_without_sni), (0, 0));
    let e = format!("{:?}", q.export(&b));
    assert!(e.contains("example.com"), "{e}");
    assert!(e.contains("q13d"), "QUIC JA4 starts with q: {e}");
}

#[test]
fn non_quic_and_undecryptable_datagrams() {
    let mut q = handler(None);
    q.on_datagram(C, 53, b"\x12\x34\x01\x00\x00\x01", 1);
    let mut p = initial();
    p[700] ^= 1;
    q.on_datagram(C, 50_000, &p, 1);
    let b = q.window.live();
    assert_eq!(
        (b.initials, b.initials_not_opened, b.client_hellos),
        (1, 1, 0)
    );
    assert_eq!(q.tracked(), 0, "a packet that does not open takes no slot");
}

#[test]
fn the_table_is_bounded() {
    let mut q = handler(Some(2));
    let p = initial();
    for port in 0..5u16 {
        q.on_datagram(C, 40_000 + port, &p, u64::from(port));
    }
    assert_eq!(q.tracked(), 2);
    assert_eq!(q.window.live().client_hellos, 5);
    assert_eq!(
        q.window.live().evictions,
        0,
        "done entries are replaced without loss"
    );
}
