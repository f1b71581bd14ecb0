//! The `tls` handler: TLS handshakes read from the start of each TCP connection — client and
//! server hellos, versions offered and chosen, SNI, ALPN, cipher suite, JA3 and JA4 client
//! fingerprints, the server certificate (TLS ≤ 1.2, where it travels in clear) and the
//! ClientHello→ServerHello latency — summarized per period.
//!
//! The handler owns a bounded stream-head reassembler ([`flow::stream`]), so hellos split across
//! segments, reordered or retransmitted are read once, and memory stays within its caps under
//! hostile traffic (evictions and cuts are counted). A connection whose first bytes are not a TLS
//! record (HTTP, SSH, STARTTLS before its upgrade) costs one look and is then ignored. It does
//! not decrypt anything: TLS 1.3 certificates and anything after ChangeCipherSpec are out of
//! reach by design.

pub mod names;

use std::collections::BTreeSet;
use std::net::IpAddr;

use flow::stream::{Cut, Head, StreamConfig, StreamHeads, StreamStats, Verdict};
use metrics::cardinality::Cardinality;
use metrics::quantiles::Quantiles;
use wire::tls::fingerprint::{ja3, ja4};
use wire::tls::x509::CertFields;
use wire::tls::{
    CONTENT_CHANGE_CIPHER_SPEC, ClientHello, HS_CERTIFICATE, HS_CLIENT_HELLO, HS_SERVER_HELLO,
    HS_SERVER_HELLO_DONE, HandshakeEnd, Messages, ServerHello, Sslv2ClientHello, TlsError,
    certificates, collect_handshake,
};

use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::export::{Export, Value};
use crate::sketch::{self, TopNames, TopU16};
use crate::window::{Bucket, Window};

/// Metric groups of the `tls` handler.
pub const GROUPS: [&str; 7] = [
    "cardinality",
    "counters",
    "quantiles",
    "top_sni",
    "top_fingerprints",
    "top_params",
    "top_certificates",
];

/// Most subjectAltName DNS names counted per certificate (some carry hundreds).
const MAX_SAN_PER_CERT: usize = 32;

/// One period of TLS summaries.
#[derive(Clone, Default)]
pub struct TlsBucket {
    pub client_hellos: u64,
    pub server_hellos: u64,
    /// ServerHellos answering a ClientHello seen on the same connection.
    pub handshakes: u64,
    pub client_hellos_without_sni: u64,
    /// ServerHellos that are TLS 1.3 HelloRetryRequests.
    pub hello_retry_requests: u64,
    pub certificates: u64,
    /// Hellos or certificates that could not be decoded, or TLS streams that broke framing.
    pub malformed: u64,
    /// TLS streams that ended (FIN, RST, lost segment, head or budget cap) before the message
    /// waited for was complete.
    pub truncated: u64,
    /// Connections evicted from the full reassembly table.
    pub reassembly_evictions: u64,
    /// Directions cut by a lost segment.
    pub reassembly_gaps: u64,
    /// Directions cut at the per-direction head cap.
    pub reassembly_head_full: u64,
    /// Directions cut because the total byte budget was exhausted.
    pub reassembly_budget_refusals: u64,
    pub top_version_offered: TopU16,
    pub top_version_negotiated: TopU16,
    pub top_cipher: TopU16,
    pub top_sni: TopNames,
    pub top_ja3: TopNames,
    pub top_ja4: TopNames,
    pub top_alpn: TopNames,
    pub top_cert_subject: TopNames,
    pub top_cert_issuer: TopNames,
    pub top_cert_san: TopNames,
    pub sni_card: Cardinality,
    /// ClientHello→ServerHello, microseconds.
    pub handshake_latency: Quantiles,
}

impl Bucket for TlsBucket {
    fn merge(&mut self, o: &Self) {
        self.client_hellos += o.client_hellos;
        self.server_hellos += o.server_hellos;
        self.handshakes += o.handshakes;
        self.client_hellos_without_sni += o.client_hellos_without_sni;
        self.hello_retry_requests += o.hello_retry_requests;
        self.certificates += o.certificates;
        self.malformed += o.malformed;
        self.truncated += o.truncated;
        self.reassembly_evictions += o.reassembly_evictions;
        self.reassembly_gaps += o.reassembly_gaps;
        self.reassembly_head_full += o.reassembly_head_full;
        self.reassembly_budget_refusals += o.reassembly_budget_refusals;
        self.top_version_offered.merge(&o.top_version_offered);
        self.top_version_negotiated.merge(&o.top_version_negotiated);
        self.top_cipher.merge(&o.top_cipher);
        self.top_sni.merge(&o.top_sni);
        self.top_ja3.merge(&o.top_ja3);
        self.top_ja4.merge(&o.top_ja4);
        self.top_alpn.merge(&o.top_alpn);
        self.top_cert_subject.merge(&o.top_cert_subject);
        self.top_cert_issuer.merge(&o.top_cert_issuer);
        self.top_cert_san.merge(&o.top_cert_san);
        self.sni_card.merge(&o.sni_card);
        self.handshake_latency.merge(&o.handshake_latency);
    }
}

