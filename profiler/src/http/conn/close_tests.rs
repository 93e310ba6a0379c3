//! Connection unit tests of outcomes at close and reset, and reuse afterwards (no I/O).

use super::test_support::*;
use super::*;

#[test]
fn error_status_is_complete() {
    let mut t = T::new();
    t.r(1, GET);
    t.w(
        2,
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!",
    );
    let rec = t.one();
    assert_eq!((rec.status, rec.outcome), (Some(500), Outcome::Complete));
}

#[test]
fn close_mid_response() {
    let mut t = T::new();
    t.r(1, GET);
    t.w(2, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    t.close(3, CloseKind::Closed);
    let rec = t.one();
    assert_eq!(rec.outcome, Outcome::ClosedMidResponse);
    assert_eq!((rec.status, rec.end_ns), (Some(200), 3));
    assert_eq!(t.c.in_flight(), 0);
}

#[test]
fn close_before_response() {
    let mut t = T::new();
    t.r(1, GET);
    t.r(2, "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    t.close(5, CloseKind::PeerEof);
    let recs = t.take();
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        assert_eq!(rec.outcome, Outcome::ClosedBeforeResponse);
        assert_eq!((rec.status, rec.headers_ns, rec.end_ns), (None, None, 5));
    }
    assert_eq!(recs[1].request_bytes, 43);
    assert_eq!(recs[1].request_done_ns, 2);
    // A partial head with a full request line is reported; less than that is not.
    t.r(10, "GET /a HTTP/1.1\r\nHost");
    t.close(11, CloseKind::Closed);
    assert_eq!(t.one().outcome, Outcome::ClosedBeforeResponse);
    t.r(20, "GET /a HT");
    assert_eq!(t.c.in_flight(), 1);
    t.close(21, CloseKind::Closed);
    assert!(t.take().is_empty());
}

#[test]
fn reset_keeps_status() {
    let mut t = T::new();
    t.r(1, GET).r(2, GET);
    t.w(3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    t.close(4, CloseKind::Reset);
    let recs = t.take();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].outcome, recs[0].status, recs[0].end_ns),
        (Outcome::Reset, Some(200), 4)
    );
    assert_eq!((recs[1].outcome, recs[1].status), (Outcome::Reset, None));
}

#[test]
fn reusable_after_close() {
    let mut t = T::new();
    t.r(1, "\x16\x03\x01\x02\x00");
    assert!(!t.c.is_http());
    t.close(2, CloseKind::Closed);
    assert!(t.c.is_http());
    assert_eq!(t.c.drops.not_http, 1);
    t.w(3, GET).r(4, OK);
    assert_eq!(t.one().role, Role::Client);
}
