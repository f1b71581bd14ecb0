//! Unit tests of the HTTP/1.x head parser on real request and response bytes.

use super::*;

const CURL: &[u8] = b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

#[test]
fn curl_request() {
    let r = parse_request(CURL).unwrap().unwrap();
    assert_eq!(r.method, b"GET");
    assert_eq!(r.target, b"/index.html?x=1");
    assert_eq!(r.path(), b"/index.html");
    assert_eq!(r.minor, 1);
    assert_eq!(r.host, Some(&b"example.com:8080"[..]));
    assert_eq!(r.user_agent, Some(&b"curl/8.5.0"[..]));
    assert_eq!(r.head_len, CURL.len());
    assert_eq!(r.body(), BodyLength::None);
}

#[test]
fn pipelined_requests_in_one_segment() {
    let post = b"POST /api HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello";
    let mut seg = post.to_vec();
    seg.extend_from_slice(CURL);
    let r = parse_request(&seg).unwrap().unwrap();
    assert_eq!(r.method, b"POST");
    assert_eq!(r.body(), BodyLength::Fixed(5));
    let next = &seg[r.head_len + 5..];
    let r2 = parse_request(next).unwrap().unwrap();
    assert_eq!(r2.method, b"GET");
    assert_eq!(r2.head_len, next.len());
}

#[test]
fn headers_split_across_segments_need_more() {
    for cut in 0..CURL.len() {
        assert_eq!(parse_request(&CURL[..cut]), Ok(None), "cut at {cut}");
    }
}

