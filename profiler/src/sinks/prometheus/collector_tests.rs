//! The exporter state encoded: every catalogue metric appears once filled, with the process
//! labels; counts and buckets match what was observed.

use profiler_common::{CudaEvent, copy_direction, cuda_api as api, cuda_flag};

use crate::{
    http::record::{Outcome, RequestRecord, Role, StreamStats},
    sinks::prometheus::{
        Exporter,
        catalogue::{METRICS, series_names},
        exposition::{self, OPENMETRICS},
        labels::ProcIdentity,
        state::{Caps, GpuRow, ProbeRow, ProcTotals},
    },
};

fn request(method: &str, status: Option<u16>, latency_ms: u64, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        role: Role::Server,
        method: method.to_string().into(),
        status,
        request_bytes: 100,
        response_bytes: 200,
        start_ns: 1_000_000,
        request_done_ns: 1_000_000,
        headers_ns: Some(1_500_000),
        end_ns: 1_000_000 + latency_ms * 1_000_000,
        outcome,
        stream: None,
        usage_prompt_tokens: None,
        usage_completion_tokens: None,
        framing_lost: false,
    }
}

fn streamed() -> RequestRecord {
    let mut r = request("POST", Some(200), 300, Outcome::Complete);
    r.stream = Some(StreamStats {
        events: 11,
        content_events: 11,
        first_event_ns: Some(1_000_000 + 40_000_000),
        first_content_ns: Some(1_000_000 + 40_000_000),
        last_content_ns: Some(1_000_000 + 40_000_000 + 10 * 20_000_000),
        inter_token_ns: vec![20_000_000; 10],
        prompt_tokens: Some(7),
        completion_tokens: None,
        ended: false,
    });
    r
}

fn cuda(api_id: u16, tgid: u32, timed: bool, duration_ns: u64) -> CudaEvent {
    // SAFETY: CudaEvent is #[repr(C)] plain integers; all-zero is a valid value.
    let mut ev: CudaEvent = unsafe { std::mem::zeroed() };
    ev.api = api_id;
    ev.tgid = tgid;
    ev.tid = tgid;
    ev.duration_ns = duration_ns;
    if timed {
        ev.flags |= cuda_flag::TIMED;
    }
    ev
}

fn identity(pid: u32) -> ProcIdentity {
    ProcIdentity {
        pid: pid.to_string(),
        comm: "server".into(),
        ..ProcIdentity::default()
    }
}

fn filled() -> Exporter {
    let e = Exporter::new(
        Caps {
            processes: 1,
            kernels: 2,
        },
        Some("node-a".into()),
    );
    let mut st = e.lock();
    st.add_process(10, identity(10));
    st.add_process(11, identity(11)); // over the cap: "other"
    for ms in [3, 30, 300] {
        st.on_request(10, &request("GET", Some(200), ms, Outcome::Complete));
    }
    st.on_request(10, &request("GET", Some(503), 20, Outcome::Complete));
    st.on_request(10, &request("GET", None, 20, Outcome::Reset));
    st.on_request(10, &streamed());
    let mut client = request("GET", Some(200), 5, Outcome::Complete);
    client.role = Role::Client;
    st.on_request(10, &client);
    st.on_request(11, &request("GET", Some(200), 3, Outcome::Complete));
    for kernel in ["a", "b", "c", "a"] {
        st.on_cuda_call(&cuda(api::LAUNCH_KERNEL, 10, true, 4_000), Some(kernel));
    }
    st.on_cuda_call(&cuda(api::GRAPH_LAUNCH, 10, false, 0), None);
    st.on_cuda_call(&cuda(api::STREAM_SYNC, 10, true, 2_000_000), None);
    let mut failed = cuda(api::STREAM_SYNC, 10, true, 10);
    failed.ret = 700;
    st.on_cuda_call(&failed, None);
    let mut copy = cuda(api::MEMCPY_HTOD, 10, true, 1_000);
    copy.bytes = 4096;
    copy.direction = copy_direction::HTOD;
    st.on_cuda_call(&copy, None);
    let mut totals = ProcTotals {
        rss_bytes: Some(1 << 20),
        threads: Some(3),
        active_requests: Some(2),
        counters: vec![
            ("profiler_cpu_task_clock_seconds_total", 1.5),
            ("profiler_cpu_page_faults_total", 10.0),
            ("profiler_cpu_cycles_total", 1e9),
            ("profiler_cpu_instructions_total", 2e9),
            ("profiler_cpu_branch_misses_total", 5.0),
            ("profiler_cpu_cache_references_total", 50.0),
            ("profiler_cpu_cache_misses_total", 5.0),
        ],
        gpu_memory: vec![(0, 1 << 30)],
        energy_j: Some(120.0),
        ..ProcTotals::default()
    };
    totals.sched.oncpu_ns = 2_000_000_000;
    totals.sched.offcpu_ns = 500_000_000;
    totals.sched.runq_ns = 3_000;
    totals.sched.runq_hist[10] = 2; // 1024..2048 ns
    totals.sched.voluntary_switches = 4;
    st.set_totals(10, totals.clone());
    st.set_totals(11, totals);
    let gauges = [
        "profiler_gpu_utilization_ratio",
        "profiler_gpu_sm_active_ratio",
        "profiler_gpu_sm_occupancy_ratio",
        "profiler_gpu_tensor_active_ratio",
        "profiler_gpu_dram_active_ratio",
        "profiler_gpu_memory_used_bytes",
        "profiler_gpu_memory_total_bytes",
        "profiler_gpu_power_watts",
        "profiler_gpu_temperature_celsius",
        "profiler_gpu_sm_clock_hertz",
    ];
    st.gpus = vec![GpuRow {
        index: 0,
        uuid: "GPU-1".into(),
        gauges: gauges.iter().map(|&g| (g, 0.5)).collect(),
        energy_j: Some(1000.0),
        throttle: vec![("sw-power-cap", true), ("hw-slowdown", false)],
    }];
    st.cpu_energy = vec![("package-0".into(), 50.0)];
    st.probes = vec![ProbeRow {
        probe: "sock".into(),
        events_lost: Some(3),
        run_ns: Some(2_000_000_000),
        runs: Some(9),
    }];
    st.agent_cpu_s = 0.25;
    st.agent_rss_bytes = 1 << 24;
    drop(st);
    e
}

