//! The daemon's additions to a session: watch what discovery finds, and forget exited
//! processes entirely (tracker rows, kernel thread entries, CUDA uprobes), so a node with
//! thousands of short-lived processes does not grow the agent.

use std::collections::HashSet;

use crate::{
    bpf::{Capability, Probes},
    sched::tracker::Tracker,
    session::{discovery::Discovery, watch::watch_process},
};

/// Scans for new processes and starts watching them.
pub fn watch_new(
    discovery: &mut Discovery,
    probes: &mut Probes,
    tracker: &mut Tracker,
    captures: &mut [&mut dyn Capability],
    at_s: f64,
) {
    let watched: HashSet<u32> = probes.watched().into_iter().collect();
    for pid in discovery.scan(&watched) {
        match watch_process(probes, tracker, pid, true, at_s) {
            Ok(()) => {
                for c in captures.iter_mut() {
                    c.process_added(probes, pid);
                }
                let comm = tracker.procs.get(&pid).map_or("", |p| p.comm.as_str());
                eprintln!("profiler: watching pid {pid} ({comm})");
            }
            // Gone already, or the watch map is full (counted in the health figures).
            Err(e) => eprintln!("profiler: warning: cannot watch pid {pid}: {e:#}"),
        }
    }
}

/// Drops everything kept about processes that exited (their series were stopped already).
pub fn forget_exited(
    probes: &mut Probes,
    tracker: &mut Tracker,
    captures: &mut [&mut dyn Capability],
) {
    let exited = tracker.exited_pids();
    for &pid in &exited {
        for tid in tracker.forget_process(pid) {
            probes.forget_thread(tid);
        }
        probes.detach_process(pid);
    }
    for c in captures.iter_mut() {
        for &pid in &exited {
            c.forget_process(probes, pid);
        }
    }
}