/// What the handler remembers of one connection. Heads are re-read from their start as they
/// grow, so the messages already counted are remembered by number.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnState {
    /// Time of the first ClientHello, ns (0: none seen).
    client_hello_ns: u64,
    /// ClientHellos and ServerHellos counted so far.
    client_hellos: u8,
    server_hellos: u8,
    certificate: bool,
    /// A HelloRetryRequest was seen: TLS 1.3 goes on in clear past a ChangeCipherSpec.
    retry: bool,
}

/// Which metric groups are on.
#[derive(Clone, Copy)]
struct Groups {
    cardinality: bool,
    quantiles: bool,
    top_sni: bool,
    top_fingerprints: bool,
    top_params: bool,
    top_certificates: bool,
}

/// The `tls` handler.
pub struct Tls {
    pub window_config: WindowConfig,
    pub window: Window<TlsBucket>,
    group_set: BTreeSet<&'static str>,
    g: Groups,
    heads: StreamHeads<ConnState>,
    /// Handshake bytes joined across records; one buffer reused for every connection.
    scratch: Vec<u8>,
    /// Reassembler counters already reported.
    reported: StreamStats,
}

impl Tls {
    pub const SCHEMA: &'static str = "tls";

    /// Builds the handler; `max_connections`, `head_bytes` and `max_buffer_bytes` bound its
    /// reassembly (per worker).
    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
    ) -> Result<Self, ConfigError> {
        cfg.validate_keys(&["max_connections", "head_bytes", "max_buffer_bytes"])?;
        let set = resolve_groups(&GROUPS, &GROUPS, enable, disable)?;
        let g = Groups {
            cardinality: set.contains("cardinality"),
            quantiles: set.contains("quantiles"),
            top_sni: set.contains("top_sni"),
            top_fingerprints: set.contains("top_fingerprints"),
            top_params: set.contains("top_params"),
            top_certificates: set.contains("top_certificates"),
        };
        let mut sc = StreamConfig::default();
        let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(n) = cfg.uint("max_connections")? {
            sc.max_connections = as_usize(n);
        }
        if let Some(n) = cfg.uint("head_bytes")? {
            if !(64..=1 << 20).contains(&n) {
                return Err(ConfigError(
                    "head_bytes must be between 64 and 1048576".into(),
                ));
            }
            sc.head_bytes = as_usize(n);
        }
        if let Some(n) = cfg.uint("max_buffer_bytes")? {
            sc.max_total_bytes = as_usize(n);
        }
        Ok(Self {
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            group_set: set,
            g,
            heads: StreamHeads::new(sc),
            scratch: vec![0; sc.head_bytes],
            reported: StreamStats::default(),
        })
    }

    /// Starts period `seq` and forgets idle connections.
    pub fn rotate_to(&mut self, seq: u32, ts_ns: u64) {
        self.window.rotate_to(seq);
        let (b, scratch, g) = (self.window.live(), &mut self.scratch, self.g);
        self.heads.expire(ts_ns, &mut |h| on_head(h, b, scratch, g));
        self.report_stats();
    }

    /// Feeds one TCP segment. Returns whether the handler is finished with the connection
    /// (see [`StreamHeads::segment`]): until a SYN or RST of it, its other segments change
    /// nothing here and may be skipped.
    #[allow(clippy::too_many_arguments)] // the packet fields the reassembler needs
    pub fn on_segment(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        tcp_flags: u8,
        payload: &[u8],
        ts_ns: u64,
    ) -> bool {
        self.on_segment_hinted(
            src, sport, dst, dport, vlan, seq, tcp_flags, payload, ts_ns, None,
        )
    }

    /// [`Self::on_segment`] with the caller's hint of where the reassembler holds the
    /// connection ([`flow::stream::Hint`], kept in the flows handler's entry for it).
    #[allow(clippy::too_many_arguments)] // the packet fields the reassembler needs
    pub fn on_segment_hinted(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        tcp_flags: u8,
        payload: &[u8],
        ts_ns: u64,
        hint: Option<flow::stream::Hint<'_>>,
    ) -> bool {
        let (b, scratch, g) = (self.window.live(), &mut self.scratch, self.g);
        let done = self.heads.segment_hinted(
            src,
            sport,
            dst,
            dport,
            vlan,
            seq,
            tcp_flags,
            payload,
            ts_ns,
            hint,
            &mut |h| on_head(h, b, scratch, g),
        );
        self.report_stats();
        done
    }

    /// Moves the reassembler's new cap hits into the live bucket.
    fn report_stats(&mut self) {
        // One counter compared per segment: the counters are copied only when a cap was hit.
        if self.heads.stats().cap_hits == self.reported.cap_hits {
            return;
        }
        let Some(hits) = self.heads.stats().cap_hits_since(&self.reported) else {
            return;
        };
        let now = *self.heads.stats();
        let b = self.window.live();
        b.reassembly_evictions += hits.evicted_cap;
        b.reassembly_gaps += hits.gaps;
        b.reassembly_head_full += hits.head_full;
        b.reassembly_budget_refusals += hits.budget_refusals;
        self.reported = now;
    }

    /// Connections tracked and bytes buffered by this handler's reassembler.
    pub fn reassembly_load(&self) -> (usize, usize) {
        (self.heads.connections(), self.heads.buffered_bytes())
    }

    pub fn export(&self, b: &TlsBucket) -> Export {
        let w = &self.window_config;
        let has = |g: &str| self.group_set.contains(g);
        let mut e = Export::default();
        if has("counters") {
            e.int(
                &["client_hellos"],
                "Total TLS ClientHello messages",
                b.client_hellos,
            );
            e.int(
                &["server_hellos"],
                "Total TLS ServerHello messages",
                b.server_hellos,
            );
            e.int(
                &["handshakes"],
                "Total TLS handshakes: ServerHellos answering a ClientHello seen on the same connection",
                b.handshakes,
            );
            e.int(
                &["client_hellos_without_sni"],
                "Total TLS ClientHello messages without a server name",
                b.client_hellos_without_sni,
            );
            e.int(
                &["hello_retry_requests"],
                "Total TLS 1.3 HelloRetryRequest messages",
                b.hello_retry_requests,
            );
            e.int(
                &["certificates"],
                "Total TLS server Certificate messages seen in clear (TLS 1.2 and earlier)",
                b.certificates,
            );
            e.int(
                &["malformed"],
                "Total TLS hellos, certificates or record streams that could not be decoded",
                b.malformed,
            );
            e.int(
                &["truncated"],
                "Total TLS streams that ended before the handshake message waited for was complete",
                b.truncated,
            );
            e.int(
                &["reassembly", "evictions"],
                "Total connections evicted from the full TLS reassembly table",
                b.reassembly_evictions,
            );
            e.int(
                &["reassembly", "gaps"],
                "Total TLS stream directions cut by a lost segment",
                b.reassembly_gaps,
            );
            e.int(
                &["reassembly", "head_full"],
                "Total TLS stream directions cut at the per-direction byte cap",
                b.reassembly_head_full,
            );
            e.int(
                &["reassembly", "budget_refusals"],
                "Total TLS stream directions cut because the reassembly byte budget was exhausted",
                b.reassembly_budget_refusals,
            );
        }
        if has("cardinality") {
            e.push(
                &["cardinality", "sni"],
                "Cardinality of unique TLS server names",
                Value::Int(b.sni_card.estimate()),
            );
        }
        if has("quantiles")
            && let Some(v) = sketch::quantiles(&b.handshake_latency)
        {
            e.push(
                &["handshake_latency"],
                "Quantiles of TLS handshake latency (ClientHello to ServerHello) in microseconds",
                v,
            );
        }
        if has("top_sni") {
            e.push(
                &["top_sni"],
                "Top TLS server names (SNI)",
                b.top_sni.export("sni", w),
            );
        }
        if has("top_fingerprints") {
            e.push(
                &["top_ja3"],
                "Top TLS client JA3 fingerprints",
                b.top_ja3.export("ja3", w),
            );
            e.push(
                &["top_ja4"],
                "Top TLS client JA4 fingerprints",
                b.top_ja4.export("ja4", w),
            );
        }
        if has("top_params") {
            e.push(
                &["top_version_offered"],
                "Top highest TLS versions offered by clients",
                b.top_version_offered.export("version", w, names::version),
            );
            e.push(
                &["top_version_negotiated"],
                "Top TLS versions chosen by servers",
                b.top_version_negotiated
                    .export("version", w, names::version),
            );
            e.push(
                &["top_cipher"],
                "Top TLS cipher suites chosen by servers",
                b.top_cipher.export("cipher", w, names::cipher),
            );
            e.push(
                &["top_alpn"],
                "Top first ALPN protocols offered by clients",
                b.top_alpn.export("alpn", w),
            );
        }
        if has("top_certificates") {
            e.push(
                &["top_cert_subject"],
                "Top TLS server certificate subject common names",
                b.top_cert_subject.export("subject", w),
            );
            e.push(
                &["top_cert_issuer"],
                "Top TLS server certificate issuer common names",
                b.top_cert_issuer.export("issuer", w),
            );
            e.push(
                &["top_cert_san"],
                "Top TLS server certificate subjectAltName DNS names",
                b.top_cert_san.export("san", w),
            );
        }
        e
    }
}

