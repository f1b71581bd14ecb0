//! Unit tests of QUIC Initial handling against the test vectors of RFC 9001 Appendix A
//! (version 1) and RFC 9369 Appendix A (version 2), plus frame walking and CRYPTO reassembly.

use super::initial::hp_mask;
use super::*;
use crate::tls::ClientHello;
use aes_gcm::aead::KeyInit;
use aes_gcm::{AeadInOut, Aes128Gcm};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const DCID: &str = "8394c8f03e515708";

/// RFC 9001 A.2: the client Initial, protected (1200 bytes), as hex.
const V1_CLIENT_INITIAL: &str = include_str!("../../tests/data/rfc9001-a2-client-initial.hex");

/// RFC 9001 A.2 / RFC 9369 A.2: the CRYPTO frame of the client Initial (then PADDING to 1162
/// bytes of payload).
const CRYPTO_FRAME: [&str; 8] = [
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868",
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578",
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005",
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba",
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400",
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100",
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000",
    "75300901100f088394c8f03e51570806048000ffff",
];

/// RFC 9001 A.3: the server Initial, protected.
const V1_SERVER_INITIAL: [&str; 5] = [
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a",
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3",
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84",
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4",
    "2158407dd074ee",
];

fn client_payload() -> Vec<u8> {
    let mut p = unhex(&CRYPTO_FRAME.concat());
    p.resize(1162, 0);
    p
}

