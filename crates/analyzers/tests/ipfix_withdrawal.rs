//! IPFIX template withdrawal (RFC 7011 section 8.1) through the flow decoder: hand-built
//! messages of one exporter define templates, send data, withdraw one or all templates, and
//! the exporter health the decoder reports counts the withdrawals and the data sets whose
//! template is gone as missing templates. NetFlow v9 has no withdrawal.

use std::net::IpAddr;

use analyzers::flow::decode::{Event, Health};
use analyzers::flow::{FlowDecoder, FlowInput};

/// An IPFIX message (observation domain 1) with the given sets, `(set id, body)`.
fn ipfix(seq: u32, sets: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = vec![0, 10, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    for (id, body) in sets {
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        b.extend_from_slice(body);
    }
    let len = b.len() as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// A NetFlow v9 packet (source id 1) with the given flowsets.
fn v9(seq: u32, sets: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = vec![0, 9, 0, sets.len() as u8, 0, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    for (id, body) in sets {
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        b.extend_from_slice(body);
    }
    b
}

/// Template 256: packetDeltaCount (2), octetDeltaCount (1), 4 bytes each.
const T256: [u8; 12] = [1, 0, 0, 2, 0, 2, 0, 4, 0, 1, 0, 4];
/// Template 257: protocolIdentifier (4), 1 byte (with 3 bytes of padding in its data).
const T257: [u8; 8] = [1, 1, 0, 1, 0, 4, 0, 1];
/// Options template 258: scope observationDomainId (149); samplingInterval (34).
const O258: [u8; 14] = [1, 2, 0, 2, 0, 1, 0, 149, 0, 4, 0, 34, 0, 4];
/// One record of template 256: 3 packets, 300 bytes.
const D256: [u8; 8] = [0, 0, 0, 3, 0, 0, 1, 44];

/// Decodes one datagram: (records, health).
fn decode(dec: &mut FlowDecoder, dgram: &[u8]) -> (u64, Health) {
    let exporter: IpAddr = "192.0.2.9".parse().unwrap();
    let mut records = 0;
    let mut health = None;
    dec.decode(FlowInput::Netflow, exporter, dgram, &mut |ev| match ev {
        Event::Record(_, r) => records += r.packets,
        Event::Health(_, h) => health = Some(h),
        Event::Undecodable => panic!("undecodable datagram"),
    });
    (records, health.unwrap())
}

/// Defines 256, 257 and options 258; one record of 256 is decoded.
fn defined(dec: &mut FlowDecoder) {
    let t = [&T256[..], &T257[..]].concat();
    let (packets, h) = decode(dec, &ipfix(0, &[(2, &t), (3, &O258), (256, &D256)]));
    assert_eq!(packets, 3);
    assert_eq!(h.templates, Some(3));
    assert_eq!(h.missing_templates, 0);
}

#[test]
fn withdrawn_template_data_is_missing() {
    let mut dec = FlowDecoder::new(16);
    defined(&mut dec);
    let (_, h) = decode(&mut dec, &ipfix(1, &[(2, &[1, 0, 0, 0])]));
    assert_eq!(h.template_withdrawals, 1);
    assert_eq!(h.templates, Some(2));
    assert_eq!(h.malformed, 0);
    let (packets, h) = decode(&mut dec, &ipfix(1, &[(256, &D256)]));
    assert_eq!((packets, h.missing_templates), (0, 1));
    // Defined again: decoded again.
    let (packets, h) = decode(&mut dec, &ipfix(1, &[(2, &T256), (256, &D256)]));
    assert_eq!((packets, h.missing_templates, h.templates), (3, 0, Some(3)));
    assert_eq!(dec.templates().stats().withdrawn, 1);
}

#[test]
fn withdraw_all_templates_keeps_options_templates() {
    let mut dec = FlowDecoder::new(16);
    defined(&mut dec);
    let (_, h) = decode(&mut dec, &ipfix(1, &[(2, &[0, 2, 0, 0])]));
    assert_eq!((h.template_withdrawals, h.templates), (2, Some(1)));
    let (packets, h) = decode(&mut dec, &ipfix(1, &[(256, &D256), (257, &[6, 0, 0, 0])]));
    assert_eq!((packets, h.missing_templates), (0, 2));
    assert!(
        dec.templates()
            .get("192.0.2.9".parse().unwrap(), 1, 258)
            .is_some()
    );
}

#[test]
fn withdraw_all_options_templates() {
    let mut dec = FlowDecoder::new(16);
    defined(&mut dec);
    let (_, h) = decode(&mut dec, &ipfix(1, &[(3, &[0, 3, 0, 0])]));
    assert_eq!((h.template_withdrawals, h.templates), (1, Some(2)));
    let (packets, h) = decode(&mut dec, &ipfix(1, &[(256, &D256)]));
    assert_eq!((packets, h.missing_templates), (3, 0));
    let sampling = [0, 0, 0, 1, 0, 0, 0, 10];
    let (_, h) = decode(&mut dec, &ipfix(2, &[(258, &sampling)]));
    assert_eq!(h.missing_templates, 1);
}

#[test]
fn withdraw_unknown_id_changes_nothing() {
    let mut dec = FlowDecoder::new(16);
    defined(&mut dec);
    // 999 and 1000 were never defined.
    let (_, h) = decode(
        &mut dec,
        &ipfix(1, &[(2, &[3, 231, 0, 0]), (3, &[3, 232, 0, 0])]),
    );
    assert_eq!(h.malformed, 0);
    assert_eq!((h.template_withdrawals, h.templates), (0, Some(3)));
    let (packets, h) = decode(&mut dec, &ipfix(1, &[(256, &D256)]));
    assert_eq!((packets, h.missing_templates), (3, 0));
}

#[test]
fn netflow_v9_templates_are_not_withdrawn() {
    let mut dec = FlowDecoder::new(16);
    let (_, h) = decode(&mut dec, &v9(0, &[(0, &T256)]));
    assert_eq!(h.templates, Some(1));
    // A v9 template record without fields is malformed, not a withdrawal.
    let (_, h) = decode(&mut dec, &v9(1, &[(0, &[1, 0, 0, 0])]));
    assert_eq!((h.template_withdrawals, h.malformed), (0, 1));
    assert_eq!(h.templates, Some(1));
    let (packets, h) = decode(&mut dec, &v9(2, &[(256, &D256)]));
    assert_eq!((packets, h.missing_templates), (3, 0));
}
