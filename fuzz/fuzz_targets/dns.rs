//! Fuzz target: the DNS message parser, its accessors and name rendering over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wire::dns::fuzz_parse(data));
