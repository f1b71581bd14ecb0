//! The `quic` handler: QUIC versions 1 and 2 client Initials opened with the keys every
//! observer can derive (RFC 9001 §5), their ClientHello reassembled from CRYPTO frames across
//! coalesced packets and several Initials, and summarized per period — versions, SNI, ALPN and
//! the QUIC JA4 fingerprint (`q` prefix).
//!
//! Connections are followed by their UDP 5-tuple, not by connection ID: Initial keys come from
//! the client's first Destination Connection ID, and a client that heard from the server sends
//! its next Initials to the server's connection ID under those same keys (RFC 9001 §5.2), so
//! a ClientHello split across Initials to different DCIDs is reassembled. A server's Retry
//! names the DCID whose keys protect the client's next Initials.
//!
//! Connections wait in a small fixed table (least recently active replaced, counted), each
//! with a fixed CRYPTO buffer, so memory stays bounded whatever arrives. A connection whose
//! ClientHello was read is remembered so retransmitted Initials are not counted twice. It reads
//! nothing past the Initials: Handshake and 1-RTT packets are encrypted with secret keys.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::Range;

use wire::quic::{
    CryptoBuf, Hello, InitialKeys, LongHeader, MAX_CID_LEN, PacketType, Packets, VERSION_1,
    VERSION_2, add_crypto_frames, decrypt_initial, has_initial_keys, initial_keys,
    is_known_version, long_header,
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
/// A connection silent this long has finished its handshake (or given up on it): replacing
/// it is not counted as a loss.
const IDLE_NS: u64 = 60_000_000_000;
/// Largest datagram opened (the UDP maximum).
const SCRATCH_BYTES: usize = 1 << 16;

/// One period of QUIC summaries.
#[derive(Clone, Default)]
pub struct QuicBucket {
    /// Initial packets seen (client and server, any version, coalesced ones included).
    pub initials: u64,
    /// Client Initials opened: with the keys of their Destination Connection ID, or with those
    /// of their connection's original DCID (sent after the server chose a connection ID).
    pub initials_opened: u64,
    /// Initials of versions with known keys that were not opened: server Initials, and client
    /// Initials of connections not tracked that are not keyed by their own DCID. Not an error
    /// by itself.
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
    /// Connections whose ClientHello was read, forgotten to make room within a minute of
    /// their last Initial (a later Initial of theirs to another DCID would not open).
    pub connections_evicted: u64,
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
        self.connections_evicted += o.connections_evicted;
        self.top_versions.merge(&o.top_versions);
        self.top_sni.merge(&o.top_sni);
        self.top_alpn.merge(&o.top_alpn);
        self.top_ja4.merge(&o.top_ja4);
    }
}

/// A connection ID, copied out of the packet (at most 20 bytes in versions 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cid {
    b: [u8; MAX_CID_LEN],
    len: u8,
}

impl Cid {
    fn new(s: &[u8]) -> Self {
        let mut c = Cid {
            b: [0; MAX_CID_LEN],
            len: 0,
        };
        if let Some(d) = c.b.get_mut(..s.len()) {
            d.copy_from_slice(s);
            c.len = s.len() as u8;
        }
        c
    }

    fn is(&self, s: &[u8]) -> bool {
        self.b.get(..usize::from(self.len)) == Some(s)
    }
}

/// A client's UDP 5-tuple (the protocol is UDP): what keeps identifying a connection while its
/// Destination Connection ID changes during the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    client: IpAddr,
    server: IpAddr,
    cport: u16,
    sport: u16,
}

/// One client connection: the keys of its original Destination Connection ID (RFC 9001 §5.2:
/// they protect every client Initial until a Retry, whatever DCID the client sends to later)
/// and its ClientHello's CRYPTO stream.
struct Entry {
    key: Key,
    version: u32,
    /// The DCID whose keys open this client's Initials.
    odcid: Cid,
    keys: InitialKeys,
    /// Another DCID seen opening with `keys` (the server's chosen connection ID).
    alt: Option<Cid>,
    /// The Source Connection ID of the server's Retry: the client's next Initials are keyed
    /// by it.
    retry: Option<Cid>,
    last_ns: u64,
    /// The ClientHello was read (or given up on): later Initials are not decrypted.
    done: bool,
    crypto: CryptoBuf,
}