#[test]
fn rfc9001_a1_client_and_server_keys() {
    let dcid = unhex(DCID);
    let c = initial_keys(VERSION_1, &dcid, false).expect("v1");
    assert_eq!(c.key.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
    assert_eq!(c.iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
    assert_eq!(c.hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
    let s = initial_keys(VERSION_1, &dcid, true).expect("v1");
    assert_eq!(s.key.to_vec(), unhex("cf3a5331653c364c88f0f379b6067e37"));
    assert_eq!(s.iv.to_vec(), unhex("0ac1493ca1905853b0bba03e"));
    assert_eq!(s.hp.to_vec(), unhex("c206b8d9b9f0f37644430b490eeaa314"));
    assert_eq!(
        initial_keys(0xff00_001b, &dcid, false),
        Err(QuicError::UnsupportedVersion(0xff00_001b))
    );
}

#[test]
fn rfc9001_a2_header_protection_sample_and_mask() {
    let keys = initial_keys(VERSION_1, &unhex(DCID), false).expect("v1");
    let sample: [u8; 16] = unhex("d1b1c98dd7689fb8ec11d242b123dc9b")
        .try_into()
        .expect("16");
    assert_eq!(
        hp_mask(&keys.hp, &sample)[..5].to_vec(),
        unhex("437b9aec36")
    );
}

#[test]
fn rfc9001_a2_client_initial_decrypts_to_its_client_hello() {
    let packet = unhex(V1_CLIENT_INITIAL.trim());
    assert_eq!(packet.len(), 1200);
    let h = long_header(&packet).expect("header");
    assert_eq!(h.ptype, PacketType::Initial);
    assert_eq!(h.dcid.to_vec(), unhex(DCID));
    assert_eq!((h.pn_offset, h.len), (18, 1200));
    let keys = initial_keys(h.version, h.dcid, false).expect("v1");
    let mut out = [0u8; 1500];
    let (pn, payload) = decrypt_initial(&packet, &h, &keys, &mut out).expect("opens");
    assert_eq!(pn, 2);
    assert_eq!(payload.to_vec(), client_payload());

    // The whole path: frames, CRYPTO, then the TLS parser.
    let mut crypto = CryptoBuf::new(4096);
    let seen = open_client_initials(&packet, &mut out, &mut crypto, &mut |_| true);
    assert_eq!((seen.initials, seen.opened, seen.bad_payload), (1, 1, 0));
    let Hello::Complete { msg_type, body } = crypto.first_message() else {
        panic!("hello not complete");
    };
    assert_eq!(msg_type, 1);
    let ch = ClientHello::parse(body).expect("client hello");
    assert_eq!(ch.sni(), Some(&b"example.com"[..]));
    assert_eq!(ch.alpn().next(), Some(&b"alpn"[..]));

    // A flipped ciphertext bit fails authentication.
    let mut bad = packet.clone();
    bad[600] ^= 1;
    assert_eq!(
        decrypt_initial(&bad, &h, &keys, &mut out).map(|_| ()),
        Err(QuicError::Decrypt)
    );
}

#[test]
fn rfc9001_a3_server_initial_opens_with_server_keys_only() {
    let packet = unhex(&V1_SERVER_INITIAL.concat());
    let h = long_header(&packet).expect("header");
    let mut out = [0u8; 1500];
    let server = initial_keys(VERSION_1, &unhex(DCID), true).expect("v1");
    let (pn, payload) = decrypt_initial(&packet, &h, &server, &mut out).expect("opens");
    assert_eq!(pn, 1);
    let frames: Vec<_> = Frames::new(payload).collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], Ok(Frame::Ack));
    assert!(matches!(frames[1], Ok(Frame::Crypto { offset: 0, data }) if data.len() == 90));
    // What a passive reader does: client keys from the packet's own DCID do not open it.
    let mut crypto = CryptoBuf::new(4096);
    let seen = open_client_initials(&packet, &mut out, &mut crypto, &mut |_| true);
    assert_eq!((seen.initials, seen.opened, seen.not_opened), (1, 0, 1));
}

/// Protects an Initial as a client would (the RFC gives the inputs and some outputs).
fn protect(version: u32, header: &[u8], payload: &[u8]) -> Vec<u8> {
    let keys = initial_keys(version, &unhex(DCID), false).expect("keys");
    let pn_off = header.len() - 4;
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(2u64.to_be_bytes()) {
        *n ^= p;
    }
    let mut ct = payload.to_vec();
    let tag = Aes128Gcm::new((&keys.key).into())
        .encrypt_inout_detached(&nonce.into(), header, ct.as_mut_slice().into())
        .expect("seals");
    let mut p = header.to_vec();
    p.extend_from_slice(&ct);
    p.extend_from_slice(&tag);
    let sample: [u8; 16] = p[pn_off + 4..pn_off + 20].try_into().expect("16");
    let mask = hp_mask(&keys.hp, &sample);
    p[0] ^= mask[0] & 0x0f;
    for i in 0..4 {
        p[pn_off + i] ^= mask[1 + i];
    }
    p
}

#[test]
fn rfc9001_a2_protection_reproduces_the_published_packet() {
    let header = unhex("c300000001088394c8f03e5157080000449e00000002");
    let p = protect(VERSION_1, &header, &client_payload());
    assert_eq!(p, unhex(V1_CLIENT_INITIAL.trim()));
}

#[test]
fn seal_initial_reproduces_the_published_packet() {
    let keys = initial_keys(VERSION_1, &unhex(DCID), false).expect("v1");
    let mut out = [0u8; 1500];
    let n = seal_initial(
        VERSION_1,
        &keys,
        &unhex(DCID),
        &[],
        2,
        &client_payload(),
        &mut out,
    )
    .expect("seals");
    assert_eq!(out[..n].to_vec(), unhex(V1_CLIENT_INITIAL.trim()));
    // Version 2 rotates the type bits; the packet still parses as an Initial and opens.
    let keys = initial_keys(VERSION_2, &unhex(DCID), false).expect("v2");
    let n = seal_initial(
        VERSION_2,
        &keys,
        &unhex(DCID),
        &[7; 4],
        9,
        b"\x01\x00\x00",
        &mut out,
    )
    .expect("seals");
    let packet = out[..n].to_vec();
    let h = long_header(&packet).expect("header");
    assert_eq!(
        (h.ptype, h.scid.to_vec()),
        (PacketType::Initial, vec![7; 4])
    );
    let (pn, payload) = decrypt_initial(&packet, &h, &keys, &mut out).expect("opens");
    assert_eq!((pn, payload.to_vec()), (9, b"\x01\x00\x00".to_vec()));
}

#[test]
fn coalesced_packets_and_crypto_frames() {
    let keys = initial_keys(VERSION_1, &unhex(DCID), false).expect("v1");
    let mut a = [0u8; 200];
    let na = seal_initial(
        VERSION_1,
        &keys,
        &unhex(DCID),
        &[],
        0,
        &[6, 0, 2, 1, 0, 1],
        &mut a,
    )
    .expect("seals");
    let mut b = [0u8; 200];
    let nb = seal_initial(
        VERSION_1,
        &keys,
        &unhex(DCID),
        &[],
        1,
        &[6, 2, 2, 0, 1, 0, 0],
        &mut b,
    )
    .expect("seals");
    let mut datagram = a[..na].to_vec();
    datagram.extend_from_slice(&b[..nb]);
    datagram.extend_from_slice(&[0x40, 1, 2, 3]); // a short-header packet ends the walk
    let packets: Vec<_> = Packets::new(&datagram)
        .map(|(h, p)| (h.ptype, p.len()))
        .collect();
    assert_eq!(
        packets,
        vec![(PacketType::Initial, na), (PacketType::Initial, nb)]
    );
    let mut out = [0u8; 1500];
    let mut crypto = CryptoBuf::new(64);
    let seen = open_client_initials(&datagram, &mut out, &mut crypto, &mut |_| true);
    assert_eq!((seen.initials, seen.opened, seen.bad_payload), (2, 2, 0));
    assert_eq!(crypto.contiguous(), &[1, 0, 0, 1]);
    assert!(!add_crypto_frames(
        &[6, 60, 8, 0, 0, 0, 0, 0, 0, 0, 0],
        &mut crypto
    ));
    assert!(
        !add_crypto_frames(&[0x1f], &mut crypto),
        "not a frame of an Initial"
    );
    assert!(has_initial_keys(VERSION_2) && has_initial_keys(0xff00_001d));
    assert!(!has_initial_keys(0xff00_001b));
}

#[test]
fn rfc9369_a2_version_2_client_initial() {
    let header = unhex("d36b3343cf088394c8f03e5157080000449e00000002");
    let p = protect(VERSION_2, &header, &client_payload());
    // Published in RFC 9369 A.2: the protected header, the sample and the mask.
    assert_eq!(
        p[..22].to_vec(),
        unhex("d76b3343cf088394c8f03e5157080000449ea0c95e82")
    );
    assert_eq!(
        p[22..38].to_vec(),
        unhex("ffe67b6abcdb4298b485dd04de806071")
    );
    let keys = initial_keys(VERSION_2, &unhex(DCID), false).expect("v2");
    let sample: [u8; 16] = p[22..38].try_into().expect("16");
    assert_eq!(
        hp_mask(&keys.hp, &sample)[..5].to_vec(),
        unhex("94a0c95e80")
    );
    let h = long_header(&p).expect("header");
    assert_eq!(h.ptype, PacketType::Initial, "v2 rotates the type bits");
    let mut out = [0u8; 1500];
    let (pn, payload) = decrypt_initial(&p, &h, &keys, &mut out).expect("opens");
    assert_eq!((pn, payload.to_vec()), (2, client_payload()));
}

#[test]
fn crypto_reassembles_across_packets_in_any_order() {
    let msg: Vec<u8> = {
        let mut m = vec![1, 0, 0, 10];
        m.extend(0..10u8);
        m
    };
    let mut c = CryptoBuf::new(64);
    c.add(8, &msg[8..]).expect("fits");
    assert_eq!(c.first_message(), Hello::Incomplete);
    c.add(0, &msg[..5]).expect("fits");
    assert_eq!(c.contiguous().len(), 5);
    c.add(3, &msg[3..9]).expect("fits");
    assert_eq!(
        c.first_message(),
        Hello::Complete {
            msg_type: 1,
            body: &msg[4..]
        }
    );
    assert_eq!(c.add(60, &[0; 8]), Err(QuicError::CryptoOverflow));
    let mut c = CryptoBuf::new(8);
    c.add(0, &[1, 0, 1, 0]).expect("fits");
    assert_eq!(c.first_message(), Hello::TooLong);
}

#[test]
fn varints_and_bad_headers() {
    assert_eq!(varint(&[0x25]), Some((37, 1)));
    assert_eq!(varint(&[0x7b, 0xbd]), Some((15293, 2)));
    assert_eq!(varint(&[0x9d, 0x7f, 0x3e, 0x7d]), Some((494_878_333, 4)));
    assert_eq!(
        varint(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
        Some((151_288_809_941_952_652, 8))
    );
    assert_eq!(varint(&[0x40]), None);
    assert_eq!(long_header(&[0x40, 1, 2]), Err(QuicError::NotLongHeader));
    assert_eq!(long_header(&[0xc0, 0, 0, 0, 1, 21]), Err(QuicError::BadCid));
    assert_eq!(
        long_header(&[0xc0, 0, 0, 0, 1, 8, 1]),
        Err(QuicError::Truncated)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1400)) {
        fuzz_quic(&b);
    }
}
