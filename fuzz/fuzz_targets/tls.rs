//! Fuzz target: TLS decoding of an arbitrary stream head — records, handshake messages, both
//! hellos, JA3/JA4, certificates and SSL 2.0 hellos — must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::tls::fingerprint::{ja3, ja4};
use wire::tls::x509::CertFields;
use wire::tls::{
    ClientHello, Messages, ServerHello, Sslv2ClientHello, certificates, collect_handshake,
};

fuzz_target!(|data: &[u8]| {
    let mut out = [0u8; 4096];
    let skip_ccs = data.first().is_some_and(|b| b & 1 == 1);
    let c = collect_handshake(data, &mut out, skip_ccs);
    assert!(c.len <= out.len() && c.consumed <= data.len());
    // Messages straight from the input too, so hello parsing sees arbitrary bodies.
    for hs in [&out[..c.len], data] {
        for m in Messages::new(hs) {
            if let Ok(ch) = ClientHello::parse(m.body) {
                let _ = (ja3(&ch), ja4(&ch), ch.sni(), ch.alpn().count(), ch.highest_version());
            }
            if let Ok(sh) = ServerHello::parse(m.body) {
                let _ = (sh.selected_version(), sh.alpn(), sh.is_hello_retry_request());
            }
            if let Ok(list) = certificates(m.body) {
                for der in list.take(8) {
                    if let Ok(f) = CertFields::parse(der) {
                        let _ = (f.subject_cn(), f.issuer_cn(), f.dns_names().count());
                    }
                }
            }
        }
    }
    let _ = Sslv2ClientHello::parse(data);
    if let Ok(f) = CertFields::parse(data) {
        let _ = (f.subject_cn(), f.dns_names().count());
    }
});
