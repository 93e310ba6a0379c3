//! Userspace bookkeeping of everything seen while attached: the latest scheduler totals of every
//! thread (including exited ones whose kernel entries were removed) and the /proc history of
//! every process. Pure: fed by the session, read by the report and the live view.

use std::collections::BTreeMap;

use profiler_common::{THREAD_EXITED, ThreadStats};

use crate::{
    host::procfs::{ProcHistory, ProcSample},
    sched::model::{SchedTotals, close_open_intervals},
};

/// Reads of an exited thread's kernel entry before it is removed: the first read may precede
/// the thread's final context switch, which still adds on-CPU time.
const EXITED_READS_BEFORE_REMOVAL: u32 = 2;

/// …and at least this long after the exit was first seen: two reads can come back to back
/// (a delayed agent), and removing the entry before the final switch-out would lose the
/// thread's last on-CPU interval (the final switch would then find no entry).
const EXITED_GRACE_NS: u64 = 200_000_000;

#[derive(Debug, Clone)]
pub struct ThreadRecord {
    pub tid: u32,
    pub tgid: u32,
    pub comm: String,
    pub exited: bool,
    /// Since the session's window opened (see `Tracker::open_window`).
    pub totals: SchedTotals,
    /// The kernel's cumulative totals when the window opened (zero for threads seen later).
    baseline: SchedTotals,
    exited_reads: u32,
    /// When the exit was first seen (monotonic ns).
    exited_seen_ns: u64,
}

#[derive(Debug, Clone)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Named by the user (`--pid` or the `run` command) rather than found as a child.
    pub root: bool,
    pub ppid: u32,
    pub comm: String,
    pub starttime: u64,
    pub history: Option<ProcHistory>,
    pub exited: bool,
    /// CPU % over the last interval.
    pub cpu_percent: f64,
}

impl ProcessRecord {
    /// Whether `sample` shows this same process still running: not a zombie, and not a new
    /// process that reused the pid (different start time).
    pub fn is_live_as(&self, sample: &ProcSample) -> bool {
        !sample.is_gone() && (self.starttime == 0 || sample.starttime == self.starttime)
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    pub threads: BTreeMap<u32, ThreadRecord>,
    pub procs: BTreeMap<u32, ProcessRecord>,
}

impl Tracker {
    pub fn add_process(&mut self, pid: u32, root: bool, sample: Option<ProcSample>, at_s: f64) {
        let record = ProcessRecord {
            pid,
            root,
            ppid: sample.as_ref().map_or(0, |s| s.ppid),
            comm: sample.as_ref().map_or_else(String::new, |s| s.comm.clone()),
            starttime: sample.as_ref().map_or(0, |s| s.starttime),
            exited: sample.as_ref().is_none_or(ProcSample::is_gone),
            history: sample.map(|s| ProcHistory::new(s, at_s)),
            cpu_percent: 0.0,
        };
        self.procs.entry(pid).or_insert(record);
    }

    /// Records a /proc reading of `pid`; `None` (or a different process now using the pid, or a
    /// zombie) marks it exited. Returns whether the process is still alive.
    pub fn update_process(&mut self, pid: u32, sample: Option<ProcSample>, at_s: f64) -> bool {
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        if p.exited {
            return false;
        }
        match sample {
            Some(s) if p.is_live_as(&s) => {
                p.comm.clone_from(&s.comm);
                p.cpu_percent = match &mut p.history {
                    Some(h) => h.push(s, at_s),
                    None => {
                        p.history = Some(ProcHistory::new(s, at_s));
                        0.0
                    }
                };
                true
            }
            _ => {
                p.exited = true;
                p.cpu_percent = 0.0;
                false
            }
        }
    }

