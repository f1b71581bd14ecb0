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

/// RFC 9001 A.2: the client Initial, protected (1200 bytes).
const V1_CLIENT_INITIAL: [&str; 38] = [
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11",
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399",
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c",
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212",
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5",
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208",
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec",
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3",
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db",
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c",
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8",
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556",
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74",
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a",
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00",
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632",
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964",
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd",
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff",
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198",
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd",
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73",
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f",
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e",
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade",
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047",
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2",
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4",
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0",
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e",
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0",
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400",
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab",
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9",
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4",
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064",
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241",
    "e221af44860018ab0856972e194cd934",
];

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
        initial_keys(0xff00_001d, &dcid, false),
        Err(QuicError::UnsupportedVersion(0xff00_001d))
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
    let packet = unhex(&V1_CLIENT_INITIAL.concat());
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
    assert_eq!(p, unhex(&V1_CLIENT_INITIAL.concat()));
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
