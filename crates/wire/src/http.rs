//! HTTP/1.x message heads: the request line or status line and the few header fields a
//! summary needs (Host, User-Agent, Content-Length, Transfer-Encoding, Connection), plus the
//! chunk-size lines of a chunked body. Zero-copy and allocation-free: fields borrow the input.
//!
//! It is not a full HTTP implementation: header values are not unfolded or validated beyond
//! what framing needs, bodies are never read (only their length is worked out, so a caller can
//! skip them), and HTTP/2 or HTTP/0.9 are not recognised.

use thiserror::Error;

/// Most header fields read in one head; more is malformed (a flood, not a client).
pub const MAX_HEADERS: usize = 128;
/// Longest method token accepted (the longest registered methods are ~17 bytes).
const MAX_METHOD: usize = 24;

/// Why bytes are not an HTTP/1.x message head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HttpError {
    /// The bytes do not start like an HTTP/1.x request or response.
    #[error("not http")]
    NotHttp,
    /// The request or status line is malformed.
    #[error("bad start line")]
    BadStartLine,
    /// A header line has no colon or a bad name.
    #[error("bad header")]
    BadHeader,
    /// More than [`MAX_HEADERS`] header fields.
    #[error("too many headers")]
    TooManyHeaders,
    /// Content-Length is not a number, or two differ.
    #[error("bad content length")]
    BadContentLength,
    /// A chunk-size line is malformed.
    #[error("bad chunk size")]
    BadChunk,
}

impl HttpError {
    /// Stable snake_case name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::NotHttp => "not_http",
            HttpError::BadStartLine => "bad_start_line",
            HttpError::BadHeader => "bad_header",
            HttpError::TooManyHeaders => "too_many_headers",
            HttpError::BadContentLength => "bad_content_length",
            HttpError::BadChunk => "bad_chunk",
        }
    }
}