#[test]
fn responses_and_body_rules() {
    let r = parse_response(
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!((r.status, r.reason), (200, &b"OK"[..]));
    assert_eq!(r.body(false), BodyLength::Chunked);
    assert_eq!(r.body(true), BodyLength::None);
    let r = parse_response(
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 12\r\nConnection: close\r\n\r\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!((r.minor, r.status), (0, 404));
    assert!(r.framing.close);
    assert_eq!(r.body(false), BodyLength::Fixed(12));
    let r = parse_response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.body(false), BodyLength::None);
    let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
    assert_eq!(r.body(false), BodyLength::UntilClose);
    assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nServ"), Ok(None));
}

#[test]
fn non_http_is_told_in_the_first_bytes() {
    assert_eq!(
        parse_request(b"\x16\x03\x01\x02\x00"),
        Err(HttpError::NotHttp)
    );
    assert_eq!(parse_request(b"SSH-2.0-OpenSSH"), Err(HttpError::NotHttp));
    assert_eq!(parse_response(b"SSH-2.0"), Err(HttpError::NotHttp));
    assert_eq!(parse_request(b"GE"), Ok(None));
    assert_eq!(parse_response(b"HTT"), Ok(None));
    assert_eq!(
        parse_request(b"GET / HTTP/2.0\r\n\r\n"),
        Err(HttpError::BadStartLine)
    );
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"),
        Err(HttpError::BadHeader)
    );
    assert_eq!(
        parse_request(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        Err(HttpError::BadContentLength)
    );
}

#[test]
fn targets_with_spaces_stay_one_target() {
    let r = parse_request(b"GET /etc/passwd|?data=Download x HTTP/1.1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.target, b"/etc/passwd|?data=Download x");
    assert_eq!(
        parse_request(b"GET HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadStartLine)
    );
}

#[test]
fn http10_closes_unless_keep_alive() {
    let r = parse_request(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(r.framing.close);
    let r = parse_request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.framing.close);
    let r = parse_request(b"GET / HTTP/1.0\r\nConnection: TE, keep-alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!r.framing.close);
    // "keep-alive" anywhere but in the Connection field keeps nothing open.
    let r = parse_request(b"GET /keep-alive HTTP/1.0\r\nX-Mode: keep-alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.framing.close);
    let r = parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.framing.close);
}

#[test]
fn absolute_form_paths() {
    assert_eq!(path_of(b"http://h.example/a/b?q#f"), b"/a/b");
    assert_eq!(path_of(b"http://h.example"), b"/");
    assert_eq!(path_of(b"svn+ssh://h.example/r"), b"/r");
    assert_eq!(path_of(b"*"), b"*");
    // Origin form: a URL in the query or path is not the target's scheme.
    assert_eq!(path_of(b"/redirect?to=http://x.example/y"), b"/redirect");
    assert_eq!(
        path_of(b"/proxy/http://x.example/y"),
        b"/proxy/http://x.example/y"
    );
    // Authority form (CONNECT) and scheme-like prefixes that are not schemes.
    assert_eq!(path_of(b"h.example:443"), b"h.example:443");
    assert_eq!(path_of(b"1http://x/y"), b"1http://x/y");
    assert_eq!(path_of(b"ht tp://x/y"), b"ht tp://x/y");
}

#[test]
fn chunks() {
    assert_eq!(chunk_line(b"1a\r\n"), Ok(Some((26, 4))));
    assert_eq!(chunk_line(b"0;ext=1\r\n"), Ok(Some((0, 9))));
    assert_eq!(chunk_line(b"1a"), Ok(None));
    assert_eq!(chunk_line(b"zz\r\n"), Err(HttpError::BadChunk));
    assert_eq!(trailer_len(b"\r\nGET"), Some(2));
    assert_eq!(trailer_len(b"X-T: 1\r\n\r\n"), Some(10));
    assert_eq!(trailer_len(b"X-T: 1\r\n"), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = parse_request(&b);
        let _ = parse_response(&b);
        let _ = chunk_line(&b);
        let _ = trailer_len(&b);
    }
}

#[test]
fn tchar_table_matches_rfc_9110() {
    for c in 0..=255u8 {
        let expected = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        assert_eq!(is_tchar(c), expected, "byte {c:#04x}");
    }
}

/// The header walk the scan replaced, kept as the oracle of its behaviour: every line found
/// with `line`, the colon searched, the whole name checked, every value trimmed, and names
/// compared one after the other.
fn oracle_headers<'a>(
    b: &'a [u8],
    mut at: usize,
    f: &mut Framing,
    fields: &mut Fields<'a>,
) -> Result<Option<usize>, HttpError> {
    for _ in 0..=MAX_HEADERS {
        let Some((l, n)) = b.get(at..).and_then(line) else {
            return Ok(None);
        };
        at += n;
        if l.is_empty() {
            return Ok(Some(at));
        }
        let colon = l
            .iter()
            .position(|&c| c == b':')
            .ok_or(HttpError::BadHeader)?;
        let name = l.get(..colon).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(HttpError::BadHeader);
        }
        let value = trim(l.get(colon + 1..).unwrap_or_default());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_u64(value).ok_or(HttpError::BadContentLength)?;
            if f.content_length.is_some_and(|o| o != n) {
                return Err(HttpError::BadContentLength);
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.chunked = value
                .rsplit(|&c| c == b',')
                .next()
                .is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            f.close |= lists(value, b"close");
            f.keep_alive |= lists(value, b"keep-alive");
            f.upgrade |= lists(value, b"upgrade");
        } else if name.eq_ignore_ascii_case(b"host") {
            fields.host.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            fields.user_agent.get_or_insert(value);
        }
    }
    Err(HttpError::TooManyHeaders)
}

type Scanned<'a> = (
    Result<Option<usize>, HttpError>,
    Framing,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
);

fn scan_both(b: &[u8]) -> (Scanned<'_>, Scanned<'_>) {
    let (mut f1, mut x1) = (Framing::default(), Fields::default());
    let r1 = headers::<true>(b, 0, &mut f1, &mut x1);
    let (mut f2, mut x2) = (Framing::default(), Fields::default());
    let r2 = oracle_headers(b, 0, &mut f2, &mut x2);
    (
        (r1, f1, x1.host, x1.user_agent),
        (r2, f2, x2.host, x2.user_agent),
    )
}

/// One header line from pieces likely to hit every branch: the names the scan matches (in
/// any case, with near misses), odd bytes in names, values with lists, spaces and digits,
/// CRLF or bare LF or stray CR.
fn header_line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let name = prop_oneof![
        Just(b"Host".to_vec()),
        Just(b"hOST".to_vec()),
        Just(b"User-Agent".to_vec()),
        Just(b"Content-Length".to_vec()),
        Just(b"content-lengtH".to_vec()),
        Just(b"Transfer-Encoding".to_vec()),
        Just(b"Connection".to_vec()),
        Just(b"CONNECTION".to_vec()),
        Just(b"Content-Type".to_vec()),
        Just(b"Hosts".to_vec()),
        Just(b"Xonnection".to_vec()),
        Just(b"Last-Modified".to_vec()),
        Just(b"X_Trace-Id2".to_vec()),
        Just(b"X-A-Very-Long-Header-Name-Of-Letters".to_vec()),
        Just(Vec::new()),
        // obs-fold: a continuation line starts with a space or a tab.
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'-'), Just(b' '), Just(b'\r'), Just(b'@')],
            1..6
        ),
        // Long names around the word size, with bytes the word test must hand to the table
        // (digits, `_`, `z`+1, `a`-1, bytes with bit 7 set, CR and `-` with bit 5 flipped).
        proptest::collection::vec(
            prop_oneof![
                8 => Just(b'a'),
                2 => Just(b'Z'),
                2 => Just(b'-'),
                1 => Just(b'7'),
                1 => Just(b'_'),
                1 => Just(b'{'),
                1 => Just(b'`'),
                1 => Just(b'@'),
                1 => Just(b'['),
                1 => Just(0xc1u8),
                1 => Just(b'\r'),
                1 => Just(b'\x0d' | 0x80),
            ],
            6..40
        ),
    ];
    let value = proptest::collection::vec(
        prop_oneof![
            Just(&b" "[..]),
            Just(&b"\t"[..]),
            Just(&b","[..]),
            Just(&b"chunked"[..]),
            Just(&b"close"[..]),
            Just(&b"Upgrade"[..]),
            Just(&b"12"[..]),
            Just(&b"7"[..]),
            Just(&b"x"[..]),
            Just(&b":"[..]),
            Just(&b"\r"[..]),
            Just(&b"\n"[..]),
            Just(&b"\x0b\x8a"[..]),
            Just(&b"Tue, 01 Dec 2026 05:52:14 GMT and some more bytes of a long value"[..]),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat());
    let colon = prop_oneof![4 => Just(&b":"[..]), 1 => Just(&b""[..]), 1 => Just(&b" :"[..])];
    let end = prop_oneof![
        4 => Just(&b"\r\n"[..]),
        2 => Just(&b"\n"[..]),
        1 => Just(&b"\r\r\n"[..])
    ];
    (name, colon, value, end).prop_map(|(n, c, v, e)| [&n[..], c, &v[..], e].concat())
}

