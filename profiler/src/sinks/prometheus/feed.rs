//! Each interval, the session's cumulative figures into the exporter: scheduler and /proc
//! totals per process, perf counters, GPU readings, energy, and the profiler's own health.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::{
    bpf::probes::Probes,
    counters::{arith::CounterTotals, events::EventId},
    derive::hardware::HardwareCapture,
    gpu::{GpuSample, sample::REASONS},
    host::self_usage::AgentUsage,
    sched::tracker::Tracker,
    sinks::prometheus::{
        Exporter,
        state::{Caps, GpuRow, ProbeRow, ProcTotals},
    },
};

/// What the user asked of the exporter (`--listen`, the series caps).
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    pub listen: Option<std::net::SocketAddr>,
    pub caps: Caps,
}

/// What the session hands over each interval.
pub struct FeedInputs<'a> {
    pub tracker: &'a Tracker,
    pub hardware: &'a HardwareCapture,
    /// In-flight server requests per pid (absent without HTTP capture).
    pub active_requests: Option<&'a BTreeMap<u32, u64>>,
    pub probes: Vec<ProbeRow>,
}

/// perf events exported, with their catalogue names and the factor to the exported unit.
const COUNTER_METRICS: &[(EventId, &str, f64)] = &[
    (
        EventId::TaskClock,
        "profiler_cpu_task_clock_seconds_total",
        1e-9,
    ),
    (EventId::PageFaults, "profiler_cpu_page_faults_total", 1.0),
    (EventId::Cycles, "profiler_cpu_cycles_total", 1.0),
    (
        EventId::Instructions,
        "profiler_cpu_instructions_total",
        1.0,
    ),
    (
        EventId::BranchMisses,
        "profiler_cpu_branch_misses_total",
        1.0,
    ),
    (
        EventId::CacheReferences,
        "profiler_cpu_cache_references_total",
        1.0,
    ),
    (EventId::CacheMisses, "profiler_cpu_cache_misses_total", 1.0),
];

pub fn counter_values(t: &CounterTotals) -> Vec<(&'static str, f64)> {
    COUNTER_METRICS
        .iter()
        .filter_map(|&(id, name, factor)| Some((name, t.get(id)? as f64 * factor)))
        .collect()
}

/// GPU rows of the exporter from one NVML reading; `energy_j` gives each GPU's energy since
/// the profiler started.
pub fn gpu_rows(sample: &GpuSample, energy_j: impl Fn(u32) -> Option<f64>) -> Vec<GpuRow> {
    sample
        .gpus
        .iter()
        .map(|g| {
            let pct = |v: Option<f64>| v.map(|p| p / 100.0);
            let gpm = g.gpm.as_ref();
            let gauges = [
                (
                    "profiler_gpu_utilization_ratio",
                    pct(g.utilization_gpu_pct.map(f64::from)),
                ),
                (
                    "profiler_gpu_sm_active_ratio",
                    pct(gpm.and_then(|m| m.sm_activity_pct)),
                ),
                (
                    "profiler_gpu_sm_occupancy_ratio",
                    pct(gpm.and_then(|m| m.sm_occupancy_pct)),
                ),
                (
                    "profiler_gpu_tensor_active_ratio",
                    pct(gpm.and_then(|m| m.tensor_activity_pct)),
                ),
                (
                    "profiler_gpu_dram_active_ratio",
                    pct(gpm.and_then(|m| m.dram_bw_util_pct)),
                ),
                (
                    "profiler_gpu_memory_used_bytes",
                    g.memory_used_bytes.map(|b| b as f64),
                ),
                (
                    "profiler_gpu_memory_total_bytes",
                    g.memory_total_bytes.map(|b| b as f64),
                ),
                ("profiler_gpu_power_watts", g.power_w),
                (
                    "profiler_gpu_temperature_celsius",
                    g.temperature_c.map(f64::from),
                ),
                (
                    "profiler_gpu_sm_clock_hertz",
                    g.sm_clock_mhz.map(|m| f64::from(m) * 1e6),
                ),
            ]
            .into_iter()
            .filter_map(|(name, v)| Some((name, v?)))
            .collect();
            let throttle = g
                .clock_event_reasons
                .as_ref()
                .map(|active| {
                    REASONS
                        .iter()
                        .map(|&(_, name, _)| (name, active.contains(&name)))
                        .collect()
                })
                .unwrap_or_default();
            GpuRow {
                index: g.index,
                uuid: g.uuid.clone(),
                gauges,
                energy_j: energy_j(g.index),
                throttle,
            }
        })
        .collect()
}

