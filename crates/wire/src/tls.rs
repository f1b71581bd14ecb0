//! TLS handshake decoding: the record layer, handshake message framing, ClientHello and
//! ServerHello with their extensions, and the server's Certificate message (TLS ≤ 1.2, where it
//! travels in clear). Fingerprints (JA3, JA4) are in [`fingerprint`], the few X.509 fields
//! wirelens reports in [`x509`].
//!
//! Not a TLS implementation: nothing is decrypted or validated, and no state is kept. Every
//! function reads from the caller's bytes, allocates nothing and never panics; malformed input is
//! a [`TlsError`] with a stable [`TlsError::reason`]. Unknown versions, cipher suites and
//! extension types stay numbers.

pub mod fingerprint;
pub mod x509;

/// Record content type `change_cipher_spec`.
pub const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
/// Record content type `alert`.
pub const CONTENT_ALERT: u8 = 21;
/// Record content type `handshake`.
pub const CONTENT_HANDSHAKE: u8 = 22;
/// Record content type `application_data`.
pub const CONTENT_APPLICATION_DATA: u8 = 23;

/// Handshake type `client_hello`.
pub const HS_CLIENT_HELLO: u8 = 1;
/// Handshake type `server_hello`.
pub const HS_SERVER_HELLO: u8 = 2;
/// Handshake type `certificate`.
pub const HS_CERTIFICATE: u8 = 11;
/// Handshake type `server_hello_done`.
pub const HS_SERVER_HELLO_DONE: u8 = 14;

/// Extension `server_name` (RFC 6066).
pub const EXT_SERVER_NAME: u16 = 0x0000;
/// Extension `supported_groups` (elliptic curves in JA3).
pub const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
/// Extension `ec_point_formats`.
pub const EXT_EC_POINT_FORMATS: u16 = 0x000b;
/// Extension `signature_algorithms`.
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
/// Extension `application_layer_protocol_negotiation` (RFC 7301).
pub const EXT_ALPN: u16 = 0x0010;
/// Extension `supported_versions` (RFC 8446).
pub const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// Alert level `warning`.
pub const ALERT_LEVEL_WARNING: u8 = 1;

/// Record header length.
pub const RECORD_HEADER_LEN: usize = 5;
/// Largest record payload a peer may send (2^14 plus expansion, RFC 5246 6.2.3); a longer
/// length field means the bytes are not TLS.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Why bytes could not be decoded as TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The bytes end before the structure does.
    #[error("truncated tls {0}")]
    Truncated(&'static str),
    /// The bytes do not start a TLS record.
    #[error("not a tls record")]
    NotTls,
    /// A length or value contradicts the structure around it.
    #[error("malformed tls {0}")]
    Malformed(&'static str),
}

impl TlsError {
    /// A stable, lower-case reason for counting.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::Truncated(_) => "truncated",
            TlsError::NotTls => "not_tls",
            TlsError::Malformed(_) => "malformed",
        }
    }
}

/// Whether a 16-bit value is a GREASE value (RFC 8701: 0x0a0a, 0x1a1a, ..., 0xfafa), which
/// fingerprints ignore.
#[inline]
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A bounds-checked big-endian reader over a byte slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        if n > self.b.len() {
            return Err(TlsError::Truncated(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, TlsError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, TlsError> {
        let s = self.take(2, what)?;
        Ok(be16(s))
    }
    pub(crate) fn u24(&mut self, what: &'static str) -> Result<usize, TlsError> {
        let s = self.take(3, what)?;
        Ok(be24(s))
    }
    /// A vector with a 1-byte length.
    pub(crate) fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = usize::from(self.u8(what)?);
        self.take(n, what)
    }
    /// A vector with a 2-byte length.
    pub(crate) fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }
    /// A vector with a 3-byte length.
    pub(crate) fn vec24(&mut self, what: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u24(what)?;
        self.take(n, what)
    }
}