/// Framing fields common to requests and responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    /// `Content-Length`, when present.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` ends in `chunked`.
    pub chunked: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive` (what keeps an HTTP/1.0 connection open).
    pub keep_alive: bool,
    /// `Connection: upgrade` (with an `Upgrade` field: the stream changes protocol after 101).
    pub upgrade: bool,
}

/// An HTTP/1.x request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a [u8],
    /// Request target as sent (origin form, absolute form, authority or `*`).
    pub target: &'a [u8],
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub host: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub framing: Framing,
    /// Bytes of the head, blank line included: the body starts here.
    pub head_len: usize,
}

/// An HTTP/1.x response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    pub minor: u8,
    /// Status code as sent (100..=999).
    pub status: u16,
    pub reason: &'a [u8],
    pub framing: Framing,
    /// Bytes of the head, blank line included: the body starts here.
    pub head_len: usize,
}

/// Token characters (RFC 9110 §5.6.2), as a table: header names are checked byte by byte.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric();
        i += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
};

fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Bits 0..=6 of every byte.
const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
/// `\n` in every byte.
const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);

/// The eight bytes at `at` as a little-endian word (byte `at` lowest), when there are eight.
#[inline(always)]
fn word_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..)
        .and_then(|s| s.first_chunk::<8>())
        .map(|w| u64::from_le_bytes(*w))
}

/// Bit 7 set in exactly the bytes of `w` that are `\n`: the sum of the low seven bits and
/// 0x7f reaches bit 7 for every non-zero byte, so no carry crosses a byte and no byte is
/// flagged by its neighbours (which lets the last word of a slice overlap bytes already seen).
#[inline(always)]
fn lf_bytes(w: u64) -> u64 {
    let v = w ^ LFS;
    !((v & LOW7).wrapping_add(LOW7) | v | LOW7)
}

/// Position of the first `\n` in `b` at or after `from`, eight bytes at a time: message heads
/// are searched for line ends on every segment, so this is the parser's inner loop, and on
/// lines of a few dozen bytes a word loop beats a call into a vector search.
#[inline(always)]
fn find_lf(b: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    // Whole words from `from` on: `chunks_exact` walks them without a bounds check each.
    for w in b.get(from..).unwrap_or_default().chunks_exact(8) {
        let m = w
            .first_chunk::<8>()
            .map_or(0, |w| lf_bytes(u64::from_le_bytes(*w)));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    match b.len().checked_sub(8) {
        // Fewer than eight bytes left: the slice's last word, without the bytes before `at`.
        Some(last) => {
            let skip = at.checked_sub(last)?.min(8) as u32;
            let m = lf_bytes(word_at(b, last)?)
                .checked_shr(8 * skip)
                .unwrap_or(0);
            (m != 0).then(|| at + (m.trailing_zeros() / 8) as usize)
        }
        // A slice shorter than a word.
        None => b
            .get(at..)?
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| at + p),
    }
}

/// The line at the start of `b` without its CRLF (or bare LF), and the length including it.
fn line(b: &[u8]) -> Option<(&[u8], usize)> {
    let lf = find_lf(b, 0)?;
    let l = b.get(..lf)?;
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    Some((l, lf + 1))
}

fn version_minor(v: &[u8]) -> Option<u8> {
    match v {
        b"HTTP/1.0" => Some(0),
        b"HTTP/1.1" => Some(1),
        _ => None,
    }
}

/// `v` without leading and trailing spaces and tabs. Values usually carry one leading space
/// (`Host: a`): slice patterns strip it without iterator set-up.
fn trim(v: &[u8]) -> &[u8] {
    let mut s = v;
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn lists(v: &[u8], token: &[u8]) -> bool {
    v.split(|&c| c == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// The request header fields a summary reads besides framing (first occurrence wins).
#[derive(Debug, Clone, Copy, Default)]
struct Fields<'a> {
    host: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
}

/// ASCII case-insensitive comparison of a header name with a lower-case `want` of the same
/// length: the first byte is compared before the rest, since most names differ there.
///
/// `name` holds token bytes only and `want` lower-case letters and `-`: setting bit 5 then
/// lower-cases a letter and leaves `-` as it is, and no other token byte can become a letter or
/// `-` that way, so one OR per byte replaces a case-insensitive comparison (and the whole
/// comparison is done without a branch per byte).
fn name_is(name: &[u8], want: &[u8]) -> bool {
    name.len() == want.len()
        && name.first().map(|c| c | 0x20) == want.first().copied()
        && name
            .iter()
            .zip(want)
            .fold(0u8, |diff, (&c, &w)| diff | ((c | 0x20) ^ w))
            == 0
}

/// Length of the run of token bytes at the start of `b` (all of `b` when every byte is one).
/// Eight bytes are looked up per step into a mask of the non-token ones, whose lowest bit is
/// the end: one branch per eight bytes, since header names run 4 to 20 bytes.
#[inline]
fn token_end(b: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(w) = b.get(at..).and_then(|s| s.first_chunk::<8>()) {
        let stop = w
            .iter()
            .enumerate()
            .fold(0u32, |m, (i, &c)| m | u32::from(!is_tchar(c)) << i);
        if stop != 0 {
            return at + stop.trailing_zeros() as usize;
        }
        at += 8;
    }
    let tail = b.get(at..).unwrap_or_default();
    at + tail
        .iter()
        .position(|&c| !is_tchar(c))
        .unwrap_or(tail.len())
}

/// `-` in every byte.
const DASHES: u64 = u64::from_ne_bytes([b'-'; 8]);
/// Bit 5 of every byte (ASCII case).
const CASE: u64 = u64::from_ne_bytes([0x20; 8]);

/// Bit 7 set in exactly the bytes of `w` that are ASCII letters or `-`, the bytes of nearly
/// every header name. Each byte is checked on its low seven bits (no carry leaves a byte: the
/// sums stay below 0x100) and bytes with bit 7 set are excluded after.
#[inline(always)]
fn letter_or_dash_bytes(w: u64) -> u64 {
    let low = (w | CASE) & LOW7;
    // Bit 7 of `low + (0x80 - x)` is set when `low >= x`.
    let ge_a = low.wrapping_add(u64::from_ne_bytes([0x80 - b'a'; 8]));
    let gt_z = low.wrapping_add(u64::from_ne_bytes([0x80 - b'z' - 1; 8]));
    let letters = ge_a & !gt_z;
    let d = (w ^ DASHES) & LOW7;
    let dashes = !(d.wrapping_add(LOW7) | d);
    (letters | dashes) & !w & !LOW7
}

/// The header name's end at the start of `b`: the position of its first non-token byte (all
/// of `b` when every byte is one), as [`token_end`]. Letters and `-` are passed eight at a time
/// with a few word operations; from the first other byte on (a digit, `_`, or the colon) the
/// table takes over.
#[inline(always)]
fn name_end(b: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(w) = word_at(b, at) {
        let other = !letter_or_dash_bytes(w) & !LOW7;
        if other != 0 {
            let p = at + (other.trailing_zeros() / 8) as usize;
            if b.get(p) == Some(&b':') {
                return p;
            }
            at = p;
            break;
        }
        at += 8;
    }
    at + token_end(b.get(at..).unwrap_or_default())
}

/// Up to eight bytes of a lower-case token as a little-endian word, and the case bit of each
/// of its letters (so that `byte | bit` folds only letters, as `eq_ignore_ascii_case` does).
const fn lower_word(t: &[u8]) -> (u64, u64) {
    let (mut word, mut case) = (0u64, 0u64);
    let mut i = 0;
    while i < t.len() && i < 8 {
        word |= (t[i] as u64) << (8 * i);
        if t[i].is_ascii_lowercase() {
            case |= 0x20 << (8 * i);
        }
        i += 1;
    }
    (word, case)
}

/// `v` (up to eight bytes) as a little-endian word, zero-padded.
#[inline(always)]
fn small_word(v: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    if let Some(dst) = buf.get_mut(..v.len()) {
        dst.copy_from_slice(v);
    }
    u64::from_le_bytes(buf)
}

/// `v.eq_ignore_ascii_case(b"keep-alive")`, in two word comparisons (the usual Connection
/// value of every keep-alive response).
#[inline]
fn is_keep_alive(v: &[u8]) -> bool {
    const HEAD: (u64, u64) = lower_word(b"keep-ali");
    const TAIL: (u64, u64) = lower_word(b"ve");
    match v.split_first_chunk::<8>() {
        Some((head, tail)) if tail.len() == 2 => {
            u64::from_le_bytes(*head) | HEAD.1 == HEAD.0 && small_word(tail) | TAIL.1 == TAIL.0
        }
        _ => false,
    }
}

/// `v.eq_ignore_ascii_case(b"close")`, in one word comparison.
#[inline]
fn is_close(v: &[u8]) -> bool {
    const CLOSE: (u64, u64) = lower_word(b"close");
    v.len() == 5 && small_word(v) | CLOSE.1 == CLOSE.0
}

/// Header fields after the start line: fills framing (and, when `FIELDS`, Host and
/// User-Agent), returns the head length or `None` when the blank line has not arrived yet.
///
/// Each line is read once: the name is checked token byte by token byte up to its colon (the
/// first non-token byte must be that colon), the line end is found eight bytes at a time, and
/// only names of the wanted lengths are compared. Values of other fields are never walked.
fn headers<'a, const FIELDS: bool>(
    b: &'a [u8],
    mut at: usize,
    f: &mut Framing,
    fields: &mut Fields<'a>,
) -> Result<Option<usize>, HttpError> {
    let mut rest = b.get(at..).unwrap_or_default();
    // A plain range: an inclusive one carries an exhausted flag through the loop.
    for _ in 0..MAX_HEADERS + 1 {
        // The name: token bytes up to the colon. Anything else is a bad line once it is
        // complete (before that, more bytes are needed, as for any partial line).
        let colon = name_end(rest);
        if colon == 0 {
            // No name: the blank line (CRLF or bare LF) that ends the head, or a bad line.
            // (`\r` and `\n` are not token bytes, so a line with a name is never blank.)
            match (rest.first(), rest.get(1)) {
                (None, _) | (Some(b'\r'), None) => return Ok(None),
                (Some(b'\n'), _) => return Ok(Some(at + 1)),
                (Some(b'\r'), Some(b'\n')) => return Ok(Some(at + 2)),
                _ => {}
            }
        }
        let Some(&sep) = rest.get(colon) else {
            return Ok(None);
        };
        if colon == 0 || sep != b':' {
            return match find_lf(rest, colon) {
                Some(_) => Err(HttpError::BadHeader),
                None => Ok(None),
            };
        }
        // The line end, eight bytes at a time from the colon on.
        let Some(lf) = find_lf(rest, colon + 1) else {
            return Ok(None);
        };
        at += lf + 1;
        let line = rest;
        rest = rest.get(lf + 1..).unwrap_or_default();
        let name = line.get(..colon).unwrap_or_default();
        // The raw value: up to the line end, without the CR of a CRLF.
        let raw = || {
            let v = line.get(colon + 1..lf).unwrap_or_default();
            trim(v.strip_suffix(b"\r").unwrap_or(v))
        };
        match colon {
            14 if name_is(name, b"content-length") => {
                let n = parse_u64(raw()).ok_or(HttpError::BadContentLength)?;
                if f.content_length.is_some_and(|o| o != n) {
                    return Err(HttpError::BadContentLength);
                }
                f.content_length = Some(n);
            }
            17 if name_is(name, b"transfer-encoding") => {
                // Chunked only counts as the final coding (RFC 9112 §6.3).
                f.chunked = raw()
                    .rsplit(|&c| c == b',')
                    .next()
                    .is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
            }
            10 if name_is(name, b"connection") => {
                let value = raw();
                // The usual values are single tokens: compared whole before any list walk.
                match value.len() {
                    10 if is_keep_alive(value) => f.keep_alive = true,
                    5 if is_close(value) => f.close = true,
                    _ => {
                        f.close |= lists(value, b"close");
                        f.keep_alive |= lists(value, b"keep-alive");
                        f.upgrade |= lists(value, b"upgrade");
                    }
                }
            }
            10 if FIELDS && name_is(name, b"user-agent") => {
                fields.user_agent.get_or_insert_with(raw);
            }
            4 if FIELDS && name_is(name, b"host") => {
                fields.host.get_or_insert_with(raw);
            }
            _ => {}
        }
    }
    Err(HttpError::TooManyHeaders)
}

/// Whether `b` can still become a request line: a method token followed by a space.
fn plausible_method(b: &[u8]) -> bool {
    for (i, &c) in b.iter().enumerate().take(MAX_METHOD + 1) {
        if c == b' ' {
            return i > 0;
        }
        if !c.is_ascii_uppercase() && !(i > 0 && (c == b'-' || c == b'_')) {
            return false;
        }
    }
    b.len() <= MAX_METHOD
}

/// Parses a request head at the start of `b`; `Ok(None)` when more bytes are needed.
///
/// Methods are upper-case tokens (RFC 9110 methods are case-sensitive; every deployed one is
/// upper case), which lets a non-HTTP stream be told apart in its first bytes.
pub fn parse_request(b: &[u8]) -> Result<Option<Request<'_>>, HttpError> {
    if !plausible_method(b) {
        return Err(HttpError::NotHttp);
    }
    let Some((l, n)) = line(b) else {
        // A request line longer than any head kept is the caller's cap to enforce.
        return Ok(None);
    };
    // Method up to the first space, version after the last: a target with spaces in it (attack
    // tools send them; servers and tshark accept them) stays one target.
    let sp1 = l.iter().position(|&c| c == b' ').unwrap_or(0);
    // The usual line ends in ` HTTP/1.x`: its last space is then nine bytes from the end.
    let sp2 = match l.len().checked_sub(9) {
        Some(s) if l.get(s) == Some(&b' ') && l.get(s + 1..).and_then(version_minor).is_some() => s,
        _ => l.iter().rposition(|&c| c == b' ').unwrap_or(0),
    };
    let method = l.get(..sp1).unwrap_or_default();
    let target = trim(l.get(sp1 + 1..sp2).unwrap_or_default());
    let version = l.get(sp2 + 1..).unwrap_or_default();
    if sp2 <= sp1 || target.is_empty() {
        return Err(HttpError::BadStartLine);
    }
    let minor = version_minor(version).ok_or(HttpError::BadStartLine)?;
    let mut framing = Framing::default();
    let mut fields = Fields::default();
    let Some(head_len) = headers::<true>(b, n, &mut framing, &mut fields)? else {
        return Ok(None);
    };
    let Fields { host, user_agent } = fields;
    if minor == 0 {
        // HTTP/1.0 closes unless its Connection field asks for keep-alive (RFC 9112 §9.3).
        framing.close |= !framing.keep_alive;
    }
    Ok(Some(Request {
        method,
        target,
        minor,
        host,
        user_agent,
        framing,
        head_len,
    }))
}

/// Parses a response head at the start of `b`; `Ok(None)` when more bytes are needed.
pub fn parse_response(b: &[u8]) -> Result<Option<Response<'_>>, HttpError> {
    let prefix = b"HTTP/1.";
    let k = b.len().min(prefix.len());
    if b.get(..k) != prefix.get(..k) {
        return Err(HttpError::NotHttp);
    }
    let Some((l, n)) = line(b) else {
        return Ok(None);
    };
    let minor = l
        .get(..8)
        .and_then(version_minor)
        .ok_or(HttpError::BadStartLine)?;
    let code = l.get(9..12).ok_or(HttpError::BadStartLine)?;
    if l.get(8) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadStartLine);
    }
    let status = code.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
    if status < 100 {
        return Err(HttpError::BadStartLine);
    }
    let reason = trim(l.get(12..).unwrap_or_default());
    let mut framing = Framing::default();
    let Some(head_len) = headers::<false>(b, n, &mut framing, &mut Fields::default())? else {
        return Ok(None);
    };
    Ok(Some(Response {
        minor,
        status,
        reason,
        framing,
        head_len,
    }))
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    None,
    /// Exactly this many bytes.
    Fixed(u64),
    /// Chunked transfer coding: read with [`chunk_line`].
    Chunked,
    /// Until the connection closes (responses without length).
    UntilClose,
}

impl Request<'_> {
    /// The body's delimitation (RFC 9112 §6.3): chunked wins over Content-Length; a request
    /// with neither has none.
    pub fn body(&self) -> BodyLength {
        if self.framing.chunked {
            BodyLength::Chunked
        } else {
            match self.framing.content_length {
                Some(0) | None => BodyLength::None,
                Some(n) => BodyLength::Fixed(n),
            }
        }
    }

    /// The target's path: without the query or fragment, and without scheme and authority in
    /// absolute form (`http://host/p?q` → `/p`).
    pub fn path(&self) -> &[u8] {
        path_of(self.target)
    }
}

