//! One profiling session: validate, load, seed, attach, sample each interval, stop on a signal,
//! the duration or the target's exit, report, detach. Privileged I/O; the loop is in
//! `run_loop`, the report at the end in `finish`.

mod config;
pub mod daemon;
pub mod discovery;
mod finish;
mod ring_wake;
mod run_loop;
mod start;
pub mod targets;
mod watch;

use std::{
    collections::HashSet,
    fs::File,
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use anyhow::Result;

use crate::{
    bpf::Probes,
    cuda::capture::announce_library,
    host::{preflight, self_usage::AgentUsage, tracefs},
    sched::{probes::SCHED_PROBES, tracker::Tracker},
    session::{discovery::Discovery, watch::watch_roots},
    sinks::{live::LiveView, prometheus::feed},
    usage,
};
pub use config::Config;

pub enum Target {
    Pids(Vec<i32>),
    Command(Vec<String>),
    /// `profiler daemon`: every process discovery finds, now and later, until a signal.
    Discover(Discovery),
}

pub fn run(target: Target, config: Config) -> Result<()> {
    config.validate().map_err(|m| usage!("{m}"))?;
    preflight::require_tracing_host()?;
    preflight::raise_fd_limit();
    let output = open_output(config.output.as_deref())?;
    let event_log = start::open_event_log(&config)?;
    // Bound before anything is attached, so a taken port fails fast.
    let exporter = feed::start_exporter(&config.metrics)?;

    let Targets {
        roots,
        gated,
        mut discovery,
    } = resolve_targets(target)?;

    let tracefs_dir = tracefs::tracefs_dir();
    let offsets = tracefs::tracepoint_offsets(&tracefs_dir)?;
    // Without HTTP capture no socket program is attached: its capture size does not matter.
    let capture_bytes = config.http.map_or(0, |h| h.capture_bytes);
    let net = tracefs::net_config(&tracefs_dir, capture_bytes);
    let mut probes = Probes::load(&offsets, &net)?;
    let mut tracker = Tracker::default();
    watch_roots(&mut probes, &mut tracker, &roots)?;
    probes.attach(SCHED_PROBES)?;
    let mut captures = start::captures(
        &mut probes,
        &tracker,
        &net,
        &config,
        event_log,
        exporter.as_ref(),
    )?;
    // Every probe is in: the window that every figure covers (`duration_s`) opens now.
    watch::open_window(&mut probes, &mut tracker, captures.all());
    let setup_cpu_s = AgentUsage::now().cpu_s;
    let started = Instant::now();
    let started_at_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());

    let mut child = match gated {
        Some((gated, program)) => Some(gated.release(&program)?),
        None => None,
    };
    announce(&tracker, &probes, &captures, discovery.as_ref());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut live = LiveView::new(!config.quiet);
    let end_reason = runtime.block_on(
        run_loop::Loop {
            probes: &mut probes,
            tracker: &mut tracker,
            captures: &mut captures,
            metrics: exporter.as_ref(),
            discovery: &mut discovery,
            child: &mut child,
            live: &mut live,
            config: &config,
            started,
        }
        .run(),
    )?;
    if discovery.is_some() {
        // The daemon's output is its /metrics; it leaves without a report.
        drop(probes);
        eprintln!("profiler: daemon stopped ({end_reason:?})");
        return Ok(());
    }
    let report = finish::report(
        &mut probes,
        &mut tracker,
        captures,
        finish::Ending {
            started,
            setup_cpu_s,
            started_at_unix_s,
            end_reason,
            quiet: config.quiet,
        },
    );
    finish::write(&report, config.format, output, config.quiet)?;
    // Detaching takes a while (an RCU grace period per tracepoint: ~2 s for all of them on our
    // VM), so the report comes first; everything is detached before the process exits, and on
    // every error path by `Probes`' drop.
    drop(probes);
    if let Some(child) = child.as_mut() {
        finish::stop_child(child);
    }
    finish::event_log_complete(&report, config.events.as_deref())
}

/// The processes to watch at the start, `run`'s gated command (with its program name), and
/// the daemon's discovery.
struct Targets {
    roots: Vec<u32>,
    gated: Option<(targets::GatedChild, String)>,
    discovery: Option<Discovery>,
}

fn resolve_targets(target: Target) -> Result<Targets> {
    Ok(match target {
        Target::Pids(pids) => {
            let mut roots = Vec::new();
            for pid in pids {
                let pid = targets::validate_pid(pid)?;
                if !roots.contains(&pid) {
                    roots.push(pid);
                }
            }
            Targets {
                roots,
                gated: None,
                discovery: None,
            }
        }
        Target::Command(cmd) => {
            let gated = targets::spawn_gated(&cmd)?;
            Targets {
                roots: vec![gated.pid],
                gated: Some((gated, cmd[0].clone())),
                discovery: None,
            }
        }
        Target::Discover(mut discovery) => {
            let roots = discovery.scan(&HashSet::new());
            Targets {
                roots,
                gated: None,
                discovery: Some(discovery),
            }
        }
    })
}

fn open_output(path: Option<&Path>) -> Result<Option<(File, PathBuf)>> {
    path.map(|p| {
        File::create(p)
            .map(|f| (f, p.to_path_buf()))
            .map_err(|e| usage!("cannot write report to {}: {e}", p.display()))
    })
    .transpose()
}

pub(crate) fn unix_now_ns() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The start-up lines on stderr: what is attached, then a note per hardware part that cannot
/// run here.
fn announce(
    tracker: &Tracker,
    probes: &Probes,
    captures: &start::Captures,
    discovery: Option<&Discovery>,
) {
    // Always: scripts and tests wait for this line to know every probe is in place.
    match discovery {
        Some(d) => eprintln!(
            "profiler: attached as a daemon with {}/{} probes, watching {} processes; profiling {}",
            probes.status.iter().filter(|s| s.attached).count(),
            probes.status.len(),
            tracker.procs.len(),
            d.describe()
        ),
        None => announce_attach(tracker, probes, captures),
    }
    for note in captures.hardware.notes() {
        eprintln!("profiler: note: {note}");
    }
}

fn announce_attach(tracker: &Tracker, probes: &Probes, captures: &start::Captures) {
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
    for lib in captures.cuda.as_ref().map_or(&[][..], |c| c.libraries()) {
        announce_library(lib);
    }
}
