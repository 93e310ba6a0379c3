//! Unit tests of the request statistics (`stats.rs`) and their text (`section.rs`).

use super::*;
use crate::http::{section::render_text, testing::*};

#[test]
fn counts_and_error_classification() {
    let mut st = RequestStats::new(SlaTargets::default());
    let mut r = rec(MS);
    st.record(1, &r); // ok
    r.status = Some(404);
    st.record(1, &r);
    r.status = Some(503);
    st.record(2, &r);
    r.status = None;
    r.headers_ns = None;
    r.outcome = Outcome::ClosedBeforeResponse;
    st.record(2, &r);
    r.headers_ns = Some(r.start_ns);
    r.status = Some(200);
    r.outcome = Outcome::ClosedMidResponse;
    st.record(2, &r);
    r.outcome = Outcome::Reset;
    st.record(2, &r);
    // Both 5xx and closed mid-response: one error in total, counted in both kinds.
    r.status = Some(500);
    r.outcome = Outcome::ClosedMidResponse;
    r.method = "POST".into();
    st.record(3, &r);
    // 3xx is not an error.
    r.status = Some(304);
    r.outcome = Outcome::Complete;
    st.record(3, &r);

    let rep = st.report(2.0);
    assert!(rep.client.is_none());
    let s = rep.server.unwrap();
    assert_eq!(s.requests, 8);
    assert_eq!(s.requests_per_s, 4.0);
    assert_eq!(
        s.errors,
        Errors {
            total: 6,
            status_4xx: 1,
            status_5xx: 2,
            closed_before_response: 1,
            closed_mid_response: 2,
            reset: 1,
        }
    );
    let want: BTreeMap<String, u64> = [("200", 3), ("304", 1), ("404", 1), ("500", 1)]
        .into_iter()
        .chain([("503", 1), ("none", 1)])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(s.by_status, want);
    assert_eq!(s.by_method["GET"], 6);
    assert_eq!(s.by_method["POST"], 2);
    assert_eq!(
        s.by_process,
        vec![
            ProcessRequests {
                pid: 1,
                requests: 2,
                errors: 1
            },
            ProcessRequests {
                pid: 2,
                requests: 4,
                errors: 4
            },
            ProcessRequests {
                pid: 3,
                requests: 2,
                errors: 1
            },
        ]
    );
    assert_eq!(s.bytes_in, 800);
    assert_eq!(s.bytes_out, 8000);
    // One exchange had no response head.
    assert_eq!(s.time_to_headers.unwrap().count, 7);
    assert!(s.streaming.is_none());
    assert!(s.sla.is_empty());
}

#[test]
fn client_bytes_are_swapped_and_roles_separate() {
    let mut st = RequestStats::new(SlaTargets {
        p99: Some(Duration::from_millis(1)),
        ttft: None,
    });
    let mut r = rec(5 * MS);
    r.role = Role::Client;
    st.record(7, &r);
    st.set_in_flight(Role::Client, 3);
    st.set_in_flight(Role::Server, 9);
    let rep = st.report(1.0);
    assert!(rep.server.is_none());
    let c = rep.client.unwrap();
    assert_eq!((c.bytes_in, c.bytes_out), (1000, 100));
    assert_eq!(c.in_flight, 3);
    // SLA is server-only.
    assert!(c.sla.is_empty());
    assert_eq!(
        st.take_interval(),
        IntervalRequests {
            in_flight: 9,
            ..Default::default()
        }
    );
}

#[test]
fn percentiles_of_known_set() {
    let mut st = RequestStats::new(SlaTargets::default());
    for ms in 1..=1000 {
        st.record(1, &rec(ms * MS));
    }
    let l = st.report(1.0).server.unwrap().latency;
    assert_eq!(l.count, 1000);
    let us = |ms: f64| ms * 1e3;
    assert!(close(l.p50_us, us(500.0), 1e-3), "{}", l.p50_us);
    assert!(close(l.p90_us, us(900.0), 1e-3), "{}", l.p90_us);
    assert!(close(l.p95_us, us(950.0), 1e-3), "{}", l.p95_us);
    assert!(close(l.p99_us, us(990.0), 1e-3), "{}", l.p99_us);
    assert!(close(l.p999_us, us(999.0), 1e-3), "{}", l.p999_us);
    assert!(close(l.min_us, us(1.0), 1e-3), "{}", l.min_us);
    assert!(close(l.max_us, us(1000.0), 1e-3), "{}", l.max_us);
    assert!(close(l.mean_us, us(500.5), 1e-3), "{}", l.mean_us);
    // Population stddev of 1..=1000 = sqrt((1000² − 1) / 12) = 288.675 ms.
    assert!(close(l.stddev_us, us(288.675), 2e-3), "{}", l.stddev_us);
}