#[inline]
fn be16(s: &[u8]) -> u16 {
    match s {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

#[inline]
fn be24(s: &[u8]) -> usize {
    match s {
        [a, b, c, ..] => (usize::from(*a) << 16) | (usize::from(*b) << 8) | usize::from(*c),
        _ => 0,
    }
}

/// A record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    /// The record-layer version (0x0301 for most ClientHellos whatever they offer).
    pub version: u16,
    /// Payload length.
    pub len: usize,
}

/// Decodes the record header at the start of `b`. The content type must be one of the four
/// TLS 1.2/1.3 types and the version SSL 3.0 to TLS 1.3, so arbitrary TCP payloads (HTTP, SSH,
/// SSLv2-compatible hellos) are told apart from TLS after five bytes.
pub fn record_header(b: &[u8]) -> Result<RecordHeader, TlsError> {
    let Some(h) = b.get(..RECORD_HEADER_LEN) else {
        // A prefix can already prove it is not TLS.
        if let Some(&t) = b.first()
            && !(CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_APPLICATION_DATA).contains(&t)
        {
            return Err(TlsError::NotTls);
        }
        if let Some(&major) = b.get(1)
            && major != 3
        {
            return Err(TlsError::NotTls);
        }
        return Err(TlsError::Truncated("record header"));
    };
    let (t, version, len) = match h {
        [t, v0, v1, l0, l1] => (
            *t,
            u16::from_be_bytes([*v0, *v1]),
            usize::from(u16::from_be_bytes([*l0, *l1])),
        ),
        _ => return Err(TlsError::Truncated("record header")),
    };
    if !(CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_APPLICATION_DATA).contains(&t)
        || !(0x0300..=0x0304).contains(&version)
    {
        return Err(TlsError::NotTls);
    }
    if len > MAX_RECORD_LEN {
        return Err(TlsError::NotTls);
    }
    Ok(RecordHeader {
        content_type: t,
        version,
        len,
    })
}

/// How the handshake bytes at the start of a stream end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeEnd {
    /// The next record is incomplete: the stream must reach this many bytes for it to be.
    NeedStreamBytes(usize),
    /// A record of another content type follows (change_cipher_spec, alert, application data):
    /// the handshake in clear is over.
    OtherContent(u8),
    /// `out` is full; the rest is not collected.
    OutputFull,
    /// The bytes at this stream offset are not a TLS record.
    NotTls(usize),
}

/// The handshake-protocol bytes collected from the start of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collected {
    /// Bytes of handshake messages written to `out`.
    pub len: usize,
    /// Complete handshake records read.
    pub records: usize,
    /// Stream bytes of the complete records read (handshake, skipped warnings and
    /// ChangeCipherSpecs).
    pub consumed: usize,
    pub end: HandshakeEnd,
}

/// Copies the payloads of the complete handshake records at the start of `stream` into `out`,
/// joining messages that span records (RFC 8446 5.1 lets a handshake message be fragmented
/// over several records, and several messages share one record). Warning alerts are skipped;
/// so are ChangeCipherSpec records when `skip_ccs` (TLS 1.3 middlebox compatibility after a
/// HelloRetryRequest, where the handshake goes on in clear; in TLS 1.2 what follows a
/// ChangeCipherSpec is encrypted, so callers skip it only when they know the version).
pub fn collect_handshake(stream: &[u8], out: &mut [u8], skip_ccs: bool) -> Collected {
    let mut pos = 0usize;
    let mut len = 0usize;
    let mut records = 0usize;
    // Each pass consumes at least one record header: bounded by the stream length.
    loop {
        let rest = stream.get(pos..).unwrap_or_default();
        let h = match record_header(rest) {
            Ok(h) => h,
            Err(TlsError::Truncated(_)) => {
                return Collected {
                    len,
                    records,
                    consumed: pos,
                    end: HandshakeEnd::NeedStreamBytes(pos + RECORD_HEADER_LEN),
                };
            }
            Err(_) => {
                return Collected {
                    len,
                    records,
                    consumed: pos,
                    end: HandshakeEnd::NotTls(pos),
                };
            }
        };
        let body_start = pos + RECORD_HEADER_LEN;
        let ccs = skip_ccs && h.content_type == CONTENT_CHANGE_CIPHER_SPEC;
        if (h.content_type == CONTENT_ALERT || ccs) && h.len <= 2 {
            let Some(body) = stream.get(body_start..body_start + h.len) else {
                return Collected {
                    len,
                    records,
                    consumed: pos,
                    end: HandshakeEnd::NeedStreamBytes(body_start + h.len),
                };
            };
            if ccs || body.first() == Some(&ALERT_LEVEL_WARNING) {
                // A warning in clear (a server's `unrecognized_name` before its ServerHello)
                // does not end the handshake.
                pos = body_start + h.len;
                continue;
            }
        }
        if h.content_type != CONTENT_HANDSHAKE {
            return Collected {
                len,
                records,
                consumed: pos,
                end: HandshakeEnd::OtherContent(h.content_type),
            };
        }
        let Some(body) = stream.get(body_start..body_start + h.len) else {
            return Collected {
                len,
                records,
                consumed: pos,
                end: HandshakeEnd::NeedStreamBytes(body_start + h.len),
            };
        };
        let room = out.len().saturating_sub(len);
        let n = body.len().min(room);
        if let (Some(dst), Some(src)) = (out.get_mut(len..len + n), body.get(..n)) {
            dst.copy_from_slice(src);
        }
        len += n;
        if n < body.len() {
            return Collected {
                len,
                records,
                consumed: pos,
                end: HandshakeEnd::OutputFull,
            };
        }
        records += 1;
        pos = body_start + h.len;
    }
}

