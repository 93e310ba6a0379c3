//! `--events FILE`: one JSON line per finished exchange, written as the HTTP analyzer sees
//! it (a request observer). Timings, sizes and counts only — never paths, headers, payloads or
//! prompts. Writes to any `Write`.

use std::{borrow::Cow, io::Write};

use serde::Serialize;

use crate::http::{
    observer::RequestObserver,
    record::{Outcome, RequestRecord, Role},
    stats::is_error,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLine {
    /// Request start (first request byte), Unix seconds.
    pub ts_unix_s: f64,
    pub pid: u32,
    pub role: Role,
    pub method: Cow<'static, str>,
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub error: bool,
    pub latency_us: f64,
    pub headers_us: Option<f64>,
    /// Time to first token: request read → first token-carrying event written.
    pub ttft_us: Option<f64>,
    /// Request read → first stream event written, whatever it carried.
    pub first_event_us: Option<f64>,
    /// Time per output token: (last − first token-carrying event) / (output tokens − 1).
    pub tpot_us: Option<f64>,
    /// Stream events (SSE data events, NDJSON lines); `None` when the response was not a
    /// stream.
    pub events: Option<u64>,
    /// …of which carried tokens.
    pub content_events: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// `output_tokens` counts token-carrying events: the stream sent no usage.
    pub output_tokens_estimated: bool,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub framing_lost: bool,
}

impl EventLine {
    /// `mono_to_unix_ns` is added to CLOCK_MONOTONIC ns to get Unix ns.
    pub fn new(pid: u32, rec: &RequestRecord, mono_to_unix_ns: i128) -> Self {
        let unix_ns = i128::from(rec.start_ns) + mono_to_unix_ns;
        EventLine {
            ts_unix_s: unix_ns as f64 / 1e9,
            pid,
            role: rec.role,
            method: rec.method.clone(),
            status: rec.status,
            outcome: rec.outcome,
            error: is_error(rec),
            latency_us: us(rec.latency_ns()),
            headers_us: rec.time_to_headers_ns().map(us),
            ttft_us: rec.ttft_ns().map(us),
            first_event_us: rec.time_to_first_event_ns().map(us),
            tpot_us: rec.tpot_ns().map(|ns| ns / 1e3),
            events: rec.stream.as_ref().map(|s| s.events),
            content_events: rec.stream.as_ref().map(|s| s.content_events),
            prompt_tokens: rec.prompt_tokens(),
            output_tokens: rec.output_tokens(),
            output_tokens_estimated: rec.output_tokens_estimated(),
            request_bytes: rec.request_bytes,
            response_bytes: rec.response_bytes,
            framing_lost: rec.framing_lost,
        }
    }
}

/// Write `line` as one JSON line (serde_json + `\n`).
pub fn write_event(w: &mut impl Write, line: &EventLine) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    buf.push(b'\n');
    w.write_all(&buf)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The `--events` sink: writes a line per finished exchange; a failed write is counted (the
/// report shows it as `http.analysis.event_log_errors`) and, once the report is out, makes the
/// run end with an error.
pub struct EventLog {
    writer: Box<dyn Write>,
    mono_to_unix_ns: i128,
    errors: u64,
}

impl EventLog {
    /// `mono_to_unix_ns` is added to CLOCK_MONOTONIC ns to get Unix ns.
    pub fn new(writer: Box<dyn Write>, mono_to_unix_ns: i128) -> Self {
        Self {
            writer,
            mono_to_unix_ns,
            errors: 0,
        }
    }
}

impl RequestObserver for EventLog {
    fn on_request(&mut self, pid: u32, rec: &RequestRecord) {
        let line = EventLine::new(pid, rec, self.mono_to_unix_ns);
        if write_event(&mut self.writer, &line).is_err() {
            self.errors += 1;
        }
    }

    fn finish(&mut self) {
        if self.writer.flush().is_err() {
            self.errors += 1;
        }
    }

    fn write_errors(&self) -> u64 {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testing::*;

    #[test]
    fn event_line_json() {
        let mut r = rec(3 * MS);
        r.status = None;
        r.headers_ns = None;
        r.outcome = Outcome::ClosedBeforeResponse;
        let line = EventLine::new(42, &r, 1_700_000_000_000_000_000 - 1_000 * MS as i128);
        let mut buf = Vec::new();
        write_event(&mut buf, &line).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "content_events",
                "error",
                "events",
                "first_event_us",
                "framing_lost",
                "headers_us",
                "latency_us",
                "method",
                "outcome",
                "output_tokens",
                "output_tokens_estimated",
                "pid",
                "prompt_tokens",
                "request_bytes",
                "response_bytes",
                "role",
                "status",
                "tpot_us",
                "ts_unix_s",
                "ttft_us"
            ]
        );
        assert!(!text.contains("path") && !text.contains("body") && !text.contains("payload"));
        assert_eq!(v["ts_unix_s"], 1_700_000_000.0);
        assert_eq!(v["pid"], 42);
        assert_eq!(v["role"], "server");
        assert_eq!(v["method"], "GET");
        assert!(v["status"].is_null());
        assert_eq!(v["outcome"], "closed-before-response");
        assert_eq!(v["error"], true);
        assert_eq!(v["latency_us"], 3000.0);
        assert!(v["headers_us"].is_null());
        assert!(v["ttft_us"].is_null());
        assert!(v["events"].is_null());
        assert!(v["prompt_tokens"].is_null());
        assert!(v["output_tokens"].is_null());
        assert_eq!(v["request_bytes"], 100);
        assert_eq!(v["framing_lost"], false);

        // A stream: the stream fields are filled.
        let s = stream_rec(10, 110, 1110, 4, Some(9), None);
        let v = serde_json::to_value(EventLine::new(1, &s, 0)).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["error"], false);
        assert_eq!(v["outcome"], "complete");
        assert_eq!(v["ttft_us"], 100_000.0);
        assert_eq!(v["headers_us"], 0.0);
        assert_eq!(v["events"], 4);
        assert_eq!(v["prompt_tokens"], 9);
        assert_eq!(v["output_tokens"], 4);
        assert_eq!(v["output_tokens_estimated"], true);
        assert_eq!(v["content_events"], 4);
        // 4 events 1000 ms apart from first to last: 3 gaps over 3 tokens after the first.
        assert!(close(v["tpot_us"].as_f64().unwrap(), 333_333.3, 1e-6));
        assert_eq!(v["first_event_us"], 100_000.0);
        assert!(close(v["ts_unix_s"].as_f64().unwrap(), 0.01, 1e-12));
    }
}
