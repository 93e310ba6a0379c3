//! Unit tests of heads and their header summary (`head.rs`; no I/O).

use super::*;
use crate::http::parse::{Framing, request_framing};

/// The byte searches the scanners rely on (formerly hand-written here, now `memchr`) give the
/// index of the first match.
#[test]
fn byte_search() {
    use memchr::{memchr, memchr2};

    let hay: Vec<u8> = (0..40u8).map(|i| b'a' + i % 20).collect();
    for (i, &c) in hay.iter().enumerate().take(20) {
        assert_eq!(memchr(c, &hay), Some(i));
        assert_eq!(memchr2(b'~', c, &hay), Some(i));
        assert_eq!(memchr(c, &hay[i + 1..]), Some(19));
    }
    assert_eq!(memchr(b'~', &hay), None);
    assert_eq!(
        memchr2(b'\n', b'\r', b"\x80\x00\x01\xff\x7f..\n.."),
        Some(7)
    );
    assert_eq!(memchr2(0, 1, b"\x01\x00"), Some(0));
    assert_eq!(memchr(0, b""), None);
}

#[test]
fn headers() {
    let h = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\ncontent-type: Text/Event-Stream; charset=utf-8\r\n\r\n";
    let info = parse_headers(h, 17);
    assert_eq!(info.content_length, Some(12));
    assert_eq!(info.content, ContentKind::EventStream);
    let h = b"X\r\nTransfer-Encoding: gzip, chunked\r\nContent-Type: application/json\r\n\r\n";
    let info = parse_headers(h, 3);
    assert!(info.chunked && info.te_present);
    assert_eq!(info.content, ContentKind::Json);
    let info = parse_headers(b"X\nContent-Length: 99999999999999999999999\n\n", 2);
    assert_eq!(info.content_length, Some(u64::MAX));
    let info = parse_headers(b"X\nContent-Length: 5, 6\n\n", 2);
    assert!(info.content_length_invalid);
    assert_eq!(request_framing(&info), Framing::Unknown);
}

#[test]
fn head_acc() {
    let mut acc = HeadAcc::default();
    assert!(matches!(
        acc.push(b"GET / HTTP/1.1\r\n\r\nrest", 100),
        HeadPush::Complete { consumed: 18, .. }
    ));
    assert!(matches!(
        acc.push(b"GET / HTTP/1.1\r\n\r", 100),
        HeadPush::Partial { .. }
    ));
    match acc.push(b"\nNEXT", 100) {
        HeadPush::Complete { head, consumed } => {
            assert_eq!(head, b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(consumed, 1);
        }
        other => panic!("{other:?}"),
    }
    acc.clear();
    assert!(matches!(
        acc.push(b"GET / HTTP/1.1\r\nA: b\r\n", 20),
        HeadPush::Overflow { consumed: 22, .. }
    ));
}

/// Heads `httparse` accepts: the scan's summary is the one `httparse`'s fields give.
#[test]
fn httparse_agrees_with_lenient_scan() {
    let fields: [&[u8]; 6] = [
        b"Content-Length: 12\r\nContent-Type: text/event-stream\r\n\r\n",
        b"Content-Length:   7  \nX-Empty:\n\n",
        b"Transfer-Encoding: gzip,\tchunked\t\r\nContent-Length: 5, 5\r\n\r\n",
        b"content-type: application/problem+json; q=1\r\n\r\n",
        b"X-Obs: caf\xc3\xa9\r\nContent-Length: 5,6\r\n\r\n",
        b"\r\n",
    ];
    let lines: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 404 Not Found\n",
        b"HTTP/1.1 204 \xe9t\xe9\r\n",
        b"POST /v1/chat HTTP/1.1\r\n",
    ];
    for line in lines {
        for f in fields {
            let head = [line, f].concat();
            let mut h = [httparse::EMPTY_HEADER; 64];
            let (ours, oracle) = match parse_status_line(&head) {
                Some(status) => {
                    let mut resp = httparse::Response::new(&mut h);
                    let parsed = resp.parse(&head);
                    assert_eq!(parsed, Ok(httparse::Status::Complete(head.len())));
                    assert_eq!(resp.code, Some(status));
                    let ours = parse_response_head(&head).map(|(s, i)| (s == status, i));
                    (ours, HeadInfo::from_fields(resp.headers))
                }
                None => {
                    let mut req = httparse::Request::new(&mut h);
                    let parsed = req.parse(&head);
                    assert_eq!(parsed, Ok(httparse::Status::Complete(head.len())));
                    let ours = parse_request_head(&head).map(|(m, i)| (m.is(b"POST"), i));
                    (ours, HeadInfo::from_fields(req.headers))
                }
            };
            assert_eq!(ours, Some((true, oracle)), "{head:?}");
        }
    }
}

