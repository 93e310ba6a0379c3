//! HTTP request figures: finished exchanges (`RequestRecord`s from the HTTP analyzer) in,
//! whole-session report figures and per-interval live figures out.
//!
//! Pure. Memory is
//! bounded: latencies live in fixed-precision HDR histograms (ns, 3 significant digits, values
//! clamped to 1 ns ..= 1 h), counts in small maps (per pid, per status, per method, the latter
//! capped at `MAX_METHODS` names).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use crate::util::hist::Dist;
use crate::{
    http::record::{Outcome, RequestRecord, Role},
    util::{
        hist::{dist, new_hist, quantile_us, record_ns},
        num::ratio,
    },
};

/// Distinct method names kept in `by_method`; further names are counted under `OTHER`.
const MAX_METHODS: usize = 32;

/// Targets from `--sla-p99` / `--sla-ttft`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaTargets {
    /// Target for the p99 of server-side request latency.
    pub p99: Option<Duration>,
    /// Target for the p99 of server-side time to first token (streams only).
    pub ttft: Option<Duration>,
}

// ---------------------------------------------------------------------------------------------
// Report types (serialized; the JSON shape is part of the report schema).
// ---------------------------------------------------------------------------------------------

/// Whole-session HTTP figures, one side per role; `None` when the role saw no exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpReport {
    pub server: Option<Side>,
    pub client: Option<Side>,
}

/// Figures for one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Finished exchanges of this role, errors included.
    pub requests: u64,
    pub requests_per_s: f64,
    /// Last in-flight gauge given to `set_in_flight`.
    pub in_flight: u64,
    pub errors: Errors,
    /// Status code (`"200"`, …, or `"none"` when no response head was seen) → exchanges.
    pub by_status: BTreeMap<String, u64>,
    pub by_method: BTreeMap<String, u64>,
    /// Sorted by pid.
    pub by_process: Vec<ProcessRequests>,
    pub latency: Dist,
    pub time_to_headers: Option<Dist>,
    /// Server: request bytes; client: response bytes.
    pub bytes_in: u64,
    /// Server: response bytes; client: request bytes.
    pub bytes_out: u64,
    pub streaming: Option<Streaming>,
    /// Server side only; empty when no targets were given.
    pub sla: Vec<Sla>,
}

/// Error counts. `total` counts each failed exchange once; the per-kind counts may overlap
/// (an exchange can be both 5xx and closed mid-response).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Errors {
    /// Exchanges with a 4xx/5xx status or an outcome other than complete.
    pub total: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub closed_before_response: u64,
    pub closed_mid_response: u64,
    pub reset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRequests {
    pub pid: u32,
    pub requests: u64,
    pub errors: u64,
}

/// Streaming (`text/event-stream`) exchanges of one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Streaming {
    pub streams: u64,
    /// Stream events over all streams (SSE data events, NDJSON lines).
    pub events: u64,
    pub events_per_stream_mean: f64,
    /// …of which carried output tokens (not role-only, empty, usage-only or lifecycle events).
    pub content_events: u64,
    /// Time to first token: request fully transferred → first token-carrying event.
    pub ttft: Option<Dist>,
    /// Request fully transferred → first event, whatever it carried.
    pub time_to_first_event: Option<Dist>,
    /// Inter-token latency: all gaps between consecutive token-carrying events, over all
    /// streams.
    pub inter_token: Option<Dist>,
    /// Time per output token per stream: (last − first token-carrying event) / (output tokens
    /// − 1), over streams with two or more tokens.
    pub tpot: Option<Dist>,
    /// Streams whose output tokens are counted events (no usage in the stream).
    pub output_tokens_estimated_streams: u64,
    /// Whole-stream latency (first request byte → last response byte).
    pub duration: Dist,
    /// Sums of `usage` values where present.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Sum of `usage.completion_tokens` where present, else of the token-carrying events.
    pub output_tokens: u64,
    /// Σ prompt tokens / Σ TTFT over streams having both; `None` when there are none.
    pub prefill_tokens_per_s: Option<f64>,
    /// Σ output tokens / Σ (duration − TTFT) over streams with a TTFT; `None` when the
    /// denominator is 0.
    pub decode_tokens_per_s: Option<f64>,
    /// Output tokens / session duration.
    pub output_tokens_per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaMetric {
    LatencyP99,
    TtftP99,
}

