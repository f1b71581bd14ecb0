//! Unit tests of the TLS decoders and fingerprints: real ClientHellos taken from captures,
//! hand-built hellos for the published JA3/JA4 examples, records split and joined.

use super::fingerprint::{ja3, ja3_string, ja4};
use super::x509::CertFields;
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// curl 7.65 offering TLS 1.3 to enabled.tls13.com (record header included), from
/// `arkime/curl-enabled-tls13.pcap` frame 8.
const CURL_TLS13: &str = concat!(
    "1603010200010001fc0303896833458d7827917b0deb0813ebd3ebf3bc731018ee722dc10e502eb72f9fbd20002ec375",
    "729614262a240f08055b7ef2a11799c7f032a7f5838890823f079bfc000813021303130100ff010001ab000000160014",
    "000011656e61626c65642e746c7331332e636f6d000b000403000102000a000c000a001d0017001e0019001833740000",
    "0010000e000c02683208687474702f312e31001600000017000000310000000d001e001c040305030603080708080809",
    "080a080b080408050806040105010601002b0003020304002d00020101003300260024001d0020a3fde1f9062b99be76",
    "17356eda87a4632172eddfb7c44c4aa418e963a0351f05001500fa000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000000000",
);

/// A TLS 1.2 ClientHello to www.cloudflare.com offering h2, from `arkime/tls-alpn-h2.pcap`.
const CLOUDFLARE_H2: &str = concat!(
    "16030100e8010000e40303858226c04fbaeddef4246093b4cfdab38f9dcfef145360e417686575cac49c7000005cc030",
    "c02cc028c024c014c00a009f006b0039cca9cca8ccaaff8500c400880081009d003d003500c00084c02fc02bc027c023",
    "c013c009009e0067003300be0045009c003c002f00ba0041c011c00700050004c012c0080016000a00ff0100005f0000",
    "001700150000127777772e636c6f7564666c6172652e636f6d000b00020100000a00080006001d00170018000d001c00",
    "1a06010603efef0501050304010403eeeeeded03010303020102030010000e000c02683208687474702f312e31",
);

/// A self-signed certificate: O=Example Org, CN=leaf.example, SAN a.example, b.example and an
/// IP address.
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

fn hello(record: &[u8]) -> ClientHello<'_> {
    let body = &record[RECORD_HEADER_LEN..];
    let msg = Messages::new(body).next().expect("one message");
    assert_eq!(msg.msg_type, HS_CLIENT_HELLO);
    ClientHello::parse(msg.body).expect("parses")
}

#[test]
fn real_client_hello_fields_and_fingerprints() {
    let rec = unhex(CURL_TLS13);
    let h = record_header(&rec).expect("record");
    assert_eq!((h.content_type, h.version, h.len), (22, 0x0301, 512));
    let ch = hello(&rec);
    assert_eq!(ch.sni(), Some(&b"enabled.tls13.com"[..]));
    assert_eq!(
        ch.alpn().collect::<Vec<_>>(),
        vec![&b"h2"[..], &b"http/1.1"[..]]
    );
    assert_eq!(ch.highest_version(), 0x0304);
    let mut s = Vec::new();
    ja3_string(&ch, &mut |b| s.extend_from_slice(b));
    // tshark's tls.handshake.ja3_full of the same frame.
    assert_eq!(
        String::from_utf8(s).expect("ascii"),
        "771,4866-4867-4865-255,0-11-10-13172-16-22-23-49-13-43-45-51-21,29-23-30-25-24,0-1-2"
    );
    assert_eq!(ja3(&ch).as_str(), "eeadfd2f446a45ded96f804720a0c75b");
    // Arkime's expected JA4 for this capture.
    assert_eq!(ja4(&ch).as_str(), "t13d0413h2_16476d049b0b_ffceb19bae65");

    let rec = unhex(CLOUDFLARE_H2);
    let ch = hello(&rec);
    assert_eq!(ch.sni(), Some(&b"www.cloudflare.com"[..]));
    assert_eq!(ch.highest_version(), 0x0303);
    assert_eq!(ja3(&ch).as_str(), "3faa4ad39f690c4ef1c3160caa375465");
    assert_eq!(ja4(&ch).as_str(), "t12d4605h2_85626a9a5f7f_aaf95bb78ec9");
}

