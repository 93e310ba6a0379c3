//! Unit tests of the socket analyzer (mounted from analyzer.rs).

use super::*;
use crate::http::stats::SlaTargets;
use profiler_common::{ConnAddrs, SockEventHeader};

fn event(kind: u8, ts_ns: u64, fd: i32, ret: i64, data: &[u8]) -> Vec<u8> {
    let header = SockEventHeader {
        ts_ns,
        ret,
        sk: 7,
        tgid: 42,
        tid: 43,
        fd,
        captured: data.len() as u32,
        kind,
        family: 2,
        tail: 0,
        addrs: 1,
        _pad: [0; 3],
    };
    let addrs = conn_addrs();
    // SAFETY: both are plain integers; viewing them as bytes is always valid.
    let (bytes, addrs) = unsafe {
        (
            std::slice::from_raw_parts(
                (&header as *const SockEventHeader).cast::<u8>(),
                size_of::<SockEventHeader>(),
            ),
            std::slice::from_raw_parts(
                (&addrs as *const ConnAddrs).cast::<u8>(),
                size_of::<ConnAddrs>(),
            ),
        )
    };
    [bytes, data, addrs].concat()
}

fn conn_addrs() -> ConnAddrs {
    let mut a = ConnAddrs {
        family: 2,
        sport: 8080,
        dport: 50_000,
        ..ConnAddrs::default()
    };
    a.saddr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
    a.daddr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 2]);
    a
}

const REQ: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn accept_exchange_close_makes_a_request_and_a_connection() {
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    for ev in [
        event(sock_event::ACCEPT, 1_000, 5, 5, b""),
        event(sock_event::READ, 2_000, 5, REQ.len() as i64, REQ),
        event(sock_event::WRITE, 5_000, 5, RESP.len() as i64, RESP),
        event(sock_event::READ, 6_000, 5, REQ.len() as i64, REQ),
        event(sock_event::WRITE, 9_000, 5, RESP.len() as i64, RESP),
        event(sock_event::CLOSE, 11_000, 5, 0, b""),
    ] {
        a.on_record(&ev);
    }
    let report = a.stats.report(1.0);
    let server = report.server.expect("server side");
    assert_eq!(server.requests, 2);
    // 3 µs each (HDR histograms keep 3 significant digits).
    assert!((server.latency.p50_us - 3.0).abs() < 0.01);
    let c = a.connections();
    assert_eq!((c.closed, c.open_at_end), (1, 0));
    assert_eq!(c.requests_per_connection_mean, 2.0);
    assert!((c.duration.expect("lifetime").max_us - 10.0).abs() < 0.01);
    let e = a.endpoints();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].endpoint, "10.0.0.1:8080");
    assert_eq!(e[0].requests, 2);
    assert_eq!(a.counters().events, 6);
}

#[test]
fn exchanges_before_the_window_opens_are_not_counted() {
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    a.wait_for_window();
    for ev in [
        event(sock_event::READ, 2_000, 5, REQ.len() as i64, REQ),
        event(sock_event::WRITE, 5_000, 5, RESP.len() as i64, RESP),
        // In flight when the window opens: counted when it finishes.
        event(sock_event::READ, 6_000, 5, REQ.len() as i64, REQ),
    ] {
        a.on_record(&ev);
    }
    a.open_window();
    a.on_record(&event(sock_event::WRITE, 9_000, 5, RESP.len() as i64, RESP));
    let server = a.stats.report(1.0).server.expect("server side");
    assert_eq!(server.requests, 1);
    assert_eq!(a.endpoints()[0].requests, 1);
    assert_eq!(a.counters().events, 1);
}

#[test]
fn dup_fds_of_one_socket_are_one_connection() {
    // Accepted as fd 5, read through a dup (fd 11), answered through fd 5: one exchange.
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    for ev in [
        event(sock_event::ACCEPT, 1_000, 5, 5, b""),
        event(sock_event::READ, 2_000, 11, REQ.len() as i64, REQ),
        event(sock_event::WRITE, 5_000, 5, RESP.len() as i64, RESP),
        event(sock_event::CLOSE, 6_000, 11, 0, b""),
        event(sock_event::CLOSE, 7_000, 5, 0, b""),
    ] {
        a.on_record(&ev);
    }
    let server = a.stats.report(1.0).server.expect("server side");
    assert_eq!((server.requests, server.errors.total), (1, 0));
    assert_eq!(a.connections().closed, 1);
    assert_eq!(a.connections().open_at_end, 0);
}

