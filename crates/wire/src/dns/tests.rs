//! Unit tests of the DNS parser on hand-built messages (the differential test against
//! hickory-proto and the pcap fixture test live in `crates/wire/tests/`).

use super::*;
use proptest::prelude::*;

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v
}

fn wire_name(labels: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in labels {
        v.push(u8::try_from(l.len()).expect("label length fits"));
        v.extend_from_slice(l);
    }
    v.push(0);
    v
}

fn question(msg: &mut Vec<u8>, name: &[u8], qtype: u16, qclass: u16) {
    msg.extend_from_slice(name);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&qclass.to_be_bytes());
}

fn rr(msg: &mut Vec<u8>, name: &[u8], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
    msg.extend_from_slice(name);
    msg.extend_from_slice(&rtype.to_be_bytes());
    msg.extend_from_slice(&class.to_be_bytes());
    msg.extend_from_slice(&ttl.to_be_bytes());
    msg.extend_from_slice(
        &u16::try_from(rdata.len())
            .expect("rdata fits")
            .to_be_bytes(),
    );
    msg.extend_from_slice(rdata);
}

fn option(code: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(&u16::try_from(body.len()).expect("fits").to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn ecs_body(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut v = family.to_be_bytes().to_vec();
    v.push(source);
    v.push(scope);
    v.extend_from_slice(addr);
    v
}

fn qname_text(m: &DnsMessage<'_>) -> String {
    let q = m.question().expect("question present");
    let mut buf = NameBuf::new();
    q.name.write_lower(&mut buf).expect("name renders");
    buf.as_str().to_string()
}

fn name_at(msg: &[u8], offset: usize) -> Result<String, DnsError> {
    let mut buf = NameBuf::new();
    Name::from_message(msg, offset).write_lower(&mut buf)?;
    Ok(buf.as_str().to_string())
}

/// A query for `www.Google.COM` A IN with RD set.
fn simple_query() -> Vec<u8> {
    let mut m = header(0xBEEF, 0x0100, [1, 0, 0, 0]);
    question(&mut m, &wire_name(&[b"www", b"Google", b"COM"]), 1, 1);
    m
}

#[test]
fn short_header_is_the_only_error() {
    for len in 0..HEADER_LEN {
        let bytes = vec![0u8; len];
        assert_eq!(parse(&bytes).err(), Some(DnsError::ShortHeader(len)));
    }
    let m = parse(&[0u8; HEADER_LEN]).expect("bare header parses");
    assert_eq!(m.len(), 12);
    assert!(m.question().is_none());
    assert!(m.faults().is_empty());
}

#[test]
fn header_fields() {
    // QR, opcode 2, AA, TC, RD | RA, Z, AD, CD, rcode 3
    let flags =
        0x8000 | (2 << 11) | 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010 | 3;
    let m = header(0x1234, flags, [0, 0, 0, 0]);
    let p = parse(&m).expect("parses");
    assert_eq!(p.id(), 0x1234);
    assert!(p.is_response());
    assert_eq!(p.opcode(), 2);
    assert!(p.aa() && p.tc() && p.rd() && p.ra() && p.ad() && p.cd());
    assert_eq!(p.rcode(), 3);
    let m = header(7, 0, [1, 2, 3, 4]);
    let p = parse(&m).expect("parses");
    assert!(!p.is_response() && !p.aa() && !p.tc() && !p.rd() && !p.ra() && !p.ad() && !p.cd());
    assert_eq!(
        (p.qdcount(), p.ancount(), p.nscount(), p.arcount()),
        (1, 2, 3, 4)
    );
    assert_eq!(p.rcode(), 0);
    assert!(p.faults().contains(Faults::QUESTION_TRUNCATED));
}

#[test]
fn simple_query_is_lower_cased_without_trailing_dot() {
    let m = simple_query();
    let p = parse(&m).expect("parses");
    assert_eq!(qname_text(&p), "www.google.com");
    let q = p.question().expect("question");
    assert_eq!((q.qtype, q.qclass), (1, 1));
    assert_eq!(q.name.offset(), 12);
    assert_eq!(q.name.wire_len(), Ok(16));
    assert!(p.faults().is_empty());
    assert!(!p.has_rrsig_answer());
    assert!(p.edns().is_none());
    assert_eq!(p.len(), m.len());
}

#[test]
fn root_name_is_empty_string() {
    let mut m = header(1, 0, [1, 0, 0, 0]);
    question(&mut m, &[0], 2, 1);
    let p = parse(&m).expect("parses");
    assert_eq!(qname_text(&p), "");
    assert_eq!(p.question().map(|q| q.qtype), Some(2));
}

#[test]
fn valid_compression_pointer() {
    let mut m = simple_query();
    // Answer: "mail" + pointer to "google.com" (offset 16) = mail.google.com.
    let owner = [4, b'm', b'a', b'i', b'l', 0xC0, 16];
    let answer_at = m.len();
    rr(&mut m, &owner, 1, 1, 300, &[192, 0, 2, 1]);
    m[7] = 1; // ancount
    let p = parse(&m).expect("parses");
    assert!(p.faults().is_empty(), "{:?}", p.faults());
    assert_eq!(name_at(&m, answer_at).as_deref(), Ok("mail.google.com"));
    // A pointer straight to the question name.
    let mut m2 = simple_query();
    let at = m2.len();
    m2.extend_from_slice(&[0xC0, 12]);
    assert_eq!(name_at(&m2, at).as_deref(), Ok("www.google.com"));
    assert_eq!(Name::from_message(&m2, at).wire_len(), Ok(16));
}

#[test]
fn forward_pointer_is_rejected() {
    let mut m = header(1, 0, [1, 0, 0, 0]);
    m.extend_from_slice(&[0xC0, 18]); // points past itself
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&wire_name(&[b"x"]));
    let p = parse(&m).expect("parses");
    assert!(p.question().is_none());
    assert!(p.faults().contains(Faults::QUESTION_BAD_NAME));
    assert_eq!(name_at(&m, 12), Err(DnsError::BadPointer));
}

#[test]
fn self_pointer_is_rejected() {
    let mut m = header(1, 0, [1, 0, 0, 0]);
    m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let p = parse(&m).expect("parses");
    assert!(p.question().is_none());
    assert!(p.faults().contains(Faults::QUESTION_BAD_NAME));
    assert_eq!(name_at(&m, 12), Err(DnsError::BadPointer));
}

#[test]
fn pointer_loops_are_rejected() {
    // offset 12: "a" then pointer to 12 (loops back to the start of its own run).
    let mut m = header(1, 0, [0, 0, 0, 0]);
    m.extend_from_slice(&[1, b'a', 0xC0, 12]);
    assert_eq!(name_at(&m, 12), Err(DnsError::BadPointer));
    // Two pointers pointing at each other: 16 -> 18 is forward, 18 -> 16 backward, then
    // 16 -> 18 is no longer before the run start.
    let mut m = header(1, 0, [0, 0, 0, 0]);
    m.extend_from_slice(&[0, 0, 0, 0, 0xC0, 18, 0xC0, 16]);
    assert_eq!(name_at(&m, 18), Err(DnsError::BadPointer));
    // Pointing into the middle of a label run that leads back to the pointer.
    let mut m = header(1, 0, [0, 0, 0, 0]);
    m.extend_from_slice(&[1, b'a', 1, b'b', 0xC0, 14]);
    assert_eq!(name_at(&m, 12), Err(DnsError::BadPointer));
}

#[test]
fn pointer_chain_is_capped() {
    let mut m = header(1, 0, [0, 0, 0, 0]);
    m.extend_from_slice(&[0, 0]); // root name at 12
    for i in 1..=MAX_POINTER_JUMPS + 1 {
        let target = u16::try_from(12 + 2 * (i - 1)).expect("fits") | 0xC000;
        m.extend_from_slice(&target.to_be_bytes());
    }
    let at = |jumps: usize| 12 + 2 * jumps;
    assert_eq!(name_at(&m, at(MAX_POINTER_JUMPS)).as_deref(), Ok(""));
    assert_eq!(
        name_at(&m, at(MAX_POINTER_JUMPS + 1)),
        Err(DnsError::TooManyPointers)
    );
}

#[test]
fn reserved_label_types_keep_their_value() {
    let mut m = header(1, 0, [1, 0, 0, 0]);
    m.extend_from_slice(&[0x41, 0, 0, 1, 0, 1]);
    let p = parse(&m).expect("parses");
    assert!(p.question().is_none());
    assert!(p.faults().contains(Faults::QUESTION_TRUNCATED));
    assert_eq!(name_at(&m, 12), Err(DnsError::BadLabelType(0x40)));
    let mut m = header(1, 0, [0, 0, 0, 0]);
    m.extend_from_slice(&[0x80, 0]);
    assert_eq!(name_at(&m, 12), Err(DnsError::BadLabelType(0x80)));
}

#[test]
fn truncated_question() {
    let full = simple_query();
    for cut in HEADER_LEN..full.len() {
        let p = parse(&full[..cut]).expect("header present");
        assert!(p.question().is_none(), "cut {cut}");
        assert_eq!(p.faults(), Faults::QUESTION_TRUNCATED, "cut {cut}");
        assert!(p.faults().is_truncated());
    }
    let mut buf = NameBuf::new();
    assert_eq!(
        Name::from_message(&full[..20], 12).write_lower(&mut buf),
        Err(DnsError::NameTruncated)
    );
    assert!(buf.is_empty(), "buffer cleared on error");
}

#[test]
fn truncated_sections_are_flagged_and_keep_what_was_read() {
    let mut m = simple_query();
    m[2] |= 0x80;
    let owner = [0xC0, 12];
    rr(&mut m, &owner, TYPE_RRSIG, 1, 60, &[1, 2, 3]);
    let one_answer = m.len();
    rr(&mut m, &owner, 1, 1, 60, &[1, 2, 3, 4]);
    m[7] = 2; // ancount
    let p = parse(&m).expect("parses");
    assert!(p.faults().is_empty());
    assert!(p.has_rrsig_answer());
    // Cut inside the second answer.
    let p = parse(&m[..one_answer + 5]).expect("parses");
    assert_eq!(p.faults(), Faults::ANSWER_TRUNCATED);
    assert!(p.has_rrsig_answer());
    assert_eq!(qname_text(&p), "www.google.com");
    // Announce authority and additional records that are missing.
    let mut m2 = m.clone();
    m2[9] = 1;
    assert_eq!(
        parse(&m2).expect("parses").faults(),
        Faults::AUTHORITY_TRUNCATED
    );
    let mut m3 = m.clone();
    m3[11] = 1;
    assert_eq!(
        parse(&m3).expect("parses").faults(),
        Faults::ADDITIONAL_TRUNCATED
    );
    // RDLENGTH running past the end.
    let mut m4 = simple_query();
    rr(&mut m4, &owner, 1, 1, 60, &[1, 2, 3, 4]);
    m4[7] = 1;
    let len = m4.len();
    m4[len - 5] = 9; // rdlength 4 -> 9
    assert_eq!(
        parse(&m4).expect("parses").faults(),
        Faults::ANSWER_TRUNCATED
    );
}

#[test]
fn huge_counts_on_short_message_stay_bounded() {
    let mut m = simple_query();
    m[4] = 0xFF;
    m[5] = 0xFF;
    m[6] = 0xFF;
    m[7] = 0xFF;
    let p = parse(&m).expect("parses");
    assert_eq!(p.qdcount(), 0xFFFF);
    assert_eq!(qname_text(&p), "www.google.com");
    assert_eq!(p.faults(), Faults::QUESTION_TRUNCATED);
}

#[test]
fn rrsig_only_counts_in_the_answer_section() {
    let mut m = simple_query();
    let owner = [0xC0, 12];
    rr(&mut m, &owner, 1, 1, 60, &[1, 2, 3, 4]);
    rr(&mut m, &owner, TYPE_RRSIG, 1, 60, &[0; 20]);
    m[7] = 1; // answer: A; authority: RRSIG
    m[9] = 1;
    let p = parse(&m).expect("parses");
    assert!(!p.has_rrsig_answer());
    assert!(p.faults().is_empty());
    m[7] = 2;
    m[9] = 0;
    let p = parse(&m).expect("parses");
    assert!(p.has_rrsig_answer());
}

fn query_with_opt(ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut m = simple_query();
    rr(&mut m, &[0], TYPE_OPT, 1232, ttl, rdata);
    m[11] = 1;
    m
}

#[test]
fn opt_without_ecs() {
    let cookie = option(10, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let m = query_with_opt(0x0000_8000, &cookie);
    let p = parse(&m).expect("parses");
    let e = p.edns().expect("edns");
    assert_eq!(
        e,
        Edns {
            udp_size: 1232,
            extended_rcode: 0,
            version: 0,
            dnssec_ok: true,
            ecs: None
        }
    );
    assert!(p.faults().is_empty());
    let m = query_with_opt(0x0101_0000, &[]);
    let e = parse(&m).expect("parses").edns().expect("edns");
    assert_eq!((e.extended_rcode, e.version, e.dnssec_ok), (1, 1, false));
}

#[test]
fn opt_with_ecs_v4() {
    let mut rdata = option(10, &[9; 8]);
    rdata.extend(option(
        OPTION_CLIENT_SUBNET,
        &ecs_body(1, 24, 0, &[192, 0, 2]),
    ));
    let m = query_with_opt(0, &rdata);
    let ecs = parse(&m)
        .expect("parses")
        .edns()
        .and_then(|e| e.ecs)
        .expect("ecs");
    assert_eq!(ecs.family, 1);
    assert_eq!((ecs.source_prefix, ecs.scope_prefix), (24, 0));
    assert_eq!(ecs.addr, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)));
    // /0 carries no address bytes.
    let m = query_with_opt(0, &option(8, &ecs_body(1, 0, 0, &[])));
    let ecs = parse(&m)
        .expect("parses")
        .edns()
        .and_then(|e| e.ecs)
        .expect("ecs");
    assert_eq!(ecs.addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
}

#[test]
fn opt_with_ecs_v6() {
    let addr = [0x20, 0x01, 0x04, 0x70, 0x1f, 0x0b, 0x16];
    let m = query_with_opt(0, &option(8, &ecs_body(2, 56, 0, &addr)));
    let p = parse(&m).expect("parses");
    let ecs = p.edns().and_then(|e| e.ecs).expect("ecs");
    assert_eq!(ecs.family, 2);
    assert_eq!(ecs.source_prefix, 56);
    assert_eq!(ecs.addr.to_string(), "2001:470:1f0b:1600::");
    assert!(p.faults().is_empty());
}

#[test]
fn malformed_ecs_and_opt() {
    // Five address bytes for IPv4.
    let m = query_with_opt(0, &option(8, &ecs_body(1, 32, 0, &[1, 2, 3, 4, 5])));
    let p = parse(&m).expect("parses");
    assert_eq!(p.edns().map(|e| e.ecs), Some(None));
    // Unknown family.
    let m = query_with_opt(0, &option(8, &ecs_body(3, 8, 0, &[1])));
    assert_eq!(parse(&m).expect("parses").edns().map(|e| e.ecs), Some(None));
    // Too short to hold family and prefixes.
    let m = query_with_opt(0, &option(8, &[0, 1, 24]));
    assert_eq!(parse(&m).expect("parses").edns().map(|e| e.ecs), Some(None));
    // Option length running past the RDATA.
    let mut bad = option(8, &ecs_body(1, 24, 0, &[1, 2, 3]));
    bad[3] = 40;
    let m = query_with_opt(0, &bad);
    let p = parse(&m).expect("parses");
    assert_eq!(p.edns().map(|e| e.ecs), Some(None));
    assert_eq!(p.faults(), Faults::OPT_MALFORMED);
}

#[test]
fn opt_owner_and_duplicates() {
    let mut m = simple_query();
    rr(&mut m, &[0xC0, 12], TYPE_OPT, 512, 0, &[]);
    rr(&mut m, &[0], TYPE_OPT, 4096, 0, &[]);
    m[11] = 2;
    let p = parse(&m).expect("parses");
    assert_eq!(p.faults(), Faults::OPT_MALFORMED | Faults::MULTIPLE_OPT);
    assert_eq!(p.edns().map(|e| e.udp_size), Some(512));
}

#[test]
fn trailing_bytes_are_flagged() {
    let mut m = simple_query();
    m.extend_from_slice(&[0, 0, 0]);
    let p = parse(&m).expect("parses");
    assert_eq!(p.faults(), Faults::TRAILING_BYTES);
    assert!(!p.faults().is_truncated());
    assert_eq!(qname_text(&p), "www.google.com");
}

#[test]
fn case_folding_and_escaping() {
    let mut m = header(1, 0, [1, 0, 0, 0]);
    let labels: [&[u8]; 3] = [b"MiXeD-Case_09", b"a.b\\c d", &[0x00, 0x7F, 0xFF, b'Z']];
    question(&mut m, &wire_name(&labels), 1, 1);
    let p = parse(&m).expect("parses");
    let text = qname_text(&p);
    assert_eq!(text, "mixed-case_09.a\\.b\\\\c\\032d.\\000\\127\\255z");
    assert!(text.is_ascii());
}

#[test]
fn label_of_63_bytes_and_names_of_255_bytes() {
    let l63 = [b'X'; 63];
    let l61 = [b'y'; 61];
    let mut m = header(1, 0, [1, 0, 0, 0]);
    question(&mut m, &wire_name(&[&l63, &l63, &l63, &l61]), 1, 1);
    let p = parse(&m).expect("parses");
    let q = p.question().expect("255-byte name is legal");
    assert_eq!(q.name.wire_len(), Ok(255));
    let text = qname_text(&p);
    assert_eq!(text.len(), 63 * 3 + 61 + 3);
    assert!(text.starts_with(&"x".repeat(63)));
    // One more byte is too long.
    let l62 = [b'y'; 62];
    let mut m = header(1, 0, [1, 0, 0, 0]);
    question(&mut m, &wire_name(&[&l63, &l63, &l63, &l62]), 1, 1);
    let p = parse(&m).expect("parses");
    assert!(p.question().is_none());
    assert!(p.faults().contains(Faults::QUESTION_BAD_NAME));
    assert_eq!(name_at(&m, 12), Err(DnsError::NameTooLong));
}

#[test]
fn longest_escaped_name_fits_the_buffer() {
    let l63 = [0xFF; 63];
    let l61 = [0x01; 61];
    let mut m = header(1, 0, [0, 0, 0, 0]);
    m.extend_from_slice(&wire_name(&[&l63, &l63, &l63, &l61]));
    let text = name_at(&m, 12).expect("renders");
    assert_eq!(text.len(), 250 * 4 + 3);
    assert!(text.len() <= NAME_TEXT_MAX);
    assert!(text.starts_with("\\255\\255"));
    assert!(text.ends_with("\\001"));
}

#[test]
fn fuzz_body_handles_samples() {
    let mut m = simple_query();
    rr(
        &mut m,
        &[0],
        TYPE_OPT,
        1232,
        0,
        &option(8, &ecs_body(1, 24, 0, &[10, 0, 0])),
    );
    m[11] = 1;
    for cut in 0..=m.len() {
        fuzz_parse(&m[..cut]);
    }
    fuzz_parse(&[0xC0; 64]);
    // The sample parses back to what was built.
    let p = parse(&m).expect("parses");
    assert_eq!(
        p.edns()
            .and_then(|e| e.ecs)
            .map(|e| e.addr.to_string())
            .as_deref(),
        Some("10.0.0.0")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_parse(&bytes);
        if let Ok(m) = parse(&bytes) {
            prop_assert_eq!(m.len(), bytes.len());
            if let Some(q) = m.question() {
                let mut buf = NameBuf::new();
                prop_assert!(q.name.write_lower(&mut buf).is_ok());
                prop_assert!(buf.len() <= NAME_TEXT_MAX);
            }
        } else {
            prop_assert!(bytes.len() < HEADER_LEN);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..6),
        cut in 0usize..80,
    ) {
        let mut m = simple_query();
        rr(&mut m, &[0xC0, 12], TYPE_RRSIG, 1, 60, &[1, 2, 3]);
        rr(&mut m, &[0], TYPE_OPT, 1232, 0, &option(8, &ecs_body(2, 56, 0, &[0x20, 1, 4, 0x70, 0x1f, 0xb, 0x16])));
        m[7] = 1;
        m[11] = 1;
        for (i, b) in flips {
            if let Some(slot) = m.get_mut(i) {
                *slot = b;
            }
        }
        let keep = m.len().saturating_sub(cut);
        m.truncate(keep);
        fuzz_parse(&m);
        let p = parse(&m);
        prop_assert_eq!(p.is_ok(), m.len() >= HEADER_LEN);
    }
}

/// Straightforward reference rendering of a label list (the documented text form).
fn reference_text(labels: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                b'!'..=b'~' => out.push(char::from(b.to_ascii_lowercase())),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
    }
    out
}

