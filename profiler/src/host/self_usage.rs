//! The profiler's own cost: CPU time and peak memory of this process, from getrusage.

use serde::Serialize;

/// The profiler's own CPU time and peak memory (from getrusage).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct AgentUsage {
    pub cpu_s: f64,
    pub max_rss_bytes: u64,
}

impl AgentUsage {
    pub fn now() -> Self {
        // SAFETY: rusage is plain data that getrusage fills in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Self {
            cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
            max_rss_bytes: ru.ru_maxrss as u64 * 1024,
        }
    }
}
