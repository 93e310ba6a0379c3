//! The HTTP part of the report (serializable) and its text: per role, request rates, latency
//! percentiles, errors, SLA flags and streaming figures (TTFT, inter-token gaps, tokens). Pure.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    http::{
        analyzer::{ConnectionsReport, EndpointRequests, SocketCounters},
        record::Role,
        stats::{Dist, Errors, HttpReport, Side, SlaMetric, Streaming},
    },
    util::fmt::{fmt_bytes, fmt_us},
};

#[derive(Debug, Serialize)]
pub struct HttpSection {
    /// `server` (requests the targets answered) and `client` (their outbound calls).
    #[serde(flatten)]
    pub requests: HttpReport,
    /// How sockets are recognised: `socket-tracepoints` (inside each syscall) or `fd-lookup`
    /// (each syscall's fd resolved to its socket in the kernel, on kernels without
    /// sock_*_length).
    pub socket_classification: &'static str,
    pub capture_bytes: u32,
    /// Socket events the kernel could not queue (ring buffer full): requests may be missing.
    pub events_lost: u64,
    /// Syscalls whose entry state was evicted before their exit.
    pub calls_evicted: u64,
    /// Socket-layer capture: stream-socket transfers made by something other than the
    /// read/write syscalls it knows (io_uring, splice, recvmmsg/sendmmsg): not analysed.
    pub unknown_callers: u64,
    pub analysis: SocketCounters,
    /// Requests per local address served and per peer called.
    pub endpoints: Vec<EndpointRequests>,
    /// Connection lifetimes (accept/connect → close) and keep-alive reuse.
    pub connections: ConnectionsReport,
}

fn fmt_rate(tok_s: f64) -> String {
    if tok_s >= 1e6 {
        format!("{:.1}M", tok_s / 1e6)
    } else if tok_s >= 1e3 {
        format!("{:.1}k", tok_s / 1e3)
    } else {
        format!("{tok_s:.1}")
    }
}

fn fmt_pcts(d: &Dist) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_us(d.p50_us),
        fmt_us(d.p90_us),
        fmt_us(d.p99_us),
        fmt_us(d.p999_us),
        fmt_us(d.max_us)
    )
}