#[test]
fn a_connect_without_stream_traffic_leaves_no_connection() {
    // getaddrinfo connects a UDP socket: connect and close events, no stream transfer.
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    a.on_record(&event(sock_event::CONNECT, 1, 9, 0, b""));
    a.on_record(&event(sock_event::CLOSE, 2, 9, 0, b""));
    let c = a.connections();
    assert_eq!((c.closed, c.open_at_end), (0, 0));
    assert_eq!(a.counters().connections_seen, 0);
}

#[test]
fn reset_ends_the_exchange_as_an_error() {
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    a.on_record(&event(sock_event::READ, 1, 3, REQ.len() as i64, REQ));
    assert_eq!(a.in_flight(), (1, 0));
    a.on_record(&event(sock_event::WRITE, 2, 3, -104, b""));
    let server = a.stats.report(1.0).server.expect("server side");
    assert_eq!(server.errors.reset, 1);
    assert_eq!(a.in_flight(), (0, 0));
}

#[test]
fn short_or_odd_records_never_panic() {
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    a.on_record(&[1, 2, 3]);
    let mut odd = event(99, 1, 1, 1, b"x");
    a.on_record(&odd);
    // A header claiming more captured bytes than the record holds.
    odd = event(sock_event::READ, 1, 1, 1000, b"GET");
    odd[36..40].copy_from_slice(&4096u32.to_ne_bytes());
    a.on_record(&odd);
    assert_eq!(a.counters().malformed_events, 2);
}

#[test]
fn other_protocols_are_counted_by_kind() {
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let mut unix = event(sock_event::READ, 1, 4, 5, b"\x00\x01\x02\x03\x04");
    // SockEventHeader::family is the byte after `kind` (offset 41): AF_UNIX.
    unix[41] = 1;
    // Distinct sockets: the test header's `sk` (offset 16) is shared otherwise.
    unix[16] = 9;
    a.on_record(&event(sock_event::READ, 1, 3, tls.len() as i64, tls));
    a.on_record(&unix);
    a.on_record(&event(sock_event::CLOSE, 2, 3, 0, b""));
    let mut close_unix = event(sock_event::CLOSE, 3, 4, 0, b"");
    close_unix[16] = 9;
    a.on_record(&close_unix);
    let c = a.counters();
    assert_eq!(
        (c.not_http_connections, c.not_http_tcp, c.not_http_unix),
        (2, 1, 1)
    );
}

/// Cost of the whole analysis per request for the HTTP benchmark's traffic (nginx answering
/// wrk: a 48-byte GET read, a 240-byte response head written, a 100-byte body sent with
/// sendfile, so no bytes captured), 16 keep-alive connections in turn. Run in release with
/// `--ignored --nocapture`; under `valgrind --tool=callgrind` it gives instructions per request.
#[test]
#[ignore]
fn time_per_benchmark_request() {
    const GET: &[u8] = b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:41999\r\n\r\n";
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 19:58:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nLast-Modified: Sun, 06 Dec 2026 19:40:00 GMT\r\nConnection: keep-alive\r\nETag: \"6754d2a0-64\"\r\nAccept-Ranges: bytes\r\n\r\n";
    let n: u64 = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut a = SocketAnalyzer::new(RequestStats::new(SlaTargets::default()));
    let conns = 16;
    let mut records: Vec<[Vec<u8>; 3]> = (0..conns)
        .map(|c| {
            let fd = 10 + c;
            let with_sk = |mut ev: Vec<u8>| {
                // `sk` at offset 16: one socket per connection.
                ev[16..24].copy_from_slice(&(0x1000 + c as u64).to_ne_bytes());
                ev
            };
            [
                with_sk(event(sock_event::READ, 0, fd, GET.len() as i64, GET)),
                with_sk(event(sock_event::WRITE, 0, fd, HEAD.len() as i64, HEAD)),
                with_sk(event(sock_event::WRITE, 0, fd, 100, b"")),
            ]
        })
        .collect();
    let start = std::time::Instant::now();
    for i in 0..n {
        let evs = &mut records[(i % conns as u64) as usize];
        for (k, ev) in evs.iter_mut().enumerate() {
            ev[0..8].copy_from_slice(&(i * 10_000 + k as u64 * 1_000).to_ne_bytes());
            a.on_record(ev);
        }
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{per:.0} ns per request (3 events: GET read, head write, sendfile)");
    let server = a.stats.report(1.0).server.expect("server side");
    assert_eq!(server.requests, n);
}