use proptest::prelude::Just;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// The scan reads header blocks (complete, cut anywhere, or followed by more bytes)
    /// exactly as the old line-by-line walk did.
    #[test]
    fn header_scan_agrees_with_the_line_walk(
        lines in proptest::collection::vec(header_line(), 0..8),
        blank in proptest::prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b""[..])],
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let mut block = lines.concat();
        block.extend_from_slice(blank);
        block.extend_from_slice(&tail);
        let (new, old) = scan_both(&block);
        proptest::prop_assert_eq!(new, old);
        let cut = cut.index(block.len() + 1);
        let (new, old) = scan_both(&block[..cut]);
        proptest::prop_assert_eq!(new, old);
    }

    /// The same on arbitrary bytes.
    #[test]
    fn header_scan_agrees_on_random_bytes(
        b in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                Just(b'\n'),
                Just(b'\r'),
                Just(b':'),
                Just(b'a'),
            ],
            0..96,
        ),
    ) {
        let (new, old) = scan_both(&b);
        proptest::prop_assert_eq!(new, old);
    }
}

#[test]
fn header_scan_cases() {
    // Many heads the scan must read as the walk did, one by one.
    let cases: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b"",
        b"Host: a\r\n\r\n",
        b"host:a\nUser-Agent:  b c \t\n\n",
        b"Host: a\r\nHost: b\r\n\r\n",
        b": x\r\n\r\n",
        b"Bad Name: x\r\n\r\n",
        b"Bad Name: x",
        b"\rx: y\r\n\r\n",
        b"\r\r\n",
        b"NoColon\r\n\r\n",
        b"NoColon",
        b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"Content-Length: x\r\n\r\n",
        b"Transfer-Encoding: gzip, Chunked \r\n\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        b"Connection: keep-alive, Upgrade\r\nConnection: close\r\n\r\n",
        b"Content-Length:\r\n\r\n",
        b"Host:\r\n\r\n",
        b"Host: a\r",
    ];
    for c in cases {
        let (new, old) = scan_both(c);
        assert_eq!(new, old, "{:?}", String::from_utf8_lossy(c));
    }
    let (new, _) = scan_both(b"host:a\nUser-Agent:  b c \t\n\n");
    assert_eq!(new.0, Ok(Some(27)));
    assert_eq!((new.2, new.3), (Some(&b"a"[..]), Some(&b"b c"[..])));
    let many = b"X: y\r\n".repeat(MAX_HEADERS + 1);
    let (new, old) = scan_both(&many);
    assert_eq!(new.0, Err(HttpError::TooManyHeaders));
    assert_eq!(new, old);
}