/// The path of a request target (see [`Request::path`]). Only a target that starts with a
/// scheme and `://` is in absolute form: in an origin-form target (`/r?to=http://x/y`) a
/// `://` belongs to the path or query.
pub fn path_of(target: &[u8]) -> &[u8] {
    let mut t = target;
    if let Some(i) = scheme_end(t) {
        let after = t.get(i + 3..).unwrap_or_default();
        t = after
            .iter()
            .position(|&c| c == b'/')
            .and_then(|s| after.get(s..))
            .unwrap_or(b"/");
    }
    let end = memchr::memchr2(b'?', b'#', t).unwrap_or(t.len());
    t.get(..end).unwrap_or_default()
}

/// Length of the scheme when `t` starts with `scheme://` (RFC 3986 §3.1: a letter, then
/// letters, digits, `+`, `-` or `.`).
fn scheme_end(t: &[u8]) -> Option<usize> {
    if !t.first()?.is_ascii_alphabetic() {
        return None;
    }
    let i = t
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))?;
    (t.get(i..i + 3) == Some(b"://")).then_some(i)
}

impl Response<'_> {
    /// The body's delimitation (RFC 9112 §6.3), given whether the request was `HEAD` or a
    /// successful `CONNECT`'s tunnel is handled by the caller.
    pub fn body(&self, request_was_head: bool) -> BodyLength {
        if request_was_head || self.status < 200 || self.status == 204 || self.status == 304 {
            BodyLength::None
        } else if self.framing.chunked {
            BodyLength::Chunked
        } else {
            match self.framing.content_length {
                Some(0) => BodyLength::None,
                Some(n) => BodyLength::Fixed(n),
                None => BodyLength::UntilClose,
            }
        }
    }
}

