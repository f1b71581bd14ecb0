//! Tests of the `quic` handler: the RFC 9001 client Initial read once whatever its
//! retransmissions, server Initials not counted as ClientHellos, non-QUIC datagrams ignored,
//! ClientHellos split across Initials to different connection IDs, out of order, or around a
//! Retry, and the table bounded.

use std::net::{IpAddr, Ipv4Addr};

use wire::quic::seal_initial;

use super::*;

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const S: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

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
    q.on_datagram(C, 50_000, S, 443, &p, 1);
    q.on_datagram(C, 50_000, S, 443, &p, 2);
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
    q.on_datagram(C, 53, S, 443, b"\x12\x34\x01\x00\x00\x01", 1);
    let mut p = initial();
    p[700] ^= 1;
    q.on_datagram(C, 50_000, S, 443, &p, 1);
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
        q.on_datagram(C, 40_000 + port, S, 443, &p, u64::from(port));
    }
    assert_eq!(q.tracked(), 2);
    assert_eq!(q.window.live().client_hellos, 5);
    let b = q.window.live();
    assert_eq!(b.evictions, 0, "done entries are replaced without loss");
    assert_eq!(
        b.connections_evicted, 3,
        "but forgotten within a minute of their Initial"
    );
}

/// The ClientHello of RFC 9001 A.2 (SNI `example.com`, ALPN `alpn`): 245 bytes.
fn client_hello() -> Vec<u8> {
    let p = initial();
    let h = long_header(&p).expect("header");
    let keys = initial_keys(h.version, h.dcid, false).expect("keys");
    let mut out = vec![0; 1500];
    let (_, payload) = decrypt_initial(&p, &h, &keys, &mut out).expect("opens");
    // CRYPTO frame: type 06, offset 00, length 40f1, then the message.
    assert_eq!(payload[..4], [6, 0, 0x40, 0xf1]);
    payload[4..4 + 0xf1].to_vec()
}