    /// Applies one read of the kernel's per-thread map, closing open intervals at `now_ns`.
    /// Returns the tids whose kernel entries are no longer needed (exited, final values kept).
    pub fn apply_threads(&mut self, entries: &[(u32, ThreadStats)], now_ns: u64) -> Vec<u32> {
        let mut finished = Vec::new();
        for (tid, raw) in entries {
            let exited = raw.flags & THREAD_EXITED != 0;
            let closed = if exited {
                // A dead thread has no open interval worth extending to now.
                let mut c = *raw;
                c.on_cpu_since_ns = 0;
                c.blocked_since_ns = 0;
                c.runnable_since_ns = 0;
                close_open_intervals(&c, now_ns)
            } else {
                close_open_intervals(raw, now_ns)
            };
            let record = self.threads.entry(*tid).or_insert_with(|| ThreadRecord {
                tid: *tid,
                tgid: raw.tgid,
                comm: String::new(),
                exited: false,
                totals: SchedTotals::default(),
                baseline: SchedTotals::default(),
                exited_reads: 0,
                exited_seen_ns: 0,
            });
            record.totals = SchedTotals::from(&closed).since(&record.baseline);
            let comm = comm_str(&raw.comm);
            if !comm.is_empty() {
                record.comm = comm;
            }
            if exited {
                record.exited = true;
                record.exited_reads += 1;
                if record.exited_seen_ns == 0 {
                    record.exited_seen_ns = now_ns;
                }
                if record.exited_reads >= EXITED_READS_BEFORE_REMOVAL
                    && now_ns.saturating_sub(record.exited_seen_ns) >= EXITED_GRACE_NS
                {
                    finished.push(*tid);
                }
            }
        }
        finished
    }

    /// The session's window opens at `now_ns`: each thread's totals count from here. The
    /// scheduler probes go in first and count while the others attach (seconds under load, or
    /// on a slow machine): without this, a busy thread showed more CPU time than the window.
    pub fn open_window(&mut self, entries: &[(u32, ThreadStats)], now_ns: u64) {
        self.apply_threads(entries, now_ns);
        for (tid, raw) in entries {
            if let Some(record) = self.threads.get_mut(tid) {
                record.baseline = SchedTotals::from(&close_open_intervals(raw, now_ns));
                record.totals = SchedTotals::default();
            }
        }
    }

    /// Starts `pid`'s /proc history over with `sample`, taken when the window opened (time 0).
    pub fn restart_history(&mut self, pid: u32, sample: ProcSample) {
        if let Some(p) = self.procs.get_mut(&pid)
            && !p.exited
            && p.is_live_as(&sample)
        {
            p.history = Some(ProcHistory::new(sample, 0.0));
        }
    }

    /// Watched processes seen to have exited.
    pub fn exited_pids(&self) -> Vec<u32> {
        self.procs
            .values()
            .filter(|p| p.exited)
            .map(|p| p.pid)
            .collect()
    }

    /// Removes a process and its threads (the daemon forgets exited processes); returns the
    /// thread ids removed.
    pub fn forget_process(&mut self, pid: u32) -> Vec<u32> {
        self.procs.remove(&pid);
        let tids: Vec<u32> = self.threads_of(pid).map(|t| t.tid).collect();
        for tid in &tids {
            self.threads.remove(tid);
        }
        tids
    }

    /// Scheduler totals of all threads of `pid`.
    pub fn process_totals(&self, pid: u32) -> SchedTotals {
        let mut t = SchedTotals::default();
        for th in self.threads.values().filter(|th| th.tgid == pid) {
            t.add(&th.totals);
        }
        t
    }

