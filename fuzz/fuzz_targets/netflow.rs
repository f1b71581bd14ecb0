//! Fuzz target: NetFlow v1/v5/v7/v9 and IPFIX through the flow decoder and its template cache.
//! The input is split at `0xff 0xfe` into several datagrams of one exporter, so templates
//! learned from one are used (and withdrawn, replaced, overflowed) by the next.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small cache, so the refusal path is reached too.
    let mut dec = analyzers::flow::FlowDecoder::new(4);
    let exporter = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let mut records = 0u64;
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
        rest = next;
    }
    let _ = records;
});
