//! Cipher suite names checked against tshark's own table (`tshark -G values`, field
//! `tls.handshake.ciphersuite`): every suite wirelens names must carry tshark's name, and every
//! suite tshark names inside the IANA registry ranges must be named by wirelens too. Values
//! tshark names but the registry does not assign (private and pre-standard suites) must stay
//! numbers in wirelens.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use analyzers::tls::names::cipher_name;

/// tshark's cipher suite value strings, GREASE left out.
fn tshark_ciphers() -> BTreeMap<u16, String> {
    let out = Command::new("tshark")
        .args(["-G", "values"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark -G values failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (kind, field, value, name) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (kind == "V" && field == "tls.handshake.ciphersuite" && !name.contains("GREASE"))
                .then(|| Some((value.parse::<u16>().ok()?, name.to_owned())))?
        })
        .collect()
}

/// Suites tshark names that the IANA registry does not assign: SSLv3 Fortezza, the export1024
/// and early GOST drafts, pre-standard ChaCha20 and ECJPAKE codes, Chinese SM and Salsa20
/// private suites, and SSL_RSA_FIPS.
fn outside_registry(v: u16) -> bool {
    matches!(v, 0x001c..=0x001d | 0x0060..=0x0066 | 0x0080..=0x0083 | 0xc0ff | 0xcc13..=0xcc15)
        || v >= 0xe000
}

#[test]
fn cipher_names_equal_tshark() {
    if !support::tool_runs("tshark") {
        return support::missing("tshark");
    }
    let want = tshark_ciphers();
    assert!(want.len() > 300, "tshark names {} suites", want.len());
    let mut errors = Vec::new();
    let mut named = 0;
    for v in 0..=u16::MAX {
        let got = cipher_name(v);
        named += usize::from(got.is_some());
        match (want.get(&v), got) {
            (Some(t), Some(w)) if t != w => {
                errors.push(format!("{v:#06x}: tshark {t}, wirelens {w}"))
            }
            (Some(t), None) if !outside_registry(v) => {
                errors.push(format!("{v:#06x}: tshark {t}, wirelens unnamed"))
            }
            (Some(t), Some(w)) if outside_registry(v) => errors.push(format!(
                "{v:#06x}: outside the registry, tshark {t}, wirelens {w}"
            )),
            // Registered after this tshark release (AEGIS, 2024).
            (None, Some(w)) if !matches!(v, 0x1306 | 0x1307) => {
                errors.push(format!("{v:#06x}: tshark unnamed, wirelens {w}"))
            }
            _ => {}
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(named, 352, "suites of the IANA registry named");
}