/// What `httparse` rejects is still read as leniently as before.
#[test]
fn lenient_fallback() {
    let r = |h: &[u8]| parse_response_head(h).map(|(s, i)| (s, i.content_length, i.chunked));
    // White space around a field name, obsolete folding, lines without a colon.
    assert_eq!(
        r(b"HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n"),
        Some((200, Some(3), false))
    );
    assert_eq!(
        r(b"HTTP/1.1 200 OK\r\n Transfer-Encoding: chunked\r\n\r\n"),
        Some((200, None, true))
    );
    assert_eq!(
        r(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nbad line\r\nContent-Length: 4\r\n\r\n"),
        Some((200, Some(4), false))
    );
    // Control bytes, a bare CR after the code, versions other than 1.0 and 1.1.
    assert_eq!(
        r(b"HTTP/1.1 200 \x01\r\nContent-Length: 1\x7f\r\n\r\n"),
        Some((200, None, false))
    );
    assert_eq!(
        r(b"HTTP/1.1 200\rX\nContent-Length: 1\r\n\r\n"),
        Some((200, Some(1), false))
    );
    assert_eq!(
        r(b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\n"),
        Some((200, Some(2), false))
    );
    // More fields than a fixed-size field table would hold.
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"Content-Length: 9\r\n\r\n");
    assert_eq!(r(&many), Some((200, Some(9), false)));
    // Cut short by the capture: the complete lines count.
    assert_eq!(
        r(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Ty"),
        Some((200, Some(6), false))
    );
    // Blank lines before the status line are not skipped (httparse would).
    assert_eq!(r(b"\r\nHTTP/1.1 200 OK\r\n\r\n"), None);
    // The same for request heads.
    let q = |h: &[u8]| parse_request_head(h).map(|(m, i)| (m.to_report_string(), i.content_length));
    assert_eq!(
        q(b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\n"),
        Some(("GET".into(), Some(3)))
    );
    assert_eq!(
        q(b"GET / HTTP/1.3\r\nContent-Length: 4\r\n\r\n"),
        Some(("GET".into(), Some(4)))
    );
    assert_eq!(q(b"get / HTTP/1.1\r\nContent-Length: 4\r\n\r\n"), None);
}

/// Random heads from pieces that matter to the scan (the three names in any case, leading
/// white space, odd spacing, lists, media types, other fields): wherever `httparse` accepts
/// one, the scan's summary is the one its fields give.
#[test]
fn scan_agrees_with_httparse_on_random_heads() {
    const NAMES: [&str; 12] = [
        "Content-Length",
        "content-length",
        "CONTENT-LENGTH",
        "Transfer-Encoding",
        "transfer-encoding",
        "Content-Type",
        "content-type",
        "Connection",
        "Cache-Control",
        "Trailer",
        "X-Content-Length",
        "Host",
    ];
    const VALUES: [&str; 14] = [
        "5",
        " 12 ",
        "5, 5",
        "5,6",
        "x",
        "",
        "chunked",
        "gzip, chunked",
        "chunked, gzip",
        "text/event-stream",
        "application/json; charset=utf-8",
        "application/x-ndjson",
        "Text/Event-Stream ; q=1",
        "keep-alive",
    ];
    const SPACES: [&str; 4] = ["", " ", "  ", "\t"];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut head = if next(2) == 0 {
            b"HTTP/1.1 200 OK\r\n".to_vec()
        } else {
            b"POST /v1 HTTP/1.1\r\n".to_vec()
        };
        for _ in 0..next(6) {
            let line = format!(
                "{}{}:{}{}{}",
                SPACES[next(16).saturating_sub(12)],
                NAMES[next(NAMES.len())],
                SPACES[next(SPACES.len())],
                VALUES[next(VALUES.len())],
                SPACES[next(SPACES.len())],
            );
            head.extend_from_slice(line.as_bytes());
            head.extend_from_slice(if next(4) == 0 { b"\n" } else { b"\r\n" });
        }
        head.extend_from_slice(b"\r\n");
        let mut h = [httparse::EMPTY_HEADER; 16];
        let (ours, oracle) = if head.starts_with(b"HTTP") {
            let mut resp = httparse::Response::new(&mut h);
            if resp.parse(&head) != Ok(httparse::Status::Complete(head.len())) {
                continue;
            }
            let ours = parse_response_head(&head).map(|(_, i)| i);
            (ours, HeadInfo::from_fields(resp.headers))
        } else {
            let mut req = httparse::Request::new(&mut h);
            if req.parse(&head) != Ok(httparse::Status::Complete(head.len())) {
                continue;
            }
            let ours = parse_request_head(&head).map(|(_, i)| i);
            (ours, HeadInfo::from_fields(req.headers))
        };
        accepted += 1;
        assert_eq!(ours, Some(oracle), "{:?}", String::from_utf8_lossy(&head));
    }
    // Most heads must be ones httparse accepts, or the comparison says little.
    assert!(accepted > 5_000, "{accepted}");
}
