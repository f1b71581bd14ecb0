//! The `quic` handler: QUIC versions 1 and 2 client Initials opened with the keys every
//! observer can derive (RFC 9001 §5), their ClientHello reassembled from CRYPTO frames across
//! coalesced packets and several Initials, and summarized per period — versions, SNI, ALPN and
//! the QUIC JA4 fingerprint (`q` prefix).
//!
//! Pending ClientHellos wait in a small fixed table (least recently used replaced, counted),
//! each with a fixed CRYPTO buffer, so memory stays bounded whatever arrives. A connection whose
//! ClientHello was read is remembered so retransmitted Initials are not counted twice. It reads
//! nothing past the Initials: Handshake and 1-RTT packets are encrypted with secret keys.

use std::collections::BTreeSet;
use std::net::IpAddr;

use wire::quic::{
    CryptoBuf, Hello, MAX_CID_LEN, PacketType, VERSION_1, VERSION_2, is_known_version, long_header,
    open_client_initials,
};
use wire::tls::ClientHello;
use wire::tls::fingerprint::ja4;

use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::export::Export;
use crate::sketch::TopNames;
use crate::window::{Bucket, Window};

/// Metric groups of the `quic` handler.
pub const GROUPS: [&str; 4] = ["counters", "top_sni", "top_fingerprints", "top_params"];

/// ClientHellos tracked at once per worker (default).
const DEFAULT_MAX_PENDING: usize = 256;
/// CRYPTO bytes kept per ClientHello: post-quantum key shares make them ~2 KB; 8 KiB leaves
/// room for large extension sets.
const CRYPTO_BYTES: usize = 8 << 10;
/// Largest datagram opened (the UDP maximum).
const SCRATCH_BYTES: usize = 1 << 16;

/// One period of QUIC summaries.
#[derive(Clone, Default)]
pub struct QuicBucket {
    /// Initial packets seen (client and server, any version, coalesced ones included).
    pub initials: u64,
    /// Client Initials opened with the keys of their Destination Connection ID.
    pub initials_opened: u64,
    /// Version 1 or 2 Initials that did not open with those keys: server Initials, and client
    /// Initials sent after the server chose a connection ID. Not an error by itself.
    pub initials_not_opened: u64,
    /// Initials of versions without known initial salts (drafts).
    pub initials_unsupported_version: u64,
    pub client_hellos: u64,
    pub client_hellos_without_sni: u64,
    /// Opened Initials with malformed frames, or CRYPTO data that is not a ClientHello.
    pub malformed: u64,
    /// ClientHellos longer than the CRYPTO buffer.
    pub too_long: u64,
    /// Pending ClientHellos dropped to make room in the full table.
    pub evictions: u64,
    pub top_versions: TopNames,
    pub top_sni: TopNames,
    pub top_alpn: TopNames,
    pub top_ja4: TopNames,
}

impl Bucket for QuicBucket {
    fn merge(&mut self, o: &Self) {
        self.initials += o.initials;
        self.initials_opened += o.initials_opened;
        self.initials_not_opened += o.initials_not_opened;
        self.initials_unsupported_version += o.initials_unsupported_version;
        self.client_hellos += o.client_hellos;
        self.client_hellos_without_sni += o.client_hellos_without_sni;
        self.malformed += o.malformed;
        self.too_long += o.too_long;
        self.evictions += o.evictions;
        self.top_versions.merge(&o.top_versions);
        self.top_sni.merge(&o.top_sni);
        self.top_alpn.merge(&o.top_alpn);
        self.top_ja4.merge(&o.top_ja4);
    }
}

/// A client's connection attempt: its address and port and the Destination Connection ID it
/// chose (which also keys the Initial protection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    addr: IpAddr,
    port: u16,
    dcid: [u8; MAX_CID_LEN],
    dcid_len: u8,
}

struct Entry {
    key: Key,
    last_ns: u64,
    /// The ClientHello was read (or given up on): later Initials are skipped.
    done: bool,
    crypto: CryptoBuf,
}

#[derive(Clone, Copy)]
struct Groups {
    top_sni: bool,
    top_fingerprints: bool,
    top_params: bool,
}

