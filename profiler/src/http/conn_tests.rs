//! Unit tests of the connection state machine (`conn.rs`).

use super::*;
use crate::http::record::StreamStats;

/// A connection under test with helpers to feed it.
struct T {
    c: Connection,
    out: Vec<RequestRecord>,
}

impl T {
    fn new() -> Self {
        Self::with(Limits::default())
    }

    fn with(limits: Limits) -> Self {
        Self {
            c: Connection::new(limits),
            out: Vec::new(),
        }
    }

    fn seg(&mut self, ts: u64, dir: Direction, data: &[u8], len: u64) -> &mut Self {
        let seg = Segment {
            ts_ns: ts,
            dir,
            len,
            data,
        };
        self.c.on_segment(&seg, &mut self.out);
        self
    }

    /// A fully captured read.
    fn r(&mut self, ts: u64, data: &str) -> &mut Self {
        self.seg(ts, Direction::Read, data.as_bytes(), data.len() as u64)
    }

    /// A fully captured write.
    fn w(&mut self, ts: u64, data: &str) -> &mut Self {
        self.seg(ts, Direction::Write, data.as_bytes(), data.len() as u64)
    }

    /// A write of `len` bytes of which only `data` was captured.
    fn w_cut(&mut self, ts: u64, data: &str, len: u64) -> &mut Self {
        self.seg(ts, Direction::Write, data.as_bytes(), len)
    }

    fn r_cut(&mut self, ts: u64, data: &str, len: u64) -> &mut Self {
        self.seg(ts, Direction::Read, data.as_bytes(), len)
    }

    fn close(&mut self, ts: u64, how: CloseKind) -> &mut Self {
        self.c.on_close(ts, how, &mut self.out);
        self
    }

    fn take(&mut self) -> Vec<RequestRecord> {
        std::mem::take(&mut self.out)
    }

    fn one(&mut self) -> RequestRecord {
        let mut v = self.take();
        assert_eq!(v.len(), 1, "{v:#?}");
        v.remove(0)
    }
}

const GET: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

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
    let methods: Vec<&str> = recs.iter().map(|r| r.method.as_str()).collect();
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

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Writes `payload` as one chunk per write, hyper style (size line, data, CRLF together).
fn chunk(payload: &str) -> String {
    format!("{:x}\r\n{payload}\r\n", payload.len())
}

#[test]
fn sse_events_one_per_write() {
    let mut t = T::new();
    t.r(
        100,
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    );
    t.w(200, SSE_HEAD);
    let times = [1_000, 1_300, 1_350, 2_000, 2_100];
    for (i, ts) in times.iter().enumerate() {
        let usage = if i == 4 {
            r#","usage":{"prompt_tokens":17,"completion_tokens":5,"total_tokens":22}"#
        } else {
            r#","usage":null"#
        };
        let ev =
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}]{usage}}}\n\n");
        t.w(*ts, &chunk(&ev));
    }
    t.w(2_200, &chunk("data: [DONE]\n\n"));
    t.w(2_300, "0\r\n\r\n");
    let rec = t.one();
    let s = rec.stream.clone().unwrap();
    assert_eq!(
        s,
        StreamStats {
            events: 5,
            first_event_ns: Some(1_000),
            last_event_ns: Some(2_100),
            inter_event_ns: vec![300, 50, 650, 100],
            prompt_tokens: Some(17),
            completion_tokens: Some(5),
        }
    );
    assert_eq!(rec.ttft_ns(), Some(900));
    assert_eq!(rec.headers_ns, Some(200));
    assert_eq!(rec.end_ns, 2_300);
    assert_eq!(rec.output_tokens(), Some(5));
}