fn scrape(e: &Exporter, accept: Option<&str>) -> String {
    exposition::render(&e.registry(), accept).1
}

/// The value of the one sample named `name` whose labels include every `(key, value)` of
/// `labels` (label order in the text does not matter).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let body = rest.strip_suffix('}')?;
            let has_all = labels.iter().all(|(k, v)| {
                body.split("\",")
                    .any(|kv| kv.strip_suffix('"').unwrap_or(kv) == format!("{k}=\"{v}"))
            });
            has_all.then(|| v.parse().ok()).flatten()
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?} in\n{text}");
    found[0]
}

#[test]
fn every_catalogue_metric_is_exported_when_filled() {
    let text = scrape(&filled(), Some(OPENMETRICS));
    for m in METRICS {
        for name in series_names(m) {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{name}{{"))
                        || l.starts_with(&format!("{name} "))),
                "{name} missing from\n{text}"
            );
        }
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn request_histograms_count_by_status_and_error() {
    let text = scrape(&filled(), None);
    let ok = |le| {
        value(
            &text,
            "http_server_request_duration_seconds_bucket",
            &[
                ("node", "node-a"),
                ("pid", "10"),
                ("comm", "server"),
                ("http_request_method", "GET"),
                ("http_response_status_code", "200"),
                ("error_type", ""),
                ("le", le),
            ],
        )
    };
    // 3, 30, 300 ms: one at or below 5 ms, two at or below 50 ms, all three below 0.5 s.
    assert_eq!(ok("0.005"), 1.0);
    assert_eq!(ok("0.05"), 2.0);
    assert_eq!(ok("0.5"), 3.0);
    assert!(text.contains("http_response_status_code=\"503\",error_type=\"503\""));
    assert!(text.contains("http_response_status_code=\"\",error_type=\"reset\""));
    // The process over the cap is counted under "other".
    assert!(text.contains("pid=\"other\",comm=\"other\""));
    let p10 = [("pid", "10")];
    let with_le = |le| [("pid", "10"), ("le", le)];
    // Streams: TTFT 40 ms, 20 ms per token after the first, 11 output tokens, 7 input.
    let ttft = "gen_ai_server_time_to_first_token_seconds_bucket";
    assert_eq!(value(&text, ttft, &with_le("0.025")), 0.0);
    assert_eq!(value(&text, ttft, &with_le("0.05")), 1.0);
    let tpot = "gen_ai_server_time_per_output_token_seconds_sum";
    assert!((value(&text, tpot, &p10) - 0.02).abs() < 1e-9);
    assert_eq!(
        value(&text, "gen_ai_server_output_tokens_total", &p10),
        11.0
    );
    assert_eq!(value(&text, "gen_ai_server_input_tokens_total", &p10), 7.0);
    // Energy per request: 120 J over 6 server requests.
    assert_eq!(
        value(&text, "profiler_energy_per_request_joules", &p10),
        20.0
    );
}

#[test]
fn cuda_series_cap_kernels_and_skip_failed_calls() {
    let text = scrape(&filled(), None);
    let k = |name| {
        value(
            &text,
            "profiler_cuda_kernel_launches_total",
            &[("pid", "10"), ("kernel", name)],
        )
    };
    assert_eq!(k("a"), 2.0);
    assert_eq!(k("b"), 1.0);
    assert_eq!(k("other"), 1.0);
    assert!(text.contains("# TYPE profiler_cuda_kernel_launches_total counter"));
    let p10 = [("pid", "10")];
    assert_eq!(value(&text, "profiler_cuda_api_errors_total", &p10), 1.0);
    // Only the successful sync is in the wait histogram.
    assert_eq!(
        value(&text, "profiler_cuda_sync_wait_seconds_count", &p10),
        1.0
    );
    assert_eq!(
        value(&text, "profiler_cuda_memcpy_bytes_total", &p10),
        4096.0
    );
}

#[test]
fn runqueue_histogram_uses_the_kernel_buckets() {
    let text = scrape(&filled(), None);
    let b = |le| {
        value(
            &text,
            "profiler_sched_runqueue_latency_seconds_bucket",
            &[("pid", "10"), ("le", le)],
        )
    };
    // Bucket 10 holds waits in [1024, 2048) ns.
    assert_eq!(b("0.000001024"), 0.0);
    assert_eq!(b("0.000002048"), 2.0);
    assert_eq!(b("+Inf"), 2.0);
}

#[test]
fn exited_processes_lose_their_series() {
    let e = filled();
    e.remove_process(10);
    let text = scrape(&e, None);
    assert!(!text.contains("pid=\"10\""));
    assert!(text.contains("profiler_watched_processes{node=\"node-a\"} 1"));
}
