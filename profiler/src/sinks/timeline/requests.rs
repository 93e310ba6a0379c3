//! Finished HTTP exchanges as async slices of their process (`cat` "http"): one slice from the
//! first request byte to the last response byte, named "METHOD STATUS" (e.g. "POST 200";
//! "call GET 200" for requests the process sent), with a nested "until first token" slice for
//! streamed (`text/event-stream`) responses. Concurrent requests overlap, which async slices
//! allow and thread slices do not.

use std::{cell::RefCell, rc::Rc};

use serde::Serialize;

use super::{
    Shared,
    event::{NoArgs, TraceEvent, phase},
};
use crate::{
    http::observer::RequestObserver,
    http::record::{Outcome, RequestRecord, Role},
};

pub const CATEGORY: &str = "http";

/// Name of the slice nested in a streamed request: request fully read → first event written.
pub const FIRST_TOKEN_SLICE: &str = "until first token";

/// `args` of a request slice.
#[derive(Debug, Serialize)]
pub struct RequestArgs<'a> {
    pub role: Role,
    pub method: &'a str,
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_headers_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub framing_lost: bool,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The slice's name: "GET 200", "POST reset" (no response), "call GET 200" (client side).
pub fn slice_name(rec: &RequestRecord) -> String {
    let prefix = match rec.role {
        Role::Server => "",
        Role::Client => "call ",
    };
    match rec.status {
        Some(status) => format!("{prefix}{} {status}", rec.method),
        None => {
            let outcome = match rec.outcome {
                Outcome::Complete => "no-status",
                Outcome::ClosedBeforeResponse => "closed",
                Outcome::ClosedMidResponse => "closed",
                Outcome::Reset => "reset",
            };
            format!("{prefix}{} {outcome}", rec.method)
        }
    }
}

pub fn request_args(rec: &RequestRecord) -> RequestArgs<'_> {
    RequestArgs {
        role: rec.role,
        method: &rec.method,
        status: rec.status,
        outcome: rec.outcome,
        request_bytes: rec.request_bytes,
        response_bytes: rec.response_bytes,
        latency_ms: ms(rec.latency_ns()),
        time_to_headers_ms: rec.time_to_headers_ns().map(ms),
        ttft_ms: rec.ttft_ns().map(ms),
        sse_events: rec.stream.as_ref().map(|s| s.events),
        output_tokens: rec.output_tokens(),
        framing_lost: rec.framing_lost,
    }
}

/// Writes one request of process `pid` as async slice `id` (2 events, 4 for a stream with a
/// first event), all or nothing under the limit. Returns whether it was written.
pub fn write_request(shared: &mut Shared, pid: u32, id: u64, rec: &RequestRecord) -> bool {
    let first_token = rec
        .stream
        .as_ref()
        .and_then(|s| s.first_event_ns)
        .filter(|&t| t > rec.request_done_ns && t <= rec.end_ns);
    let events = if first_token.is_some() { 4 } else { 2 };
    if !shared.writer.reserve(events) {
        return false;
    }
    shared.tracks.process(pid);
    let name = slice_name(rec);
    let w = &mut shared.writer;
    let edge = |ph, name, ts| TraceEvent::async_edge(ph, name, CATEGORY, pid, id, ts, NoArgs {});
    w.write(&TraceEvent::async_edge(
        phase::ASYNC_BEGIN,
        &name,
        CATEGORY,
        pid,
        id,
        rec.start_ns,
        request_args(rec),
    ));
    if let Some(first) = first_token {
        w.write(&edge(
            phase::ASYNC_BEGIN,
            FIRST_TOKEN_SLICE,
            rec.request_done_ns,
        ));
        w.write(&edge(phase::ASYNC_END, FIRST_TOKEN_SLICE, first));
    }
    w.write(&edge(phase::ASYNC_END, &name, rec.end_ns.max(rec.start_ns)));
    shared.requests += 1;
    true
}

/// The observer the socket analyzer calls for every finished exchange.
pub struct RequestTrack {
    shared: Rc<RefCell<Shared>>,
}

impl RequestTrack {
    pub fn new(shared: Rc<RefCell<Shared>>) -> Self {
        Self { shared }
    }
}