#[test]
fn sse_chunk_frames_split_hyper_and_otherwise() {
    let mut t = T::new();
    t.r(1, GET);
    t.w(2, SSE_HEAD);
    // Size line, data and CRLF in one write, two events in one chunk.
    t.w(10, &chunk("data: a\n\ndata: b\n\n"));
    // An event split across chunks and writes, with the chunk size line alone.
    t.w(20, "8\r\n");
    t.w(21, "data: c\n\r\n");
    t.w(22, &chunk("\n"));
    // CRLF events split mid-terminator.
    t.w(30, &chunk("data: d\r\n\r"));
    t.w(31, &chunk("\n"));
    t.w(40, "0\r\n\r\n");
    let rec = t.one();
    let s = rec.stream.unwrap();
    assert_eq!(s.events, 4);
    assert_eq!(s.first_event_ns, Some(10));
    assert_eq!(s.inter_event_ns, vec![0, 12, 8]);
    assert_eq!(s.prompt_tokens, None);
}

#[test]
fn sse_events_larger_than_capture() {
    // Hyper style writes (size line, event, CRLF) of 1 KiB events, 512 bytes captured: each
    // event's blank line is unseen; the next write starting with `data:` ends it.
    let mut t = T::new();
    t.r(1, GET);
    t.w(2, SSE_HEAD);
    for i in 0..4u64 {
        let ev = format!("data: {{\"text\":\"{}\"}}\n\n", "z".repeat(1000));
        let write = chunk(&ev);
        t.w_cut(100 * (i + 1), &write[..512], write.len() as u64);
    }
    t.w(500, &chunk("data: [DONE]\n\n"));
    t.w(501, "0\r\n\r\n");
    let rec = t.one();
    assert!(!rec.framing_lost);
    let s = rec.stream.unwrap();
    assert_eq!(s.events, 4);
    assert_eq!((s.first_event_ns, s.last_event_ns), (Some(100), Some(400)));
    assert_eq!(s.inter_event_ns, vec![100, 100, 100]);
}

#[test]
fn sse_close_delimited_and_truncated_events() {
    let mut t = T::new();
    t.r(1, GET);
    t.w(
        2,
        "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream\r\n\r\n",
    );
    t.w(3, "data: {\"x\": \"");
    t.w(4, "1\"}\n");
    t.w(5, "\n");
    // A big event whose middle was not captured.
    t.w_cut(6, "data: {\"text\": \"aaaa", 5000);
    t.w(7, "\"}\n\ndata: [DONE]\n\n");
    t.close(8, CloseKind::PeerEof);
    let rec = t.one();
    assert_eq!(rec.outcome, Outcome::Complete);
    let s = rec.stream.unwrap();
    assert_eq!(s.events, 2);
    assert_eq!((s.first_event_ns, s.last_event_ns), (Some(5), Some(7)));
}

