//! Fuzz target: the connection table over arbitrary packet sequences, and the application
//! signatures over arbitrary payloads in every context.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flow::conn::fuzz_conn(data);
    if let [sel, a, b, payload @ ..] = data {
        let ctx = analyzers::app::Context {
            transport: if sel & 1 == 0 {
                analyzers::app::Transport::Tcp
            } else {
                analyzers::app::Transport::Udp
            },
            from_initiator: sel & 2 == 0,
            initiator_port: u16::from(*a) << (sel >> 4 & 7),
            responder_port: u16::from(*b) << (sel >> 2 & 3),
        };
        let _ = analyzers::app::detect(payload, &ctx);
    }
});