#[test]
fn token_runs_and_header_names_compare_without_case() {
    assert_eq!(token_end(b"Content-Length: 5"), 14);
    assert_eq!(token_end(b"X-A-Very-Long-Header-Name-Here:"), 30);
    assert_eq!(token_end(b"Bad Name: x"), 3);
    assert_eq!(token_end(b"AllTokenBytesNoEnd"), 18);
    assert_eq!(token_end(b"AllTokenBytesNoEnd\r"), 18);
    assert_eq!(token_end(b""), 0);
    for len in 0..24 {
        for at in 0..=len {
            let mut b = vec![b'a'; len];
            if let Some(c) = b.get_mut(at) {
                *c = b' ';
            }
            assert_eq!(token_end(&b), at, "len {len} at {at}");
        }
    }
    assert!(name_is(b"CONTENT-length", b"content-length"));
    assert!(name_is(b"Connection", b"connection"));
    // `_` and `^` become other bytes with bit 5 set, never a letter or `-`.
    assert!(!name_is(b"content_length", b"content-length"));
    assert!(!name_is(b"Connectio^", b"connection"));
    assert!(!name_is(b"Connectio", b"connection"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    /// The word-at-a-time name and line-end searches agree with byte loops anywhere in a slice.
    #[test]
    fn word_searches_agree_with_byte_loops(
        b in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                Just(b'\n'),
                Just(b':'),
                Just(b'-'),
                Just(b'a'),
                Just(b'Q'),
            ],
            0..48,
        ),
        from in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let from = from.index(b.len() + 2);
        let plain = b
            .get(from..)
            .and_then(|t| t.iter().position(|&c| c == b'\n'))
            .map(|p| from + p);
        proptest::prop_assert_eq!(find_lf(&b, from), plain);
        let tokens = b.iter().position(|&c| !is_tchar(c)).unwrap_or(b.len());
        proptest::prop_assert_eq!(token_end(&b), tokens);
        proptest::prop_assert_eq!(name_end(&b), tokens);
    }
}

