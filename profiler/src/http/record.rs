//! The analyzer's output: one record per request/response exchange on a connection.

use std::borrow::Cow;

use serde::Serialize;

/// Which side of the exchange the watched process was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The process read the request and wrote the response (it serves).
    Server,
    /// The process wrote the request and read the response (an outbound call).
    Client,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The whole response was transferred (by its framing, or by close for close-delimited
    /// bodies).
    Complete,
    /// The connection closed (either side) after the request but before any response head.
    ClosedBeforeResponse,
    /// The connection closed while the response body was still incomplete by its framing.
    ClosedMidResponse,
    /// A syscall on the connection failed with ECONNRESET or EPIPE before the response completed.
    Reset,
}

impl Outcome {
    pub fn is_error(self) -> bool {
        self != Outcome::Complete
    }
}

/// Streaming details of one response (`text/event-stream` or NDJSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// Events: SSE events carrying `data:` (a final `data: [DONE]` is not counted), or NDJSON
    /// lines.
    pub events: u64,
    /// Events carrying output tokens (`llm_event`: not role-only, empty, usage-only or
    /// lifecycle events).
    pub content_events: u64,
    /// When the write completing the first event returned.
    pub first_event_ns: Option<u64>,
    /// When the writes completing the first and the last token-carrying event returned.
    pub first_content_ns: Option<u64>,
    pub last_content_ns: Option<u64>,
    /// Gaps between consecutive token-carrying events (at most `Limits::max_gaps_per_stream`
    /// kept; the counts are exact regardless).
    pub inter_token_ns: Vec<u64>,
    /// From a `usage` object in any event, when present (the last one seen wins).
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// The stream's end was seen (`data: [DONE]`, or a final event: `llm_event::inspect`).
    #[serde(skip)]
    pub ended: bool,
}

impl StreamStats {
    /// Tallies one event that ended at `ts_ns`.
    pub fn on_event(&mut self, ts_ns: u64, carries_tokens: bool, max_gaps: usize) {
        self.events += 1;
        self.first_event_ns.get_or_insert(ts_ns);
        if !carries_tokens {
            return;
        }
        self.content_events += 1;
        if let Some(last) = self.last_content_ns
            && self.inter_token_ns.len() < max_gaps
        {
            self.inter_token_ns.push(ts_ns.saturating_sub(last));
        }
        self.first_content_ns.get_or_insert(ts_ns);
        self.last_content_ns = Some(ts_ns);
    }
}

/// One request and its response, timed at the watched process's syscalls (CLOCK_MONOTONIC ns,
/// taken when each syscall returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub role: Role,
    /// Request method as sent (`GET`, `POST`, …; at most 16 bytes, else `OTHER`).
    pub method: Cow<'static, str>,
    /// Final (non-1xx) response status; `None` when no response head was seen.
    pub status: Option<u16>,
    /// Request head + body bytes.
    pub request_bytes: u64,
    /// Response bytes (all heads, including 1xx, + body) transferred before the exchange ended.
    pub response_bytes: u64,
    /// First request byte: read (server) or written (client).
    pub start_ns: u64,
    /// Request fully transferred (head and body by its framing).
    pub request_done_ns: u64,
    /// Final response head fully transferred.
    pub headers_ns: Option<u64>,
    /// Last response byte transferred, or when the failure was seen.
    pub end_ns: u64,
    pub outcome: Outcome,
    /// Present when the response is `Content-Type: text/event-stream`.
    pub stream: Option<StreamStats>,
    /// Token counts from a `usage` object in a non-streaming JSON response body, if captured.
    pub usage_prompt_tokens: Option<u64>,
    pub usage_completion_tokens: Option<u64>,
    /// Framing was lost (e.g. a head or chunk header beyond the captured bytes); the end was
    /// inferred from the next request or the close.
    pub framing_lost: bool,
}

impl RequestRecord {
    /// First request byte in → last response byte out.
    pub fn latency_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Request fully read → final response head written.
    pub fn time_to_headers_ns(&self) -> Option<u64> {
        self.headers_ns
            .map(|h| h.saturating_sub(self.request_done_ns))
    }

    /// Time to first token: request fully read → first token-carrying event written.
    pub fn ttft_ns(&self) -> Option<u64> {
        let first = self.stream.as_ref()?.first_content_ns?;
        Some(first.saturating_sub(self.request_done_ns))
    }

    /// Request fully read → first event of the stream written (whatever it carries).
    pub fn time_to_first_event_ns(&self) -> Option<u64> {
        let first = self.stream.as_ref()?.first_event_ns?;
        Some(first.saturating_sub(self.request_done_ns))
    }

    /// Time per output token after the first (TPOT; OpenTelemetry's
    /// `gen_ai.server.time_per_output_token`): (last − first token-carrying event) / (output
    /// tokens − 1); `None` for fewer than two tokens. The one definition the report, the
    /// exporter, the event log and the timeline use.
    pub fn tpot_ns(&self) -> Option<f64> {
        let s = self.stream.as_ref()?;
        let (first, last) = (s.first_content_ns?, s.last_content_ns?);
        let tokens = self.output_tokens()?;
        (tokens >= 2).then(|| last.saturating_sub(first) as f64 / (tokens - 1) as f64)
    }

    /// Decode time: first token-carrying event → last response byte out (latency − TTFT).
    pub fn decode_ns(&self) -> Option<u64> {
        self.ttft_ns()
            .map(|ttft| self.latency_ns().saturating_sub(ttft))
    }

    /// Prompt tokens (stream usage first, then body usage).
    pub fn prompt_tokens(&self) -> Option<u64> {
        self.stream
            .as_ref()
            .and_then(|s| s.prompt_tokens)
            .or(self.usage_prompt_tokens)
    }

    /// Output tokens: `usage.completion_tokens` (or the format's equivalent) when present, else
    /// the number of token-carrying events (an estimate: see `output_tokens_estimated`).
    pub fn output_tokens(&self) -> Option<u64> {
        match &self.stream {
            Some(s) => s.completion_tokens.or(Some(s.content_events)),
            None => self.usage_completion_tokens,
        }
    }

    /// The output tokens are counted events, not the server's usage (a server that merges
    /// several tokens into one event makes this an undercount).
    pub fn output_tokens_estimated(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| s.completion_tokens.is_none())
    }
}
