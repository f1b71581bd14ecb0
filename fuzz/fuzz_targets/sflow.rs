//! Fuzz target: the sFlow v5 decoder (samples, flow and counter records, the sampled header
//! through the packet decoder) over arbitrary bytes, then the flow handler on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::sflow::{Datagram, Sample};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Datagram::parse(data) {
        for s in d.samples() {
            match s {
                Ok(Sample::Flow(f)) => {
                    for r in f.records() {
                        let _ = r;
                    }
                    let _ = f.to_flow();
                }
                Ok(Sample::Counters(c)) => {
                    for r in c.records() {
                        let _ = r;
                    }
                }
                _ => {}
            }
        }
    }
    let mut dec = analyzers::flow::FlowDecoder::new(16);
    dec.decode(
        analyzers::flow::FlowInput::Sflow,
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        data,
        &mut |_| {},
    );
});