#[test]
fn stddev_of_two_point_set() {
    let mut st = RequestStats::new(SlaTargets::default());
    for _ in 0..50 {
        st.record(1, &rec(10 * MS));
        st.record(1, &rec(20 * MS));
    }
    let l = st.report(1.0).server.unwrap().latency;
    assert!(close(l.mean_us, 15_000.0, 1e-3));
    assert!(close(l.stddev_us, 5_000.0, 2e-3), "{}", l.stddev_us);
    // A single value: no jitter.
    let mut st = RequestStats::new(SlaTargets::default());
    st.record(1, &rec(3 * MS));
    assert_eq!(st.report(1.0).server.unwrap().latency.stddev_us, 0.0);
}

#[test]
fn zero_latency_is_clamped_not_lost() {
    let mut st = RequestStats::new(SlaTargets::default());
    st.record(1, &rec(0));
    let l = st.report(0.0).server.unwrap();
    assert_eq!(l.latency.count, 1);
    assert_eq!(l.requests_per_s, 0.0);
    assert!(l.latency.max_us <= 0.001 + 1e-9);
}

#[test]
fn streaming_rates() {
    let mut st = RequestStats::new(SlaTargets::default());
    // Stream A: request read in 0 ms, first event at 100 ms, end at 1100 ms,
    // 11 events 100 ms apart, usage prompt 50 / completion 20.
    st.record(1, &stream_rec(0, 100, 1100, 11, Some(50), Some(20)));
    // Stream B: request done at 10 ms, first event at 310 ms (TTFT 300 ms), end at
    // 2010 ms, 18 events 100 ms apart, no usage → output = 18 events.
    st.record(1, &stream_rec(10, 310, 2010, 18, None, None));
    // A non-stream exchange with body usage: not part of streaming.
    let mut r = rec(10 * MS);
    r.usage_completion_tokens = Some(7);
    st.record(1, &r);

    let s = st.report(10.0).server.unwrap();
    let sm = s.streaming.unwrap();
    assert_eq!(sm.streams, 2);
    assert_eq!(sm.events, 29);
    assert_eq!(sm.events_per_stream_mean, 14.5);
    assert_eq!(sm.prompt_tokens, 50);
    assert_eq!(sm.completion_tokens, 20);
    assert_eq!(sm.output_tokens, 38);
    // Prefill: only A has prompt tokens: 50 / 0.1 s.
    assert!(close(sm.prefill_tokens_per_s.unwrap(), 500.0, 1e-9));
    // Decode: Σ output / Σ (duration − TTFT), duration from the first request byte:
    // (20 + 18) / ((1.1 − 0.1) + (2.01 − 0.3)) s = 38 / 2.71.
    assert!(close(sm.decode_tokens_per_s.unwrap(), 38.0 / 2.71, 1e-9));
    assert!(close(sm.output_tokens_per_s, 3.8, 1e-9));
    let ttft = sm.ttft.unwrap();
    assert_eq!(ttft.count, 2);
    assert!(close(ttft.min_us, 100_000.0, 1e-3));
    assert!(close(ttft.max_us, 300_000.0, 1e-3));
    let it = sm.inter_token.unwrap();
    assert_eq!(it.count, 10 + 17);
    assert!(close(it.p50_us, 100_000.0, 1e-3));
    assert_eq!(sm.duration.count, 2);
    assert!(close(sm.duration.max_us, 2_010_000.0, 1e-3));
    // Interval tokens include the body-usage exchange.
    let i = st.take_interval();
    assert_eq!(i.tokens, 45);
    assert!(close(i.ttft_p50_us.unwrap(), 100_000.0, 1e-3));
}

#[test]
fn streaming_rates_none_without_ttft_or_prompt() {
    let mut st = RequestStats::new(SlaTargets::default());
    let mut r = stream_rec(0, 100, 1100, 0, None, None);
    r.stream.as_mut().unwrap().first_event_ns = None;
    r.stream.as_mut().unwrap().first_content_ns = None;
    r.stream.as_mut().unwrap().last_content_ns = None;
    st.record(1, &r);
    let sm = st.report(1.0).server.unwrap().streaming.unwrap();
    assert_eq!(sm.streams, 1);
    assert!(sm.ttft.is_none());
    assert!(sm.inter_token.is_none());
    assert!(sm.prefill_tokens_per_s.is_none());
    assert!(sm.decode_tokens_per_s.is_none());
    assert_eq!(sm.output_tokens, 0);
}

