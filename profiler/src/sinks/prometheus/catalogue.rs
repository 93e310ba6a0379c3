//! Every metric the exporter can expose: name (as PromQL sees it), type, labels, buckets and help.
//! The registry is built from this table, `profiler metrics` prints it, and the deploy tests
//! check every name the shipped rules and dashboard query against it.

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Info,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Info => "info",
        }
    }
}

#[derive(Debug)]
pub struct MetricDef {
    /// The name PromQL uses: counters end in `_total`, histograms are queried through
    /// `_bucket`/`_sum`/`_count`, info metrics end in `_info`.
    pub name: &'static str,
    pub kind: Kind,
    /// Labels beyond the process labels (`PROC` marks the process label set).
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Stands for the process label set: `pid`, `comm`, `container_id`, `pod_uid`, `pod`,
/// `namespace` (the last four empty, i.e. absent, outside containers/Kubernetes).
pub const PROC: &str = "<process>";

/// Request duration buckets (s), from the design's catalogue.
pub const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
pub const TTFT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
pub const TPOT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Host time in a CUDA launch call: 1 µs … 10 ms.
pub const LAUNCH_BUCKETS: &[f64] = &[
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
];
/// Time blocked in a CUDA sync: 1 µs … 10 s.
pub const SYNC_BUCKETS: &[f64] = &[
    1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

use Kind::{Counter, Gauge, Histogram, Info};

macro_rules! m {
    ($name:literal, $kind:expr, [$($l:expr),*], $help:literal) => {
        MetricDef { name: $name, kind: $kind, labels: &[$($l),*], help: $help }
    };
}

pub const METRICS: &[MetricDef] = &[
    // HTTP (OpenTelemetry HTTP semantic conventions).
    m!(
        "http_server_request_duration_seconds",
        Histogram,
        [
            PROC,
            "http_request_method",
            "http_response_status_code",
            "error_type"
        ],
        "Server requests, first request byte read to last response byte written (seconds)"
    ),
    m!(
        "http_client_request_duration_seconds",
        Histogram,
        [
            PROC,
            "http_request_method",
            "http_response_status_code",
            "error_type"
        ],
        "Outgoing requests the process made, first request byte written to last response byte read (seconds)"
    ),
    m!(
        "http_server_active_requests",
        Gauge,
        [PROC],
        "Server requests whose first byte was read and whose response has not completed"
    ),
    // Streaming generation (OpenTelemetry GenAI semantic conventions).
    m!(
        "gen_ai_server_time_to_first_token_seconds",
        Histogram,
        [PROC],
        "Streaming responses: request fully read to the first token-carrying event written (seconds; role-only, empty and usage-only events do not count)"
    ),
    m!(
        "gen_ai_server_time_per_output_token_seconds",
        Histogram,
        [PROC],
        "Streaming responses: (last - first token-carrying event) / (output tokens - 1), per request (seconds)"
    ),
    m!(
        "gen_ai_server_request_duration_seconds",
        Histogram,
        [PROC],
        "Streaming responses: first request byte read to last response byte written (seconds)"
    ),
    m!(
        "gen_ai_server_output_tokens_total",
        Counter,
        [PROC],
        "Output tokens: the response's usage (completion_tokens, output_tokens, eval_count, ...) when it carries one, else its token-carrying stream events (an estimate)"
    ),
    m!(
        "gen_ai_server_input_tokens_total",
        Counter,
        [PROC],
        "Input tokens from usage.prompt_tokens, where responses carry it"
    ),
    // Scheduler.
    m!(
        "profiler_sched_oncpu_seconds_total",
        Counter,
        [PROC],
        "Time the process's threads ran on a CPU (seconds)"
    ),
    m!(
        "profiler_sched_offcpu_seconds_total",
        Counter,
        [PROC],
        "Time the process's threads were blocked (sleeping or waiting on I/O), not runnable (seconds)"
    ),
    m!(
        "profiler_sched_runqueue_latency_seconds",
        Histogram,
        [PROC],
        "Wakeup to on-CPU delay; power-of-two buckets from the kernel-side histogram (seconds)"
    ),
    m!(
        "profiler_sched_context_switches_total",
        Counter,
        [PROC, "kind"],
        "Context switches of the process's threads, kind voluntary or involuntary"
    ),
    m!(
        "profiler_process_resident_memory_bytes",
        Gauge,
        [PROC],
        "Resident set size of the process (bytes)"
    ),
    m!(
        "profiler_process_threads",
        Gauge,
        [PROC],
        "Threads of the process"
    ),
    // CUDA.
    m!(
        "profiler_cuda_kernel_launches_total",
        Counter,
        [PROC, "kernel"],
        "Kernel launches by kernel name (top names per process, the rest as kernel=\"other\")"
    ),
    m!(
        "profiler_cuda_graph_launches_total",
        Counter,
        [PROC],
        "CUDA graph launches"
    ),
    m!(
        "profiler_cuda_api_calls_total",
        Counter,
        [PROC, "api"],
        "CUDA driver API calls by API"
    ),
    m!(
        "profiler_cuda_api_errors_total",
        Counter,
        [PROC, "api"],
        "Timed CUDA driver API calls that returned an error"
    ),
    m!(
        "profiler_cuda_launch_latency_seconds",
        Histogram,
        [PROC, "api"],
        "Host time inside a launch call (only with --cuda-launch-latency) (seconds)"
    ),
    m!(
        "profiler_cuda_sync_wait_seconds",
        Histogram,
        [PROC, "api"],
        "Time a thread blocked in a stream, context or event synchronize (seconds)"
    ),
    m!(
        "profiler_cuda_memcpy_bytes_total",
        Counter,
        [PROC, "direction"],
        "Bytes copied by cuMemcpy* calls, by direction (htod, dtoh, dtod, peer, unknown)"
    ),
    // CPU performance counters (perf_event, per process).
    m!(
        "profiler_cpu_task_clock_seconds_total",
        Counter,
        [PROC],
        "perf task-clock (seconds)"
    ),
    m!(
        "profiler_cpu_page_faults_total",
        Counter,
        [PROC],
        "Page faults (perf software event)"
    ),
    m!(
        "profiler_cpu_cycles_total",
        Counter,
        [PROC],
        "CPU cycles (absent without a hardware PMU)"
    ),
    m!(
        "profiler_cpu_instructions_total",
        Counter,
        [PROC],
        "Instructions retired (absent without a hardware PMU)"
    ),
    m!(
        "profiler_cpu_branch_misses_total",
        Counter,
        [PROC],
        "Branch mispredictions (absent without a hardware PMU)"
    ),
    m!(
        "profiler_cpu_cache_references_total",
        Counter,
        [PROC],
        "Cache references (absent without a hardware PMU)"
    ),
    m!(
        "profiler_cpu_cache_misses_total",
        Counter,
        [PROC],
        "Cache misses (absent without a hardware PMU)"
    ),
    // GPU (NVML, GPM).
    m!(
        "profiler_gpu_utilization_ratio",
        Gauge,
        ["gpu", "uuid"],
        "Fraction of the last sample period a kernel ran (NVML utilization.gpu)"
    ),
    m!(
        "profiler_gpu_sm_active_ratio",
        Gauge,
        ["gpu", "uuid"],
        "GPM SM activity (0-1)"
    ),
    m!(
        "profiler_gpu_sm_occupancy_ratio",
        Gauge,
        ["gpu", "uuid"],
        "GPM SM occupancy (0-1)"
    ),
    m!(
        "profiler_gpu_tensor_active_ratio",
        Gauge,
        ["gpu", "uuid"],
        "GPM tensor pipe activity (0-1)"
    ),
    m!(
        "profiler_gpu_dram_active_ratio",
        Gauge,
        ["gpu", "uuid"],
        "GPM DRAM bandwidth utilisation (0-1)"
    ),
    m!(
        "profiler_gpu_memory_used_bytes",
        Gauge,
        ["gpu", "uuid"],
        "Device memory in use (bytes)"
    ),
    m!(
        "profiler_gpu_memory_total_bytes",
        Gauge,
        ["gpu", "uuid"],
        "Device memory (bytes)"
    ),
    m!(
        "profiler_gpu_power_watts",
        Gauge,
        ["gpu", "uuid"],
        "Board power draw (watts)"
    ),
    m!(
        "profiler_gpu_energy_joules_total",
        Counter,
        ["gpu", "uuid"],
        "Energy since the profiler started, from the NVML energy counter (joules)"
    ),
    m!(
        "profiler_gpu_temperature_celsius",
        Gauge,
        ["gpu", "uuid"],
        "GPU temperature"
    ),
    m!(
        "profiler_gpu_sm_clock_hertz",
        Gauge,
        ["gpu", "uuid"],
        "SM clock (hertz)"
    ),
    m!(
        "profiler_gpu_throttle_reasons",
        Gauge,
        ["gpu", "uuid", "reason"],
        "1 while NVML reports this clock-event (throttle) reason, else 0"
    ),
    m!(
        "profiler_gpu_process_memory_bytes",
        Gauge,
        [PROC, "gpu"],
        "Device memory used by a watched process (bytes)"
    ),
    // Energy.
    m!(
        "profiler_cpu_energy_joules_total",
        Counter,
        ["domain"],
        "CPU energy since the profiler started, by RAPL domain (joules)"
    ),
    m!(
        "profiler_energy_per_request_joules",
        Gauge,
        [PROC],
        "GPU + attributed CPU energy divided by server requests, since the profiler started (joules)"
    ),
    m!(
        "profiler_energy_per_token_joules",
        Gauge,
        [PROC],
        "GPU + attributed CPU energy divided by output tokens, since the profiler started (joules)"
    ),
    // The profiler itself.
    m!(
        "profiler_events_lost_total",
        Counter,
        ["probe"],
        "Events the kernel side could not hand over (ring buffer full), by probe family"
    ),
    m!(
        "profiler_probe_run_seconds_total",
        Counter,
        ["probe"],
        "Time spent in the eBPF programs (needs kernel.bpf_stats_enabled=1) (seconds)"
    ),
    m!(
        "profiler_probe_runs_total",
        Counter,
        ["probe"],
        "eBPF program runs (needs kernel.bpf_stats_enabled=1)"
    ),
    m!(
        "profiler_agent_cpu_seconds_total",
        Counter,
        [],
        "CPU time used by the profiler (seconds)"
    ),
    m!(
        "profiler_agent_resident_memory_bytes",
        Gauge,
        [],
        "Resident set size of the profiler (bytes)"
    ),
    m!(
        "profiler_watched_processes",
        Gauge,
        [],
        "Processes being profiled"
    ),
    m!("profiler_build_info", Info, ["version"], "Profiler version"),
];

/// Every series name a scrape can carry for this metric (histograms: `_bucket`, `_sum`,
/// `_count`).
pub fn series_names(m: &MetricDef) -> Vec<String> {
    match m.kind {
        Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{}{s}", m.name))
            .collect(),
        Counter | Gauge | Info => vec![m.name.to_string()],
    }
}

/// `profiler metrics`: a table of every metric, or (`names_only`) every series name.
pub fn listing(names_only: bool) -> String {
    let mut out = String::new();
    if names_only {
        for m in METRICS {
            for n in series_names(m) {
                out.push_str(&n);
                out.push('\n');
            }
        }
        return out;
    }
    out.push_str(
        "Every series also carries `node` when NODE_NAME is set. <process> = pid, comm, \
         container_id, pod_uid, pod, namespace.\n\n",
    );
    for m in METRICS {
        let labels: Vec<&str> = m.labels.to_vec();
        out.push_str(&format!(
            "{} ({}) {{{}}}\n    {}\n",
            m.name,
            m.kind.as_str(),
            labels.join(", "),
            m.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                Kind::Info => assert!(m.name.ends_with("_info"), "{}", m.name),
                Kind::Gauge | Kind::Histogram => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
        }
    }

    #[test]
    fn listing_names_histogram_series() {
        let names = listing(true);
        assert!(
            names
                .lines()
                .any(|l| l == "http_server_request_duration_seconds_bucket")
        );
        assert!(
            names
                .lines()
                .any(|l| l == "profiler_cuda_kernel_launches_total")
        );
        assert!(listing(false).contains("<process>"));
    }
}
