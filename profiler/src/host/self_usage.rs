//! The profiler's own cost: CPU time and peak memory of this process, from getrusage.

use serde::Serialize;

/// The profiler's own CPU time and peak memory (from getrusage).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct AgentUsage {
    /// CPU time over the session's window (in a report), or since start (`now`).
    pub cpu_s: f64,
    /// CPU time spent before the window opened: loading and verifying the programs, parsing
    /// BTF, attaching (0 from `now`).
    pub setup_cpu_s: f64,
    pub max_rss_bytes: u64,
}

impl AgentUsage {
    /// The usage over a window that opened when the process had used `setup_cpu_s`.
    pub fn since_window(setup_cpu_s: f64) -> Self {
        let now = Self::now();
        Self {
            cpu_s: (now.cpu_s - setup_cpu_s).max(0.0),
            setup_cpu_s,
            max_rss_bytes: now.max_rss_bytes,
        }
    }

    pub fn now() -> Self {
        // SAFETY: rusage is plain data that getrusage fills in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Self {
            cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
            setup_cpu_s: 0.0,
            max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        }
    }
}
