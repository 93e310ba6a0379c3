//! Connection unit tests of role detection, resynchronization and limits (no I/O).
//!
//! Ruling HTTP out, joining a connection mid-exchange, garbage on an established connection,
//! head and pipelining limits, leaving HTTP after an upgrade.

use super::test_support::*;
use super::*;

#[test]
fn client_role() {
    let mut t = T::new();
    t.w(
        1,
        "POST /v1/embeddings HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
    );
    t.w(2, "hello");
    assert_eq!(t.c.role(), Some(Role::Client));
    t.r(30, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
    t.r(40, "{}\r\n");
    let rec = t.one();
    assert_eq!(rec.role, Role::Client);
    assert_eq!(
        (
            rec.start_ns,
            rec.request_done_ns,
            rec.headers_ns,
            rec.end_ns
        ),
        (1, 2, Some(30), 40)
    );
    assert_eq!((rec.request_bytes, rec.response_bytes), (51 + 5, 38 + 4));
}

#[test]
fn joins_a_connection_mid_exchange() {
    // Attached while a stream was being written: skip to the next request line.
    let mut t = T::new();
    t.seg(1, Direction::Write, b"data: {\"x\": 1}\n\n", 15);
    t.seg(2, Direction::Write, b"3\r\nabc\r\n0\r\n\r\n", 13);
    assert!(t.c.is_http());
    t.r(3, GET).w(4, OK).close(5, CloseKind::Closed);
    let recs = t.take();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].role, Role::Server);
    assert_eq!((recs[0].start_ns, recs[0].end_ns), (3, 4));
    assert_eq!(t.c.drops.desync, 2);
    assert_eq!(t.c.drops.not_http, 0);
}

#[test]
fn not_http() {
    for first in [
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x00\x00\x12\x04",
        b"SSH-2.0-OpenSSH\r\n",
    ] {
        let mut t = T::new();
        t.seg(1, Direction::Read, first, first.len() as u64);
        assert!(!t.c.is_http(), "{first:?}");
        t.r(2, GET).w(3, OK).close(4, CloseKind::Closed);
        assert!(t.take().is_empty());
        assert_eq!(t.c.drops.not_http, 1);
    }
    // Long binary: decided at once.
    let first = (0..300u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();
    let mut t = T::new();
    t.seg(1, Direction::Read, &first, first.len() as u64);
    assert!(!t.c.is_http());
    // Text that is not a request line (a body we joined in the middle of): skipped.
    let mut t = T::new();
    t.seg(1, Direction::Read, &[b'A'; 300], 300);
    assert!(t.c.is_http());
    assert_eq!(t.c.drops.desync, 1);
    // Split preface: decided once the version shows.
    let mut t = T::new();
    t.r(1, "PRI * HTT");
    assert!(t.c.is_http());
    t.r(2, "P/2.0\r\n\r\n");
    assert!(!t.c.is_http());
    // Request line split at the start.
    let mut t = T::new();
    t.r(1, "GE").r(2, "T / HTTP/1.1\r\n\r\n").w(3, OK);
    assert_eq!(t.one().start_ns, 1);
}

#[test]
fn long_heads_beyond_capture() {
    let mut t = T::new();
    // A request head longer than the capture: framing lost until the response.
    let req = format!("GET /{} HTTP/1.1\r\nHost: x\r\n", "a".repeat(600));
    t.r_cut(1, &req[..512], req.len() as u64 + 300);
    t.r_cut(2, "", 100);
    t.w(3, OK);
    let rec = t.one();
    assert_eq!(rec.method, "GET");
    assert_eq!(rec.request_done_ns, 2);
    assert!(rec.framing_lost);
    assert_eq!(rec.request_bytes, req.len() as u64 + 400);
    // A response head longer than the capture: status and content type from the seen
    // part, end at the next request.
    t.r(10, GET);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Pad: {}\r\n",
        "p".repeat(600)
    );
    t.w_cut(11, &head[..512], 2000);
    t.w(12, "6\r\ndata: 1\n\n\r\n");
    t.w(13, "c\r\ndata: 2\n\n\r\n");
    t.r(20, GET);
    let rec = t.one();
    assert!(rec.framing_lost);
    assert_eq!(
        (rec.status, rec.headers_ns, rec.end_ns),
        (Some(200), Some(11), 13)
    );
    assert_eq!(rec.stream.unwrap().events, 2);
    t.w(21, OK);
    assert_eq!(t.one().end_ns, 21);
}

#[test]
fn head_overflow_and_pending_overflow() {
    let limits = Limits {
        max_head_bytes: 64,
        max_pending: 2,
        max_gaps_per_stream: 4,
    };
    let mut t = T::with(limits);
    t.r(1, "GET / HTTP/1.1\r\n");
    t.r(2, &format!("X: {}\r\n", "a".repeat(100)));
    assert_eq!(t.c.drops.head_overflow, 1);
    t.w(3, OK);
    assert!(t.one().framing_lost);
    // Four pipelined requests, two kept; the others' responses are skipped in order.
    t.r(
        10,
        "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
    );
    t.r(11, "GET /4 HTTP/1.1\r\n\r\n");
    assert_eq!(t.c.drops.pending_overflow, 2);
    assert_eq!(t.c.in_flight(), 2);
    t.w(12, "HTTP/1.1 201 A\r\nContent-Length: 0\r\n\r\n");
    t.w(13, "HTTP/1.1 202 B\r\nContent-Length: 0\r\n\r\n");
    t.w(14, "HTTP/1.1 203 C\r\nContent-Length: 0\r\n\r\n");
    t.w(15, "HTTP/1.1 204 D\r\n\r\n");
    t.r(16, GET)
        .w(17, "HTTP/1.1 205 E\r\nContent-Length: 0\r\n\r\n");
    let st: Vec<_> = t.take().iter().map(|r| r.status).collect();
    assert_eq!(st, [Some(201), Some(202), Some(205)]);
}

#[test]
fn upgrade_leaves_http() {
    let mut t = T::new();
    t.r(
        1,
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    t.w(
        2,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x01\x05hello",
    );
    assert_eq!(t.one().status, Some(101));
    t.r(3, "\x01\x05garbage").w(4, GET);
    t.close(5, CloseKind::Closed);
    assert!(t.take().is_empty());
    assert_eq!(t.c.drops, ConnDrops::default());
}

#[test]
fn garbage_on_established_connection_resyncs() {
    let mut t = T::new();
    t.r(1, GET).w(2, OK);
    t.one();
    t.r(3, "\x00\x01binary junk\r\n\r\n");
    assert_eq!(t.c.drops.desync, 1);
    assert_eq!(t.c.in_flight(), 0);
    t.w(4, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    t.r(5, GET).w(6, OK);
    let rec = t.one();
    assert_eq!((rec.start_ns, rec.end_ns), (5, 6));
    assert!(t.c.is_http());
}

#[test]
fn method_other_and_sendfile() {
    let mut t = T::new();
    t.r(1, "VERYLONGCUSTOMMETHODNAME / HTTP/1.1\r\n\r\n");
    t.w(2, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    t.seg(3, Direction::Write, b"", 100_000);
    let rec = t.one();
    assert_eq!(rec.method, "OTHER");
    assert_eq!(rec.end_ns, 3);
}
