//! Fuzz target: QUIC long headers, Initial opening, frame walking and CRYPTO reassembly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wire::quic::fuzz_quic(data));