/// A CRYPTO frame carrying `data` at `offset` (both below 16384).
fn crypto(offset: usize, data: &[u8]) -> Vec<u8> {
    let mut f = vec![6];
    f.extend_from_slice(&(0x4000 | offset as u16).to_be_bytes());
    f.extend_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// A client Initial to `dcid`, protected with the keys of `key_dcid`, with `frames` padded
/// to 1162 bytes of payload.
fn sealed(dcid: &[u8], key_dcid: &[u8], pn: u32, frames: &[u8]) -> Vec<u8> {
    let keys = initial_keys(VERSION_1, key_dcid, false).expect("keys");
    let mut payload = frames.to_vec();
    payload.resize(1162, 0);
    let mut out = vec![0; 1500];
    let n =
        seal_initial(VERSION_1, &keys, dcid, &[0xc1; 8], pn, &payload, &mut out).expect("seals");
    out.truncate(n);
    out
}

/// A server's Retry naming `scid` (its integrity tag is not checked by an observer).
fn retry(client_scid: &[u8], scid: &[u8]) -> Vec<u8> {
    let mut p = vec![0xf0, 0, 0, 0, 1, client_scid.len() as u8];
    p.extend_from_slice(client_scid);
    p.push(scid.len() as u8);
    p.extend_from_slice(scid);
    p.extend_from_slice(b"token");
    p.extend_from_slice(&[0xaa; 16]);
    p
}

fn sni_of(q: &mut Quic) -> String {
    let b = q.window.live().clone();
    format!("{:?}", q.export(&b))
}

#[test]
fn client_hello_across_initials_to_different_dcids() {
    let ch = client_hello();
    let (odcid, server_cid) = ([0x11; 8], [0x22; 20]);
    let mut q = handler(None);
    q.on_datagram(
        C,
        37_229,
        S,
        443,
        &sealed(&odcid, &odcid, 0, &crypto(0, &ch[..100])),
        1,
    );
    // The server's Initial (not openable with client keys) is not decrypted.
    q.on_datagram(
        S,
        443,
        C,
        37_229,
        &sealed(&[0xc1; 8], &[0x33; 8], 0, &[1]),
        2,
    );
    // The client switched to the server's connection ID, keeping the original keys.
    q.on_datagram(
        C,
        37_229,
        S,
        443,
        &sealed(&server_cid, &odcid, 1, &crypto(100, &ch[100..])),
        3,
    );
    // A later ACK-only Initial to the same DCID is not read again.
    q.on_datagram(C, 37_229, S, 443, &sealed(&server_cid, &odcid, 2, &[1]), 4);
    let b = q.window.live().clone();
    assert_eq!(
        (b.initials, b.initials_opened, b.initials_not_opened),
        (4, 2, 1)
    );
    assert_eq!((b.client_hellos, b.malformed), (1, 0));
    assert!(sni_of(&mut q).contains("example.com"));
    assert_eq!(q.tracked(), 1);

    // From another port the same Initial is another connection, whose keys are not known.
    q.on_datagram(
        C,
        40_000,
        S,
        443,
        &sealed(&server_cid, &odcid, 1, &crypto(100, &ch[100..])),
        5,
    );
    let b = q.window.live();
    assert_eq!((b.initials_not_opened, b.client_hellos), (2, 1));
}

#[test]
fn out_of_order_crypto_within_and_across_initials() {
    let ch = client_hello();
    let dcid = [0x44; 8];
    let mut q = handler(None);
    // Last part first; then, in one packet, overlapping pieces in reverse order.
    q.on_datagram(
        C,
        50_000,
        S,
        443,
        &sealed(&dcid, &dcid, 0, &crypto(200, &ch[200..])),
        1,
    );
    assert_eq!(q.window.live().client_hellos, 0);
    let mut frames = crypto(120, &ch[120..210]);
    frames.extend(crypto(3, &ch[3..130]));
    frames.extend(crypto(0, &ch[..10]));
    q.on_datagram(C, 50_000, S, 443, &sealed(&dcid, &dcid, 1, &frames), 2);
    let b = q.window.live();
    assert_eq!((b.initials_opened, b.client_hellos, b.malformed), (2, 1, 0));
    assert!(sni_of(&mut q).contains("example.com"));
}

#[test]
fn retry_keys_continue_the_client_hello() {
    let ch = client_hello();
    let (odcid, retry_cid, server_cid) = ([0x55; 8], [0x66; 8], [0x77; 8]);
    let mut q = handler(None);
    q.on_datagram(
        C,
        50_001,
        S,
        443,
        &sealed(&odcid, &odcid, 0, &crypto(0, &ch[..100])),
        1,
    );
    q.on_datagram(S, 443, C, 50_001, &retry(&[0xc1; 8], &retry_cid), 2);
    // After the Retry the client's Initials are keyed by the Retry's connection ID.
    q.on_datagram(
        C,
        50_001,
        S,
        443,
        &sealed(&retry_cid, &retry_cid, 1, &crypto(100, &ch[100..])),
        3,
    );
    let b = q.window.live().clone();
    assert_eq!((b.initials, b.initials_opened, b.client_hellos), (2, 2, 1));
    // Then to the server's connection ID, still with the Retry's keys: opened (to learn the
    // DCID) but not counted again.
    q.on_datagram(
        C,
        50_001,
        S,
        443,
        &sealed(&server_cid, &retry_cid, 2, &crypto(0, &ch)),
        4,
    );
    q.on_datagram(
        C,
        50_001,
        S,
        443,
        &sealed(&server_cid, &retry_cid, 3, &crypto(0, &ch)),
        5,
    );
    let b = q.window.live();
    assert_eq!((b.initials, b.initials_opened, b.client_hellos), (4, 3, 1));

    // Without the Retry's keys the last step does not open: a new tuple shows it.
    let mut q = handler(None);
    q.on_datagram(
        C,
        50_002,
        S,
        443,
        &sealed(&odcid, &odcid, 0, &crypto(0, &ch[..100])),
        1,
    );
    q.on_datagram(
        C,
        50_002,
        S,
        443,
        &sealed(&server_cid, &retry_cid, 1, &crypto(100, &ch[100..])),
        2,
    );
    let b = q.window.live();
    assert_eq!(
        (b.initials_opened, b.initials_not_opened, b.client_hellos),
        (1, 1, 0)
    );
}

#[test]
fn a_new_connection_on_the_same_tuple_is_read_again() {
    let ch = client_hello();
    let mut q = handler(None);
    q.on_datagram(
        C,
        50_003,
        S,
        443,
        &sealed(&[1; 8], &[1; 8], 0, &crypto(0, &ch)),
        1,
    );
    q.on_datagram(
        C,
        50_003,
        S,
        443,
        &sealed(&[2; 8], &[2; 8], 0, &crypto(0, &ch)),
        2,
    );
    assert_eq!(q.window.live().client_hellos, 2);
    assert_eq!(q.tracked(), 1);
}

#[test]
fn pending_connections_are_bounded_and_evictions_counted() {
    let ch = client_hello();
    let mut q = handler(Some(2));
    let s = 1_000_000_000;
    for port in 0..5u16 {
        let dcid = [port as u8; 8];
        let p = sealed(&dcid, &dcid, 0, &crypto(0, &ch[..100]));
        q.on_datagram(C, 30_000 + port, S, 443, &p, u64::from(port) * s);
    }
    assert_eq!(q.tracked(), 2);
    let b = q.window.live().clone();
    assert_eq!(
        (b.evictions, b.connections_evicted, b.client_hellos),
        (3, 0, 0)
    );
    // The two latest are still there and complete.
    for port in 3..5u16 {
        let dcid = [port as u8; 8];
        let p = sealed(&[9; 8], &dcid, 1, &crypto(100, &ch[100..]));
        q.on_datagram(C, 30_000 + port, S, 443, &p, 10 * s);
    }
    assert_eq!(q.window.live().client_hellos, 2);
    // Done connections idle for over a minute are replaced without being counted.
    let p = sealed(&[8; 8], &[8; 8], 0, &crypto(0, &ch));
    q.on_datagram(C, 31_000, S, 443, &p, 100 * s);
    let b = q.window.live();
    assert_eq!(
        (b.evictions, b.connections_evicted, b.client_hellos),
        (3, 0, 3)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Damaged Initials, random long headers and random direction never panic, and the table
    /// stays within its bound.
    #[test]
    fn hostile_datagrams_stay_bounded(
        flips in proptest::collection::vec((0usize..1300, proptest::prelude::any::<u8>()), 0..4),
        ports in proptest::collection::vec(0u16..8, 1..24),
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
    ) {
        let ch = client_hello();
        let mut q = handler(Some(3));
        for (n, &port) in ports.iter().enumerate() {
            let dcid = [port as u8; 8];
            let mut p = sealed(&[n as u8; 8], &dcid, n as u32, &crypto(0, &ch[..(n * 40).min(ch.len())]));
            for &(at, x) in &flips {
                if let Some(b) = p.get_mut(at) {
                    *b ^= x;
                }
            }
            let mut j = vec![0xc0, 0, 0, 0, 1];
            j.extend_from_slice(&junk);
            if n % 2 == 0 {
                q.on_datagram(C, 1000 + port, S, 443, &p, n as u64);
                q.on_datagram(S, 443, C, 1000 + port, &j, n as u64);
            } else {
                q.on_datagram(S, 443, C, 1000 + port, &p, n as u64);
                q.on_datagram(C, 1000 + port, S, 443, &j, n as u64);
            }
            proptest::prop_assert!(q.tracked() <= 3);
        }
        let b = q.window.live();
        proptest::prop_assert!(b.initials_opened + b.initials_not_opened <= b.initials);
    }
}
