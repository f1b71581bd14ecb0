//! Differential property test: random messages built and serialized by hickory-proto (with
//! its name compression) are parsed by `wire::dns` and by hickory's decoder, and the header,
//! counts, first question, RRSIG presence and EDNS/ECS must agree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NULL};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use proptest::prelude::*;
use wire::dns::{self, NameBuf};

#[derive(Debug, Clone)]
enum Answer {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Vec<String>),
    Rrsig(Vec<u8>),
}

/// ECS address, source prefix, scope prefix.
type Subnet = (IpAddr, u8, u8);
/// UDP size, version, DO bit, client subnet.
type EdnsSpec = (u16, u8, bool, Option<Subnet>);

#[derive(Debug, Clone)]
struct Spec {
    id: u16,
    response: bool,
    opcode: u8,
    flags: [bool; 6],
    rcode: u8,
    question: Option<(Vec<String>, u16, u16)>,
    answers: Vec<Answer>,
    authorities: usize,
    edns: Option<EdnsSpec>,
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9-]{0,14}"
}

fn labels() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(label(), 0..5)
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| Answer::A(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| Answer::Aaaa(Ipv6Addr::from(b))),
        labels().prop_map(Answer::Cname),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Answer::Rrsig),
    ]
}

fn subnet() -> impl Strategy<Value = Subnet> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32, 0u8..=32).prop_map(|(a, s, c)| (IpAddr::from(a), s, c)),
        (any::<[u8; 16]>(), 0u8..=128, 0u8..=128).prop_map(|(a, s, c)| (IpAddr::from(a), s, c)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<u16>(),
            any::<bool>(),
            0u8..16,
            any::<[bool; 6]>(),
            0u8..16,
        ),
        proptest::option::of((labels(), 1u16..=65535, 1u16..=255)),
        proptest::collection::vec(answer(), 0..5),
        0usize..3,
        proptest::option::of((
            512u16..=65535,
            0u8..3,
            any::<bool>(),
            proptest::option::of(subnet()),
        )),
    )
        .prop_map(
            |((id, response, opcode, flags, rcode), question, answers, authorities, edns)| Spec {
                id,
                response,
                opcode,
                flags,
                rcode,
                question,
                answers,
                authorities,
                edns,
            },
        )
}

fn name(labels: &[String]) -> Name {
    let mut n = Name::from_labels(labels.iter().map(|l| l.as_bytes())).expect("valid labels");
    n.set_fqdn(true);
    n
}

fn build(spec: &Spec) -> Message {
    let kind = if spec.response {
        MessageType::Response
    } else {
        MessageType::Query
    };
    let mut msg = Message::new(spec.id, kind, OpCode::from_u8(spec.opcode));
    let md = &mut msg.metadata;
    md.authoritative = spec.flags[0];
    md.truncation = spec.flags[1];
    md.recursion_desired = spec.flags[2];
    md.recursion_available = spec.flags[3];
    md.authentic_data = spec.flags[4];
    md.checking_disabled = spec.flags[5];
    md.response_code = ResponseCode::from(0, spec.rcode);
    let owner = match &spec.question {
        Some((labels, qtype, qclass)) => {
            let mut q = Query::query(name(labels), RecordType::from(*qtype));
            q.set_query_class(DNSClass::from(*qclass));
            msg.add_query(q);
            name(labels)
        }
        None => name(&["example".to_string(), "org".to_string()]),
    };
    for a in &spec.answers {
        let rdata = match a {
            Answer::A(ip) => RData::A(A(*ip)),
            Answer::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Answer::Cname(target) => RData::CNAME(CNAME(name(target))),
            Answer::Rrsig(bytes) => RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(bytes.clone()),
            },
        };
        msg.add_answer(Record::from_rdata(owner.clone(), 300, rdata));
    }
    for i in 0..spec.authorities {
        let ns = name(&[format!("ns{i}"), "example".to_string(), "org".to_string()]);
        msg.add_authority(Record::from_rdata(ns, 60, RData::A(A(Ipv4Addr::LOCALHOST))));
    }
    if let Some((udp, version, dnssec_ok, ecs)) = spec.edns {
        let mut e = Edns::new();
        e.set_max_payload(udp);
        e.set_version(version);
        e.set_dnssec_ok(dnssec_ok);
        if let Some((addr, source, scope)) = ecs {
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, source, scope)));
        }
        msg.set_edns(e);
    }
    msg
}