/// A chunk-size line at the start of `b`: `Ok(Some((size, line_len)))`, `Ok(None)` when the
/// line is incomplete. The chunk's data and its CRLF follow the line (`size + 2` bytes); a
/// size of 0 starts the trailer section, which ends at an empty line.
pub fn chunk_line(b: &[u8]) -> Result<Option<(u64, usize)>, HttpError> {
    let Some((l, n)) = line(b) else {
        // Sizes with extensions fit in a few dozen bytes; a long line is not a chunk size.
        return if b.len() > 1024 {
            Err(HttpError::BadChunk)
        } else {
            Ok(None)
        };
    };
    let hex_end = l
        .iter()
        .position(|c| !c.is_ascii_hexdigit())
        .unwrap_or(l.len());
    let hex = l.get(..hex_end).unwrap_or_default();
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::BadChunk);
    }
    let rest = trim(l.get(hex_end..).unwrap_or_default());
    if !rest.is_empty() && rest.first() != Some(&b';') {
        return Err(HttpError::BadChunk);
    }
    let size = hex.iter().fold(0u64, |a, &c| {
        a << 4 | u64::from(char::from(c).to_digit(16).unwrap_or(0))
    });
    Ok(Some((size, n)))
}

/// The trailer section after a last chunk: its length (through the empty line), or `None`
/// when incomplete.
pub fn trailer_len(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    for _ in 0..=MAX_HEADERS {
        let (l, n) = line(b.get(at..)?)?;
        at += n;
        if l.is_empty() {
            return Some(at);
        }
    }
    // Too many trailer lines: stop reading the body as if it ended here.
    Some(at)
}

#[cfg(test)]
mod tests;
