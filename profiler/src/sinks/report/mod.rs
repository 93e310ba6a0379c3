//! The final report: a versioned, serializable structure (schema in docs/report-schema.md) and
//! its text rendering.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    probes::ProbeStatus,
    procstat::ProcSummary,
    requests::{HttpReport, render_text},
    sched::{LatencySummary, SchedTotals, bucket_high_ns, summarize_runq},
    sockets::{ConnectionsReport, EndpointRequests, SocketCounters},
    tracker::Tracker,
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
    pub cuda: Option<crate::cuda::report::CudaSection>,
    /// GPU telemetry (NVML), CPU energy (RAPL) and efficiency; each says why when unavailable.
    #[serde(flatten)]
    pub hardware: Option<crate::hardware::HardwareReport>,
    pub probes: Vec<ProbeStatus>,
    pub health: Health,
}

#[derive(Debug, Serialize)]
pub struct HttpSection {
    /// `server` (requests the targets answered) and `client` (their outbound calls).
    #[serde(flatten)]
    pub requests: HttpReport,
    /// How sockets are recognised: `socket-tracepoints` (inside each syscall) or `fd-table`
    /// (accept/connect and the fd table at attach, on kernels without sock_*_length).
    pub socket_classification: &'static str,
    pub capture_bytes: u32,
    /// Socket events the kernel could not queue (ring buffer full): requests may be missing.
    pub events_lost: u64,
    /// Syscalls whose entry state was evicted before their exit.
    pub calls_evicted: u64,
    pub analysis: SocketCounters,
    /// Requests per local address served and per peer called.
    pub endpoints: Vec<EndpointRequests>,
    /// Connection lifetimes (accept/connect → close) and keep-alive reuse.
    pub connections: ConnectionsReport,
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
    /// Switch-outs of a tracked thread whose switch-in was not seen: each lost the on-CPU
    /// interval before it (the perf-event `sched_switch` fallback skipping a switch, or a thread
    /// seeded as sleeping from /proc just before it ran). 0 with the raw tracepoint.
    pub switch_ins_missed: u64,
}

/// The profiler's own CPU time and peak memory (from getrusage).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct AgentUsage {
    pub cpu_s: f64,
    pub max_rss_bytes: u64,
}

impl AgentUsage {
    pub fn now() -> Self {
        // SAFETY: rusage is plain data that getrusage fills in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Self {
            cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
            max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        }
    }
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

#[derive(Debug, Serialize, PartialEq)]
pub struct SchedReport {
    pub oncpu_s: f64,
    pub offcpu_s: f64,
    pub runq_wait_s: f64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub migrations: u64,
    pub runq_latency: Option<LatencySummary>,
    /// Log2 histogram of run-queue waits: `le_us` is each bucket's upper bound.
    pub runq_histogram: Vec<Bucket>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Bucket {
    pub le_us: f64,
    pub count: u64,
}

impl From<&SchedTotals> for SchedReport {
    fn from(t: &SchedTotals) -> Self {
        Self {
            oncpu_s: t.oncpu_ns as f64 / 1e9,
            offcpu_s: t.offcpu_ns as f64 / 1e9,
            runq_wait_s: t.runq_ns as f64 / 1e9,
            voluntary_switches: t.voluntary_switches,
            involuntary_switches: t.involuntary_switches,
            migrations: t.migrations,
            runq_latency: summarize_runq(t),
            runq_histogram: t
                .runq_hist
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(i, &count)| Bucket {
                    le_us: bucket_high_ns(i) as f64 / 1e3,
                    count,
                })
                .collect(),
        }
    }
}

pub struct ReportInputs<'a> {
    pub tracker: &'a Tracker,
    pub started_at_unix_s: f64,
    pub duration_s: f64,
    pub end_reason: EndReason,
    pub probes: Vec<ProbeStatus>,
    pub health: Health,
    pub http: Option<HttpSection>,
    pub cuda: Option<crate::cuda::report::CudaSection>,
    pub hardware: Option<crate::hardware::HardwareReport>,
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

/// Human-readable durations: 1.23 s, 45.6 ms, 789 µs.
pub fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

pub fn fmt_us(us: f64) -> String {
    fmt_secs(us / 1e6)
}

pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn to_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "profiler report — {} process(es), {} attached, ended by {}",
        r.processes.len(),
        fmt_secs(r.duration_s),
        serde_json::to_value(r.end_reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    for p in &r.processes {
        let _ = writeln!(
            out,
            "\n{} {} ({}){}",
            p.role,
            p.pid,
            p.comm,
            if p.exited { ", exited" } else { "" }
        );
        if let Some(ps) = &p.process {
            let _ = writeln!(
                out,
                "  cpu {:.1}% avg, {:.1}% max   rss {} (peak {})   threads {} (max {})   \
                 page faults {} minor, {} major",
                ps.cpu_percent_avg,
                ps.cpu_percent_max,
                fmt_bytes(ps.rss_bytes),
                fmt_bytes(ps.peak_rss_bytes),
                ps.threads,
                ps.threads_max,
                ps.minor_faults,
                ps.major_faults
            );
        }
        write_sched_line(&mut out, "  ", &p.sched);
        if let Some(c) = &p.counters {
            crate::counters::render_text(c, &mut out);
        }
        let _ = writeln!(
            out,
            "  {:<8} {:<16} {:>10} {:>10} {:>10} {:>8} {:>8} {:>6} {:>10} {:>10}",
            "tid",
            "thread",
            "on-cpu",
            "off-cpu",
            "runq",
            "vol-csw",
            "inv-csw",
            "migr",
            "runq p50",
            "runq p99"
        );
        for th in &p.threads {
            let (p50, p99) = th
                .sched
                .runq_latency
                .as_ref()
                .map_or(("-".into(), "-".into()), |l| {
                    (fmt_us(l.p50_us), fmt_us(l.p99_us))
                });
            let _ = writeln!(
                out,
                "  {:<8} {:<16} {:>10} {:>10} {:>10} {:>8} {:>8} {:>6} {:>10} {:>10}{}",
                th.tid,
                th.comm,
                fmt_secs(th.sched.oncpu_s),
                fmt_secs(th.sched.offcpu_s),
                fmt_secs(th.sched.runq_wait_s),
                th.sched.voluntary_switches,
                th.sched.involuntary_switches,
                th.sched.migrations,
                p50,
                p99,
                if th.exited { "  (exited)" } else { "" }
            );
        }
    }
    if let Some(h) = &r.http {
        write_http(&mut out, h);
    }
    if let Some(c) = &r.cuda {
        crate::cuda::report::render_text(c, &mut out);
    }
    if let Some(h) = &r.hardware {
        crate::gpu::render_text(&h.gpu, &mut out);
        crate::energy::cpu::render_text(&h.cpu_energy, &mut out);
        crate::energy::efficiency::render_text(&h.efficiency, &mut out);
    }
    let degraded: Vec<&ProbeStatus> = r.probes.iter().filter(|p| !p.attached).collect();
    if !degraded.is_empty() {
        let _ = writeln!(out, "\nprobes not attached:");
        for p in degraded {
            let _ = writeln!(
                out,
                "  {}: {}",
                p.attach_point,
                p.error.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nprofiler itself: {:.3} s CPU, peak RSS {}",
        r.health.agent.cpu_s,
        fmt_bytes(r.health.agent.max_rss_bytes)
    );
    if !r.health.missed_runs.is_empty() {
        let runs: Vec<String> = r
            .health
            .missed_runs
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\nwarning: the kernel skipped probe runs while another BPF program ran on the same \
             CPU: {} (figures from these probes may read low)",
            runs.join(", ")
        );
    }
    if r.health.switch_ins_missed > 0 {
        let _ = writeln!(
            out,
            "\nwarning: {} context switches onto tracked threads were not seen (on-CPU time may \
             read low)",
            r.health.switch_ins_missed
        );
    }
    if r.health.threads_dropped + r.health.processes_dropped > 0 {
        let _ = writeln!(
            out,
            "\nwarning: {} thread(s) and {} process(es) not tracked (kernel maps full)",
            r.health.threads_dropped, r.health.processes_dropped
        );
    }
    out
}

fn write_http(out: &mut String, h: &HttpSection) {
    let requests = render_text(&h.requests);
    if requests.is_empty() {
        let _ = writeln!(
            out,
            "\nHTTP: no requests seen ({} socket events, {} connections, {} not HTTP/1.x)",
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
                    crate::http::Role::Server => "served on",
                    crate::http::Role::Client => "called",
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
    if h.analysis.not_http_connections > 0 {
        let _ = writeln!(
            out,
            "  {} connection(s) were not HTTP/1.x (TLS, HTTP/2 or another protocol): not analysed",
            h.analysis.not_http_connections
        );
    }
}

fn write_sched_line(out: &mut String, indent: &str, s: &SchedReport) {
    let _ = write!(
        out,
        "{indent}on-cpu {}   off-cpu (blocked) {}   run-queue wait {}   switches {} voluntary, \
         {} involuntary   migrations {}",
        fmt_secs(s.oncpu_s),
        fmt_secs(s.offcpu_s),
        fmt_secs(s.runq_wait_s),
        s.voluntary_switches,
        s.involuntary_switches,
        s.migrations
    );
    if let Some(l) = &s.runq_latency {
        let _ = write!(
            out,
            "\n{indent}run-queue latency ({} waits): mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  \
             max < {}",
            l.count,
            fmt_us(l.mean_us),
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us)
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::ProcSample;
    use profiler_common::ThreadStats;

    fn sample_report() -> Report {
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

    #[test]
    fn text_names_processes_and_threads() {
        let text = to_text(&sample_report());
        assert!(text.contains("target 42 (server)"));
        assert!(text.contains("worker"));
        assert!(text.contains("on-cpu 1.50 s"));
        assert!(text.contains("run-queue latency (10 waits)"));
    }

    #[test]
    fn units_format_readably() {
        assert_eq!(fmt_secs(2.5), "2.50 s");
        assert_eq!(fmt_secs(0.0123), "12.3 ms");
        assert_eq!(fmt_secs(0.000_045), "45 µs");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3 << 20), "3.0 MiB");
    }
}
