//! One profiling session: validate, load, seed, attach, sample each interval, stop on a signal,
//! the duration or the target's exit, report, detach.

use std::{
    fs::File,
    io::Write as _,
    path::Path,
    process::Child,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::{Format, OutputArgs},
    live::LiveView,
    preflight,
    probes::{Probes, SCHED_PROBES},
    procstat,
    report::{self, AgentUsage, EndReason, Health, ReportInputs},
    sched::{initial_stats, monotonic_ns},
    targets, tracefs,
    tracker::Tracker,
    usage,
};

pub enum Target {
    Pids(Vec<i32>),
    Command(Vec<String>),
}

/// How often target exit is checked, independently of the live-view interval.
const EXIT_POLL: Duration = Duration::from_millis(100);

pub fn run(target: Target, opts: OutputArgs) -> Result<()> {
    opts.validate().map_err(|m| usage!("{m}"))?;
    preflight::require_tracing_host()?;
    let output = open_output(opts.output.as_deref())?;

    let (roots, gated) = match &target {
        Target::Pids(pids) => {
            let mut roots = Vec::new();
            for &pid in pids {
                let pid = targets::validate_pid(pid)?;
                if !roots.contains(&pid) {
                    roots.push(pid);
                }
            }
            (roots, None)
        }
        Target::Command(cmd) => {
            let gated = targets::spawn_gated(cmd)?;
            (vec![gated.pid], Some(gated))
        }
    };

    let offsets = tracefs::tracepoint_offsets(&tracefs::tracefs_dir())?;
    let mut probes = Probes::load(&offsets)?;
    let mut tracker = Tracker::default();
    for &pid in &roots {
        probes.watch(pid)?;
        let now = monotonic_ns();
        for (tid, state) in procstat::threads(pid) {
            probes.seed_thread(tid, &initial_stats(pid, state, now))?;
        }
        tracker.add_process(pid, true, procstat::sample(pid), 0.0);
    }
    probes.attach(SCHED_PROBES)?;
    let started = Instant::now();
    let started_at_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());

    let mut child = match (gated, &target) {
        (Some(gated), Target::Command(cmd)) => Some(gated.release(&cmd[0])?),
        _ => None,
    };
    if !opts.quiet {
        announce(&tracker, &probes);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut live = LiveView::new(!opts.quiet);
    let end_reason = runtime.block_on(sample_until_end(
        &mut probes,
        &mut tracker,
        &mut child,
        &mut live,
        &opts,
        started,
    ))?;
    collect(&mut probes, &mut tracker, started);
    let report = report::build(ReportInputs {
        tracker: &tracker,
        started_at_unix_s,
        duration_s: started.elapsed().as_secs_f64(),
        end_reason,
        probes: probes.status.clone(),
        health: Health {
            threads_dropped: probes.thread_map_full(),
            processes_dropped: probes.watched_map_full(),
            agent: AgentUsage::now(),
        },
    });
    // Detach before anything slow (writing, stopping the command).
    drop(probes);

    let rendered = match opts.format {
        Format::Text => report::to_text(&report),
        Format::Json => report::to_json(&report),
    };
    match output {
        Some((mut file, path)) => {
            file.write_all(rendered.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            if !opts.quiet {
                eprintln!("profiler: report written to {}", path.display());
            }
        }
        None => std::io::stdout().write_all(rendered.as_bytes())?,
    }
    if let Some(child) = child.as_mut() {
        stop_child(child);
    }
    Ok(())
}

fn open_output(path: Option<&Path>) -> Result<Option<(File, std::path::PathBuf)>> {
    path.map(|p| {
        File::create(p)
            .map(|f| (f, p.to_path_buf()))
            .map_err(|e| usage!("cannot write report to {}: {e}", p.display()))
    })
    .transpose()
}

fn announce(tracker: &Tracker, probes: &Probes) {
    let names: Vec<String> = tracker
        .procs
        .values()
        .map(|p| format!("{} ({})", p.pid, p.comm))
        .collect();
    let attached = probes.status.iter().filter(|s| s.attached).count();
    eprintln!(
        "profiler: attached to pid {} with {attached}/{} probes; stop with Ctrl-C",
        names.join(", "),
        probes.status.len()
    );
    for s in probes.status.iter().filter(|s| !s.attached) {
        eprintln!(
            "profiler: warning: {} not attached: {}",
            s.attach_point,
            s.error.as_deref().unwrap_or("")
        );
    }
}

async fn sample_until_end(
    probes: &mut Probes,
    tracker: &mut Tracker,
    child: &mut Option<Child>,
    live: &mut LiveView,
    opts: &OutputArgs,
    started: Instant,
) -> Result<EndReason> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start + opts.interval, opts.interval);
    let mut exit_poll = tokio::time::interval(EXIT_POLL);
    let deadline = async {
        match opts.duration {
            Some(d) => tokio::time::sleep_until(start + d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = sigint.recv() => return Ok(EndReason::Interrupted),
            _ = sigterm.recv() => return Ok(EndReason::Terminated),
            () = &mut deadline => return Ok(EndReason::Duration),
            _ = tick.tick() => {
                collect(probes, tracker, started);
                live.show(tracker, started.elapsed().as_secs_f64());
            }
            _ = exit_poll.tick() => {
                if targets_exited(tracker, child) {
                    return Ok(EndReason::TargetExited);
                }
            }
        }
    }
}

/// Whether every process the user named is gone. `run`'s command is our child: reap it.
fn targets_exited(tracker: &Tracker, child: &mut Option<Child>) -> bool {
    if let Some(c) = child {
        return matches!(c.try_wait(), Ok(Some(_)));
    }
    tracker
        .procs
        .values()
        .filter(|p| p.root)
        .all(|p| !procstat::sample(p.pid).is_some_and(|s| p.is_live_as(&s)))
}

/// Reads the kernel maps and /proc into the tracker.
fn collect(probes: &mut Probes, tracker: &mut Tracker, started: Instant) {
    let at_s = started.elapsed().as_secs_f64();
    let entries = probes.threads();
    for tid in tracker.apply_threads(&entries, monotonic_ns()) {
        probes.forget_thread(tid);
    }
    for th in tracker.threads.values_mut().filter(|t| t.comm.is_empty()) {
        if let Some(comm) = procstat::thread_comm(th.tgid, th.tid) {
            th.comm = comm;
        }
    }
    for tgid in probes.watched() {
        if !tracker.procs.contains_key(&tgid) {
            tracker.add_process(tgid, false, procstat::sample(tgid), at_s);
        }
    }
    let live: Vec<u32> = tracker
        .procs
        .values()
        .filter(|p| !p.exited)
        .map(|p| p.pid)
        .collect();
    for pid in live {
        if !tracker.update_process(pid, procstat::sample(pid), at_s) {
            probes.unwatch(pid);
        }
    }
}

/// Stops `run`'s command when the session ended first (duration, signal).
fn stop_child(child: &mut Child) {
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
