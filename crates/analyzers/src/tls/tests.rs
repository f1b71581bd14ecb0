//! Tests of the `tls` handler over hand-built TCP streams: hellos split across segments and
//! reordered, several messages per record, certificates, truncation, non-TLS streams and caps.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::export::TopItem;
use flow::tcp::flags;

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const S: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

/// A self-signed certificate: O=Example Org, CN=leaf.example, SAN a.example, b.example.
const CERT: &str = concat!(
    "308201d63082017ca00302010202146b902510e80d384b1361573c18c93a93c92452a7300a06082a8648ce3d04030230",
    "2d31143012060355040a0c0b4578616d706c65204f72673115301306035504030c0c6c6561662e6578616d706c65301e",
    "170d3236313133303135343531385a170d3236313230313135343531385a302d31143012060355040a0c0b4578616d70",
    "6c65204f72673115301306035504030c0c6c6561662e6578616d706c653059301306072a8648ce3d020106082a8648ce",
    "3d03010703420004ca351177c86b2ae3d236efca5113fe9e10409fbae6b584fb34ffeb337d957025684c726cbdb9eeab",
    "41c1d20bafad859897b40146c3a06bb405ac60f9aae16635a37a3078301d0603551d0e0416041458e4a94681924df954",
    "9a57ab823b74e7750d514c301f0603551d2304183016801458e4a94681924df9549a57ab823b74e7750d514c300f0603",
    "551d130101ff040530030101ff30250603551d11041e301c8209612e6578616d706c658209622e6578616d706c658704",
    "c0000201300a06082a8648ce3d0403020348003045022004cb9617101c0d6aec7af2e2132b52f3e0146d3e80990d92e3",
    "568ebebb78375b022100c163ff99f38e83781ec2096ee25e39be22826ea2520b19f6ea63b173bf6fff28",
);

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn hs(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

fn record(t: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![t, 3, 1];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

fn ext(t: u16, data: &[u8]) -> Vec<u8> {
    let mut e = t.to_be_bytes().to_vec();
    e.extend_from_slice(&(data.len() as u16).to_be_bytes());
    e.extend_from_slice(data);
    e
}

/// A TLS 1.2 ClientHello handshake message for `sni` offering h2.
fn client_hello(sni: &str) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[0x22; 32]);
    b.push(0);
    b.extend_from_slice(&[0, 4, 0xc0, 0x2f, 0x00, 0x9c]);
    b.extend_from_slice(&[1, 0]);
    let mut name = vec![0];
    name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    name.extend_from_slice(sni.as_bytes());
    let mut list = (name.len() as u16).to_be_bytes().to_vec();
    list.extend_from_slice(&name);
    let mut exts = ext(0, &list);
    exts.extend(ext(0x10, &[0, 3, 2, b'h', b'2']));
    exts.extend(ext(0x0a, &[0, 2, 0, 23]));
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend_from_slice(&exts);
    hs(1, &b)
}

fn server_hello(version_ext: Option<u16>) -> Vec<u8> {
    server_hello_with(version_ext, [0x33; 32])
}

fn server_hello_with(version_ext: Option<u16>, random: [u8; 32]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&random);
    b.push(0);
    b.extend_from_slice(&[0xc0, 0x2f, 0]);
    if let Some(v) = version_ext {
        let e = ext(0x2b, &v.to_be_bytes());
        b.extend_from_slice(&(e.len() as u16).to_be_bytes());
        b.extend_from_slice(&e);
    }
    hs(2, &b)
}

fn certificate() -> Vec<u8> {
    let der = unhex(CERT);
    let mut one = (der.len() as u32).to_be_bytes()[1..].to_vec();
    one.extend_from_slice(&der);
    let mut body = (one.len() as u32).to_be_bytes()[1..].to_vec();
    body.extend_from_slice(&one);
    hs(11, &body)
}

fn handler() -> Tls {
    Tls::new(&ConfigMap::new(), WindowConfig::default(), &[], &[]).expect("builds")
}

/// Feeds a segment from the client (`true`) or the server at `ts` ms.
fn seg(t: &mut Tls, port: u16, from_client: bool, seq: u32, f: u8, payload: &[u8], ts_ms: u64) {
    let ts = 1_700_000_000_000_000_000 + ts_ms * 1_000_000;
    if from_client {
        t.on_segment(C, port, S, 443, 0, seq, f, payload, ts);
    } else {
        t.on_segment(S, 443, C, port, 0, seq, f, payload, ts);
    }
}

fn metric<'e>(e: &'e Export, path: &[&str]) -> &'e Value {
    &e.metrics
        .iter()
        .find(|m| m.json_path == path)
        .unwrap_or_else(|| panic!("no {path:?}"))
        .value
}