#[test]
fn sla_flags_and_requests_over() {
    let sla = SlaTargets {
        p99: Some(Duration::from_millis(100)),
        ttft: Some(Duration::from_millis(200)),
    };
    // 1..=100 ms: p99 = 99 ms ≤ 100 ms; none strictly over 100 ms.
    let mut st = RequestStats::new(sla);
    for ms in 1..=100 {
        st.record(1, &rec(ms * MS));
    }
    let s = st.report(1.0).server.unwrap();
    assert_eq!(s.sla.len(), 2);
    let l = &s.sla[0];
    assert_eq!(l.metric, SlaMetric::LatencyP99);
    assert_eq!(l.threshold_ms, 100.0);
    assert!(close(l.observed_ms.unwrap(), 99.0, 1e-3));
    assert!(!l.violated);
    assert_eq!(l.requests_over, 0);
    assert_eq!(l.share_over, 0.0);
    let t = &s.sla[1];
    assert_eq!(t.metric, SlaMetric::TtftP99);
    assert_eq!(t.observed_ms, None);
    assert!(!t.violated);
    assert_eq!((t.requests_over, t.share_over), (0, 0.0));

    // Add 5 slow ones (200 ms) → 105 requests, p99 = 200 ms, 5 over.
    for _ in 0..5 {
        st.record(1, &rec(200 * MS));
    }
    // Streams: TTFT 100 ms and 300 ms → p99 300 ms > 200 ms, 1 of 2 over.
    st.record(1, &stream_rec(0, 100, 150, 2, None, None));
    st.record(1, &stream_rec(0, 300, 350, 2, None, None));
    let s = st.report(1.0).server.unwrap();
    let l = &s.sla[0];
    assert!(l.violated);
    // 107 samples: the 106th smallest is 200 ms.
    assert!(close(l.observed_ms.unwrap(), 200.0, 1e-3));
    // 5 × 200 ms + the 150 ms and 350 ms streams.
    assert_eq!(l.requests_over, 7);
    assert!(close(l.share_over, 7.0 / 107.0, 1e-12));
    let t = &s.sla[1];
    assert!(t.violated);
    assert!(close(t.observed_ms.unwrap(), 300.0, 1e-3));
    assert_eq!(t.requests_over, 1);
    assert_eq!(t.share_over, 0.5);
    let text = render_text(&st.report(1.0));
    assert!(text.contains("VIOLATED"), "{text}");
}

#[test]
fn take_interval_resets() {
    let mut st = RequestStats::new(SlaTargets::default());
    st.set_in_flight(Role::Server, 2);
    for ms in [10, 20, 30] {
        st.record(1, &rec(ms * MS));
    }
    let mut bad = rec(40 * MS);
    bad.status = Some(500);
    st.record(1, &bad);
    let mut c = rec(MS);
    c.role = Role::Client;
    st.record(1, &c); // client: not in the interval
    let i = st.take_interval();
    assert_eq!(i.requests, 4);
    assert_eq!(i.errors, 1);
    assert!(close(i.p50_us.unwrap(), 20_000.0, 1e-3));
    assert!(close(i.p99_us.unwrap(), 40_000.0, 1e-3));
    assert_eq!(i.ttft_p50_us, None);
    assert_eq!(i.in_flight, 2);
    let i = st.take_interval();
    assert_eq!(
        i,
        IntervalRequests {
            in_flight: 2,
            ..Default::default()
        }
    );
    st.record(1, &rec(5 * MS));
    let i = st.take_interval();
    assert_eq!(i.requests, 1);
    assert!(close(i.p99_us.unwrap(), 5_000.0, 1e-3));
    // The session totals are untouched by the intervals.
    assert_eq!(st.report(1.0).server.unwrap().requests, 5);
}

#[test]
fn report_json_shape() {
    let mut st = RequestStats::new(SlaTargets {
        p99: Some(Duration::from_millis(50)),
        ttft: None,
    });
    st.record(1, &rec(10 * MS));
    st.record(1, &stream_rec(0, 100, 1100, 11, Some(5), None));
    let v = serde_json::to_value(st.report(1.0)).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["client", "server"]);
    assert!(v["client"].is_null());
    let s = v["server"].as_object().unwrap();
    assert_eq!(
        sorted_keys(&v["server"]),
        [
            "by_method",
            "by_process",
            "by_status",
            "bytes_in",
            "bytes_out",
            "errors",
            "in_flight",
            "latency",
            "requests",
            "requests_per_s",
            "sla",
            "streaming",
            "time_to_headers"
        ]
    );
    assert_eq!(
        sorted_keys(&s["errors"]),
        [
            "closed_before_response",
            "closed_mid_response",
            "reset",
            "status_4xx",
            "status_5xx",
            "total"
        ]
    );
    assert_eq!(s["by_status"]["200"], 2);
    assert_eq!(s["by_method"]["POST"], 1);
    assert_eq!(s["by_process"][0]["pid"], 1);
    assert_eq!(s["by_process"][0]["requests"], 2);
    assert_eq!(s["by_process"][0]["errors"], 0);
    assert_eq!(
        sorted_keys(&s["latency"]),
        [
            "count",
            "max_us",
            "mean_us",
            "min_us",
            "p50_us",
            "p90_us",
            "p95_us",
            "p999_us",
            "p99_us",
            "stddev_us"
        ]
    );
    assert!(s["latency"]["p50_us"].is_f64());
    assert!(s["time_to_headers"].is_object());
    let sm = s["streaming"].as_object().unwrap();
    for k in [
        "streams",
        "events",
        "events_per_stream_mean",
        "content_events",
        "ttft",
        "time_to_first_event",
        "inter_token",
        "tpot",
        "output_tokens_estimated_streams",
        "duration",
        "prompt_tokens",
        "completion_tokens",
        "output_tokens",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "output_tokens_per_s",
    ] {
        assert!(sm.contains_key(k), "{k}");
    }
    assert_eq!(sm.len(), 16);
    assert_eq!(sm["completion_tokens"], 0);
    assert_eq!(sm["output_tokens"], 11);
    let sla = &s["sla"][0];
    assert_eq!(sla["metric"], "latency_p99");
    assert_eq!(sla["threshold_ms"], 50.0);
    assert!(sla["observed_ms"].is_f64());
    assert_eq!(sla["violated"], true);
    assert_eq!(sla["requests_over"], 1);
    assert_eq!(sla["share_over"], 0.5);
    assert_eq!(sla.as_object().unwrap().len(), 6);
    // Round trip.
    let back: HttpReport = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(serde_json::to_value(back).unwrap(), v);
}

