//! Keeping the watched set and the tracker in step with the kernel and /proc: start watching a
//! process, read the kernel's thread records and /proc into the tracker each interval, tell
//! when the targets are gone. Privileged I/O through `Probes`.

use std::process::Child;
use std::time::Instant;

use anyhow::Result;

use crate::{
    bpf::Probes,
    host::procfs,
    sched::{
        model::{initial_stats, monotonic_ns},
        tracker::Tracker,
    },
};

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
    for (tid, state) in procfs::threads(pid) {
        probes.seed_thread(tid, &initial_stats(pid, state, now))?;
    }
    tracker.add_process(pid, root, procfs::sample(pid), at_s);
    Ok(())
}

/// Starts watching the named processes and the children they already have (pre-forked
/// workers are profiled with their parent).
pub(crate) fn watch_roots(probes: &mut Probes, tracker: &mut Tracker, roots: &[u32]) -> Result<()> {
    let children: Vec<u32> = roots
        .iter()
        .flat_map(|&r| procfs::descendants(r))
        .filter(|c| !roots.contains(c))
        .collect();
    for (&pid, root) in roots
        .iter()
        .map(|p| (p, true))
        .chain(children.iter().map(|p| (p, false)))
    {
        watch_process(probes, tracker, pid, root, 0.0)?;
    }
    Ok(())
}

/// Whether every process the user named is gone. `run`'s command is our child: reap it.
pub(crate) fn targets_exited(tracker: &Tracker, child: &mut Option<Child>) -> bool {
    if let Some(c) = child {
        return matches!(c.try_wait(), Ok(Some(_)));
    }
    tracker
        .procs
        .values()
        .filter(|p| p.root)
        .all(|p| !procfs::sample(p.pid).is_some_and(|s| p.is_live_as(&s)))
}

/// The session's window opens now: scheduler totals and /proc figures count from here (see
/// `Tracker::open_window`); what the captures saw while the probes went in is dropped.
pub(crate) fn open_window(
    probes: &mut Probes,
    tracker: &mut Tracker,
    captures: Vec<&mut dyn crate::bpf::Capability>,
) {
    tracker.open_window(&probes.threads(), monotonic_ns());
    for capture in captures {
        capture.open_window(probes);
    }
    let pids: Vec<u32> = tracker.procs.keys().copied().collect();
    for pid in pids {
        if let Some(sample) = procfs::sample(pid) {
            tracker.restart_history(pid, sample);
        }
    }
}

/// Reads the kernel maps and /proc into the tracker.
pub(crate) fn collect(probes: &mut Probes, tracker: &mut Tracker, started: Instant) {
    let at_s = started.elapsed().as_secs_f64();
    let entries = probes.threads();
    for tid in tracker.apply_threads(&entries, monotonic_ns()) {
        probes.forget_thread(tid);
    }
    for th in tracker.threads.values_mut().filter(|t| t.comm.is_empty()) {
        if let Some(comm) = procfs::thread_comm(th.tgid, th.tid) {
            th.comm = comm;
        }
    }
    for tgid in probes.watched() {
        if !tracker.procs.contains_key(&tgid) {
            tracker.add_process(tgid, false, procfs::sample(tgid), at_s);
            probes.adopt(tgid);
        }
    }
    let live: Vec<u32> = tracker
        .procs
        .values()
        .filter(|p| !p.exited)
        .map(|p| p.pid)
        .collect();
    for pid in live {
        if !tracker.update_process(pid, procfs::sample(pid), at_s) {
            probes.unwatch(pid);
        }
    }
}
