//! Connection unit tests of message framing (no I/O).
//!
//! Keep-alive, split heads and bodies, bytes beyond the capture, chunked, pipelining, 1xx,
//! bodiless responses, close-delimited responses.

use super::test_support::*;
use super::*;

#[test]
fn keep_alive_three_exchanges() {
    let mut t = T::new();
    for i in 0..3u64 {
        let base = 1000 * (i + 1);
        t.r(base, GET).w(base + 50, OK);
        let rec = t.one();
        assert_eq!(rec.role, Role::Server);
        assert_eq!(rec.method, "GET");
        assert_eq!(rec.status, Some(200));
        assert_eq!(rec.start_ns, base);
        assert_eq!(rec.request_done_ns, base);
        assert_eq!(rec.headers_ns, Some(base + 50));
        assert_eq!(rec.end_ns, base + 50);
        assert_eq!(rec.request_bytes, GET.len() as u64);
        assert_eq!(rec.response_bytes, OK.len() as u64);
        assert_eq!(rec.outcome, Outcome::Complete);
        assert!(!rec.framing_lost && rec.stream.is_none());
        assert_eq!(t.c.in_flight(), 0);
    }
    t.close(9000, CloseKind::Closed);
    assert!(t.take().is_empty());
    assert_eq!(t.c.drops, ConnDrops::default());
}

#[test]
fn request_split_byte_by_byte() {
    let req = "POST /v1/x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    let mut t = T::new();
    for (i, b) in req.bytes().enumerate() {
        t.seg(10 + i as u64, Direction::Read, &[b], 1);
        assert!(t.c.is_http());
        assert_eq!(t.c.in_flight(), 1);
    }
    t.w(500, OK);
    let rec = t.one();
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.start_ns, 10);
    assert_eq!(rec.request_done_ns, 10 + req.len() as u64 - 1);
    assert_eq!(rec.request_bytes, req.len() as u64);
    assert_eq!(rec.end_ns, 500);
}

#[test]
fn response_over_many_writes() {
    let resp =
        "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n0123456789";
    let mut t = T::new();
    t.r(1, GET);
    let head_end = resp.find("\r\n\r\n").unwrap() + 4;
    for (i, chunk) in resp.as_bytes().chunks(7).enumerate() {
        t.seg(100 + i as u64, Direction::Write, chunk, chunk.len() as u64);
    }
    let rec = t.one();
    assert_eq!(rec.status, Some(201));
    assert_eq!(rec.headers_ns, Some(100 + (head_end as u64 - 1) / 7));
    assert_eq!(rec.end_ns, 100 + (resp.len() as u64 - 1) / 7);
    assert_eq!(rec.response_bytes, resp.len() as u64);
}

#[test]
fn content_length_beyond_capture() {
    let mut t = T::new();
    t.r(1, GET);
    // One write of head + 1 MB body, 512 bytes captured.
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    let mut data = head.to_string();
    data.push_str(&"x".repeat(512 - head.len()));
    t.w_cut(10, &data, head.len() as u64 + 600_000);
    assert!(t.take().is_empty());
    t.w_cut(20, &"x".repeat(512), 400_000);
    let rec = t.one();
    assert_eq!(rec.end_ns, 20);
    assert_eq!(rec.headers_ns, Some(10));
    assert_eq!(rec.response_bytes, head.len() as u64 + 1_000_000);
    // The connection stays in sync for the next exchange.
    t.r(30, GET).w(40, OK);
    assert_eq!(t.one().end_ns, 40);
}

#[test]
fn chunked_split_across_writes() {
    let mut t = T::new();
    t.r(1, GET);
    t.w(
        10,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhel",
    );
    t.w(11, "lo\r\n");
    t.w(12, "6\r");
    t.w(13, "\n worl");
    t.w(14, "d\r\n0\r\nX-Trailer: 1\r\n");
    assert!(t.take().is_empty());
    t.w(15, "\r\n");
    let rec = t.one();
    assert_eq!(rec.end_ns, 15);
    assert!(!rec.framing_lost);
    assert_eq!(rec.outcome, Outcome::Complete);
    t.r(20, GET).w(21, OK);
    assert_eq!(t.one().start_ns, 20);
}