impl RequestObserver for RequestTrack {
    fn on_request(&mut self, pid: u32, rec: &RequestRecord) {
        let mut shared = self.shared.borrow_mut();
        let id = shared.next_request_id();
        write_request(&mut shared, pid, id, rec);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::{
        http::record::StreamStats,
        sinks::timeline::{testing::MemorySink, writer::TraceWriter},
    };

    fn record(role: Role, status: Option<u16>, stream: bool) -> RequestRecord {
        RequestRecord {
            role,
            method: "POST".into(),
            status,
            request_bytes: 120,
            response_bytes: 900,
            start_ns: 1_000_000,
            request_done_ns: 1_100_000,
            headers_ns: Some(1_200_000),
            end_ns: 9_000_000,
            outcome: if status.is_some() {
                Outcome::Complete
            } else {
                Outcome::Reset
            },
            stream: stream.then(|| StreamStats {
                events: 16,
                content_events: 16,
                first_event_ns: Some(3_100_000),
                first_content_ns: Some(3_100_000),
                last_content_ns: Some(8_900_000),
                inter_token_ns: Vec::new(),
                prompt_tokens: Some(5),
                completion_tokens: Some(16),
                ended: false,
            }),
            usage_prompt_tokens: None,
            usage_completion_tokens: None,
            framing_lost: false,
        }
    }

    fn written(records: &[RequestRecord], limit: u64) -> Value {
        let sink = MemorySink::default();
        let mut shared = Shared::new(TraceWriter::new(Box::new(sink.clone()), limit));
        for (i, rec) in records.iter().enumerate() {
            write_request(&mut shared, 7, i as u64 + 1, rec);
        }
        shared.writer.close(&serde_json::json!({})).unwrap();
        sink.json()
    }

    #[test]
    fn a_request_is_one_async_slice_with_its_figures() {
        let v = written(&[record(Role::Server, Some(200), false)], 100);
        let ev = v["traceEvents"].as_array().unwrap();
        assert_eq!(ev.len(), 2);
        let (b, e) = (&ev[0], &ev[1]);
        assert_eq!((b["ph"].as_str(), e["ph"].as_str()), (Some("b"), Some("e")));
        assert_eq!(b["name"], "POST 200");
        assert_eq!(e["name"], "POST 200");
        assert_eq!(b["cat"], "http");
        assert_eq!(b["id"], e["id"]);
        assert_eq!((b["pid"].as_u64(), b["tid"].as_u64()), (Some(7), Some(7)));
        assert_eq!(b["ts"], 1000.0);
        assert_eq!(e["ts"], 9000.0);
        let a = &b["args"];
        assert_eq!(a["role"], "server");
        assert_eq!(a["method"], "POST");
        assert_eq!(a["status"], 200);
        assert_eq!(a["outcome"], "complete");
        assert_eq!(a["response_bytes"], 900);
        assert_eq!(a["latency_ms"], 8.0);
        assert_eq!(a["time_to_headers_ms"], 0.1);
        assert!(a.get("ttft_ms").is_none() && a.get("framing_lost").is_none());
    }

    #[test]
    fn a_stream_nests_its_time_to_first_token() {
        let v = written(&[record(Role::Server, Some(200), true)], 100);
        let ev = v["traceEvents"].as_array().unwrap();
        let phases: Vec<(&str, &str, f64)> = ev
            .iter()
            .map(|e| {
                (
                    e["ph"].as_str().unwrap(),
                    e["name"].as_str().unwrap(),
                    e["ts"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            phases,
            vec![
                ("b", "POST 200", 1000.0),
                ("b", FIRST_TOKEN_SLICE, 1100.0),
                ("e", FIRST_TOKEN_SLICE, 3100.0),
                ("e", "POST 200", 9000.0),
            ]
        );
        assert!(ev.iter().all(|e| e["id"] == 1 && e["cat"] == "http"));
        assert_eq!(ev[0]["args"]["ttft_ms"], 2.0);
        assert_eq!(ev[0]["args"]["sse_events"], 16);
        assert_eq!(ev[0]["args"]["output_tokens"], 16);
    }

    #[test]
    fn names_tell_client_calls_and_failures() {
        assert_eq!(
            slice_name(&record(Role::Client, Some(404), false)),
            "call POST 404"
        );
        assert_eq!(slice_name(&record(Role::Server, None, false)), "POST reset");
    }

    #[test]
    fn the_limit_keeps_a_request_whole_or_leaves_it_out() {
        // 2 + 4 events fit in 7; the third request (2 more) does not.
        let v = written(
            &[
                record(Role::Server, Some(200), false),
                record(Role::Server, Some(200), true),
                record(Role::Server, Some(200), false),
            ],
            7,
        );
        let ev = v["traceEvents"].as_array().unwrap();
        assert_eq!(ev.len(), 6);
        let begins = ev.iter().filter(|e| e["ph"] == "b").count();
        let ends = ev.iter().filter(|e| e["ph"] == "e").count();
        assert_eq!(begins, ends);
    }
}