/// One handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeMessage<'a> {
    pub msg_type: u8,
    pub body: &'a [u8],
}

/// Iterates the complete handshake messages of joined handshake bytes; [`Messages::rest`] is
/// what remains (an unfinished message).
pub struct Messages<'a> {
    r: Reader<'a>,
}

impl<'a> Messages<'a> {
    /// Messages of `hs` (as collected by [`collect_handshake`]).
    pub fn new(hs: &'a [u8]) -> Self {
        Self { r: Reader::new(hs) }
    }
    /// Bytes not yet returned.
    pub fn rest(&self) -> &'a [u8] {
        self.r.rest()
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = HandshakeMessage<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut r = self.r;
        let msg_type = r.u8("handshake").ok()?;
        let body = r.vec24("handshake").ok()?;
        self.r = r;
        Some(HandshakeMessage { msg_type, body })
    }
}

/// Iterates a list of big-endian 16-bit values; a trailing odd byte is ignored.
#[derive(Clone, Copy, Debug)]
pub struct U16List<'a>(&'a [u8]);

impl<'a> U16List<'a> {
    /// The list over raw bytes.
    pub fn new(b: &'a [u8]) -> Self {
        Self(b)
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.len() < 2
    }
}

impl Iterator for U16List<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        let (h, t) = self.0.split_at_checked(2)?;
        self.0 = t;
        Some(be16(h))
    }
}

/// One extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    pub ext_type: u16,
    pub data: &'a [u8],
}

/// Iterates an extension block (already checked to be well formed by the hello parsers).
#[derive(Clone, Copy, Debug)]
pub struct Extensions<'a>(Reader<'a>);

impl<'a> Iterator for Extensions<'a> {
    type Item = Extension<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let ext_type = self.0.u16("extension").ok()?;
        let data = self.0.vec16("extension").ok()?;
        Some(Extension { ext_type, data })
    }
}

/// Checks that an extension block is a whole number of well-formed extensions.
fn check_extensions(b: &[u8]) -> Result<(), TlsError> {
    let mut r = Reader::new(b);
    // Each pass consumes at least four bytes.
    while !r.is_empty() {
        r.u16("extension")?;
        r.vec16("extension")
            .map_err(|_| TlsError::Malformed("extension length"))?;
    }
    Ok(())
}

/// A decoded ClientHello (RFC 8446 4.1.2; SSL 3.0 to TLS 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// `legacy_version` (the version JA3 uses).
    pub version: u16,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    /// Raw cipher suite list (2 bytes each).
    pub cipher_suites: &'a [u8],
    pub compression_methods: &'a [u8],
    /// Raw extension block (empty when the hello has none).
    pub extensions: &'a [u8],
}

impl<'a> ClientHello<'a> {
    /// Decodes a ClientHello body (without the handshake header).
    pub fn parse(body: &'a [u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(body);
        let version = r.u16("client hello")?;
        let random = r.take(32, "client hello")?;
        let session_id = r.vec8("client hello")?;
        if session_id.len() > 32 {
            return Err(TlsError::Malformed("session id"));
        }
        // An odd-length list is decoded up to its last whole value, as Wireshark does.
        let cipher_suites = r.vec16("client hello")?;
        let compression_methods = r.vec8("client hello")?;
        let extensions = if r.is_empty() {
            &[][..]
        } else {
            r.vec16("client hello")?
        };
        check_extensions(extensions)?;
        Ok(Self {
            version,
            random,
            session_id,
            cipher_suites,
            compression_methods,
            extensions,
        })
    }