/// One SLA target and how the session fared against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    pub metric: SlaMetric,
    pub threshold_ms: f64,
    /// Observed p99; `None` when the metric had no samples (e.g. no streams for TTFT).
    pub observed_ms: Option<f64>,
    /// Observed p99 > threshold.
    pub violated: bool,
    /// Exchanges whose latency (or TTFT) exceeded the threshold.
    pub requests_over: u64,
    /// `requests_over` / exchanges with a sample of the metric (0 when none).
    pub share_over: f64,
}

/// Server-side figures since the previous `take_interval`, for the live view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalRequests {
    pub requests: u64,
    pub errors: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub ttft_p50_us: Option<f64>,
    /// Output tokens (`RequestRecord::output_tokens`) of the exchanges finished in the interval.
    pub tokens: u64,
    /// The current in-flight gauge (not reset by `take_interval`).
    pub in_flight: u64,
    /// Socket events the kernel could not hand over in the interval (ring buffer full): the
    /// interval's figures undercount. Filled by the capture, not the statistics.
    pub events_lost: u64,
}

// ---------------------------------------------------------------------------------------------
// Accumulation.
// ---------------------------------------------------------------------------------------------

/// Whether an exchange counts as an error: a 4xx/5xx status or an incomplete outcome.
pub fn is_error(rec: &RequestRecord) -> bool {
    matches!(rec.status, Some(400..=599)) || rec.outcome.is_error()
}

#[derive(Debug, Default, Clone, Copy)]
struct ProcCounts {
    requests: u64,
    errors: u64,
}

struct StreamAcc {
    streams: u64,
    events: u64,
    content_events: u64,
    estimated: u64,
    ttft: Histogram<u64>,
    first_event: Histogram<u64>,
    inter_token: Histogram<u64>,
    tpot: Histogram<u64>,
    duration: Histogram<u64>,
    prompt_tokens: u64,
    completion_tokens: u64,
    output_tokens: u64,
    /// Streams with both prompt tokens and a TTFT.
    prefill_tokens: u64,
    prefill_ns: u128,
    /// Streams with a TTFT.
    decode_tokens: u64,
    decode_ns: u128,
}

impl StreamAcc {
    fn new() -> Self {
        StreamAcc {
            streams: 0,
            events: 0,
            content_events: 0,
            estimated: 0,
            ttft: new_hist(),
            first_event: new_hist(),
            inter_token: new_hist(),
            tpot: new_hist(),
            duration: new_hist(),
            prompt_tokens: 0,
            completion_tokens: 0,
            output_tokens: 0,
            prefill_tokens: 0,
            prefill_ns: 0,
            decode_tokens: 0,
            decode_ns: 0,
        }
    }

    fn report(&self, duration_s: f64) -> Option<Streaming> {
        if self.streams == 0 {
            return None;
        }
        Some(Streaming {
            streams: self.streams,
            events: self.events,
            events_per_stream_mean: ratio(self.events as f64, self.streams as f64).unwrap_or(0.0),
            content_events: self.content_events,
            ttft: dist(&self.ttft),
            time_to_first_event: dist(&self.first_event),
            inter_token: dist(&self.inter_token),
            tpot: dist(&self.tpot),
            output_tokens_estimated_streams: self.estimated,
            duration: dist(&self.duration)?,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            output_tokens: self.output_tokens,
            prefill_tokens_per_s: (self.prefill_ns > 0)
                .then(|| self.prefill_tokens as f64 / (self.prefill_ns as f64 / 1e9)),
            decode_tokens_per_s: (self.decode_ns > 0)
                .then(|| self.decode_tokens as f64 / (self.decode_ns as f64 / 1e9)),
            output_tokens_per_s: ratio(self.output_tokens as f64, duration_s).unwrap_or(0.0),
        })
    }
}

struct SideAcc {
    role: Role,
    requests: u64,
    errors: Errors,
    /// By status code (`None`: no response); named only in the report, so that counting a
    /// request allocates nothing.
    by_status: BTreeMap<Option<u16>, u64>,
    by_method: BTreeMap<String, u64>,
    by_process: BTreeMap<u32, ProcCounts>,
    latency: Histogram<u64>,
    headers: Histogram<u64>,
    bytes_in: u64,
    bytes_out: u64,
    streaming: Option<StreamAcc>,
    /// Exchanges over the latency / TTFT SLA thresholds.
    latency_over: u64,
    ttft_over: u64,
}

