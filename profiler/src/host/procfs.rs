//! Process metrics from /proc (CPU time, memory, threads, page faults), sampled each interval.

use procfs::process::Process;
use serde::Serialize;

/// One reading of `/proc/<pid>/{stat,status}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSample {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub state: char,
    /// Start time in clock ticks since boot: with the pid, identifies the process across reuse.
    pub starttime: u64,
    /// utime + stime, in seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub threads: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
}

impl ProcSample {
    pub fn is_gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let p = Process::new(pid as i32).ok()?;
    let stat = p.stat().ok()?;
    let status = p.status().ok();
    let tps = procfs::ticks_per_second() as f64;
    let page = procfs::page_size();
    Some(ProcSample {
        pid,
        ppid: stat.ppid.max(0) as u32,
        comm: stat.comm.clone(),
        state: stat.state,
        starttime: stat.starttime,
        cpu_s: (stat.utime + stat.stime) as f64 / tps,
        rss_bytes: status
            .as_ref()
            .and_then(|s| s.vmrss)
            .map(|kb| kb * 1024)
            .unwrap_or(stat.rss * page),
        peak_rss_bytes: status.and_then(|s| s.vmhwm).unwrap_or(0) * 1024,
        threads: stat.num_threads.max(0) as u64,
        minor_faults: stat.minflt,
        major_faults: stat.majflt,
    })
}

/// Proportional set size of `pid` (`Pss` of `/proc/<pid>/smaps_rollup`): its resident memory
/// with each shared page divided among the processes that map it, so the PSS of a server's
/// processes adds up to what they use together. The kernel walks the page tables for it:
/// read it when processes share memory (several of them), not per sample.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_pss_kb(&text).map(|kb| kb * 1024)
}

