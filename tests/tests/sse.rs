//! Streaming (server-sent events) metrics against the hyper server's own timestamps.
//!
//! The server writes a role-only chunk at once (no token, as LLM servers do), N token events,
//! event i due at handler start + (i+1)·D, then with `usage=1` one more data event carrying
//! `usage` (right after the last token), then `data: [DONE]`. The profiler counts every data
//! event except `[DONE]` (N + 2 per stream with usage, N + 1 without), of which N carry tokens;
//! TTFT is timed to the first token event, the inter-token gaps and TPOT over token events,
//! output tokens from `usage.completion_tokens` when present, else the token events (marked
//! estimated).

use profiler_tests::{http::*, privileged};
use serde_json::Value;

fn dist(streaming: &Value, name: &str, p: &str) -> f64 {
    num(&streaming[name][p], &format!("streaming.{name}.{p}"))
}

fn streaming(run: &Profiled) -> &Value {
    let s = run.server();
    let st = &s["streaming"];
    println!("profiler: {}", describe(s));
    println!("profiler streaming: {st}");
    assert!(st.is_object(), "no streaming section: {st}");
    st
}

/// Inter-token and TPOT p50 within 10% of the delay (and shown against the server's gaps), TTFT
/// and time to first event p50 within max(10%, 1 ms) of the server's.
fn check_timing(st: &Value, truth: &[Value], delay_ms: f64) {
    let gaps: Vec<f64> = truth
        .iter()
        .flat_map(|l| l["gaps_us"].as_array().cloned().unwrap_or_default())
        .filter_map(|g| g.as_f64())
        .collect();
    assert_eq!(
        count(&st["inter_token"]["count"], "inter_token.count"),
        gaps.len() as u64,
        "inter-token gaps (between consecutive token events)"
    );
    assert_eq!(
        count(&st["tpot"]["count"], "tpot.count"),
        truth.len() as u64,
        "one TPOT per stream"
    );
    assert_close(
        "TPOT p50 vs delay",
        dist(st, "tpot", "p50_us"),
        delay_ms * 1000.0,
        0.10,
        0.0,
    );
    assert_eq!(
        count(&st["ttft"]["count"], "ttft.count"),
        truth.len() as u64,
        "one TTFT per stream"
    );
    let inter = dist(st, "inter_token", "p50_us");
    println!(
        "inter-token p50: server {:.1} µs over {} gaps",
        percentile(&gaps, 50.0),
        gaps.len()
    );
    assert_close(
        "inter-token p50 vs delay",
        inter,
        delay_ms * 1000.0,
        0.10,
        0.0,
    );
    let ttft = truth_values(truth, "ttft_us");
    assert_close(
        "ttft p50 vs server",
        dist(st, "ttft", "p50_us"),
        percentile(&ttft, 50.0),
        0.10,
        1000.0,
    );
    let first = truth_values(truth, "first_event_us");
    assert_close(
        "time to first event p50 vs server",
        dist(st, "time_to_first_event", "p50_us"),
        percentile(&first, 50.0),
        0.10,
        1000.0,
    );
    assert!(
        percentile(&first, 50.0) < percentile(&ttft, 50.0) - delay_ms * 500.0,
        "the role chunk goes out before the first token"
    );
}

/// Three streams of 20 token events 20 ms apart after a role chunk, with usage, one after the
/// other on one keep-alive connection (one curl): 3 streams, 22 events each (20 with tokens),
/// tokens from usage, timing.
#[test]
fn sse_streams_with_usage() {
    if !privileged("sse_streams_with_usage") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let url = hyper.url("/sse?events=20&delay_ms=20&usage=1&prompt_tokens=17&role=1");
    let (run, got) = profile(hyper.pid(), &[], true, || curl(&[&url, &url, &url]));
    let truth = hyper.stop();
    println!("curl: exit {}, {} data events", got.code, got.sse_events());
    assert_eq!(got.code, 0, "curl: {}", got.stderr);
    assert_eq!(got.sse_events(), 3 * 22);
    assert_eq!(truth.len(), 3, "server lines: {truth:?}");
    let truth_events: u64 = truth.iter().map(|l| l["events"].as_u64().unwrap()).sum();
    assert_eq!(truth_events, 66);

    let st = streaming(&run);
    assert_eq!(count(&st["streams"], "streams"), 3);
    assert_eq!(count(&st["events"], "events"), truth_events);
    let per_stream = num(&st["events_per_stream_mean"], "events_per_stream_mean");
    println!("events per stream: profiler {per_stream}, server 22");
    assert!((per_stream - 22.0).abs() < 1e-9);
    assert_eq!(count(&st["content_events"], "content_events"), 60);
    assert_eq!(
        count(
            &st["output_tokens_estimated_streams"],
            "output_tokens_estimated_streams"
        ),
        0
    );
    assert_eq!(count(&st["completion_tokens"], "completion_tokens"), 60);
    assert_eq!(count(&st["output_tokens"], "output_tokens"), 60);
    assert_eq!(count(&st["prompt_tokens"], "prompt_tokens"), 3 * 17);
    check_timing(st, &truth, 20.0);

    println!("--events: {:?}", run.events);
    assert_eq!(run.events.len(), 3);
    for e in &run.events {
        assert_eq!(e["events"], 22, "{e}");
        assert_eq!(e["content_events"], 20, "{e}");
        assert_eq!(e["output_tokens"], 20, "{e}");
        assert_eq!(e["output_tokens_estimated"], false, "{e}");
        assert_eq!(e["status"], 200, "{e}");
        // hyper writes each chunk as several iovecs: all of them must be captured.
        assert_eq!(e["framing_lost"], false, "{e}");
    }
}

/// Two streams of 20 token events 10 ms apart after a role chunk, without usage, each on its own
/// connection: 21 events each, and output tokens fall back to the token events (not the role
/// chunk), marked estimated.
#[test]
fn sse_streams_without_usage() {
    if !privileged("sse_streams_without_usage") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let url = hyper.url("/sse?events=20&delay_ms=10&role=1");
    let (run, got) = profile(hyper.pid(), &[], false, || [curl(&[&url]), curl(&[&url])]);
    let truth = hyper.stop();
    for g in &got {
        println!("curl: exit {}, {} data events", g.code, g.sse_events());
        assert_eq!(g.code, 0, "curl: {}", g.stderr);
        assert_eq!(g.sse_events(), 21);
    }
    assert_eq!(truth.len(), 2, "server lines: {truth:?}");

    let st = streaming(&run);
    assert_eq!(count(&st["streams"], "streams"), 2);
    assert_eq!(count(&st["events"], "events"), 42);
    assert_eq!(count(&st["content_events"], "content_events"), 40);
    assert_eq!(count(&st["output_tokens"], "output_tokens"), 40);
    assert_eq!(
        count(
            &st["output_tokens_estimated_streams"],
            "output_tokens_estimated_streams"
        ),
        2
    );
    assert_eq!(
        st["completion_tokens"].as_u64().unwrap_or(0),
        0,
        "no usage was sent"
    );
    check_timing(st, &truth, 10.0);
}
