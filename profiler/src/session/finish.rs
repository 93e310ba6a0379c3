//! The end of a session: last drains, each capture's section, the derived figures, the report
//! written where it was asked for, and `run`'s command stopped if it still runs.

use std::{
    fs::File,
    io::Write,
    path::PathBuf,
    process::Child,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{
    bpf::Probes,
    derive::hardware::Workload,
    sched::tracker::Tracker,
    session::{start::Captures, watch::collect},
    sinks::{
        cuda_trace::CudaTraceHandle,
        report::{self, AgentUsage, EndReason, Format, Health, Report, ReportInputs},
    },
};

/// How the session ended.
pub(crate) struct Ending {
    pub started: Instant,
    /// The profiler's CPU time when the window opened (its setup cost).
    pub setup_cpu_s: f64,
    pub started_at_unix_s: f64,
    pub end_reason: EndReason,
    pub quiet: bool,
}

/// Finishes every capture (the timeline last: the others' last records reach it through their
/// observers) and builds the report.
pub(crate) fn report(
    probes: &mut Probes,
    tracker: &mut Tracker,
    captures: Captures,
    ending: Ending,
) -> Report {
    let Captures {
        mut http,
        mut cuda,
        cuda_trace,
        timeline,
        hardware,
    } = captures;
    collect(probes, tracker, ending.started);
    let duration_s = ending.started.elapsed().as_secs_f64();
    let exited = tracker.exited_pids();
    let http_section = http.as_mut().map(|h| h.finish(probes, duration_s, &exited));
    let comm_of = |_pid: u32, tid: u32| {
        tracker
            .threads
            .get(&tid)
            .map(|t| t.comm.clone())
            .filter(|c| !c.is_empty())
    };
    let cuda_section = cuda.as_mut().map(|c| {
        let mut section = c.finish(probes, duration_s, &comm_of);
        section.analysis.trace = cuda_trace.as_ref().map(CudaTraceHandle::finish);
        section
    });
    if let Some(t) = timeline {
        t.finish(probes, &comm_of, ending.quiet);
    }
    let server = http_section
        .as_ref()
        .and_then(|h| h.requests.server.as_ref());
    let hardware_report = hardware.finish(
        &probes.watched(),
        duration_s,
        Workload {
            // With HTTP analysis on, no server exchange means 0 requests, not "unknown".
            requests: http_section
                .as_ref()
                .map(|_| server.map_or(0, |s| s.requests)),
            output_tokens: server.and_then(|s| s.streaming.as_ref().map(|st| st.output_tokens)),
            cuda_busy_s: cuda_section.as_ref().and_then(|c| c.gpu_busy_estimate_s()),
        },
    );
    report::build(ReportInputs {
        tracker,
        started_at_unix_s: ending.started_at_unix_s,
        duration_s,
        end_reason: ending.end_reason,
        probes: probes.status.clone(),
        health: Health {
            threads_dropped: probes.thread_map_full(),
            processes_dropped: probes.watched_map_full(),
            agent: AgentUsage::since_window(ending.setup_cpu_s),
            missed_runs: probes.recursion_misses().into_iter().collect(),
            switch_ins_missed: probes.switch_ins_missed(),
        },
        http: http_section,
        cuda: cuda_section,
        hardware: Some(hardware_report),
    })
}

/// Writes the report to its file, or to stdout.
pub(crate) fn write(
    report: &Report,
    format: Format,
    output: Option<(File, PathBuf)>,
    quiet: bool,
) -> Result<()> {
    let rendered = report::render(report, format);
    match output {
        Some((mut file, path)) => {
            file.write_all(rendered.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            if !quiet {
                eprintln!("profiler: report written to {}", path.display());
            }
        }
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    Ok(())
}

/// After the report: a request log that lost lines (a file that cannot take writes, a full
/// disk) makes the run fail, loudly, naming the file.
pub(crate) fn event_log_complete(report: &Report, path: Option<&std::path::Path>) -> Result<()> {
    let unwritten = report
        .http
        .as_ref()
        .map_or(0, |h| h.analysis.event_log_errors);
    if unwritten > 0 {
        anyhow::bail!(
            "writing the --events log to {} failed {unwritten} time(s): it is incomplete",
            path.map_or_else(|| "?".into(), |p| p.display().to_string())
        );
    }
    Ok(())
}

/// Stops `run`'s command when the session ended first (duration, signal).
pub(crate) fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in 0..20 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