impl SideAcc {
    fn new(role: Role) -> Self {
        SideAcc {
            role,
            requests: 0,
            errors: Errors::default(),
            by_status: BTreeMap::new(),
            by_method: BTreeMap::new(),
            by_process: BTreeMap::new(),
            latency: new_hist(),
            headers: new_hist(),
            bytes_in: 0,
            bytes_out: 0,
            streaming: None,
            latency_over: 0,
            ttft_over: 0,
        }
    }

    fn record(&mut self, pid: u32, rec: &RequestRecord, sla: &SlaTargets) {
        let error = is_error(rec);
        self.requests += 1;
        if error {
            self.errors.total += 1;
        }
        match rec.status {
            Some(400..=499) => self.errors.status_4xx += 1,
            Some(500..=599) => self.errors.status_5xx += 1,
            _ => {}
        }
        match rec.outcome {
            Outcome::Complete => {}
            Outcome::ClosedBeforeResponse => self.errors.closed_before_response += 1,
            Outcome::ClosedMidResponse => self.errors.closed_mid_response += 1,
            Outcome::Reset => self.errors.reset += 1,
        }

        *self.by_status.entry(rec.status).or_default() += 1;
        // A method already counted is found without an allocation.
        if let Some(n) = self.by_method.get_mut(&*rec.method) {
            *n += 1;
        } else {
            let method = if self.by_method.len() < MAX_METHODS - 1 {
                rec.method.to_string()
            } else {
                "OTHER".to_string()
            };
            *self.by_method.entry(method).or_default() += 1;
        }
        let proc = self.by_process.entry(pid).or_default();
        proc.requests += 1;
        proc.errors += u64::from(error);

        let latency = rec.latency_ns();
        record_ns(&mut self.latency, latency);
        if let Some(h) = rec.time_to_headers_ns() {
            record_ns(&mut self.headers, h);
        }
        let (bytes_in, bytes_out) = match self.role {
            Role::Server => (rec.request_bytes, rec.response_bytes),
            Role::Client => (rec.response_bytes, rec.request_bytes),
        };
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;

        if let Some(t) = sla.p99
            && u128::from(latency) > t.as_nanos()
        {
            self.latency_over += 1;
        }
        let ttft = rec.ttft_ns();
        if let (Some(t), Some(ttft)) = (sla.ttft, ttft)
            && u128::from(ttft) > t.as_nanos()
        {
            self.ttft_over += 1;
        }

        if let Some(stream) = &rec.stream {
            let s = self.streaming.get_or_insert_with(StreamAcc::new);
            s.streams += 1;
            s.events += stream.events;
            s.content_events += stream.content_events;
            s.estimated += u64::from(rec.output_tokens_estimated());
            record_ns(&mut s.duration, latency);
            for &gap in &stream.inter_token_ns {
                record_ns(&mut s.inter_token, gap);
            }
            if let Some(first) = rec.time_to_first_event_ns() {
                record_ns(&mut s.first_event, first);
            }
            if let Some(tpot) = rec.tpot_ns() {
                record_ns(&mut s.tpot, tpot.round() as u64);
            }
            let prompt = rec.prompt_tokens();
            let completion = stream.completion_tokens.or(rec.usage_completion_tokens);
            let output = rec.output_tokens().unwrap_or(0);
            s.prompt_tokens += prompt.unwrap_or(0);
            s.completion_tokens += completion.unwrap_or(0);
            s.output_tokens += output;
            if let Some(ttft) = ttft {
                record_ns(&mut s.ttft, ttft);
                if let Some(p) = prompt {
                    s.prefill_tokens += p;
                    s.prefill_ns += u128::from(ttft);
                }
                s.decode_tokens += output;
                s.decode_ns += u128::from(rec.decode_ns().unwrap_or(0));
            }
        }
    }