/// How a client Initial of a tracked connection was opened.
enum Opened {
    /// With the connection's keys (a retransmission, or after the DCID changed).
    Stored,
    /// With the keys of its own DCID, another than the connection's: a new connection attempt
    /// on the same addresses and ports (or a Retry not seen), which restarts the ClientHello.
    Own(InitialKeys),
    /// With the keys of the server's Retry: the same ClientHello, continued.
    Retry(InitialKeys),
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

    /// Builds the handler; `max_pending` bounds the connections tracked at once (per worker).
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

    /// Connections tracked now (ClientHello pending or read).
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    fn find(&self, k: &Key) -> Option<usize> {
        self.table.iter().position(|e| e.key == *k)
    }

    /// Reads one UDP datagram's payload, sent from `src`:`sport` to `dst`:`dport`.
    pub fn on_datagram(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        payload: &[u8],
        ts_ns: u64,
    ) {
        // Long header with the fixed bit, of a QUIC version: anything else costs this test.
        if payload.first().is_none_or(|b| b & 0xc0 != 0xc0) {
            return;
        }
        let Ok(h) = long_header(payload) else { return };
        if !is_known_version(h.version) {
            return;
        }
        let from_server = Key {
            client: dst,
            server: src,
            cport: dport,
            sport,
        };
        if h.ptype == PacketType::Retry {
            // The server's Retry names the DCID that keys the client's next Initials.
            if let Some(i) = self.find(&from_server)
                && let Some(e) = self.table.get_mut(i)
            {
                e.retry = Some(Cid::new(h.scid));
            }
            return;
        }
        if h.ptype != PacketType::Initial {
            return;
        }
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH_BYTES];
        }
        // Initials towards a tracked client are the server's: its keys are not derivable from
        // what the client sent in the other direction's DCID alone, and nothing in them is read.
        let server_side = self.find(&from_server).is_some();
        let key = Key {
            client: src,
            server: dst,
            cport: sport,
            sport: dport,
        };
        let mut idx = if server_side { None } else { self.find(&key) };
        for (h, packet) in Packets::new(payload) {
            if h.ptype != PacketType::Initial {
                continue;
            }
            let b = self.window.live();
            b.initials += 1;
            if self.g.top_params {
                b.top_versions
                    .insert(version_name(h.version, &mut [0; 10]), 1);
            }
            if !has_initial_keys(h.version) {
                b.initials_unsupported_version += 1;
                continue;
            }
            if server_side {
                b.initials_not_opened += 1;
                continue;
            }
            idx = self.client_initial(idx, key, &h, packet, ts_ns);
        }
    }

    /// Opens one client Initial of the connection at `idx` (or of a new one), adds its CRYPTO
    /// frames and reads the ClientHello once complete. Returns the connection's slot.
    fn client_initial(
        &mut self,
        idx: Option<usize>,
        key: Key,
        h: &LongHeader<'_>,
        packet: &[u8],
        ts_ns: u64,
    ) -> Option<usize> {
        let Some(i) = idx else {
            // A connection not seen yet: only the keys of its own DCID can open it.
            let Ok(keys) = initial_keys(h.version, h.dcid, false) else {
                self.window.live().initials_unsupported_version += 1;
                return None;
            };
            let Some(range) = open(packet, h, &keys, &mut self.scratch) else {
                // Not a client Initial (a server's whose client was not seen), or damaged:
                // it takes no slot.
                self.window.live().initials_not_opened += 1;
                return None;
            };
            let i = self.slot(key, h.version, Cid::new(h.dcid), keys, ts_ns);
            self.read(i, range);
            return Some(i);
        };
        let e = self.table.get_mut(i)?;
        e.last_ns = ts_ns;
        let known =
            e.version == h.version && (e.odcid.is(h.dcid) || e.alt.is_some_and(|c| c.is(h.dcid)));
        if known && e.done {
            return Some(i);
        }
        let opened = if known {
            open(packet, h, &e.keys, &mut self.scratch).map(|r| (Opened::Stored, r))
        } else {
            open_other_dcid(e, h, packet, &mut self.scratch)
        };
        let Some((how, range)) = opened else {
            self.window.live().initials_not_opened += 1;
            return Some(i);
        };
        match how {
            Opened::Stored => {
                if !e.odcid.is(h.dcid) {
                    e.alt = Some(Cid::new(h.dcid));
                }
            }
            Opened::Retry(keys) => {
                e.odcid = Cid::new(h.dcid);
                e.keys = keys;
                e.alt = None;
                e.retry = None;
            }
            Opened::Own(keys) => {
                e.version = h.version;
                e.odcid = Cid::new(h.dcid);
                e.keys = keys;
                e.alt = None;
                e.retry = None;
                e.done = false;
                e.crypto.clear();
            }
        }
        if e.done {
            // Opened only to learn the new DCID: the ClientHello was read already.
            self.window.live().initials_opened += 1;
            return Some(i);
        }
        self.read(i, range);
        Some(i)
    }

    /// Adds the CRYPTO frames of the Initial decrypted at `range` of the scratch buffer to the
    /// connection at `i`, and reads its ClientHello when complete.
    fn read(&mut self, i: usize, range: Range<usize>) {
        let b = self.window.live();
        b.initials_opened += 1;
        let (Some(e), Some(payload)) = (self.table.get_mut(i), self.scratch.get(range)) else {
            return;
        };
        if !add_crypto_frames(payload, &mut e.crypto) {
            b.malformed += 1;
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

    /// A slot for a new connection, replacing the least recently active one when the table
    /// is full (counted when its ClientHello was still pending, or when it was active within
    /// [`IDLE_NS`]: a later Initial of it with another DCID would then be missed).
    fn slot(&mut self, key: Key, version: u32, odcid: Cid, keys: InitialKeys, ts_ns: u64) -> usize {
        let fresh = |crypto| Entry {
            key,
            version,
            odcid,
            keys,
            alt: None,
            retry: None,
            last_ns: ts_ns,
            done: false,
            crypto,
        };
        if self.table.len() < self.max_pending {
            self.table.push(fresh(CryptoBuf::new(CRYPTO_BYTES)));
            return self.table.len() - 1;
        }
        let lru = self
            .table
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_ns)
            .map_or(0, |(i, _)| i);
        let b = self.window.live();
        if let Some(e) = self.table.get_mut(lru) {
            if !e.done {
                b.evictions += 1;
            } else if ts_ns.saturating_sub(e.last_ns) < IDLE_NS {
                b.connections_evicted += 1;
            }
            let mut crypto = std::mem::replace(&mut e.crypto, CryptoBuf::new(0));
            crypto.clear();
            *e = fresh(crypto);
        }
        lru
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
                "Total QUIC client Initial packets decrypted (with the keys of their connection ID or of their connection's original one)",
                b.initials_opened,
            );
            e.int(
                &["initials_not_opened"],
                "Total QUIC v1/v2 Initial packets not decrypted with client keys (server Initials, client Initials of connections not tracked)",
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
            e.int(
                &["connections_evicted"],
                "Total QUIC connections forgotten from the full table within a minute of their last Initial",
                b.connections_evicted,
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

/// Decrypts an Initial into `scratch`; the plaintext payload's place there.
fn open(
    packet: &[u8],
    h: &LongHeader<'_>,
    keys: &InitialKeys,
    scratch: &mut [u8],
) -> Option<Range<usize>> {
    let (_, payload) = decrypt_initial(packet, h, keys, scratch).ok()?;
    // The payload ends before the 16-byte AEAD tag at the packet's end.
    let end = packet.len().checked_sub(16)?;
    Some(end.checked_sub(payload.len())?..end)
}

/// Opens a client Initial of a tracked connection sent to a DCID the connection has not used
/// yet: with the keys of the DCID itself (a Retry's, or a new connection attempt on the same
/// addresses and ports; tried first since such an Initial starts a ClientHello), else with the connection's keys (the client switched to the server's
/// connection ID, RFC 9001 §5.2). The keys of the DCID itself are also the Retry's when it
/// names that DCID; then the ClientHello continues instead of starting again.
fn open_other_dcid(
    e: &Entry,
    h: &LongHeader<'_>,
    packet: &[u8],
    scratch: &mut [u8],
) -> Option<(Opened, Range<usize>)> {
    if let Ok(keys) = initial_keys(h.version, h.dcid, false)
        && let Some(r) = open(packet, h, &keys, scratch)
    {
        let how = if e.retry.is_some_and(|c| c.is(h.dcid)) {
            Opened::Retry(keys)
        } else {
            Opened::Own(keys)
        };
        return Some((how, r));
    }
    if e.version != h.version {
        return None;
    }
    open(packet, h, &e.keys, scratch).map(|r| (Opened::Stored, r))
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