fn label_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9', Just(b'-')], 1..=63),
        1 => proptest::collection::vec(any::<u8>(), 1..=63),
        1 => proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\\'), Just(b' '), b'A'..=b'Z'], 1..=20),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rendering_matches_reference(
        labels in proptest::collection::vec(label_strategy(), 0..8),
        split in 0usize..8,
        trailer in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let wire = wire_name(&refs);
        let wire_len = wire.len();
        let expected = reference_text(&labels);
        // Uncompressed, followed by arbitrary bytes.
        let mut m = header(1, 0, [0, 0, 0, 0]);
        m.extend_from_slice(&wire);
        m.extend_from_slice(&trailer);
        let got = name_at(&m, 12);
        if wire_len <= MAX_NAME_WIRE_LEN {
            prop_assert_eq!(got.as_deref(), Ok(expected.as_str()));
        } else {
            prop_assert_eq!(got, Err(DnsError::NameTooLong));
        }
        // Compressed: the first `split` labels, then a pointer to the rest written earlier.
        let split = split.min(labels.len());
        let mut m = header(1, 0, [0, 0, 0, 0]);
        let suffix: Vec<&[u8]> = refs[split..].to_vec();
        m.extend_from_slice(&wire_name(&suffix));
        let at = m.len();
        for l in &refs[..split] {
            m.push(u8::try_from(l.len()).expect("fits"));
            m.extend_from_slice(l);
        }
        m.extend_from_slice(&[0xC0, 12]);
        m.extend_from_slice(&trailer);
        let got = name_at(&m, at);
        if wire_len <= MAX_NAME_WIRE_LEN {
            prop_assert_eq!(got.as_deref(), Ok(expected.as_str()));
            prop_assert_eq!(Name::from_message(&m, at).wire_len(), Ok(wire_len));
        } else {
            prop_assert!(got.is_err());
        }
    }
}
