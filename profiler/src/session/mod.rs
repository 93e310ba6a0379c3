//! One profiling session: validate, load, seed, attach, sample each interval, stop on a signal,
//! the duration or the target's exit, report, detach.

use std::{
    collections::HashSet,
    fs::File,
    io::Write,
    path::Path,
    process::Child,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::{Format, HttpArgs, OutputArgs},
    cuda::capture::{CudaCapture, announce_library},
    daemon,
    discovery::Discovery,
    hardware::{HardwareCapture, Workload},
    http_capture::HttpCapture,
    live::LiveView,
    metrics::{
        Exporter,
        feed::{self, FeedInputs},
    },
    preflight,
    probes::{Probes, SCHED_PROBES},
    procstat,
    report::{self, AgentUsage, EndReason, Health, ReportInputs},
    sched::{initial_stats, monotonic_ns},
    targets,
    timeline::Timeline,
    tracefs,
    tracker::Tracker,
    usage,
};

pub enum Target {
    Pids(Vec<i32>),
    Command(Vec<String>),
    /// `profiler daemon`: every process discovery finds, now and later, until a signal.
    Discover(Discovery),
}

/// How often target exit is checked, independently of the live-view interval.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// How often socket and CUDA events are drained from the ring buffers (the kernel side does not
/// wake us).
const SOCK_DRAIN: Duration = Duration::from_millis(10);

/// How often the watched processes' maps are scanned for CUDA libraries loaded since: calls a
/// process makes between mapping a CUDA library and the next scan are not seen.
const CUDA_SCAN: Duration = Duration::from_millis(250);