/// GPU energy since start split between the watched processes NVML lists on each GPU, equally
/// (an estimate: NVML has no per-process energy), per pid.
pub fn gpu_energy_shares(
    sample: &GpuSample,
    energy_j: impl Fn(u32) -> Option<f64>,
) -> BTreeMap<u32, f64> {
    let mut shares = BTreeMap::new();
    for g in &sample.gpus {
        let Some(j) = energy_j(g.index) else { continue };
        if g.processes.is_empty() {
            continue;
        }
        let each = j / g.processes.len() as f64;
        for p in &g.processes {
            *shares.entry(p.pid).or_insert(0.0) += each;
        }
    }
    shares
}

/// Updates the exporter from the session's figures.
pub fn refresh(exporter: &Exporter, inputs: FeedInputs<'_>) {
    let hw = inputs.hardware;
    let energy = |i| hw.gpu_energy_since_start_j(i);
    let gpu_shares = hw
        .last_gpu()
        .map(|s| gpu_energy_shares(s, energy))
        .unwrap_or_default();
    let cpu = hw.cpu_energy();
    let agent = AgentUsage::now();
    let mut state = exporter.lock();
    for pid in state.pids() {
        let last = inputs
            .tracker
            .procs
            .get(&pid)
            .and_then(|p| p.history.as_ref())
            .map(|h| &h.last);
        let gpu_memory = hw
            .last_gpu()
            .iter()
            .flat_map(|s| &s.gpus)
            .flat_map(|g| {
                g.processes
                    .iter()
                    .filter(|p| p.pid == pid)
                    .filter_map(move |p| Some((g.index, p.memory_used_bytes?)))
            })
            .collect();
        let cpu_j = cpu.and_then(|c| c.process_joules(pid));
        let gpu_j = gpu_shares.get(&pid).copied();
        let totals = ProcTotals {
            sched: inputs.tracker.process_totals(pid),
            rss_bytes: last.map(|s| s.rss_bytes),
            threads: last.map(|s| s.threads),
            active_requests: inputs
                .active_requests
                .map(|m| m.get(&pid).copied().unwrap_or(0)),
            counters: hw
                .counter_totals(pid)
                .map(counter_values)
                .unwrap_or_default(),
            gpu_memory,
            energy_j: match (cpu_j, gpu_j) {
                (None, None) => None,
                (c, g) => Some(c.unwrap_or(0.0) + g.unwrap_or(0.0)),
            },
        };
        state.set_totals(pid, totals);
    }
    state.gpus = hw
        .last_gpu()
        .map(|s| gpu_rows(s, energy))
        .unwrap_or_default();
    state.cpu_energy = cpu.map(|c| c.domain_joules()).unwrap_or_default();
    state.probes = inputs.probes;
    state.agent_cpu_s = agent.cpu_s;
    state.agent_rss_bytes = crate::host::procfs::sample(std::process::id())
        .map_or(agent.max_rss_bytes, |s| s.rss_bytes);
}

/// Starts the `/metrics` endpoint when `--listen` asks for it.
pub fn start_exporter(config: &Config) -> Result<Option<Exporter>> {
    let Some(addr) = config.listen else {
        return Ok(None);
    };
    let node = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty());
    let (exporter, server) = Exporter::start(addr, config.caps, node)?;
    eprintln!(
        "profiler: serving Prometheus metrics on http://{}/metrics",
        server.addr
    );
    Ok(Some(exporter))
}

/// Self-observability rows: events lost per ring, run time per eBPF program.
pub fn probe_rows(probes: &Probes, http: bool) -> Vec<ProbeRow> {
    let mut rows = Vec::new();
    if http {
        rows.push(ProbeRow {
            probe: "sock".into(),
            events_lost: Some(crate::http::probes::sock_events_lost(probes)),
            ..ProbeRow::default()
        });
    }
    rows.push(ProbeRow {
        probe: "cuda".into(),
        events_lost: Some(crate::cuda::probes::cuda_events_lost(probes)),
        ..ProbeRow::default()
    });
    let stats_on = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .is_ok_and(|v| v.trim() == "1");
    if stats_on {
        for (name, run_ns, runs) in probes.program_stats() {
            rows.push(ProbeRow {
                probe: name,
                events_lost: None,
                run_ns: Some(run_ns),
                runs: Some(runs),
            });
        }
    }
    rows
}