fn fmt_errors(e: &Errors) -> String {
    let noun = if e.total == 1 { "error" } else { "errors" };
    let kinds: Vec<String> = [
        (e.status_4xx, "4xx"),
        (e.status_5xx, "5xx"),
        (e.closed_before_response, "closed before response"),
        (e.closed_mid_response, "closed mid-response"),
        (e.reset, "reset"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if kinds.is_empty() {
        format!("{} {noun}", e.total)
    } else {
        format!("{} {noun} ({})", e.total, kinds.join(", "))
    }
}

fn render_side(out: &mut String, title: &str, s: &Side) {
    let _ = writeln!(
        out,
        "{title}: {} requests ({:.1}/s), {}, in flight {}",
        s.requests,
        s.requests_per_s,
        fmt_errors(&s.errors),
        s.in_flight
    );
    let _ = writeln!(
        out,
        "  latency     {}  jitter (stddev) {}",
        fmt_pcts(&s.latency),
        fmt_us(s.latency.stddev_us)
    );
    if let Some(h) = &s.time_to_headers {
        let _ = writeln!(out, "  headers     {}", fmt_pcts(h));
    }
    let statuses: Vec<String> = s
        .by_status
        .iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect();
    let _ = writeln!(out, "  status      {}", statuses.join("  "));
    let _ = writeln!(
        out,
        "  bytes       in {}  out {}",
        fmt_bytes(s.bytes_in),
        fmt_bytes(s.bytes_out)
    );
    if let Some(st) = &s.streaming {
        render_streaming(out, st);
    }
    for sla in &s.sla {
        let (name, population) = match sla.metric {
            SlaMetric::LatencyP99 => ("latency p99", "requests"),
            SlaMetric::TtftP99 => ("TTFT p99", "streams"),
        };
        let threshold = fmt_us(sla.threshold_ms * 1e3);
        let line = match sla.observed_ms {
            None => format!("{name} n/a (no {population}), target {threshold}"),
            Some(obs) => format!(
                "{name} {} {} {threshold}: {} ({:.1}% of {population} over)",
                fmt_us(obs * 1e3),
                if sla.violated { ">" } else { "≤" },
                if sla.violated { "VIOLATED" } else { "ok" },
                sla.share_over * 100.0
            ),
        };
        let _ = writeln!(out, "  SLA         {line}");
    }
}

/// The `streaming` line: events, TTFT, inter-token gaps, TPOT, tokens and rates.
fn render_streaming(out: &mut String, st: &Streaming) {
    let mut parts = vec![format!(
        "{} streams, {} events ({:.1}/stream, {} with tokens)",
        st.streams, st.events, st.events_per_stream_mean, st.content_events
    )];
    if let Some(t) = &st.ttft {
        parts.push(format!(
            "TTFT p50 {} p99 {}",
            fmt_us(t.p50_us),
            fmt_us(t.p99_us)
        ));
    }
    if let (Some(first), Some(ttft)) = (&st.time_to_first_event, &st.ttft)
        && first.p50_us != ttft.p50_us
    {
        parts.push(format!("first event p50 {}", fmt_us(first.p50_us)));
    }
    if let Some(t) = &st.inter_token {
        parts.push(format!(
            "inter-token p50 {} p99 {}",
            fmt_us(t.p50_us),
            fmt_us(t.p99_us)
        ));
    }
    if let Some(t) = &st.tpot {
        parts.push(format!(
            "TPOT p50 {} p99 {}",
            fmt_us(t.p50_us),
            fmt_us(t.p99_us)
        ));
    }
    let mut tokens = format!("{} output tokens", st.output_tokens);
    if st.output_tokens_estimated_streams > 0 {
        let _ = write!(
            tokens,
            " (estimated from events in {} of {} streams: no usage sent)",
            st.output_tokens_estimated_streams, st.streams
        );
    }
    if st.prompt_tokens > 0 {
        let _ = write!(tokens, " (prompt {})", st.prompt_tokens);
    }
    let _ = write!(tokens, ", {} tok/s", fmt_rate(st.output_tokens_per_s));
    parts.push(tokens);
    let mut rates = Vec::new();
    if let Some(p) = st.prefill_tokens_per_s {
        rates.push(format!("prefill {} tok/s", fmt_rate(p)));
    }
    if let Some(d) = st.decode_tokens_per_s {
        rates.push(format!("decode {} tok/s", fmt_rate(d)));
    }
    if !rates.is_empty() {
        parts.push(rates.join(", "));
    }
    let _ = writeln!(out, "  streaming   {}", parts.join("; "));
}

/// The HTTP section of the text report; empty when there were no exchanges at all.
pub fn render_text(r: &HttpReport) -> String {
    let mut out = String::new();
    if let Some(s) = &r.server {
        render_side(&mut out, "HTTP server", s);
    }
    if let Some(s) = &r.client {
        render_side(&mut out, "HTTP client (outbound)", s);
    }
    out
}

/// The HTTP section of the text report, with endpoints, connections and data-loss warnings.
pub fn write_http(out: &mut String, h: &HttpSection) {
    let requests = render_text(&h.requests);
    if requests.is_empty() {
        let _ = writeln!(
            out,
            "\nHTTP: no requests seen ({} socket events, {} connections, {} of another protocol)",
            h.analysis.events, h.analysis.connections_seen, h.analysis.not_http_connections
        );
    } else {
        out.push('\n');
        out.push_str(&requests);
        let endpoints: Vec<String> = h
            .endpoints
            .iter()
            .map(|e| {
                let role = match e.role {
                    Role::Server => "served on",
                    Role::Client => "called",
                };
                format!("{role} {} {} ({} errors)", e.endpoint, e.requests, e.errors)
            })
            .collect();
        if !endpoints.is_empty() {
            let _ = writeln!(out, "  endpoints   {}", endpoints.join("; "));
        }
        let c = &h.connections;
        if let Some(d) = &c.duration {
            let _ = writeln!(
                out,
                "  connections {} closed ({:.1} requests each), {} open at the end; lifetime \
                 p50 {}  p99 {}  max {}",
                c.closed,
                c.requests_per_connection_mean,
                c.open_at_end,
                fmt_us(d.p50_us),
                fmt_us(d.p99_us),
                fmt_us(d.max_us)
            );
        }
    }
    let dropped = h.events_lost
        + h.calls_evicted
        + h.analysis.connections_evicted
        + h.analysis.head_overflow
        + h.analysis.pending_overflow
        + h.analysis.malformed_events;
    if dropped > 0 {
        let _ = writeln!(
            out,
            "  warning: data lost — {} socket events (ring buffer full), {} syscalls evicted, \
             {} connections evicted, {} heads too long, {} pipelined requests over the limit, \
             {} malformed events",
            h.events_lost,
            h.calls_evicted,
            h.analysis.connections_evicted,
            h.analysis.head_overflow,
            h.analysis.pending_overflow,
            h.analysis.malformed_events
        );
    }
    if h.unknown_callers > 0 {
        let _ = writeln!(
            out,
            "  {} socket transfers came from io_uring, splice or recvmmsg/sendmmsg: not analysed",
            h.unknown_callers
        );
    }
    if h.analysis.not_http_connections > 0 {
        let _ = writeln!(
            out,
            "  other protocols (not analysed): {} TCP connection(s) (TLS, HTTP/2, …), {} \
             Unix-socket connection(s)",
            h.analysis.not_http_tcp, h.analysis.not_http_unix
        );
    }
}
