//! The final report: a versioned, serializable structure (schema in docs/report-schema.md)
//! assembled from every capability's section, and its JSON. Pure.

use serde::Serialize;

pub use crate::host::self_usage::AgentUsage;
use crate::{
    bpf::ProbeStatus,
    cuda::report::CudaSection,
    derive::hardware::HardwareReport,
    host::procfs::ProcSummary,
    http::section::HttpSection,
    sched::{section::SchedReport, tracker::Tracker},
};

pub const SCHEMA: &str = "profiler.report/v1";

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    Duration,
    Interrupted,
    Terminated,
    TargetExited,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub profiler_version: &'static str,
    /// Unix time (seconds) when the probes were attached.
    pub started_at_unix_s: f64,
    pub duration_s: f64,
    pub end_reason: EndReason,
    pub processes: Vec<ProcessReport>,
    /// Requests inferred from socket syscalls; absent with `--no-http`.
    pub http: Option<HttpSection>,
    /// CUDA calls from uprobes on libcuda/libcudart; absent with `--no-cuda`.
    pub cuda: Option<CudaSection>,
    /// GPU telemetry (NVML), CPU energy (RAPL) and efficiency; each says why when unavailable.
    #[serde(flatten)]
    pub hardware: Option<HardwareReport>,
    pub probes: Vec<ProbeStatus>,
    pub health: Health,
}

#[derive(Debug, Serialize)]
pub struct Health {
    /// New threads not tracked because the kernel thread map was full.
    pub threads_dropped: u64,
    /// Child processes not followed because the kernel watch map was full.
    pub processes_dropped: u64,
    /// The profiler's own cost while attached.
    pub agent: AgentUsage,
    /// Program runs the kernel skipped because another BPF program was running on the same
    /// CPU (`recursion_misses`), by program; empty when none. A skipped `sched_switch` loses an
    /// on-CPU interval (on-CPU time reads low), a skipped `sock_exit` a socket event.
    pub missed_runs: std::collections::BTreeMap<String, u64>,
    /// Switch-outs of a tracked thread whose switch-in was not seen (the kernel emits none for
    /// some switches; the perf-event fallback can skip them). Under the fallback each lost the
    /// on-CPU interval before it (the text report warns); with the raw `sched_switch` the
    /// kernel's runtime still counts it, so nothing is lost.
    pub switch_ins_missed: u64,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Named by the user, or a child found after attach.
    pub role: &'static str,
    pub exited: bool,
    pub sched: SchedReport,
    /// Absent when the process was never readable in /proc.
    pub process: Option<ProcSummary>,
    /// perf counters (software always; hardware where the PMU exists); absent with
    /// `--no-counters`.
    pub counters: Option<crate::counters::CountersSection>,
    pub threads: Vec<ThreadReport>,
}

#[derive(Debug, Serialize)]
pub struct ThreadReport {
    pub tid: u32,
    pub comm: String,
    pub exited: bool,
    pub sched: SchedReport,
}

pub struct ReportInputs<'a> {
    pub tracker: &'a Tracker,
    pub started_at_unix_s: f64,
    pub duration_s: f64,
    pub end_reason: EndReason,
    pub probes: Vec<ProbeStatus>,
    pub health: Health,
    pub http: Option<HttpSection>,
    pub cuda: Option<CudaSection>,
    pub hardware: Option<HardwareReport>,
}

pub fn build(inputs: ReportInputs<'_>) -> Report {
    let t = inputs.tracker;
    let processes = t
        .procs
        .values()
        .map(|p| ProcessReport {
            pid: p.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            role: if p.root { "target" } else { "child" },
            exited: p.exited,
            sched: SchedReport::from(&t.process_totals(p.pid)),
            process: p.history.as_ref().map(|h| h.summary()),
            counters: inputs
                .hardware
                .as_ref()
                .and_then(|h| h.counters.get(&p.pid).cloned()),
            threads: t
                .threads_of(p.pid)
                .map(|th| ThreadReport {
                    tid: th.tid,
                    comm: th.comm.clone(),
                    exited: th.exited,
                    sched: SchedReport::from(&th.totals),
                })
                .collect(),
        })
        .collect();
    Report {
        schema: SCHEMA,
        profiler_version: env!("CARGO_PKG_VERSION"),
        started_at_unix_s: inputs.started_at_unix_s,
        duration_s: inputs.duration_s,
        end_reason: inputs.end_reason,
        processes,
        http: inputs.http,
        cuda: inputs.cuda,
        hardware: inputs.hardware,
        probes: inputs.probes,
        health: inputs.health,
    }
}

pub fn to_json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("report serializes");
    s.push('\n');
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::procfs::ProcSample;
    use profiler_common::ThreadStats;

    pub(crate) fn sample_report() -> Report {
        let mut tracker = Tracker::default();
        tracker.add_process(
            42,
            true,
            Some(ProcSample {
                pid: 42,
                ppid: 1,
                comm: "server".into(),
                state: 'S',
                starttime: 1,
                cpu_s: 1.0,
                rss_bytes: 10 << 20,
                peak_rss_bytes: 12 << 20,
                threads: 2,
                minor_faults: 0,
                major_faults: 0,
            }),
            0.0,
        );
        let mut s = ThreadStats::new(42);
        s.oncpu_ns = 1_500_000_000;
        s.runq_ns = 30_000;
        s.runq_hist[12] = 10;
        s.comm[..6].copy_from_slice(b"worker");
        tracker.apply_threads(&[(43, s)], 0);
        build(ReportInputs {
            tracker: &tracker,
            started_at_unix_s: 1.0,
            duration_s: 2.0,
            end_reason: EndReason::TargetExited,
            probes: vec![],
            health: Health {
                threads_dropped: 0,
                processes_dropped: 0,
                agent: AgentUsage::default(),
                missed_runs: Default::default(),
                switch_ins_missed: 0,
            },
            http: None,
            cuda: None,
            hardware: None,
        })
    }

    #[test]
    fn json_carries_schema_and_per_thread_numbers() {
        let v: serde_json::Value = serde_json::from_str(&to_json(&sample_report())).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["end_reason"], "target-exited");
        let p = &v["processes"][0];
        assert_eq!(p["pid"], 42);
        assert_eq!(p["role"], "target");
        assert_eq!(p["sched"]["oncpu_s"], 1.5);
        assert_eq!(p["threads"][0]["tid"], 43);
        assert_eq!(p["threads"][0]["comm"], "worker");
        assert_eq!(p["sched"]["runq_latency"]["count"], 10);
        assert_eq!(p["sched"]["runq_histogram"][0]["le_us"], 8.192);
    }
}
