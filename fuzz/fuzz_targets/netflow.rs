//! Fuzz target: NetFlow v1/v5/v7/v9 and IPFIX through the flow decoder and its template cache.
//! The input is split at `0xff 0xfe` into several datagrams of one exporter, so templates
//! learned from one are used (and withdrawn, replaced, overflowed) by the next.
//!
//! Each datagram is also walked with the `wire` decoder alone, keeping the templates it
//! announces: every data record's compiled-plan decode, alone and set at a time, must equal
//! the walk over its fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::netflow::template::{Template, template_records};
use wire::netflow::{Datagram, SetKind};

/// Checks every data record of `dgram` against the templates learned so far (at most a few).
fn plan_equals_walk(dgram: &[u8], templates: &mut Vec<(u16, Box<Template>)>) {
    let Ok(d) = Datagram::parse(dgram) else {
        return;
    };
    let sets = d.sets();
    let ipfix = sets.is_ipfix();
    for set in sets.flatten() {
        match set.kind(ipfix) {
            SetKind::Template | SetKind::OptionsTemplate => {
                let options = set.kind(ipfix) == SetKind::OptionsTemplate;
                for def in template_records(set.body, ipfix, options).flatten() {
                    let Ok(t) = Template::from_def(&def) else {
                        continue;
                    };
                    templates.retain(|(id, _)| *id != def.id);
                    if templates.len() >= 8 {
                        templates.remove(0);
                    }
                    templates.push((def.id, Box::new(t)));
                }
            }
            SetKind::Data(id) => {
                if let Some((_, t)) = templates.iter().find(|(t_id, _)| *t_id == id) {
                    let mut walked = Vec::new();
                    for r in t.records(set.body) {
                        assert_eq!(r.to_flow(), r.to_flow_walked());
                        walked.push(r.to_flow_walked());
                    }
                    // The set-at-a-time decode the flow decoder uses reads the same.
                    assert!(t.flows(set.body).eq(walked));
                }
            }
            SetKind::Reserved(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // A small cache, so the refusal path is reached too.
    let mut dec = analyzers::flow::FlowDecoder::new(4);
    let exporter = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let mut records = 0u64;
    let mut templates = Vec::new();
    let mut rest = data;
    // Bounded by the input: each round consumes at least the separator or the rest.
    while !rest.is_empty() {
        let (dgram, next) = match rest.windows(2).position(|w| w == [0xff, 0xfe]) {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, &[][..]),
        };
        dec.decode(
            analyzers::flow::FlowInput::Netflow,
            exporter,
            dgram,
            &mut |ev| {
                if let analyzers::flow::decode::Event::Record(_, r) = ev {
                    records += r.packets.min(1);
                }
            },
        );
        plan_equals_walk(dgram, &mut templates);
        rest = next;
    }
    let _ = records;
});