/// Builds a ClientHello handshake message (header included) from its lists.
fn build_hello(version: u16, ciphers: &[u16], exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&[0x11; 32]);
    b.push(0);
    b.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
    for c in ciphers {
        b.extend_from_slice(&c.to_be_bytes());
    }
    b.extend_from_slice(&[1, 0]);
    let mut e = Vec::new();
    for (t, d) in exts {
        e.extend_from_slice(&t.to_be_bytes());
        e.extend_from_slice(&(d.len() as u16).to_be_bytes());
        e.extend_from_slice(d);
    }
    if !exts.is_empty() {
        b.extend_from_slice(&(e.len() as u16).to_be_bytes());
        b.extend_from_slice(&e);
    }
    let mut m = vec![HS_CLIENT_HELLO];
    m.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(&b);
    m
}

fn u16s(len_bytes: usize, v: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = v.len() * 2;
    if len_bytes == 2 {
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(n as u8);
    }
    for x in v {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 1];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

#[test]
fn ja3_published_example() {
    // The JA3 README example: 769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0
    let m = build_hello(
        769,
        &[
            0x0a0a, 47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4,
        ],
        &[
            (0, {
                let mut v = vec![0, 6, 0, 0, 3];
                v.extend_from_slice(b"a.b");
                v
            }),
            (0x1a1a, vec![]),
            (10, u16s(2, &[0x2a2a, 23, 24, 25])),
            (11, vec![1, 0]),
        ],
    );
    let ch = ClientHello::parse(&m[4..]).expect("parses");
    let mut s = Vec::new();
    ja3_string(&ch, &mut |b| s.extend_from_slice(b));
    assert_eq!(
        String::from_utf8(s).expect("ascii"),
        "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    );
    assert_eq!(ja3(&ch).as_str(), "ada70206e40642a3e4461f35503241d5");
}

/// The FoxIO JA4 specification's example hello.
fn foxio_example(with_sigalgs: bool) -> Vec<u8> {
    let ciphers = [
        0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let mut sni = vec![0, 14, 0, 0, 11];
    sni.extend_from_slice(b"example.com");
    let mut alpn = vec![0, 12, 2];
    alpn.extend_from_slice(b"h2");
    alpn.push(8);
    alpn.extend_from_slice(b"http/1.1");
    let types = [
        0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
        0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
    ];
    let mut exts = vec![(0x3a3a, vec![])];
    for t in types {
        let data = match t {
            0x0000 => sni.clone(),
            0x0010 => alpn.clone(),
            0x000d if with_sigalgs => u16s(
                2,
                &[
                    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
                ],
            ),
            0x000d => u16s(2, &[]),
            0x002b => u16s(1, &[0x4a4a, 0x0304, 0x0303]),
            _ => vec![],
        };
        exts.push((t, data));
    }
    build_hello(0x0303, &ciphers, &exts)
}

#[test]
fn ja4_published_example() {
    let m = foxio_example(true);
    let ch = ClientHello::parse(&m[4..]).expect("parses");
    assert_eq!(ja4(&ch).as_str(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    // Without signature algorithms the extension list is hashed alone.
    let m = foxio_example(false);
    let ch = ClientHello::parse(&m[4..]).expect("parses");
    assert_eq!(ja4(&ch).as_str(), "t13d1516h2_8daaf6152771_6d807ffa2a79");
}

#[test]
fn ja4_edge_cases() {
    // No ciphers, no extensions, SSL 3.0.
    let m = build_hello(0x0300, &[], &[]);
    let ch = ClientHello::parse(&m[4..]).expect("parses");
    assert_eq!(ja4(&ch).as_str(), "ts3i000000_000000000000_000000000000");
    // A non-alphanumeric ALPN is shown by its hex ends; a one-byte one twice.
    let alpn = |p: &[u8]| {
        let mut v = ((p.len() + 1) as u16).to_be_bytes().to_vec();
        v.push(p.len() as u8);
        v.extend_from_slice(p);
        build_hello(0x0303, &[0x002f], &[(0x0010, v)])
    };
    for (p, want) in [
        (&[0x30u8, 0xab, 0xcd, 0x31][..], "01"),
        (&[0xab, 0xcd][..], "ad"),
        (&[0x30, 0xab][..], "3b"),
        (&b"x"[..], "xx"),
        (&[][..], "00"),
    ] {
        let m = alpn(p);
        let ch = ClientHello::parse(&m[4..]).expect("parses");
        assert_eq!(&ja4(&ch).as_str()[8..10], want, "alpn {p:?}");
    }
    // Over 99 ciphers prints 99.
    let many: Vec<u16> = (1..=150).collect();
    let m = build_hello(0x0303, &many, &[]);
    let ch = ClientHello::parse(&m[4..]).expect("parses");
    assert_eq!(&ja4(&ch).as_str()[..8], "t12i9900");
}

#[test]
fn grease_values() {
    let all: Vec<u16> = (0..=0xffffu16).filter(|v| is_grease(*v)).collect();
    assert_eq!(all.len(), 16);
    assert_eq!(all[0], 0x0a0a);
    assert_eq!(all[15], 0xfafa);
    assert!(!is_grease(0x0a1a));
}

#[test]
fn handshake_split_over_records_and_several_per_record() {
    let rec = unhex(CURL_TLS13);
    let msg = &rec[RECORD_HEADER_LEN..];
    // The ClientHello cut into three records, the stream cut anywhere.
    let mut stream = Vec::new();
    stream.extend(record(22, &msg[..100]));
    stream.extend(record(22, &msg[100..101]));
    stream.extend(record(22, &msg[101..]));
    let mut out = vec![0u8; 4096];
    for cut in 0..stream.len() {
        let c = collect_handshake(&stream[..cut], &mut out, false);
        assert!(
            matches!(c.end, HandshakeEnd::NeedStreamBytes(n) if n > cut),
            "cut {cut}"
        );
        // Whatever was collected is a prefix of the message, never a complete hello.
        assert_eq!(&out[..c.len], &msg[..c.len]);
        assert_eq!(Messages::new(&out[..c.len]).count(), 0);
    }
    let c = collect_handshake(&stream, &mut out, false);
    assert_eq!((c.len, c.records), (msg.len(), 3));
    let ch =
        ClientHello::parse(Messages::new(&out[..c.len]).next().expect("msg").body).expect("parses");
    assert_eq!(ch.sni(), Some(&b"enabled.tls13.com"[..]));

    // ServerHello, Certificate and ServerHelloDone in one record, then a ChangeCipherSpec.
    let mut sh = vec![0x03, 0x03];
    sh.extend_from_slice(&[7; 32]);
    sh.push(0);
    sh.extend_from_slice(&[0xc0, 0x2f, 0]);
    sh.extend_from_slice(&[0, 8, 0, 0x10, 0, 4, 0, 2, 1, b'x']);
    let cert = unhex(CERT);
    let mut certmsg = ((cert.len() + 3) as u32).to_be_bytes()[1..].to_vec();
    certmsg.extend_from_slice(&(cert.len() as u32).to_be_bytes()[1..]);
    certmsg.extend_from_slice(&cert);
    let mut hs = Vec::new();
    for (t, body) in [(2u8, &sh), (11, &certmsg), (14, &Vec::new())] {
        hs.push(t);
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(body);
    }
    let mut stream = record(22, &hs);
    stream.extend(record(20, &[1]));
    let c = collect_handshake(&stream, &mut out, false);
    assert_eq!(c.end, HandshakeEnd::OtherContent(20));
    let msgs: Vec<_> = Messages::new(&out[..c.len]).collect();
    assert_eq!(
        msgs.iter().map(|m| m.msg_type).collect::<Vec<_>>(),
        vec![2, 11, 14]
    );
    let s = ServerHello::parse(msgs[0].body).expect("server hello");
    assert_eq!(s.cipher_suite, 0xc02f);
    assert_eq!(s.selected_version(), 0x0303);
    assert_eq!(s.alpn(), Some(&b"x"[..]));
    assert!(!s.is_hello_retry_request());
    let der = certificates(msgs[1].body)
        .expect("list")
        .next()
        .expect("leaf");
    let f = CertFields::parse(der).expect("cert");
    assert_eq!(f.subject_cn(), Some(&b"leaf.example"[..]));
    assert_eq!(f.issuer_cn(), Some(&b"leaf.example"[..]));
    assert_eq!(
        f.dns_names().collect::<Vec<_>>(),
        vec![&b"a.example"[..], &b"b.example"[..]]
    );
    // A small output buffer stops collecting.
    let mut small = [0u8; 10];
    assert_eq!(
        collect_handshake(&stream, &mut small, false).end,
        HandshakeEnd::OutputFull
    );
}

#[test]
fn warning_alerts_are_skipped_and_draft_server_hellos_parse() {
    // unrecognized_name warning, then a ServerHello of TLS 1.3 draft 18 (no session id, no
    // compression), then a fatal alert.
    let mut sh = vec![0x7f, 0x12];
    sh.extend_from_slice(&[5; 32]);
    sh.extend_from_slice(&[0x13, 0x01, 0, 0]);
    let mut msg = vec![HS_SERVER_HELLO, 0, 0, sh.len() as u8];
    msg.extend_from_slice(&sh);
    let mut stream = record(CONTENT_ALERT, &[1, 112]);
    stream.extend(record(22, &msg));
    stream.extend(record(CONTENT_ALERT, &[2, 40]));
    let mut out = [0u8; 256];
    let c = collect_handshake(&stream, &mut out, false);
    assert_eq!(
        (c.records, c.end),
        (1, HandshakeEnd::OtherContent(CONTENT_ALERT))
    );
    let m = Messages::new(&out[..c.len]).next().expect("server hello");
    let s = ServerHello::parse(m.body).expect("draft server hello");
    assert_eq!(
        (s.version, s.cipher_suite, s.selected_version()),
        (0x7f12, 0x1301, 0x7f12)
    );
}

#[test]
fn sslv2_compatible_client_hello() {
    // From `retina/tls_ciphers.pcap`: offers TLS 1.2 with three cipher specs.
    let b = unhex(concat!(
        "80320103030009000000200000040100800000ff4575c2fa383b34ff9c5aa53c27a311",
        "88a5cbd9976dd1cbee23124aba078bc2f1"
    ));
    let h = Sslv2ClientHello::parse(&b).expect("sslv2 hello");
    assert_eq!((h.version, h.cipher_specs.len()), (0x0303, 9));
    assert_eq!(
        Sslv2ClientHello::parse(&b[..20]),
        Err(TlsError::Truncated("sslv2 client hello"))
    );
    assert_eq!(Sslv2ClientHello::parse(b"GET /"), Err(TlsError::NotTls));
    // A TLS record is not an SSL 2.0 one.
    assert_eq!(
        Sslv2ClientHello::parse(&[22, 3, 1, 0, 5]),
        Err(TlsError::NotTls)
    );
}

#[test]
fn not_tls_is_recognised_early() {
    assert_eq!(record_header(b"GET / HTTP/1.1"), Err(TlsError::NotTls));
    assert_eq!(record_header(b"SSH-2.0"), Err(TlsError::NotTls));
    assert_eq!(record_header(&[22, 2]), Err(TlsError::NotTls));
    assert_eq!(
        record_header(&[22, 3]),
        Err(TlsError::Truncated("record header"))
    );
    assert_eq!(
        record_header(&[22, 3, 1, 0xff, 0xff]),
        Err(TlsError::NotTls)
    );
    assert_eq!(
        collect_handshake(b"\x16\x03\x01\x00\x01\x01HTTP", &mut [0u8; 16], false).end,
        HandshakeEnd::NotTls(6)
    );
}

#[test]
fn truncated_and_malformed_hellos_are_errors() {
    let rec = unhex(CURL_TLS13);
    let body = &rec[RECORD_HEADER_LEN + 4..];
    for n in 0..body.len() {
        // Cut before the extensions block ends: truncated or malformed, never a panic.
        if let Ok(ch) = ClientHello::parse(&body[..n]) {
            // Only cuts exactly at the end of the extension-less part decode.
            assert!(ch.extensions.is_empty(), "cut {n}");
        }
    }
    let mut bad = body.to_vec();
    bad[34] = 33; // session id longer than 32
    assert_eq!(
        ClientHello::parse(&bad),
        Err(TlsError::Malformed("session id"))
    );
}

mod props {
    use super::super::fingerprint::{ja3, ja4};
    use super::super::x509::CertFields;
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut out = [0u8; 512];
            let c = collect_handshake(&b, &mut out, false);
            prop_assert!(c.len <= out.len());
            for m in Messages::new(&b) {
                if let Ok(ch) = ClientHello::parse(m.body) {
                    let _ = (ja3(&ch), ja4(&ch), ch.sni(), ch.alpn().count());
                }
                if let Ok(sh) = ServerHello::parse(m.body) {
                    let _ = (sh.selected_version(), sh.alpn());
                }
                if let Ok(list) = certificates(m.body) {
                    for der in list {
                        if let Ok(f) = CertFields::parse(der) {
                            let _ = (f.subject_cn(), f.issuer_cn(), f.dns_names().count());
                        }
                    }
                }
            }
            if let Ok(f) = CertFields::parse(&b) {
                let _ = (f.subject_cn(), f.dns_names().count());
            }
        }
    }
}