fn parse_pss_kb(smaps_rollup: &str) -> Option<u64> {
    smaps_rollup.lines().find_map(|l| {
        l.strip_prefix("Pss:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Threads of `pid` with their scheduler state letter (R, S, D, …).
pub fn threads(pid: u32) -> Vec<(u32, char)> {
    let Ok(p) = Process::new(pid as i32) else {
        return Vec::new();
    };
    let Ok(tasks) = p.tasks() else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| Some((t.tid as u32, t.stat().ok()?.state)))
        .collect()
}

/// Name of one thread, as `/proc/<pid>/task/<tid>/comm` gives it.
/// Every process whose parent chain leads to `root` (not `root` itself), parents first.
pub fn descendants(root: u32) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = all
        .flatten()
        .filter_map(|p| p.stat().ok())
        .map(|s| (s.pid as u32, s.ppid as u32))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|&&(pid, ppid)| ppid == parent && pid != root)
                .map(|&(pid, _)| pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

pub fn thread_comm(pid: u32, tid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// The CPU thread `tid` of `pid` last ran on (`processor` in /proc/…/stat).
pub fn thread_cpu(pid: u32, tid: u32) -> Option<u32> {
    let task = Process::new(pid as i32)
        .ok()?
        .task_from_tid(tid as i32)
        .ok()?;
    task.stat()
        .ok()?
        .processor
        .and_then(|c| u32::try_from(c).ok())
}

/// What the report shows of a process's /proc readings over the whole session.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProcSummary {
    /// CPU time used while attached, in seconds (utime + stime).
    pub cpu_s: f64,
    /// Mean CPU utilisation while attached; 100 = one full core.
    pub cpu_percent_avg: f64,
    /// Highest CPU utilisation of any interval.
    pub cpu_percent_max: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub threads: u64,
    pub threads_max: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
}

/// Accumulates successive samples of one process.
#[derive(Debug, Clone)]
pub struct ProcHistory {
    pub first: ProcSample,
    pub last: ProcSample,
    first_at_s: f64,
    last_at_s: f64,
    cpu_percent_max: f64,
    threads_max: u64,
    peak_rss_bytes: u64,
}

impl ProcHistory {
    pub fn new(sample: ProcSample, at_s: f64) -> Self {
        Self {
            threads_max: sample.threads,
            peak_rss_bytes: sample.peak_rss_bytes.max(sample.rss_bytes),
            first: sample.clone(),
            last: sample,
            first_at_s: at_s,
            last_at_s: at_s,
            cpu_percent_max: 0.0,
        }
    }

    /// Adds a reading; returns the CPU % over the time since the previous one.
    pub fn push(&mut self, sample: ProcSample, at_s: f64) -> f64 {
        let dt = at_s - self.last_at_s;
        let pct = if dt > 0.0 {
            (sample.cpu_s - self.last.cpu_s).max(0.0) / dt * 100.0
        } else {
            0.0
        };
        self.cpu_percent_max = self.cpu_percent_max.max(pct);
        self.threads_max = self.threads_max.max(sample.threads);
        self.peak_rss_bytes = self
            .peak_rss_bytes
            .max(sample.peak_rss_bytes)
            .max(sample.rss_bytes);
        self.last = sample;
        self.last_at_s = at_s;
        pct
    }

    pub fn summary(&self) -> ProcSummary {
        let cpu_s = (self.last.cpu_s - self.first.cpu_s).max(0.0);
        let span = self.last_at_s - self.first_at_s;
        ProcSummary {
            cpu_s,
            cpu_percent_avg: if span > 0.0 {
                cpu_s / span * 100.0
            } else {
                0.0
            },
            cpu_percent_max: self.cpu_percent_max,
            rss_bytes: self.last.rss_bytes,
            peak_rss_bytes: self.peak_rss_bytes,
            threads: self.last.threads,
            threads_max: self.threads_max,
            minor_faults: self
                .last
                .minor_faults
                .saturating_sub(self.first.minor_faults),
            major_faults: self
                .last
                .major_faults
                .saturating_sub(self.first.major_faults),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn pss_from_smaps_rollup() {
        let text = "55a0-7ffe ---p 00000000 00:00 0  [rollup]\nRss:               12345 kB\nPss:                6789 kB\nPss_Anon:           1000 kB\n";
        assert_eq!(parse_pss_kb(text), Some(6789));
        assert_eq!(parse_pss_kb("Rss: 1 kB\n"), None);
        // This process's own, from the kernel.
        assert!(pss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }

    use super::*;

    fn s(cpu_s: f64, rss: u64, threads: u64, minflt: u64) -> ProcSample {
        ProcSample {
            pid: 1,
            ppid: 0,
            comm: "x".into(),
            state: 'S',
            starttime: 9,
            cpu_s,
            rss_bytes: rss,
            peak_rss_bytes: rss,
            threads,
            minor_faults: minflt,
            major_faults: 0,
        }
    }

    #[test]
    fn history_computes_rates_and_peaks() {
        let mut h = ProcHistory::new(s(10.0, 100, 2, 5), 0.0);
        let pct = h.push(s(10.5, 300, 4, 8), 1.0);
        assert!((pct - 50.0).abs() < 1e-9);
        let pct = h.push(s(12.5, 200, 3, 20), 2.0);
        assert!((pct - 200.0).abs() < 1e-9);
        let sum = h.summary();
        assert!((sum.cpu_s - 2.5).abs() < 1e-9);
        assert!((sum.cpu_percent_avg - 125.0).abs() < 1e-9);
        assert!((sum.cpu_percent_max - 200.0).abs() < 1e-9);
        assert_eq!(sum.peak_rss_bytes, 300);
        assert_eq!(sum.rss_bytes, 200);
        assert_eq!((sum.threads, sum.threads_max), (3, 4));
        assert_eq!(sum.minor_faults, 15);
    }

    #[test]
    fn samples_this_process() {
        let me = sample(std::process::id()).expect("own /proc entry");
        assert_eq!(me.pid, std::process::id());
        assert!(me.threads >= 1);
        assert!(me.rss_bytes > 0);
        assert!(!me.is_gone());
        assert!(threads(me.pid).iter().any(|&(tid, _)| tid == me.pid));
    }
}