    pub fn threads_of(&self, pid: u32) -> impl Iterator<Item = &ThreadRecord> {
        self.threads.values().filter(move |th| th.tgid == pid)
    }
}

/// The kernel's NUL-padded comm as a string.
pub fn comm_str(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(tgid: u32, oncpu: u64, flags: u32) -> ThreadStats {
        let mut s = ThreadStats::new(tgid);
        s.oncpu_ns = oncpu;
        s.flags = flags;
        s.comm[..4].copy_from_slice(b"work");
        s
    }

    #[test]
    fn exited_threads_are_released_after_two_reads_and_a_grace_period() {
        let mut t = Tracker::default();
        let ms = 1_000_000;
        assert!(
            t.apply_threads(&[(11, stats(10, 5, 0))], 100 * ms)
                .is_empty()
        );
        assert!(
            t.apply_threads(&[(11, stats(10, 7, THREAD_EXITED))], 200 * ms)
                .is_empty()
        );
        // A second read right after the first (a delayed agent catching up) keeps the entry:
        // the final switch-out may not have happened yet.
        assert!(
            t.apply_threads(&[(11, stats(10, 8, THREAD_EXITED))], 201 * ms)
                .is_empty()
        );
        assert_eq!(
            t.apply_threads(&[(11, stats(10, 9, THREAD_EXITED))], 400 * ms),
            vec![11]
        );
        // Gone from the kernel map, still in the totals.
        t.apply_threads(&[], 500 * ms);
        assert_eq!(t.process_totals(10).oncpu_ns, 9);
        assert!(t.threads[&11].exited);
        assert_eq!(t.threads[&11].comm, "work");
    }

    #[test]
    fn open_intervals_are_closed_for_live_threads_only() {
        let mut t = Tracker::default();
        let mut live = stats(10, 0, 0);
        live.on_cpu_since_ns = 50;
        let mut dead = stats(10, 0, THREAD_EXITED);
        dead.on_cpu_since_ns = 50;
        t.apply_threads(&[(11, live), (12, dead)], 150);
        assert_eq!(t.threads[&11].totals.oncpu_ns, 100);
        assert_eq!(t.threads[&12].totals.oncpu_ns, 0);
        assert_eq!(t.process_totals(10).oncpu_ns, 100);
        assert_eq!(t.process_totals(99).oncpu_ns, 0);
    }

    #[test]
    fn totals_count_from_the_window_open_on() {
        let mut t = Tracker::default();
        // On CPU since 50, 30 ns already counted when the window opens at 100.
        let mut busy = stats(10, 30, 0);
        busy.on_cpu_since_ns = 50;
        t.open_window(&[(11, busy)], 100);
        assert_eq!(t.threads[&11].totals.oncpu_ns, 0);
        // Still on CPU at 400: 300 ns inside the window, none of the 80 before it.
        t.apply_threads(&[(11, busy)], 400);
        assert_eq!(t.process_totals(10).oncpu_ns, 300);
        // A thread first seen after the window opened counts everything.
        t.apply_threads(&[(11, busy), (12, stats(10, 25, 0))], 400);
        assert_eq!(t.process_totals(10).oncpu_ns, 325);
    }

    #[test]
    fn process_exit_is_detected_by_absence_zombie_or_pid_reuse() {
        let sample = |start, state| ProcSample {
            pid: 5,
            ppid: 1,
            comm: "srv".into(),
            state,
            starttime: start,
            cpu_s: 0.0,
            rss_bytes: 0,
            peak_rss_bytes: 0,
            threads: 1,
            minor_faults: 0,
            major_faults: 0,
        };
        let mut t = Tracker::default();
        t.add_process(5, true, Some(sample(100, 'S')), 0.0);
        assert!(t.update_process(5, Some(sample(100, 'R')), 1.0));
        assert!(!t.procs[&5].exited);
        assert!(!t.update_process(5, Some(sample(999, 'R')), 2.0));
        assert!(t.procs[&5].exited);

        let mut t = Tracker::default();
        t.add_process(5, true, Some(sample(100, 'S')), 0.0);
        assert!(!t.update_process(5, Some(sample(100, 'Z')), 1.0));
        let mut t = Tracker::default();
        t.add_process(5, true, Some(sample(100, 'S')), 0.0);
        assert!(!t.update_process(5, None, 1.0));
    }

    #[test]
    fn comm_stops_at_nul() {
        assert_eq!(comm_str(b"abc\0\0\0"), "abc");
        assert_eq!(comm_str(b"abcdef"), "abcdef");
    }
}
