//! Test fixtures shared by the HTTP unit tests and the sinks' tests: finished exchanges of known
//! shape. Test builds only.

use crate::http::record::{Outcome, RequestRecord, Role, StreamStats};

pub(crate) const MS: u64 = 1_000_000;

/// A complete server GET taking `latency_ns`, request read in 1 ms, headers at +2 ms.
pub(crate) fn rec(latency_ns: u64) -> RequestRecord {
    let start = 1_000 * MS;
    RequestRecord {
        role: Role::Server,
        method: "GET".into(),
        status: Some(200),
        request_bytes: 100,
        response_bytes: 1000,
        start_ns: start,
        request_done_ns: start,
        headers_ns: Some(start + latency_ns / 2),
        end_ns: start + latency_ns,
        outcome: Outcome::Complete,
        stream: None,
        usage_prompt_tokens: None,
        usage_completion_tokens: None,
        framing_lost: false,
    }
}

/// A streaming server POST: starts at 0, request done at `req_done`, first event at
/// `first`, ends at `end` (all ms).
pub(crate) fn stream_rec(
    req_done: u64,
    first: u64,
    end: u64,
    events: u64,
    prompt: Option<u64>,
    completion: Option<u64>,
) -> RequestRecord {
    let gap = if events > 1 {
        (end - first) * MS / (events - 1)
    } else {
        0
    };
    RequestRecord {
        role: Role::Server,
        method: "POST".into(),
        status: Some(200),
        request_bytes: 500,
        response_bytes: 5000,
        start_ns: 10 * MS,
        request_done_ns: (10 + req_done) * MS,
        headers_ns: Some((10 + req_done) * MS),
        end_ns: (10 + end) * MS,
        outcome: Outcome::Complete,
        stream: Some(StreamStats {
            events,
            content_events: events,
            first_event_ns: Some((10 + first) * MS),
            first_content_ns: Some((10 + first) * MS),
            last_content_ns: Some((10 + end) * MS),
            inter_token_ns: vec![gap; events.saturating_sub(1) as usize],
            prompt_tokens: prompt,
            completion_tokens: completion,
            ended: false,
        }),
        usage_prompt_tokens: None,
        usage_completion_tokens: None,
        framing_lost: false,
    }
}

pub(crate) fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}
