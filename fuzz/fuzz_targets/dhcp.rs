//! Fuzz target: the DHCPv4 and DHCPv6 parsers, their option walkers, relay nesting and FQDN
//! rendering over arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wire::dhcp::fuzz_parse(data));
