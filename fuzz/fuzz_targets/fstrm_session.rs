//! Fuzz target: the Frame Streams receiver handshake (READY/ACCEPT/START/STOP/FINISH order,
//! content types, frame limits) over arbitrary bytes split into arbitrary reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wire::dnstap::session::fuzz_session(data));
