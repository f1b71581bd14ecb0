//! Fuzz target: Frame Streams framing and the dnstap protobuf decoder over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wire::dnstap::fuzz_dnstap(data));