/// The address as it travels: only the first ceil(source/8) bytes, the rest zero.
fn truncated_addr(addr: IpAddr, source: u8) -> IpAddr {
    let keep = usize::from(source).div_ceil(8);
    match addr {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            o.iter_mut().skip(keep).for_each(|b| *b = 0);
            IpAddr::from(o)
        }
        IpAddr::V6(a) => {
            let mut o = a.octets();
            o.iter_mut().skip(keep).for_each(|b| *b = 0);
            IpAddr::from(o)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_hickory(spec in spec()) {
        let msg = build(&spec);
        let bytes = match msg.to_vec() {
            Ok(b) => b,
            Err(_) => return Err(TestCaseError::reject("hickory cannot encode this message")),
        };
        let theirs = Message::from_vec(&bytes).expect("hickory decodes its own output");
        let ours = dns::parse(&bytes).expect("header present");

        prop_assert!(ours.faults().is_empty(), "faults {:?}", ours.faults());
        prop_assert_eq!(ours.len(), bytes.len());

        let md = &theirs.metadata;
        prop_assert_eq!(ours.id(), md.id);
        prop_assert_eq!(ours.is_response(), md.message_type == MessageType::Response);
        prop_assert_eq!(ours.opcode(), u8::from(md.op_code));
        prop_assert_eq!(ours.aa(), md.authoritative);
        prop_assert_eq!(ours.tc(), md.truncation);
        prop_assert_eq!(ours.rd(), md.recursion_desired);
        prop_assert_eq!(ours.ra(), md.recursion_available);
        prop_assert_eq!(ours.ad(), md.authentic_data);
        prop_assert_eq!(ours.cd(), md.checking_disabled);
        prop_assert_eq!(u16::from(ours.rcode()), u16::from(md.response_code) & 0x0F);
        prop_assert_eq!(usize::from(ours.qdcount()), theirs.queries.len());
        prop_assert_eq!(usize::from(ours.ancount()), theirs.answers.len());
        prop_assert_eq!(usize::from(ours.nscount()), theirs.authorities.len());
        prop_assert_eq!(
            usize::from(ours.arcount()),
            theirs.additionals.len() + usize::from(theirs.edns.is_some())
        );

        match (ours.question(), theirs.queries.first()) {
            (Some(q), Some(tq)) => {
                let mut buf = NameBuf::new();
                q.name.write_lower(&mut buf).expect("name renders");
                let expected = tq.name().to_lowercase().to_ascii();
                let expected = expected.strip_suffix('.').unwrap_or(&expected);
                prop_assert_eq!(buf.as_str(), expected);
                prop_assert_eq!(q.qtype, u16::from(tq.query_type()));
                prop_assert_eq!(q.qclass, u16::from(tq.query_class()));
            }
            (None, None) => {}
            (a, b) => prop_assert!(false, "question mismatch: {:?} vs {:?}", a, b),
        }

        let rrsig = theirs.answers.iter().any(|r| r.record_type() == RecordType::RRSIG);
        prop_assert_eq!(ours.has_rrsig_answer(), rrsig);

        match (ours.edns(), theirs.edns.as_ref()) {
            (Some(e), Some(te)) => {
                prop_assert_eq!(e.udp_size, te.max_payload());
                prop_assert_eq!(e.version, te.version());
                prop_assert_eq!(e.dnssec_ok, te.flags().dnssec_ok);
                let their_ecs = match te.option(EdnsCode::Subnet) {
                    Some(EdnsOption::Subnet(s)) => Some(*s),
                    _ => None,
                };
                match (e.ecs, their_ecs) {
                    (Some(ecs), Some(ts)) => {
                        prop_assert_eq!(ecs.addr, ts.addr());
                        prop_assert_eq!(ecs.source_prefix, ts.source_prefix());
                        prop_assert_eq!(ecs.scope_prefix, ts.scope_prefix());
                        prop_assert_eq!(ecs.family, if ts.addr().is_ipv4() { 1 } else { 2 });
                    }
                    (None, None) => {}
                    (a, b) => prop_assert!(false, "ecs mismatch: {:?} vs {:?}", a, b),
                }
                // And both match what was put in.
                if let Some((_, _, _, Some((addr, source, scope)))) = spec.edns {
                    let ecs = e.ecs.expect("ecs present");
                    prop_assert_eq!(ecs.addr, truncated_addr(addr, source));
                    prop_assert_eq!((ecs.source_prefix, ecs.scope_prefix), (source, scope));
                }
            }
            (None, None) => {}
            (a, b) => prop_assert!(false, "edns mismatch: {:?} vs {:?}", a, b),
        }
    }
}

#[test]
fn compressed_answers_from_hickory_parse_cleanly() {
    let spec = Spec {
        id: 0x4242,
        response: true,
        opcode: 0,
        flags: [true, false, true, true, true, false],
        rcode: 3,
        question: Some((vec!["WWW".into(), "Example".into(), "ORG".into()], 28, 1)),
        answers: vec![
            Answer::Cname(vec!["cdn".into(), "example".into(), "org".into()]),
            Answer::Rrsig(vec![1, 2, 3]),
        ],
        authorities: 1,
        edns: Some((
            1232,
            0,
            true,
            Some((
                IpAddr::from([
                    0x20, 0x01, 0x04, 0x70, 0x1f, 0x0b, 0x16, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ]),
                56,
                0,
            )),
        )),
    };
    let bytes = build(&spec).to_vec().expect("encodes");
    let m = dns::parse(&bytes).expect("parses");
    assert!(m.faults().is_empty());
    assert_eq!(m.id(), 0x4242);
    assert_eq!(m.rcode(), 3);
    assert_eq!(dns::rcode_name(u16::from(m.rcode())), Some("NXDOMAIN"));
    let mut buf = NameBuf::new();
    let q = m.question().expect("question");
    q.name.write_lower(&mut buf).expect("renders");
    assert_eq!(buf.as_str(), "www.example.org");
    assert_eq!(dns::qtype_name(q.qtype), Some("AAAA"));
    assert!(m.has_rrsig_answer());
    let ecs = m.edns().and_then(|e| e.ecs).expect("ecs");
    assert_eq!(ecs.addr.to_string(), "2001:470:1f0b:1600::");
}