    /// Offered cipher suites, in order, GREASE included.
    pub fn ciphers(&self) -> U16List<'a> {
        U16List(self.cipher_suites)
    }

    /// Extensions, in order, GREASE included.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions(Reader::new(self.extensions))
    }

    /// The data of the first extension of type `t`.
    pub fn extension(&self, t: u16) -> Option<&'a [u8]> {
        self.extensions().find(|e| e.ext_type == t).map(|e| e.data)
    }

    /// The first host name of the `server_name` extension.
    pub fn sni(&self) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.extension(EXT_SERVER_NAME)?);
        let mut list = Reader::new(r.vec16("sni").ok()?);
        // Each pass consumes at least three bytes.
        while !list.is_empty() {
            let kind = list.u8("sni").ok()?;
            let name = list.vec16("sni").ok()?;
            if kind == 0 {
                return Some(name);
            }
        }
        None
    }

    /// ALPN protocol names offered, in order.
    pub fn alpn(&self) -> ProtocolNames<'a> {
        let data = self.extension(EXT_ALPN).unwrap_or_default();
        let mut r = Reader::new(data);
        ProtocolNames(Reader::new(r.vec16("alpn").unwrap_or_default()))
    }

    /// Whether the hello has an extension of type `t`.
    pub fn has_extension(&self, t: u16) -> bool {
        self.extension(t).is_some()
    }

    /// The `supported_versions` list, GREASE included; `None` without the extension.
    pub fn supported_versions(&self) -> Option<U16List<'a>> {
        let mut r = Reader::new(self.extension(EXT_SUPPORTED_VERSIONS)?);
        Some(U16List(r.vec8("supported versions").ok()?))
    }

    /// The highest version the client offers: the largest non-GREASE `supported_versions`
    /// value, else `legacy_version`.
    pub fn highest_version(&self) -> u16 {
        self.supported_versions()
            .and_then(|l| l.filter(|v| !is_grease(*v)).max())
            .unwrap_or(self.version)
    }

    /// `signature_algorithms`, in order.
    pub fn signature_algorithms(&self) -> U16List<'a> {
        let mut r = Reader::new(self.extension(EXT_SIGNATURE_ALGORITHMS).unwrap_or_default());
        U16List(r.vec16("signature algorithms").unwrap_or_default())
    }

    /// `supported_groups` (JA3's elliptic curves), in order.
    pub fn supported_groups(&self) -> U16List<'a> {
        let mut r = Reader::new(self.extension(EXT_SUPPORTED_GROUPS).unwrap_or_default());
        U16List(r.vec16("supported groups").unwrap_or_default())
    }

    /// `ec_point_formats`, in order.
    pub fn ec_point_formats(&self) -> &'a [u8] {
        let mut r = Reader::new(self.extension(EXT_EC_POINT_FORMATS).unwrap_or_default());
        r.vec8("ec point formats").unwrap_or_default()
    }
}

/// An SSL 2.0-compatible ClientHello (RFC 5246 E.2): old clients open with it to offer SSL 3.0
/// or TLS to servers that may only speak SSL 2.0. It has no extensions, so no SNI and no
/// fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sslv2ClientHello<'a> {
    /// Highest version offered (0x0002 for SSL 2.0, 0x0300 and up for SSL 3.0/TLS).
    pub version: u16,
    /// Cipher specs, 3 bytes each.
    pub cipher_specs: &'a [u8],
}

impl<'a> Sslv2ClientHello<'a> {
    /// Decodes an SSL 2.0 record carrying a ClientHello at the start of `b` (2-byte header
    /// with the high bit set). `Truncated` until the whole record is there.
    pub fn parse(b: &'a [u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(b);
        let h = r.u16("sslv2 header")?;
        if h & 0x8000 == 0 {
            return Err(TlsError::NotTls);
        }
        let len = usize::from(h & 0x7fff);
        if r.rest().first().is_some_and(|&t| t != HS_CLIENT_HELLO) {
            return Err(TlsError::NotTls);
        }
        if let Some(&major) = r.rest().get(1)
            && major != 0
            && major != 3
        {
            return Err(TlsError::NotTls);
        }
        let mut body = Reader::new(r.take(len, "sslv2 client hello")?);
        body.u8("sslv2 client hello")?;
        let version = body.u16("sslv2 client hello")?;
        if version != 0x0002 && version >> 8 != 3 {
            return Err(TlsError::NotTls);
        }
        let spec_len = usize::from(body.u16("sslv2 client hello")?);
        let sid_len = usize::from(body.u16("sslv2 client hello")?);
        let challenge_len = usize::from(body.u16("sslv2 client hello")?);
        if spec_len % 3 != 0 || sid_len > 32 || !(16..=32).contains(&challenge_len) {
            return Err(TlsError::Malformed("sslv2 client hello"));
        }
        let cipher_specs = body.take(spec_len, "sslv2 client hello")?;
        body.take(sid_len + challenge_len, "sslv2 client hello")?;
        Ok(Self {
            version,
            cipher_specs,
        })
    }
}