#[test]
fn chunked_data_beyond_capture() {
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    // A 4096-byte chunk written with its size line and CRLF (hyper style), 512 bytes
    // captured: the unseen bytes are the rest of the data and the CRLF.
    let seen = format!("1000\r\n{}", "y".repeat(506));
    for (crlf_in_write, last) in [(true, "0\r\n\r\n"), (false, "\r\n0\r\n\r\n")] {
        let mut t = T::new();
        t.r(1, GET);
        t.w(10, head);
        t.w_cut(11, &seen, 6 + 4096 + if crlf_in_write { 2 } else { 0 });
        assert!(t.take().is_empty());
        t.w(12, last);
        let rec = t.one();
        assert!(!rec.framing_lost);
        assert_eq!(rec.end_ns, 12);
        assert_eq!(rec.response_bytes, (head.len() + 6 + 4096 + 2 + 5) as u64);
    }
    // The next chunk's size line unseen too: framing lost, the response ends where the
    // next request begins.
    let mut t = T::new();
    t.r(1, GET);
    t.w(10, head);
    t.w_cut(11, &seen, 6 + 4096 + 2 + 5);
    t.w(12, "0\r\n\r\n");
    t.r(20, GET);
    let rec = t.one();
    assert!(rec.framing_lost);
    assert_eq!(rec.end_ns, 12);
    assert_eq!(
        rec.response_bytes,
        (head.len() + 6 + 4096 + 2 + 5 + 5) as u64
    );
    t.w(21, OK);
    assert_eq!(t.one().start_ns, 20);
}

#[test]
fn chunk_size_line_unseen_ends_at_next_request() {
    let mut t = T::new();
    t.r(1, GET);
    t.w(
        10,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    );
    // The next size line is in bytes that were not captured.
    t.w_cut(11, "", 700);
    t.w(12, "5\r\nhello\r\n");
    t.w(13, "0\r\n\r\n");
    assert!(t.take().is_empty());
    assert_eq!(t.c.in_flight(), 1);
    t.r(50, GET);
    let rec = t.one();
    assert!(rec.framing_lost);
    assert_eq!(rec.status, Some(200));
    assert_eq!(rec.end_ns, 13);
    assert_eq!(rec.outcome, Outcome::Complete);
    t.w(60, OK);
    let rec = t.one();
    assert_eq!(
        (rec.start_ns, rec.end_ns, rec.framing_lost),
        (50, 60, false)
    );
    // At close instead.
    t.r(70, GET);
    t.w(71, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    t.w_cut(72, "", 10);
    t.close(80, CloseKind::Closed);
    let rec = t.one();
    assert!(rec.framing_lost);
    assert_eq!((rec.end_ns, rec.outcome), (72, Outcome::Complete));
}

#[test]
fn pipelining_three_in_one_read() {
    let mut t = T::new();
    let reqs = "GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
    t.r(5, reqs);
    assert_eq!(t.c.in_flight(), 3);
    t.w(10, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    t.w(
        11,
        "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    );
    let recs = t.take();
    assert_eq!(recs.len(), 3);
    let methods: Vec<&str> = recs.iter().map(|r| &*r.method).collect();
    assert_eq!(methods, ["GET", "HEAD", "POST"]);
    assert_eq!(recs[2].status, Some(404));
    assert_eq!(
        recs.iter().map(|r| r.end_ns).collect::<Vec<_>>(),
        [10, 11, 11]
    );
    assert!(
        recs.iter()
            .all(|r| r.start_ns == 5 && r.request_done_ns == 5)
    );
    assert_eq!(
        recs.iter().map(|r| r.request_bytes).sum::<u64>(),
        reqs.len() as u64
    );
}

#[test]
fn continue_then_ok() {
    let mut t = T::new();
    t.r(
        1,
        "PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    t.w(2, "HTTP/1.1 100 Continue\r\n\r\n");
    t.w(3, "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n");
    t.r(4, "data");
    t.w(5, OK);
    let rec = t.one();
    assert_eq!(rec.status, Some(200));
    assert_eq!(rec.request_done_ns, 4);
    assert_eq!(rec.headers_ns, Some(5));
    assert_eq!(
        rec.response_bytes,
        (25 + 40 + OK.len()) as u64,
        "interim heads count"
    );
}

#[test]
fn head_204_304_have_no_body() {
    let mut t = T::new();
    t.r(1, "HEAD / HTTP/1.1\r\n\r\n");
    t.w(2, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    assert_eq!(t.one().end_ns, 2);
    t.r(3, GET);
    t.w(4, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(t.one().status, Some(204));
    t.r(5, GET);
    t.w(
        6,
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(t.one().status, Some(304));
    t.r(7, GET).w(8, OK);
    assert_eq!(t.one().end_ns, 8);
}

#[test]
fn close_delimited_http10() {
    let mut t = T::new();
    t.r(1, "GET / HTTP/1.0\r\n\r\n");
    t.w(
        2,
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
    );
    t.w(3, "</html>");
    assert!(t.take().is_empty());
    t.close(9, CloseKind::Closed);
    let rec = t.one();
    assert_eq!(rec.outcome, Outcome::Complete);
    assert_eq!(rec.end_ns, 3);
    assert_eq!(rec.response_bytes, 44 + 6 + 7);
    assert!(!rec.framing_lost);
}

#[test]
fn post_chunked_request_body() {
    let mut t = T::new();
    t.r(
        1,
        "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"",
    );
    t.r(2, "\r\n1\r\n}\r\n");
    t.r(3, "0\r\n\r\n");
    t.w(4, OK);
    let rec = t.one();
    assert_eq!(rec.request_done_ns, 3);
    assert_eq!(rec.request_bytes, 68 + 8 + 5);
}
