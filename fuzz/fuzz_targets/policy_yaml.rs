//! Fuzz target: the policy YAML parser on arbitrary text, then building every handler it names
//! as `wirelens read` does (errors are fine, panics are not).
#![no_main]

use analyzers::config::WindowConfig;
use analyzers::pipeline::{Handler, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader only ever hands it UTF-8 (it reads the file with `read_to_string`).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = policy::parse_document(text, WindowConfig::default()) else {
        return;
    };
    let limits = Limits {
        max_open_xacts: 16,
        ..Limits::default()
    };
    for p in &doc.policies {
        for spec in &p.handlers {
            if let Ok(h) = Handler::build(spec, format!("{}-{}", p.name, spec.name), &limits) {
                assert!(!h.schema().is_empty());
            }
        }
    }
});