#[test]
fn empty_report_json_has_both_sides_null() {
    let v = serde_json::to_value(RequestStats::new(SlaTargets::default()).report(1.0)).unwrap();
    assert_eq!(v, serde_json::json!({"server": null, "client": null}));
}

fn sorted_keys(v: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    keys
}

#[test]
fn ttft_sla_json_without_streams_is_null_observed() {
    let mut st = RequestStats::new(SlaTargets {
        p99: None,
        ttft: Some(Duration::from_millis(500)),
    });
    st.record(1, &rec(MS));
    let v = serde_json::to_value(st.report(1.0)).unwrap();
    let sla = &v["server"]["sla"][0];
    assert_eq!(sla["metric"], "ttft_p99");
    assert!(sla["observed_ms"].is_null());
    assert_eq!(sla["violated"], false);
    assert!(v["server"]["streaming"].is_null());
}

#[test]
fn by_method_is_capped() {
    let mut st = RequestStats::new(SlaTargets::default());
    let mut r = rec(MS);
    for i in 0..100 {
        r.method = format!("M{i}").into();
        st.record(1, &r);
    }
    r.method = "M0".into();
    st.record(1, &r);
    let s = st.report(1.0).server.unwrap();
    assert_eq!(s.by_method.len(), MAX_METHODS);
    assert_eq!(s.by_method["M0"], 2);
    assert_eq!(s.by_method["OTHER"], 100 - (MAX_METHODS as u64 - 1));
    assert_eq!(s.by_method.values().sum::<u64>(), 101);
}

#[test]
fn render_text_sections() {
    assert_eq!(
        render_text(&RequestStats::new(SlaTargets::default()).report(1.0)),
        ""
    );
    let mut st = RequestStats::new(SlaTargets {
        p99: Some(Duration::from_millis(100)),
        ttft: None,
    });
    for _ in 0..9 {
        st.record(1, &rec(2 * MS));
    }
    let mut bad = rec(2 * MS);
    bad.status = Some(502);
    bad.outcome = Outcome::ClosedMidResponse;
    st.record(1, &bad);
    st.record(1, &stream_rec(0, 100, 1100, 11, Some(50), Some(20)));
    let mut c = rec(MS);
    c.role = Role::Client;
    st.record(1, &c);
    let text = render_text(&st.report(10.0));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "HTTP server: 11 requests (1.1/s), 1 error (1 5xx, 1 closed mid-response), in flight 0"
        ),
        "{text}"
    );
    assert!(text.contains("  latency     p50 2.0 ms"), "{text}");
    assert!(text.contains("jitter (stddev)"), "{text}");
    assert!(
        text.contains(
            "  streaming   1 streams, 11 events (11.0/stream, 11 with tokens); TTFT p50 100.0 ms"
        ),
        "{text}"
    );
    assert!(text.contains("20 output tokens (prompt 50)"), "{text}");
    assert!(
        text.contains("prefill 500.0 tok/s, decode 20.0 tok/s"),
        "{text}"
    );
    assert!(text.contains("SLA         latency p99 "), "{text}");
    assert!(
        text.contains(": VIOLATED (9.1% of requests over)"),
        "{text}"
    );
    assert!(
        text.contains("\nHTTP client (outbound): 1 requests (0.1/s), 0 errors, in flight 0\n"),
        "{text}"
    );
    assert!(text.ends_with('\n'));
}