fn int(e: &Export, path: &[&str]) -> u64 {
    match metric(e, path) {
        Value::Int(n) => *n,
        v => panic!("{path:?} is {v:?}"),
    }
}

fn top(e: &Export, path: &[&str]) -> Vec<(String, u64)> {
    match metric(e, path) {
        Value::Top { items, .. } => items
            .iter()
            .map(|TopItem { name, estimate, .. }| (name.clone(), *estimate))
            .collect(),
        v => panic!("{path:?} is {v:?}"),
    }
}

#[test]
fn split_reordered_hello_and_server_flight_are_read_once() {
    let mut t = handler();
    let ch = record(22, &client_hello("www.example.com"));
    seg(&mut t, 50_000, true, 99, flags::SYN, &[], 0);
    seg(&mut t, 50_000, false, 499, flags::SYN | flags::ACK, &[], 1);
    // The ClientHello in three segments, the last one first, the first one twice.
    let (a, rest) = ch.split_at(3);
    let (bb, c) = rest.split_at(40);
    seg(&mut t, 50_000, true, 100 + 43, flags::ACK, c, 2);
    seg(&mut t, 50_000, true, 100, flags::ACK, a, 3);
    seg(&mut t, 50_000, true, 100, flags::ACK, a, 3);
    seg(&mut t, 50_000, true, 103, flags::ACK, bb, 4);
    // ServerHello and Certificate in two records, the second split over two segments.
    let mut flight = record(22, &server_hello(None));
    flight.extend(record(22, &[certificate(), hs(14, &[])].concat()));
    let (x, y) = flight.split_at(100);
    seg(&mut t, 50_000, false, 500, flags::ACK, x, 9);
    seg(&mut t, 50_000, false, 600, flags::ACK, y, 10);
    // Application data afterwards is not read.
    seg(
        &mut t,
        50_000,
        true,
        100 + ch.len() as u32,
        flags::ACK,
        &record(23, &[1; 50]),
        11,
    );

    let b = t.window.live().clone();
    let e = t.export(&b);
    assert_eq!(int(&e, &["client_hellos"]), 1);
    assert_eq!(int(&e, &["server_hellos"]), 1);
    assert_eq!(int(&e, &["handshakes"]), 1);
    assert_eq!(int(&e, &["certificates"]), 1);
    assert_eq!(int(&e, &["malformed"]) + int(&e, &["truncated"]), 0);
    assert_eq!(int(&e, &["cardinality", "sni"]), 1);
    assert_eq!(top(&e, &["top_sni"]), vec![("www.example.com".into(), 1)]);
    assert_eq!(top(&e, &["top_alpn"]), vec![("h2".into(), 1)]);
    assert_eq!(
        top(&e, &["top_version_offered"]),
        vec![("TLS 1.2".into(), 1)]
    );
    assert_eq!(
        top(&e, &["top_version_negotiated"]),
        vec![("TLS 1.2".into(), 1)]
    );
    assert_eq!(
        top(&e, &["top_cipher"]),
        vec![("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(), 1)]
    );
    assert_eq!(
        top(&e, &["top_cert_subject"]),
        vec![("leaf.example".into(), 1)]
    );
    assert_eq!(
        top(&e, &["top_cert_issuer"]),
        vec![("leaf.example".into(), 1)]
    );
    assert_eq!(
        top(&e, &["top_cert_san"]),
        vec![("a.example".into(), 1), ("b.example".into(), 1)]
    );
    let ja4 = top(&e, &["top_ja4"]);
    assert_eq!(ja4.len(), 1);
    assert!(ja4[0].0.starts_with("t12d0203h2_"), "{}", ja4[0].0);
    assert_eq!(top(&e, &["top_ja3"]).len(), 1);
    // ClientHello completed at 4 ms, ServerHello at 9 ms.
    match metric(&e, &["handshake_latency"]) {
        Value::Quantiles(q) => {
            assert_eq!(q.count, 1);
            assert_eq!(q.max, crate::export::Num::U(5000));
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn tls13_server_flight_stops_after_the_server_hello() {
    let mut t = handler();
    seg(
        &mut t,
        1,
        true,
        0,
        flags::ACK,
        &record(22, &client_hello("a.test")),
        0,
    );
    let mut flight = record(22, &server_hello(Some(0x0304)));
    flight.extend(record(20, &[1]));
    flight.extend(record(23, &[9; 40]));
    seg(&mut t, 1, false, 0, flags::ACK, &flight, 1);
    // The client's second flight ends its side too.
    let ch_len = record(22, &client_hello("a.test")).len() as u32;
    let mut second = record(20, &[1]);
    second.extend(record(23, &[7; 30]));
    seg(&mut t, 1, true, ch_len, flags::ACK, &second, 2);
    let b = t.window.live().clone();
    let e = t.export(&b);
    assert_eq!(int(&e, &["handshakes"]), 1);
    assert_eq!(int(&e, &["certificates"]), 0);
    assert_eq!(
        top(&e, &["top_version_negotiated"]),
        vec![("TLS 1.3".into(), 1)]
    );
    assert_eq!(
        t.reassembly_load(),
        (1, 0),
        "nothing buffered once both sides are read"
    );
}

#[test]
fn other_protocols_are_ignored_and_broken_tls_is_counted() {
    let mut t = handler();
    seg(
        &mut t,
        2,
        true,
        0,
        flags::ACK,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        0,
    );
    seg(
        &mut t,
        3,
        false,
        0,
        flags::ACK,
        b"SSH-2.0-OpenSSH_9.6\r\n",
        0,
    );
    // A record header announcing 200 bytes, then the connection closes.
    let ch = record(22, &client_hello("cut.test"));
    seg(&mut t, 4, true, 0, flags::ACK, &ch[..30], 0);
    seg(&mut t, 4, true, 30, flags::ACK | flags::FIN, &[], 1);
    // A handshake record whose ClientHello body is garbage.
    seg(
        &mut t,
        5,
        true,
        0,
        flags::ACK,
        &record(22, &hs(1, &[3, 3, 0])),
        0,
    );
    let b = t.window.live().clone();
    let e = t.export(&b);
    assert_eq!(int(&e, &["client_hellos"]), 0);
    assert_eq!(int(&e, &["truncated"]), 1);
    assert_eq!(int(&e, &["malformed"]), 1);
}

#[test]
fn reassembly_caps_are_counted() {
    let mut cfg = ConfigMap::new();
    cfg.set("max_connections", crate::config::ConfigValue::Int(2));
    let mut t = Tls::new(&cfg, WindowConfig::default(), &[], &[]).expect("builds");
    let ch = record(22, &client_hello("partial.test"));
    for port in 10..15 {
        seg(&mut t, port, true, 0, flags::ACK, &ch[..20], 0);
    }
    assert_eq!(t.reassembly_load().0, 2);
    let b = t.window.live().clone();
    let e = t.export(&b);
    assert_eq!(int(&e, &["reassembly", "evictions"]), 3);
    // The evicted connections had a partial hello: truncated.
    assert_eq!(int(&e, &["truncated"]), 3);
    // Complete hellos are counted whatever the table holds.
    for port in 100..110 {
        seg(&mut t, port, true, 0, flags::ACK, &ch, 1);
    }
    let b = t.window.live().clone();
    assert_eq!(b.client_hellos, 10);
}

#[test]
fn config_and_groups_are_checked() {
    let mut cfg = ConfigMap::new();
    cfg.set("head_bytes", crate::config::ConfigValue::Int(1));
    assert!(Tls::new(&cfg, WindowConfig::default(), &[], &[]).is_err());
    let mut cfg = ConfigMap::new();
    cfg.set("bogus", crate::config::ConfigValue::Int(1));
    assert!(Tls::new(&cfg, WindowConfig::default(), &[], &[]).is_err());
    let t = Tls::new(
        &ConfigMap::new(),
        WindowConfig::default(),
        &[],
        &["top_certificates".into()],
    )
    .expect("builds");
    let e = t.export(&TlsBucket::default());
    assert!(
        e.metrics
            .iter()
            .all(|m| m.json_path[0] != "top_cert_subject")
    );
    assert_eq!(int(&e, &["client_hellos"]), 0);
}

#[test]
fn hello_retry_request_flows_are_followed_past_change_cipher_spec() {
    let mut t = handler();
    let ch1 = record(22, &client_hello("retry.test"));
    seg(&mut t, 7, true, 0, flags::ACK, &ch1, 0);
    let mut flight = record(
        22,
        &server_hello_with(Some(0x0304), wire::tls::HELLO_RETRY_REQUEST_RANDOM),
    );
    flight.extend(record(20, &[1]));
    seg(&mut t, 7, false, 0, flags::ACK, &flight, 1);
    let mut second = record(20, &[1]);
    second.extend(record(22, &client_hello("retry.test")));
    seg(&mut t, 7, true, ch1.len() as u32, flags::ACK, &second, 2);
    let sh = record(22, &server_hello(Some(0x0304)));
    seg(&mut t, 7, false, flight.len() as u32, flags::ACK, &sh, 3);
    let b = t.window.live().clone();
    assert_eq!(
        (
            b.client_hellos,
            b.server_hellos,
            b.hello_retry_requests,
            b.handshakes
        ),
        (2, 2, 1, 1)
    );
    assert_eq!(b.truncated + b.malformed, 0);
}