    fn report(&self, duration_s: f64, in_flight: u64, sla: &SlaTargets) -> Side {
        let latency = dist(&self.latency).expect("a side exists only once it has an exchange");
        let streaming = self.streaming.as_ref().and_then(|s| s.report(duration_s));
        let mut slas = Vec::new();
        if self.role == Role::Server {
            if let Some(t) = sla.p99 {
                slas.push(sla_entry(
                    SlaMetric::LatencyP99,
                    t,
                    Some(latency.p99_us),
                    self.latency_over,
                    self.requests,
                ));
            }
            if let Some(t) = sla.ttft {
                let ttft = streaming.as_ref().and_then(|s| s.ttft);
                slas.push(sla_entry(
                    SlaMetric::TtftP99,
                    t,
                    ttft.map(|d| d.p99_us),
                    self.ttft_over,
                    ttft.map_or(0, |d| d.count),
                ));
            }
        }
        Side {
            requests: self.requests,
            requests_per_s: ratio(self.requests as f64, duration_s).unwrap_or(0.0),
            in_flight,
            errors: self.errors,
            by_status: self
                .by_status
                .iter()
                .map(|(status, n)| {
                    (
                        status.map_or_else(|| "none".to_string(), |s| s.to_string()),
                        *n,
                    )
                })
                .collect(),
            by_method: self.by_method.clone(),
            by_process: self
                .by_process
                .iter()
                .map(|(&pid, c)| ProcessRequests {
                    pid,
                    requests: c.requests,
                    errors: c.errors,
                })
                .collect(),
            latency,
            time_to_headers: dist(&self.headers),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            streaming,
            sla: slas,
        }
    }
}

fn sla_entry(
    metric: SlaMetric,
    threshold: Duration,
    observed_us: Option<f64>,
    over: u64,
    population: u64,
) -> Sla {
    let threshold_ms = threshold.as_secs_f64() * 1e3;
    let observed_ms = observed_us.map(|us| us / 1e3);
    Sla {
        metric,
        threshold_ms,
        observed_ms,
        violated: observed_ms.is_some_and(|o| o > threshold_ms),
        requests_over: over,
        share_over: ratio(over as f64, population as f64).unwrap_or(0.0),
    }
}

/// Server-side figures of the current interval.
struct IntervalAcc {
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
    tokens: u64,
}

/// All HTTP figures of one session.
pub struct RequestStats {
    sla: SlaTargets,
    server: Option<SideAcc>,
    client: Option<SideAcc>,
    server_in_flight: u64,
    client_in_flight: u64,
    interval: IntervalAcc,
}

impl RequestStats {
    pub fn sla(&self) -> SlaTargets {
        self.sla
    }

    pub fn new(sla: SlaTargets) -> Self {
        RequestStats {
            sla,
            server: None,
            client: None,
            server_in_flight: 0,
            client_in_flight: 0,
            interval: IntervalAcc {
                requests: 0,
                errors: 0,
                latency: new_hist(),
                ttft: new_hist(),
                tokens: 0,
            },
        }
    }

    /// Account one finished exchange of process `pid`.
    pub fn record(&mut self, pid: u32, rec: &RequestRecord) {
        let side = match rec.role {
            Role::Server => &mut self.server,
            Role::Client => &mut self.client,
        };
        side.get_or_insert_with(|| SideAcc::new(rec.role))
            .record(pid, rec, &self.sla);
        if rec.role == Role::Server {
            let i = &mut self.interval;
            i.requests += 1;
            i.errors += u64::from(is_error(rec));
            record_ns(&mut i.latency, rec.latency_ns());
            if let Some(t) = rec.ttft_ns() {
                record_ns(&mut i.ttft, t);
            }
            i.tokens += rec.output_tokens().unwrap_or(0);
        }
    }

    /// Set the current in-flight gauge of a role.
    pub fn set_in_flight(&mut self, role: Role, n: u64) {
        match role {
            Role::Server => self.server_in_flight = n,
            Role::Client => self.client_in_flight = n,
        }
    }

    /// Whether any exchange (either role) was recorded.
    pub fn is_empty(&self) -> bool {
        self.server.is_none() && self.client.is_none()
    }

    /// Server-side figures since the previous call; starts a new interval.
    pub fn take_interval(&mut self) -> IntervalRequests {
        let i = &mut self.interval;
        let out = IntervalRequests {
            requests: i.requests,
            errors: i.errors,
            p50_us: quantile_us(&i.latency, 0.5),
            p99_us: quantile_us(&i.latency, 0.99),
            ttft_p50_us: quantile_us(&i.ttft, 0.5),
            tokens: i.tokens,
            in_flight: self.server_in_flight,
            events_lost: 0,
        };
        i.requests = 0;
        i.errors = 0;
        i.latency.reset();
        i.ttft.reset();
        i.tokens = 0;
        out
    }

    /// Whole-session figures; `duration_s` is the session length (for rates).
    pub fn report(&self, duration_s: f64) -> HttpReport {
        HttpReport {
            server: self
                .server
                .as_ref()
                .map(|s| s.report(duration_s, self.server_in_flight, &self.sla)),
            client: self
                .client
                .as_ref()
                .map(|s| s.report(duration_s, self.client_in_flight, &self.sla)),
        }
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