#[test]
fn letters_and_dashes_by_the_word() {
    for c in 0..=255u8 {
        let w = u64::from_le_bytes([b'a', c, b'-', c, 0, c, b'Z', c]);
        let m = letter_or_dash_bytes(w);
        let want = c.is_ascii_alphabetic() || c == b'-';
        for i in [1, 3, 5, 7] {
            assert_eq!(m >> (8 * i + 7) & 1 == 1, want, "byte {c:#04x}");
        }
        let bit = |i: u32| m >> (8 * i + 7) & 1 == 1;
        assert!(bit(0) && bit(2) && !bit(4) && bit(6), "byte {c:#04x}");
    }
    // Near the end of a slice the last word overlaps bytes already passed.
    assert_eq!(find_lf(b"\n234567890", 1), None);
    assert_eq!(find_lf(b"\n23456789\n", 1), Some(9));
    assert_eq!(find_lf(b"\n2\n", 1), Some(2));
    assert_eq!(find_lf(b"\n2\n", 9), None);
}

/// RFC 9112's absolute form spelled out: the text before the first `:` is a scheme (a letter,
/// then letters, digits, `+`, `-`, `.`) and `//` follows the colon.
fn oracle_path_of(target: &[u8]) -> &[u8] {
    let mut t = target;
    let scheme = t.iter().position(|&c| c == b':').filter(|&i| {
        let s = &t[..i];
        !s.is_empty()
            && s[0].is_ascii_alphabetic()
            && s.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
            && t[i..].starts_with(b"://")
    });
    if let Some(i) = scheme {
        let after = t.get(i + 3..).unwrap_or_default();
        t = after
            .iter()
            .position(|&c| c == b'/')
            .and_then(|s| after.get(s..))
            .unwrap_or(b"/");
    }
    let end = t
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(t.len());
    t.get(..end).unwrap_or_default()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    #[test]
    fn paths_agree_with_the_rfc_grammar(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                Just(&b":"[..]),
                Just(&b"/"[..]),
                Just(&b"//"[..]),
                Just(&b"://"[..]),
                Just(&b"http"[..]),
                Just(&b"s+1.-"[..]),
                Just(&b" "[..]),
                Just(&b"?"[..]),
                Just(&b"#"[..]),
                Just(&b"a"[..]),
            ],
            0..10,
        ),
    ) {
        let t = parts.concat();
        proptest::prop_assert_eq!(path_of(&t), oracle_path_of(&t));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// The word comparisons of the usual Connection values agree with
    /// `eq_ignore_ascii_case`, on bytes near the tokens (case flips, `\r` for `-`, ...).
    #[test]
    fn connection_tokens_compare_like_eq_ignore_ascii_case(
        base in proptest::prop_oneof![Just(&b"keep-alive"[..]), Just(&b"close"[..])],
        flips in proptest::collection::vec((0usize..12, 0u8..6), 0..4),
        cut in 0usize..12,
    ) {
        let mut v = base.to_vec();
        for (i, how) in flips {
            if let Some(c) = v.get_mut(i) {
                *c = match how {
                    0 => c.to_ascii_uppercase(),
                    1 => *c ^ 0x20,
                    2 => b'\r',
                    3 => *c | 0x80,
                    4 => c.wrapping_add(1),
                    _ => b'-',
                };
            }
        }
        if cut < v.len() && cut % 3 == 0 {
            v.truncate(cut);
        }
        proptest::prop_assert_eq!(is_keep_alive(&v), v.eq_ignore_ascii_case(b"keep-alive"));
        proptest::prop_assert_eq!(is_close(&v), v.eq_ignore_ascii_case(b"close"));
    }
}

/// The trim of an earlier version: first and last non-blank positions.
fn oracle_trim(v: &[u8]) -> &[u8] {
    let blank = |c: &u8| matches!(c, b' ' | b'\t');
    let s = v.iter().position(|c| !blank(c)).unwrap_or(v.len());
    let e = v.iter().rposition(|c| !blank(c)).map_or(s, |e| e + 1);
    &v[s..e]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    #[test]
    fn trim_strips_blanks_at_both_ends(
        v in proptest::collection::vec(
            proptest::prop_oneof![Just(b' '), Just(b'\t'), Just(b'a'), Just(b'\r'), Just(0u8)],
            0..12,
        ),
    ) {
        proptest::prop_assert_eq!(trim(&v), oracle_trim(&v));
    }
}
