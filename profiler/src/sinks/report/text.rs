//! The final report as text for people: one block per process (with its threads), then each
//! capability's section, probes not attached, the agent's own cost and warnings. Pure.

use std::fmt::Write as _;

use crate::{
    bpf::ProbeStatus,
    http::section::write_http,
    sched::section::write_sched_line,
    sinks::report::model::{ProcessReport, Report},
    util::fmt::{fmt_bytes, fmt_secs, fmt_us},
};

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
        write_process(&mut out, p);
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
        crate::derive::efficiency::render_text(&h.efficiency, &mut out);
    }
    write_health(&mut out, r);
    out
}

/// One process: /proc figures, scheduler line, counters, and its threads as a table.
fn write_process(out: &mut String, p: &ProcessReport) {
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
    write_sched_line(out, "  ", &p.sched);
    if let Some(c) = &p.counters {
        crate::counters::render_text(c, out);
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

/// Probes not attached, the agent's own cost, and what may read low.
fn write_health(out: &mut String, r: &Report) {
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
        "\nprofiler itself: {:.3} s CPU over the session (+{:.3} s to load and attach), peak \
         RSS {}",
        r.health.agent.cpu_s,
        r.health.agent.setup_cpu_s,
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
    // With the raw `sched_switch` the kernel's runtime covers an interval whose switch-in was
    // not seen: only the perf-event fallback loses time to them.
    let raw_switch = r
        .probes
        .iter()
        .any(|p| p.program == crate::sched::probes::SCHED_SWITCH_RAW && p.attached);
    if r.health.switch_ins_missed > 0 && !raw_switch {
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
}

#[cfg(test)]
mod tests {
    use super::to_text;
    use crate::sinks::report::model::tests::sample_report;

    #[test]
    fn text_names_processes_and_threads() {
        let text = to_text(&sample_report());
        assert!(text.contains("target 42 (server)"));
        assert!(text.contains("worker"));
        assert!(text.contains("on-cpu 1.50 s"));
        assert!(text.contains("run-queue latency (10 waits)"));
    }
}
