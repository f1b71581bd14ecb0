//! Fuzz target: DNS-over-TCP stream reassembly over arbitrary segment sequences.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flow::tcp::fuzz_tcp(data));
