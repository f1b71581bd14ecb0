//! Fuzz target: the filter compiler on arbitrary text, then the compiled program on
//! arbitrary frames for every link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::bpf::Program;
use wire::capture::LinkType;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fuzz_target!(|data: &[u8]| {
    // The first line is the expression, the rest is the frame.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (expr, rest) = data.split_at(split);
    let frame = rest.get(1..).unwrap_or_default();
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    for link in LINKS {
        if let Ok(p) = Program::compile(expr, link) {
            assert!(!p.insns().is_empty());
            // Compiled programs always pass the kernel's checks.
            assert!(Program::from_insns(p.insns().to_vec()).is_ok());
            let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            let _ = p.matches(frame, wire_len);
        }
    }
});
