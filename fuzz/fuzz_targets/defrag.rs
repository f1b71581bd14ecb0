//! Fuzz target: IPv4/IPv6 fragment reassembly over arbitrary insert and expiry sequences.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flow::defrag::fuzz_defrag(data));