/// Reads what the head of one direction holds so far; says whether more is needed.
fn on_head(h: Head<'_, ConnState>, b: &mut TlsBucket, scratch: &mut [u8], g: Groups) -> Verdict {
    let user = h.user;
    let retry_before = user.retry;
    let c = collect_handshake(h.bytes, scratch, user.retry);
    if c.records == 0 {
        return match c.end {
            HandshakeEnd::NotTls(0) => on_sslv2_hello(h.bytes, h.cut, h.ts_ns, user, b, g),
            HandshakeEnd::NotTls(_) => Verdict::Done,
            HandshakeEnd::NeedStreamBytes(n) if h.cut == Cut::No => Verdict::NeedMore(n),
            HandshakeEnd::NeedStreamBytes(_) | HandshakeEnd::OutputFull => {
                // A TLS record header was seen, its body never completed.
                if h.bytes.len() >= wire::tls::RECORD_HEADER_LEN {
                    b.truncated += 1;
                }
                Verdict::Done
            }
            HandshakeEnd::OtherContent(_) => Verdict::Done,
        };
    }
    let hs = scratch.get(..c.len).unwrap_or_default();
    let mut msgs = Messages::new(hs);
    let (mut n_client, mut n_server) = (0u8, 0u8);
    // At most one message per four bytes: bounded by the scratch length.
    for m in msgs.by_ref() {
        match m.msg_type {
            HS_CLIENT_HELLO => {
                n_client = n_client.saturating_add(1);
                if n_client > user.client_hellos {
                    user.client_hellos = n_client;
                    if user.client_hello_ns == 0 {
                        user.client_hello_ns = h.ts_ns.max(1);
                    }
                    match ClientHello::parse(m.body) {
                        Ok(ch) => on_client_hello(&ch, b, g),
                        Err(_) => {
                            b.malformed += 1;
                            return Verdict::Done;
                        }
                    }
                }
            }
            HS_SERVER_HELLO => {
                n_server = n_server.saturating_add(1);
                if n_server <= user.server_hellos {
                    continue;
                }
                user.server_hellos = n_server;
                let Ok(sh) = ServerHello::parse(m.body) else {
                    b.malformed += 1;
                    return Verdict::Done;
                };
                b.server_hellos += 1;
                if sh.is_hello_retry_request() {
                    b.hello_retry_requests += 1;
                    user.retry = true;
                    continue;
                }
                if user.client_hello_ns != 0 {
                    b.handshakes += 1;
                    if g.quantiles {
                        b.handshake_latency
                            .record(h.ts_ns.saturating_sub(user.client_hello_ns) / 1000);
                    }
                }
                if g.top_params {
                    b.top_version_negotiated.insert(sh.selected_version(), 1);
                    b.top_cipher.insert(sh.cipher_suite, 1);
                }
                if sh.selected_version() >= 0x0304 {
                    // TLS 1.3: the rest of the server's flight is encrypted.
                    return Verdict::Done;
                }
            }
            HS_CERTIFICATE => {
                if !user.certificate {
                    user.certificate = true;
                    on_certificate(m.body, b, g);
                }
                return Verdict::Done;
            }
            HS_SERVER_HELLO_DONE => return Verdict::Done,
            _ => {}
        }
    }
    // Bytes of an unfinished message or record: the stream ended inside the handshake.
    let partial = !msgs.rest().is_empty() || h.bytes.len() > c.consumed;
    match c.end {
        HandshakeEnd::NeedStreamBytes(_)
            if h.cut == Cut::No && msgs.rest().is_empty() && c.consumed > 0 =>
        {
            // Every message read is complete: drop those records rather than keep them, and
            // read what follows (a second ClientHello, the Certificate) as a new head.
            if n_client > 0 {
                user.client_hellos = 0;
            }
            if n_server > 0 {
                user.server_hellos = 0;
            }
            Verdict::Advance(c.consumed)
        }
        HandshakeEnd::NeedStreamBytes(n) if h.cut == Cut::No => Verdict::NeedMore(n),
        HandshakeEnd::NeedStreamBytes(_) | HandshakeEnd::OutputFull => {
            if partial {
                b.truncated += 1;
            }
            Verdict::Done
        }
        HandshakeEnd::NotTls(_) => {
            // TLS records followed by something else: framing broke.
            b.malformed += 1;
            Verdict::Done
        }
        HandshakeEnd::OtherContent(CONTENT_CHANGE_CIPHER_SPEC)
            if user.retry && !retry_before && h.cut == Cut::No =>
        {
            // A HelloRetryRequest was just read: read again past the ChangeCipherSpec once
            // more arrives.
            Verdict::NeedMore(h.bytes.len() + 1)
        }
        HandshakeEnd::OtherContent(_) => {
            if !msgs.rest().is_empty() {
                b.truncated += 1;
            }
            Verdict::Done
        }
    }
}

