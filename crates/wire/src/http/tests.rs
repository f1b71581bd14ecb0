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
}

#[test]
fn absolute_form_paths() {
    assert_eq!(path_of(b"http://h.example/a/b?q#f"), b"/a/b");
    assert_eq!(path_of(b"http://h.example"), b"/");
    assert_eq!(path_of(b"*"), b"*");
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
fn find_byte_agrees_with_a_plain_search() {
    // Every position of the wanted byte in and around the 8-byte words, with near misses
    // (bytes differing by one bit, 0x80 set) around it.
    for len in 0..40usize {
        for at in 0..=len {
            let mut b: Vec<u8> = (0..len)
                .map(|i| [0x0b, 0x8a, 0x0a ^ 0x80, b'x'][i % 4])
                .collect();
            if let Some(c) = b.get_mut(at) {
                *c = b'\n';
            }
            assert_eq!(
                find_byte(&b, b'\n'),
                b.iter().position(|&c| c == b'\n'),
                "len {len} at {at}"
            );
        }
    }
    assert_eq!(find_byte(b"", b':'), None);
    assert_eq!(find_byte(b"\0\0\0\0\0\0\0\0\0:", b':'), Some(9));
    assert_eq!(find_byte(b"\0\0\0\0\0\0\0\0\0:", 0), Some(0));
}

#[test]
fn tchar_table_matches_rfc_9110() {
    for c in 0..=255u8 {
        let expected = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        assert_eq!(is_tchar(c), expected, "byte {c:#04x}");
    }
}
