//! The daemon's additions to a session: watch what discovery finds, and forget exited
//! processes entirely (tracker rows, kernel thread entries, CUDA uprobes), so a node with
//! thousands of short-lived processes does not grow the agent.

use std::collections::HashSet;

use crate::{
    cuda::capture::CudaCapture, discovery::Discovery, probes::Probes, procstat,
    session::watch_process, tracker::Tracker,
};

/// Scans for new processes and starts watching them.
pub fn watch_new(
    discovery: &mut Discovery,
    probes: &mut Probes,
    tracker: &mut Tracker,
    fd_table: bool,
    at_s: f64,
) {
    let watched: HashSet<u32> = probes.watched().into_iter().collect();
    for pid in discovery.scan(&watched) {
        match watch_process(probes, tracker, pid, true, at_s) {
            Ok(()) => {
                if fd_table {
                    for fd in procstat::socket_fds(pid) {
                        let _ = probes.mark_socket(pid, fd);
                    }
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
pub fn forget_exited(probes: &mut Probes, tracker: &mut Tracker, cuda: Option<&mut CudaCapture>) {
    let exited: Vec<u32> = tracker
        .procs
        .values()
        .filter(|p| p.exited)
        .map(|p| p.pid)
        .collect();
    if exited.is_empty() {
        return;
    }
    for &pid in &exited {
        for tid in tracker.forget_process(pid) {
            probes.forget_thread(tid);
        }
        probes.detach_process(pid);
    }
    if let Some(c) = cuda {
        for &pid in &exited {
            c.forget_process(pid);
        }
    }
}