pub fn run(target: Target, opts: OutputArgs) -> Result<()> {
    opts.validate().map_err(|m| usage!("{m}"))?;
    preflight::require_tracing_host()?;
    preflight::raise_fd_limit();
    let output = open_output(opts.output.as_deref())?;
    let event_log = open_event_log(&opts.http)?;
    // Bound before anything is attached, so a taken port fails fast.
    let exporter = feed::start_exporter(&opts.metrics)?;

    let mut target = target;
    let (roots, gated) = match &mut target {
        Target::Pids(pids) => {
            let mut roots = Vec::new();
            for &mut pid in pids {
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
        Target::Discover(discovery) => (discovery.scan(&HashSet::new()), None),
    };
    let program = match &target {
        Target::Command(cmd) => cmd[0].clone(),
        _ => String::new(),
    };
    let mut discovery = match target {
        Target::Discover(d) => Some(d),
        _ => None,
    };

    let tracefs_dir = tracefs::tracefs_dir();
    let offsets = tracefs::tracepoint_offsets(&tracefs_dir)?;
    let net = tracefs::net_config(&tracefs_dir, opts.http.capture_bytes);
    let mut probes = Probes::load(&offsets, &net)?;
    let mut tracker = Tracker::default();
    // Children that already exist (pre-forked workers) are profiled with their parent.
    let children: Vec<u32> = roots
        .iter()
        .flat_map(|&r| procstat::descendants(r))
        .filter(|c| !roots.contains(c))
        .collect();
    for (&pid, root) in roots
        .iter()
        .map(|p| (p, true))
        .chain(children.iter().map(|p| (p, false)))
    {
        watch_process(&mut probes, &mut tracker, pid, root, 0.0)?;
    }
    probes.attach(SCHED_PROBES)?;
    let mono_to_unix_ns = unix_now_ns() - i128::from(monotonic_ns());
    let mut http = if opts.http.no_http {
        None
    } else {
        Some(HttpCapture::start(
            &mut probes,
            &tracker,
            &net,
            &opts.http,
            event_log,
            mono_to_unix_ns,
        )?)
    };
    let mut cuda = if opts.cuda.no_cuda {
        None
    } else {
        let pids: Vec<u32> = tracker.procs.keys().copied().collect();
        Some(CudaCapture::start(
            &mut probes,
            pids,
            &opts.cuda,
            mono_to_unix_ns,
        )?)
    };
    if let Some(m) = &exporter {
        m.sync_processes(&tracker);
        if let Some(h) = http.as_mut() {
            h.analyzer.observe(m.request_observer());
        }
        if let Some(c) = cuda.as_mut() {
            c.observe(m.cuda_observer());
        }
    }
    let mut timeline = Timeline::start(
        &mut probes,
        &opts.timeline,
        http.as_mut().map(|h| &mut h.analyzer),
        cuda.as_mut(),
        mono_to_unix_ns,
    )?;
    let hardware_pids: Vec<u32> = tracker.procs.keys().copied().collect();
    let mut hardware = HardwareCapture::start(&hardware_pids, &opts.hardware);
    let started = Instant::now();
    let started_at_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());

    let mut child = match gated {
        Some(gated) => Some(gated.release(&program)?),
        None => None,
    };
    // Always: scripts and tests wait for this line to know every probe is in place.
    match &discovery {
        Some(d) => eprintln!(
            "profiler: attached as a daemon with {}/{} probes, watching {} processes; profiling {}",
            probes.status.iter().filter(|s| s.attached).count(),
            probes.status.len(),
            tracker.procs.len(),
            d.describe()
        ),
        None => announce(&tracker, &probes, http.as_ref(), cuda.as_ref()),
    }
    for note in hardware.notes() {
        eprintln!("profiler: note: {note}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut live = LiveView::new(!opts.quiet);
    let end_reason = runtime.block_on(sample_until_end(
        &mut probes,
        &mut tracker,
        &mut Captures {
            http: &mut http,
            cuda: &mut cuda,
            hardware: &mut hardware,
            timeline: &mut timeline,
            metrics: exporter.as_ref(),
            discovery: &mut discovery,
        },
        &mut child,
        &mut live,
        &opts,
        started,
    ))?;
    if discovery.is_some() {
        // The daemon's output is its /metrics; it leaves without a report.
        drop(probes);
        eprintln!("profiler: daemon stopped ({end_reason:?})");
        return Ok(());
    }
    collect(&mut probes, &mut tracker, started);
    let duration_s = started.elapsed().as_secs_f64();
    let http_section = http.as_mut().map(|h| h.finish(&mut probes, duration_s));
    let comm_of = |_pid: u32, tid: u32| {
        tracker
            .threads
            .get(&tid)
            .map(|t| t.comm.clone())
            .filter(|c| !c.is_empty())
    };
    let cuda_section = cuda
        .as_mut()
        .map(|c| c.finish(&mut probes, duration_s, &comm_of));
    if let Some(t) = timeline {
        t.finish(&mut probes, &comm_of, opts.quiet);
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
            cuda_busy_s: cuda_section.as_ref().and_then(|c| {
                let ms: Vec<f64> = c
                    .analysis
                    .streams
                    .iter()
                    .filter_map(|s| s.gpu_busy_estimate_ms)
                    .collect();
                (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / 1e3)
            }),
        },
    );
    let report = report::build(ReportInputs {
        tracker: &tracker,
        started_at_unix_s,
        duration_s,
        end_reason,
        probes: probes.status.clone(),
        health: Health {
            threads_dropped: probes.thread_map_full(),
            processes_dropped: probes.watched_map_full(),
            agent: AgentUsage::now(),
            missed_runs: probes.recursion_misses().into_iter().collect(),
            switch_ins_missed: probes.switch_ins_missed(),
        },
        http: http_section,
        cuda: cuda_section,
        hardware: Some(hardware_report),
    });
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
    // Detaching takes a while (an RCU grace period per tracepoint: ~2 s for all of them on our
    // VM), so the report comes first; everything is detached before the process exits, and on
    // every error path by `Probes`' drop.
    drop(probes);
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

fn open_event_log(http: &HttpArgs) -> Result<Option<Box<dyn Write>>> {
    let Some(path) = http.events.as_deref() else {
        return Ok(None);
    };
    if http.no_http {
        return Err(usage!("--events needs HTTP capture: drop --no-http"));
    }
    let file = File::create(path)
        .map_err(|e| usage!("cannot write request events to {}: {e}", path.display()))?;
    Ok(Some(Box::new(std::io::BufWriter::new(file))))
}

fn unix_now_ns() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn announce(
    tracker: &Tracker,
    probes: &Probes,
    http: Option<&HttpCapture>,
    cuda: Option<&CudaCapture>,
) {
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
    for lib in cuda.map_or(&[][..], |c| c.libraries()) {
        announce_library(lib);
    }
    if http.is_some_and(|h| h.fd_table_only) {
        eprintln!(
            "profiler: note: this kernel has no sock:sock_recv_length; sockets are recognised \
             from accept/connect and the fd table at attach (sockets passed between processes \
             or dup'ed are missed)"
        );
    }
}

/// What is captured besides the scheduler.
struct Captures<'a> {
    http: &'a mut Option<HttpCapture>,
    cuda: &'a mut Option<CudaCapture>,
    hardware: &'a mut HardwareCapture,
    timeline: &'a mut Option<Timeline>,
    metrics: Option<&'a Exporter>,
    discovery: &'a mut Option<Discovery>,
}

async fn sample_until_end(
    probes: &mut Probes,
    tracker: &mut Tracker,
    captures: &mut Captures<'_>,
    child: &mut Option<Child>,
    live: &mut LiveView,
    opts: &OutputArgs,
    started: Instant,
) -> Result<EndReason> {
    let Captures {
        http,
        cuda,
        hardware,
        metrics,
        timeline,
        discovery,
    } = captures;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start + opts.interval, opts.interval);
    // A delayed agent catches up with one read, not a burst of back-to-back ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut exit_poll = tokio::time::interval(EXIT_POLL);
    let mut sock_drain = tokio::time::interval(SOCK_DRAIN);
    sock_drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                let requests = http.as_mut().map(|h| {
                    h.drain(probes);
                    h.analyzer.update_gauges();
                    h.analyzer.stats.take_interval()
                });
                let gpu = cuda.as_mut().map(|c| {
                    c.drain(probes);
                    c.take_interval()
                });
                let notes = hardware.sample(&probes.watched(), opts.interval.as_secs_f64());
                if let Some(m) = metrics {
                    export(m, probes, tracker, http.as_ref(), hardware);
                }
                if discovery.is_some() {
                    daemon::forget_exited(probes, tracker, cuda.as_mut());
                }
                live.show(
                    tracker,
                    requests.as_ref(),
                    gpu.as_ref(),
                    &notes,
                    started.elapsed().as_secs_f64(),
                );
            }
            _ = sock_drain.tick(), if http.is_some() || cuda.is_some() || timeline.is_some() => {
                if let Some(t) = timeline.as_mut() {
                    t.drain(probes);
                }
                if let Some(h) = http.as_mut() {
                    h.drain(probes);
                }
                if let Some(c) = cuda.as_mut() {
                    c.drain(probes);
                }
            }
            _ = exit_poll.tick() => {
                hardware.follow_threads(&probes.watched());
                if let Some(c) = cuda.as_mut()
                    && c.last_scan.elapsed() >= CUDA_SCAN
                {
                    let pids = probes.watched();
                    c.rescan(probes, pids);
                }
                if let Some(d) = discovery.as_mut()
                    && d.due()
                {
                    let at_s = started.elapsed().as_secs_f64();
                    let fd_table = http.as_ref().is_some_and(|h| h.fd_table_only);
                    daemon::watch_new(d, probes, tracker, fd_table, at_s);
                    if let Some(m) = metrics {
                        m.sync_processes(tracker);
                    }
                }
                if discovery.is_none() && targets_exited(tracker, child) {
                    return Ok(EndReason::TargetExited);
                }
            }
        }
    }
}

/// Hands this interval's figures to the exporter.
fn export(
    exporter: &Exporter,
    probes: &Probes,
    tracker: &Tracker,
    http: Option<&HttpCapture>,
    hardware: &HardwareCapture,
) {
    exporter.sync_processes(tracker);
    let active = http.map(|h| h.analyzer.server_in_flight_by_pid());
    feed::refresh(
        exporter,
        FeedInputs {
            tracker,
            hardware,
            active_requests: active.as_ref(),
            probes: feed::probe_rows(probes, http.is_some()),
        },
    );
}

/// Starts watching `pid`: the kernel side counts its threads from now on (seeded with their
/// current state) and the tracker records it.
pub(crate) fn watch_process(
    probes: &mut Probes,
    tracker: &mut Tracker,
    pid: u32,
    root: bool,
    at_s: f64,
) -> Result<()> {
    probes.watch(pid)?;
    let now = monotonic_ns();
    for (tid, state) in procstat::threads(pid) {
        probes.seed_thread(tid, &initial_stats(pid, state, now))?;
    }
    tracker.add_process(pid, root, procstat::sample(pid), at_s);
    Ok(())
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
