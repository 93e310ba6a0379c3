//! Connection unit tests of event-stream and JSON response bodies (no I/O).
//!
//! Events, gaps and usage tokens, as servers write them.

use super::test_support::*;
use super::*;
use crate::http::record::StreamStats;

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
            content_events: 5,
            first_event_ns: Some(1_000),
            first_content_ns: Some(1_000),
            last_content_ns: Some(2_100),
            inter_token_ns: vec![300, 50, 650, 100],
            prompt_tokens: Some(17),
            completion_tokens: Some(5),
            ended: true,
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
    assert_eq!(s.inter_token_ns, vec![0, 12, 8]);
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
    assert_eq!(
        (s.first_event_ns, s.last_content_ns),
        (Some(100), Some(400))
    );
    assert_eq!(s.inter_token_ns, vec![100, 100, 100]);
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
    assert_eq!((s.first_event_ns, s.last_content_ns), (Some(5), Some(7)));
}

/// The openai SDK may close the connection as soon as it has read `data: [DONE]`, before the
/// server's last chunk: the exchange is whole, not an error. Without the marker it is one.
#[test]
fn close_after_the_end_marker_is_complete() {
    for (done, how, outcome) in [
        (true, CloseKind::PeerEof, Outcome::Complete),
        (true, CloseKind::Reset, Outcome::Complete),
        (false, CloseKind::PeerEof, Outcome::ClosedMidResponse),
    ] {
        let mut t = T::new();
        t.r(
            100,
            "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        );
        t.w(200, SSE_HEAD);
        t.w(
            300,
            &chunk("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
        );
        if done {
            t.w(400, &chunk("data: [DONE]\n\n"));
        }
        t.close(500, how);
        let rec = t.one();
        assert_eq!(rec.outcome, outcome, "done {done}, {how:?}");
        if done {
            assert_eq!(rec.end_ns, 400, "the last byte written, not the close");
        }
    }
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