/// The `quic` handler.
pub struct Quic {
    pub window_config: WindowConfig,
    pub window: Window<QuicBucket>,
    group_set: BTreeSet<&'static str>,
    g: Groups,
    table: Vec<Entry>,
    max_pending: usize,
    scratch: Vec<u8>,
}

impl Quic {
    pub const SCHEMA: &'static str = "quic";

    /// Builds the handler; `max_pending` bounds the ClientHellos tracked at once (per worker).
    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
    ) -> Result<Self, ConfigError> {
        cfg.validate_keys(&["max_pending"])?;
        let set = resolve_groups(&GROUPS, &GROUPS, enable, disable)?;
        let g = Groups {
            top_sni: set.contains("top_sni"),
            top_fingerprints: set.contains("top_fingerprints"),
            top_params: set.contains("top_params"),
        };
        let mut max_pending = DEFAULT_MAX_PENDING;
        if let Some(n) = cfg.uint("max_pending")? {
            if !(1..=1 << 16).contains(&n) {
                return Err(ConfigError(
                    "max_pending must be between 1 and 65536".into(),
                ));
            }
            max_pending = usize::try_from(n).unwrap_or(DEFAULT_MAX_PENDING);
        }
        Ok(Self {
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            group_set: set,
            g,
            table: Vec::new(),
            max_pending,
            scratch: Vec::new(),
        })
    }

    /// Starts period `seq`.
    pub fn rotate_to(&mut self, seq: u32, _ts_ns: u64) {
        self.window.rotate_to(seq);
    }

    /// ClientHellos tracked now (pending or done).
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Reads one UDP datagram's payload.
    pub fn on_datagram(&mut self, src: IpAddr, sport: u16, payload: &[u8], ts_ns: u64) {
        // Long header with the fixed bit, of a QUIC version: anything else costs this test.
        if payload.first().is_none_or(|b| b & 0xc0 != 0xc0) {
            return;
        }
        let Ok(h) = long_header(payload) else { return };
        if !is_known_version(h.version) || h.ptype != PacketType::Initial {
            return;
        }
        let mut key = Key {
            addr: src,
            port: sport,
            dcid: [0; MAX_CID_LEN],
            dcid_len: h.dcid.len() as u8,
        };
        if let Some(d) = key.dcid.get_mut(..h.dcid.len()) {
            d.copy_from_slice(h.dcid);
        }
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH_BYTES];
        }
        let (idx, fresh) = self.slot(key, ts_ns);
        let b = self.window.live();
        let Some(e) = self.table.get_mut(idx) else {
            return;
        };
        let done = e.done;
        let seen = open_client_initials(payload, &mut self.scratch, &mut e.crypto, &mut |_| !done);
        b.initials += u64::from(seen.initials);
        b.initials_opened += u64::from(seen.opened);
        b.initials_not_opened += u64::from(seen.not_opened);
        b.initials_unsupported_version += u64::from(seen.unsupported);
        b.malformed += u64::from(seen.bad_payload);
        if self.g.top_params {
            b.top_versions.insert(
                version_name(h.version, &mut [0; 10]),
                u64::from(seen.initials),
            );
        }
        if done {
            return;
        }
        if seen.opened == 0 {
            if fresh {
                // Not a client Initial of this key (a server's): do not keep the slot.
                self.table.swap_remove(idx);
            }
            return;
        }
        match e.crypto.first_message() {
            Hello::Incomplete => {}
            Hello::TooLong => {
                b.too_long += 1;
                e.done = true;
            }
            Hello::Complete { msg_type, body } => {
                e.done = true;
                match (msg_type, ClientHello::parse(body)) {
                    (1, Ok(ch)) => on_client_hello(&ch, b, self.g),
                    _ => b.malformed += 1,
                }
            }
        }
        if e.done {
            e.crypto.clear();
        }
    }

    /// The table slot of `key`, inserted (replacing the least recently used when full) if
    /// new; says whether it was.
    fn slot(&mut self, key: Key, ts_ns: u64) -> (usize, bool) {
        if let Some(i) = self.table.iter().position(|e| e.key == key) {
            if let Some(e) = self.table.get_mut(i) {
                e.last_ns = ts_ns;
            }
            return (i, false);
        }
        if self.table.len() < self.max_pending {
            self.table.push(Entry {
                key,
                last_ns: ts_ns,
                done: false,
                crypto: CryptoBuf::new(CRYPTO_BYTES),
            });
            return (self.table.len() - 1, true);
        }
        let lru = self
            .table
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_ns)
            .map_or(0, |(i, _)| i);
        if let Some(e) = self.table.get_mut(lru) {
            if !e.done {
                self.window.live().evictions += 1;
            }
            e.key = key;
            e.last_ns = ts_ns;
            e.done = false;
            e.crypto.clear();
        }
        (lru, true)
    }

    pub fn export(&self, b: &QuicBucket) -> Export {
        let w = &self.window_config;
        let has = |g: &str| self.group_set.contains(g);
        let mut e = Export::default();
        if has("counters") {
            e.int(
                &["initials"],
                "Total QUIC Initial packets (client and server, coalesced ones included)",
                b.initials,
            );
            e.int(
                &["initials_opened"],
                "Total QUIC client Initial packets decrypted with the keys of their connection ID",
                b.initials_opened,
            );
            e.int(
                &["initials_not_opened"],
                "Total QUIC v1/v2 Initial packets not decrypted with client keys (server Initials, Initials after the server chose a connection ID)",
                b.initials_not_opened,
            );
            e.int(
                &["initials_unsupported_version"],
                "Total QUIC Initial packets of versions whose initial keys are not known",
                b.initials_unsupported_version,
            );
            e.int(
                &["client_hellos"],
                "Total TLS ClientHello messages read from QUIC Initial packets",
                b.client_hellos,
            );
            e.int(
                &["client_hellos_without_sni"],
                "Total QUIC ClientHello messages without a server name",
                b.client_hellos_without_sni,
            );
            e.int(
                &["malformed"],
                "Total QUIC Initial payloads or ClientHellos that could not be decoded",
                b.malformed,
            );
            e.int(
                &["too_long"],
                "Total QUIC ClientHellos longer than the reassembly buffer",
                b.too_long,
            );
            e.int(
                &["evictions"],
                "Total pending QUIC ClientHellos dropped from the full table",
                b.evictions,
            );
        }
        if has("top_params") {
            e.push(
                &["top_versions"],
                "Top QUIC versions of Initial packets",
                b.top_versions.export("version", w),
            );
            e.push(
                &["top_alpn"],
                "Top first ALPN protocols offered by QUIC clients",
                b.top_alpn.export("alpn", w),
            );
        }
        if has("top_sni") {
            e.push(
                &["top_sni"],
                "Top QUIC server names (SNI)",
                b.top_sni.export("sni", w),
            );
        }
        if has("top_fingerprints") {
            e.push(
                &["top_ja4"],
                "Top QUIC client JA4 fingerprints",
                b.top_ja4.export("ja4", w),
            );
        }
        e
    }
}

/// `1`, `2`, or the version in hex.
fn version_name(v: u32, buf: &mut [u8; 10]) -> &[u8] {
    match v {
        VERSION_1 => b"1",
        VERSION_2 => b"2",
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf[0] = b'0';
            buf[1] = b'x';
            for i in 0..8 {
                buf[2 + i] = HEX[((v >> (28 - 4 * i)) & 0xf) as usize];
            }
            &buf[..]
        }
    }
}

fn on_client_hello(ch: &ClientHello<'_>, b: &mut QuicBucket, g: Groups) {
    b.client_hellos += 1;
    match ch.sni() {
        Some(sni) => {
            if g.top_sni {
                b.top_sni.insert(sni, 1);
            }
        }
        None => b.client_hellos_without_sni += 1,
    }
    if g.top_fingerprints {
        let mut j = ja4(ch);
        // JA4's first character names the transport: `q` for QUIC.
        j.0[0] = b'q';
        b.top_ja4.insert(&j.0, 1);
    }
    if g.top_params
        && let Some(p) = ch.alpn().next()
    {
        b.top_alpn.insert(p, 1);
    }
}

#[cfg(test)]
mod tests;