/// Iterates ALPN protocol names (each a 1-byte-length string).
#[derive(Clone, Copy, Debug)]
pub struct ProtocolNames<'a>(Reader<'a>);

impl<'a> Iterator for ProtocolNames<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.0.vec8("alpn").ok()
    }
}

/// The `random` of a TLS 1.3 HelloRetryRequest (RFC 8446 4.1.3): a ServerHello with it asks
/// the client for a second ClientHello.
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A decoded ServerHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello<'a> {
    /// `legacy_version`.
    pub version: u16,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    /// The chosen cipher suite.
    pub cipher_suite: u16,
    pub compression_method: u8,
    pub extensions: &'a [u8],
}

impl<'a> ServerHello<'a> {
    /// Decodes a ServerHello body (without the handshake header).
    pub fn parse(body: &'a [u8]) -> Result<Self, TlsError> {
        let mut r = Reader::new(body);
        let version = r.u16("server hello")?;
        let random = r.take(32, "server hello")?;
        if version >> 8 == 0x7f {
            // TLS 1.3 drafts before 22 put the draft version here and have neither a session
            // id nor a compression method.
            let cipher_suite = r.u16("server hello")?;
            let extensions = if r.is_empty() {
                &[][..]
            } else {
                r.vec16("server hello")?
            };
            check_extensions(extensions)?;
            return Ok(Self {
                version,
                random,
                session_id: &[],
                cipher_suite,
                compression_method: 0,
                extensions,
            });
        }
        let session_id = r.vec8("server hello")?;
        if session_id.len() > 32 {
            return Err(TlsError::Malformed("session id"));
        }
        let cipher_suite = r.u16("server hello")?;
        let compression_method = r.u8("server hello")?;
        let extensions = if r.is_empty() {
            &[][..]
        } else {
            r.vec16("server hello")?
        };
        check_extensions(extensions)?;
        Ok(Self {
            version,
            random,
            session_id,
            cipher_suite,
            compression_method,
            extensions,
        })
    }

    /// Extensions, in order.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions(Reader::new(self.extensions))
    }

    /// The version chosen: `supported_versions` (TLS 1.3) when present, else `legacy_version`.
    pub fn selected_version(&self) -> u16 {
        self.extensions()
            .find(|e| e.ext_type == EXT_SUPPORTED_VERSIONS)
            .and_then(|e| e.data.get(..2).map(be16))
            .unwrap_or(self.version)
    }

    /// The ALPN protocol chosen (TLS ≤ 1.2; TLS 1.3 sends it encrypted).
    pub fn alpn(&self) -> Option<&'a [u8]> {
        let data = self.extensions().find(|e| e.ext_type == EXT_ALPN)?.data;
        let mut r = Reader::new(data);
        ProtocolNames(Reader::new(r.vec16("alpn").ok()?)).next()
    }

    /// Whether this is a HelloRetryRequest rather than a ServerHello.
    pub fn is_hello_retry_request(&self) -> bool {
        self.random == HELLO_RETRY_REQUEST_RANDOM
    }
}

/// Iterates the DER certificates of a Certificate message body (TLS ≤ 1.2 layout: a 3-byte
/// list length, then 3-byte-length certificates), leaf first.
pub fn certificates(body: &[u8]) -> Result<Certificates<'_>, TlsError> {
    let mut r = Reader::new(body);
    let list = r.vec24("certificate list")?;
    Ok(Certificates(Reader::new(list)))
}

/// Iterator of [`certificates`].
#[derive(Clone, Copy)]
pub struct Certificates<'a>(Reader<'a>);

impl<'a> Iterator for Certificates<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.0.vec24("certificate").ok()
    }
}

/// The display name of a protocol version (`TLS 1.2`), or `None` for an unknown value, which
/// callers print as a number.
pub fn version_name(v: u16) -> Option<&'static str> {
    Some(match v {
        0x0002 => "SSL 2.0",
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