/// An SSL 2.0-compatible ClientHello opening the stream, or not TLS at all (not counted).
fn on_sslv2_hello(
    bytes: &[u8],
    cut: Cut,
    ts_ns: u64,
    user: &mut ConnState,
    b: &mut TlsBucket,
    g: Groups,
) -> Verdict {
    match Sslv2ClientHello::parse(bytes) {
        Ok(ch) => {
            if user.client_hellos == 0 {
                user.client_hellos = 1;
                user.client_hello_ns = ts_ns.max(1);
                b.client_hellos += 1;
                b.client_hellos_without_sni += 1;
                if g.top_params {
                    b.top_version_offered.insert(ch.version, 1);
                }
            }
            Verdict::Done
        }
        Err(TlsError::Truncated(_)) if cut == Cut::No => Verdict::NeedMore(bytes.len() + 1),
        Err(TlsError::Truncated(_)) => {
            b.truncated += 1;
            Verdict::Done
        }
        Err(TlsError::Malformed(_)) => {
            b.malformed += 1;
            Verdict::Done
        }
        Err(TlsError::NotTls) => Verdict::Done,
    }
}

fn on_client_hello(ch: &ClientHello<'_>, b: &mut TlsBucket, g: Groups) {
    b.client_hellos += 1;
    match ch.sni() {
        Some(sni) => {
            if g.top_sni {
                b.top_sni.insert(sni, 1);
            }
            if g.cardinality {
                b.sni_card.insert_bytes(sni);
            }
        }
        None => b.client_hellos_without_sni += 1,
    }
    if g.top_fingerprints {
        b.top_ja3.insert(&ja3(ch).0, 1);
        b.top_ja4.insert(&ja4(ch).0, 1);
    }
    if g.top_params {
        b.top_version_offered.insert(ch.highest_version(), 1);
        if let Some(p) = ch.alpn().next() {
            b.top_alpn.insert(p, 1);
        }
    }
}

fn on_certificate(body: &[u8], b: &mut TlsBucket, g: Groups) {
    let Some(leaf) = certificates(body).ok().and_then(|mut l| l.next()) else {
        b.malformed += 1;
        return;
    };
    let Ok(f) = CertFields::parse(leaf) else {
        b.malformed += 1;
        return;
    };
    b.certificates += 1;
    if !g.top_certificates {
        return;
    }
    if let Some(cn) = f.subject_cn() {
        b.top_cert_subject.insert(cn, 1);
    }
    if let Some(cn) = f.issuer_cn() {
        b.top_cert_issuer.insert(cn, 1);
    }
    for name in f.dns_names().take(MAX_SAN_PER_CERT) {
        b.top_cert_san.insert(name, 1);
    }
}

#[cfg(test)]
mod tests;