#[test]
fn json_body_usage() {
    let mut t = T::new();
    t.r(
        1,
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    let body = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    t.w(2, &head);
    t.w(3, &body[..40]);
    t.w(4, &body[40..]);
    let rec = t.one();
    assert_eq!(rec.usage_prompt_tokens, Some(9));
    assert_eq!(rec.usage_completion_tokens, Some(12));
    assert_eq!(rec.prompt_tokens(), Some(9));
    assert_eq!(rec.output_tokens(), Some(12));
    assert!(rec.stream.is_none());
}

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

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Pieces of traffic and whether they flow in the request direction.
const CORPUS: &[(bool, &str)] = &[
    (true, GET),
    (false, OK),
    (
        true,
        "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ),
    (true, "POST /y HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
    (true, "hello"),
    (
        false,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n",
    ),
    (false, "e\r\ndata: {\"a\":1}\n\n\r\n"),
    (
        false,
        "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
    ),
    (false, "HTTP/1.1 100 Continue\r\n\r\n"),
    (false, "HTTP/1.0 200 OK\r\n\r\nbody"),
    (
        false,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n",
    ),
    (false, "{\"usage\":{\"input_tokens\":7}}"),
    (true, "HEAD / HTTP/1.1\r\n\r\n"),
    (false, "HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    (false, "0\r\n\r\n"),
    (false, "Content-Length: 18446744073709551615\r\n"),
    (false, "ffffffffffffffffffff\r\n"),
    (false, "\r\n"),
];

fn check_invariants(t: &T, limits: &Limits) {
    assert!(t.c.pending.len() <= limits.max_pending.max(1));
    for rec in &t.out {
        assert!(rec.method.len() <= MAX_METHOD_LEN_FOR_TESTS);
        assert!(rec.start_ns <= rec.request_done_ns, "{rec:?}");
        assert!(rec.request_done_ns <= rec.end_ns, "{rec:?}");
        if let Some(h) = rec.headers_ns {
            assert!(rec.start_ns <= h && h <= rec.end_ns, "{rec:?}");
        }
        match rec.outcome {
            Outcome::Complete => assert!(rec.status.is_some() || rec.framing_lost, "{rec:?}"),
            Outcome::ClosedBeforeResponse => assert!(rec.status.is_none(), "{rec:?}"),
            Outcome::ClosedMidResponse => assert!(rec.status.is_some(), "{rec:?}"),
            Outcome::Reset => {}
        }
        if let Some(s) = &rec.stream {
            assert!(s.inter_event_ns.len() <= limits.max_gaps_per_stream);
            assert_eq!(s.first_event_ns.is_some(), s.events > 0, "{rec:?}");
        }
    }
}

const MAX_METHOD_LEN_FOR_TESTS: usize = super::super::parse::MAX_METHOD_LEN;

#[test]
fn random_segments_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let limits = Limits {
        max_head_bytes: 256,
        max_pending: 4,
        max_gaps_per_stream: 8,
    };
    let mut t = T::with(limits);
    let mut buf = Vec::new();
    let mut ts = 0u64;
    let mut records = 0;
    let mut client = false;
    let mut fresh = true;
    let pad = format!("X-Pad: {}\r\n", "a".repeat(300));
    for i in 0..20_000 {
        ts += rng.below(1000);
        buf.clear();
        let mut request_side = rng.below(2) == 0;
        // A new connection mostly starts with a request.
        let kind = if fresh && rng.below(8) != 0 {
            10
        } else {
            rng.below(10)
        };
        fresh = false;
        match kind {
            10 => {
                request_side = true;
                buf.extend_from_slice(CORPUS[rng.below(4) as usize * 2 % 4].1.as_bytes());
            }
            // A header line longer than `max_head_bytes`.
            1 => buf.extend_from_slice(pad.as_bytes()),
            // Random bytes.
            0 => {
                for _ in 0..rng.below(64) {
                    buf.push(rng.next() as u8);
                }
            }
            // Valid traffic, possibly mutated and cut.
            _ => {
                for k in 0..1 + rng.below(3) {
                    let (req, text) = CORPUS[rng.below(CORPUS.len() as u64) as usize];
                    if k == 0 {
                        request_side = req;
                    }
                    buf.extend_from_slice(text.as_bytes());
                }
                if rng.below(4) == 0 && !buf.is_empty() {
                    let at = rng.below(buf.len() as u64) as usize;
                    buf[at] = rng.next() as u8;
                }
                if rng.below(4) == 0 {
                    let keep = rng.below(buf.len() as u64 + 1) as usize;
                    buf.truncate(keep);
                }
            }
        }
        let extra = match rng.below(6) {
            0 => rng.next() >> rng.below(64),
            1 => rng.below(100),
            _ => 0,
        };
        let len = (buf.len() as u64).saturating_add(extra);
        // Mostly the natural direction for a server (or, on some connections, a client).
        if rng.below(10) == 0 {
            request_side = !request_side;
        }
        let dir = if request_side == client {
            Direction::Write
        } else {
            Direction::Read
        };
        if rng.below(50) == 0 {
            let how =
                [CloseKind::Closed, CloseKind::PeerEof, CloseKind::Reset][rng.below(3) as usize];
            t.close(ts, how);
            client = rng.below(4) == 0;
            fresh = true;
        } else {
            t.seg(ts, dir, &buf, len);
        }
        check_invariants(&t, &limits);
        if i % 100 == 0 {
            records += t.out.len();
            t.out.clear();
        }
    }
    // The traffic mix must reach deep into the analyzer, not only its not-HTTP exit.
    eprintln!("{records} records, {:?}", t.c.drops);
    assert!(records > 1000, "{records}");
}

/// Rough cost per segment of a small keep-alive exchange (run with `--ignored --nocapture`
/// in release mode).
#[test]
#[ignore]
fn time_per_segment() {
    let mut c = Connection::new(Limits::default());
    let mut out = Vec::with_capacity(16);
    let n = 1_000_000u64;
    let start = std::time::Instant::now();
    for i in 0..n {
        let r = Segment {
            ts_ns: i * 10,
            dir: Direction::Read,
            len: GET.len() as u64,
            data: GET.as_bytes(),
        };
        let w = Segment {
            ts_ns: i * 10 + 5,
            dir: Direction::Write,
            len: OK.len() as u64,
            data: OK.as_bytes(),
        };
        c.on_segment(&r, &mut out);
        c.on_segment(&w, &mut out);
        out.clear();
    }
    let per = start.elapsed().as_nanos() as f64 / (2 * n) as f64;
    println!("{per:.0} ns per segment (GET + 200 with 2-byte body, keep-alive)");
    // A stream: one ~230-byte chunked event per write.
    let ev = chunk(&format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token\"}},\"finish_reason\":null}}],\"usage\":null,\"model\":\"{}\"}}\n\n",
        "m".repeat(60)
    ));
    c.on_segment(
        &Segment {
            ts_ns: 0,
            dir: Direction::Read,
            len: GET.len() as u64,
            data: GET.as_bytes(),
        },
        &mut out,
    );
    c.on_segment(
        &Segment {
            ts_ns: 1,
            dir: Direction::Write,
            len: SSE_HEAD.len() as u64,
            data: SSE_HEAD.as_bytes(),
        },
        &mut out,
    );
    let start = std::time::Instant::now();
    for i in 0..n {
        let w = Segment {
            ts_ns: 2 + i,
            dir: Direction::Write,
            len: ev.len() as u64,
            data: ev.as_bytes(),
        };
        c.on_segment(&w, &mut out);
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{per:.0} ns per segment ({}-byte SSE event writes)",
        ev.len()
    );
    assert_eq!(c.in_flight(), 1);
}

mod hyper_streams {
    use super::*;

    #[test]
    fn hyper_chunked_sse_keeps_framing() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\ndate: Sun, 22 Nov 2026 20:32:58 GMT\r\n\r\n";
        let ev = |i: u32| {
            format!(
                "32\r\ndata: {{\"choices\":[{{\"delta\":{{\"content\":\"tok{i}\"}}}}]}}\n\n\r\n"
            )
        };
        let last = format!(
            "{}5B\r\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":17,\"completion_tokens\":3,\"total_tokens\":20}}}}\n\n\r\nE\r\ndata: [DONE]\n\n\r\n0\r\n\r\n",
            ev(2)
        );
        let mut c = Connection::new(Limits::default());
        let mut out = Vec::new();
        let req = b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n";
        let segs: Vec<(u64, Direction, Vec<u8>)> = vec![
            (1, Direction::Read, req.to_vec()),
            (2, Direction::Write, head.as_bytes().to_vec()),
            (3, Direction::Write, ev(0).into_bytes()),
            (4, Direction::Write, ev(1).into_bytes()),
            (5, Direction::Write, last.into_bytes()),
        ];
        for (ts, dir, data) in &segs {
            c.on_segment(
                &Segment {
                    ts_ns: *ts,
                    dir: *dir,
                    len: data.len() as u64,
                    data,
                },
                &mut out,
            );
        }
        c.on_close(7, CloseKind::PeerEof, &mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert!(!r.framing_lost, "{r:?}");
        assert_eq!(r.end_ns, 5);
        let s = r.stream.as_ref().unwrap();
        assert_eq!(s.events, 4);
        assert_eq!(s.completion_tokens, Some(3));
    }
}
