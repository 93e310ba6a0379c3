//! Scheduler statistics: pure arithmetic over the per-thread records the eBPF programs keep.

use profiler_common::{RUNQ_BUCKETS, ThreadStats};
use serde::Serialize;

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads in the kernel.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Seeds the record of a thread that already exists at attach time. Its `/proc` state tells
/// which interval is open: a running thread counts as on-CPU from `now` (if it is in fact waiting
/// for a CPU, its switch-in resets the start), a sleeping one as blocked from `now`.
pub fn initial_stats(tgid: u32, proc_state: char, now_ns: u64) -> ThreadStats {
    let mut s = ThreadStats::new(tgid);
    match proc_state {
        'R' => s.on_cpu_since_ns = now_ns,
        'S' | 'D' | 'I' | 'T' | 't' => s.blocked_since_ns = now_ns,
        _ => {}
    }
    s
}

/// The record as if every open interval ended at `now`: a thread on a CPU right now has run
/// since it was switched in, one asleep has been blocked since it was switched out.
pub fn close_open_intervals(s: &ThreadStats, now_ns: u64) -> ThreadStats {
    let mut c = *s;
    if c.on_cpu_since_ns != 0 {
        c.oncpu_ns += now_ns.saturating_sub(c.on_cpu_since_ns);
    }
    if c.blocked_since_ns != 0 {
        c.offcpu_ns += now_ns.saturating_sub(c.blocked_since_ns);
    }
    if c.runnable_since_ns != 0 {
        c.runq_ns += now_ns.saturating_sub(c.runnable_since_ns);
    }
    c.on_cpu_since_ns = 0;
    c.blocked_since_ns = 0;
    c.runnable_since_ns = 0;
    c
}

/// Scheduler totals for a thread, a process or an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedTotals {
    pub oncpu_ns: u64,
    pub offcpu_ns: u64,
    pub runq_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub migrations: u64,
    pub runq_hist: [u64; RUNQ_BUCKETS],
}

impl From<&ThreadStats> for SchedTotals {
    fn from(s: &ThreadStats) -> Self {
        Self {
            oncpu_ns: s.oncpu_ns,
            offcpu_ns: s.offcpu_ns,
            runq_ns: s.runq_ns,
            voluntary_switches: s.voluntary_switches,
            involuntary_switches: s.involuntary_switches,
            migrations: s.migrations,
            runq_hist: s.runq_hist,
        }
    }
}

impl SchedTotals {
    pub fn add(&mut self, o: &SchedTotals) {
        self.oncpu_ns += o.oncpu_ns;
        self.offcpu_ns += o.offcpu_ns;
        self.runq_ns += o.runq_ns;
        self.voluntary_switches += o.voluntary_switches;
        self.involuntary_switches += o.involuntary_switches;
        self.migrations += o.migrations;
        for (a, b) in self.runq_hist.iter_mut().zip(o.runq_hist.iter()) {
            *a += b;
        }
    }

    /// What happened since `earlier` (counters only grow; saturate if a thread vanished).
    pub fn since(&self, earlier: &SchedTotals) -> SchedTotals {
        let mut d = SchedTotals {
            oncpu_ns: self.oncpu_ns.saturating_sub(earlier.oncpu_ns),
            offcpu_ns: self.offcpu_ns.saturating_sub(earlier.offcpu_ns),
            runq_ns: self.runq_ns.saturating_sub(earlier.runq_ns),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
            migrations: self.migrations.saturating_sub(earlier.migrations),
            runq_hist: [0; RUNQ_BUCKETS],
        };
        for (i, slot) in d.runq_hist.iter_mut().enumerate() {
            *slot = self.runq_hist[i].saturating_sub(earlier.runq_hist[i]);
        }
        d
    }

    pub fn runq_waits(&self) -> u64 {
        self.runq_hist.iter().sum()
    }
}

/// Lower bound (ns) of log2 bucket `i`: waits in `[2^i, 2^(i+1))`.
pub fn bucket_low_ns(i: usize) -> u64 {
    if i == 0 { 0 } else { 1u64 << i }
}

/// Upper bound (ns, exclusive) of log2 bucket `i`.
pub fn bucket_high_ns(i: usize) -> u64 {
    1u64 << (i + 1)
}

/// Estimated `q`-quantile (0 < q ≤ 1) of a log2 histogram, interpolating linearly inside the
/// bucket that holds it. `None` when the histogram is empty.
pub fn log2_quantile(hist: &[u64], q: f64) -> Option<u64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
    let mut seen = 0u64;
    for (i, &count) in hist.iter().enumerate() {
        if count == 0 {
            continue;
        }
        if (seen + count) as f64 >= rank {
            let within = (rank - seen as f64) / count as f64;
            let (lo, hi) = (bucket_low_ns(i) as f64, bucket_high_ns(i) as f64);
            return Some((lo + within * (hi - lo)) as u64);
        }
        seen += count;
    }
    None
}

/// Percentile summary of a run-queue latency histogram, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Upper bound of the highest non-empty bucket.
    pub max_us: f64,
}

pub fn summarize_runq(t: &SchedTotals) -> Option<LatencySummary> {
    let count = t.runq_waits();
    if count == 0 {
        return None;
    }
    let us = |q: f64| log2_quantile(&t.runq_hist, q).unwrap_or(0) as f64 / 1e3;
    let top = t.runq_hist.iter().rposition(|&c| c > 0).unwrap_or(0);
    Some(LatencySummary {
        count,
        mean_us: t.runq_ns as f64 / count as f64 / 1e3,
        p50_us: us(0.50),
        p90_us: us(0.90),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: bucket_high_ns(top) as f64 / 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_adds_open_intervals_up_to_now() {
        let mut s = ThreadStats::new(7);
        s.oncpu_ns = 100;
        s.on_cpu_since_ns = 1_000;
        let c = close_open_intervals(&s, 1_500);
        assert_eq!(c.oncpu_ns, 600);
        assert_eq!(c.on_cpu_since_ns, 0);

        let mut s = ThreadStats::new(7);
        s.blocked_since_ns = 10;
        s.runnable_since_ns = 0;
        let c = close_open_intervals(&s, 110);
        assert_eq!(c.offcpu_ns, 100);
        assert_eq!(c.oncpu_ns, 0);
    }

    #[test]
    fn initial_state_follows_proc_state() {
        assert_eq!(initial_stats(1, 'R', 5).on_cpu_since_ns, 5);
        assert_eq!(initial_stats(1, 'S', 5).blocked_since_ns, 5);
        assert_eq!(initial_stats(1, 'D', 5).blocked_since_ns, 5);
        let z = initial_stats(1, 'Z', 5);
        assert_eq!((z.on_cpu_since_ns, z.blocked_since_ns), (0, 0));
    }

    #[test]
    fn quantiles_interpolate_within_log2_buckets() {
        let mut hist = [0u64; RUNQ_BUCKETS];
        // 100 waits in [1024, 2048) ns.
        hist[10] = 100;
        assert_eq!(log2_quantile(&hist, 0.5), Some(1024 + 512));
        assert_eq!(log2_quantile(&hist, 1.0), Some(2048));
        assert_eq!(log2_quantile(&[0; 4], 0.5), None);
        // 90 fast, 10 slow: p90 is in the fast bucket, p99 in the slow one.
        let mut hist = [0u64; RUNQ_BUCKETS];
        hist[10] = 90;
        hist[20] = 10;
        assert!(log2_quantile(&hist, 0.9).unwrap() <= 2048);
        let p99 = log2_quantile(&hist, 0.99).unwrap();
        assert!((1 << 20..1 << 21).contains(&p99));
    }

    #[test]
    fn totals_add_and_subtract() {
        let mut a = SchedTotals {
            oncpu_ns: 10,
            voluntary_switches: 2,
            ..Default::default()
        };
        a.runq_hist[3] = 4;
        let mut b = a;
        b.add(&a);
        assert_eq!(b.oncpu_ns, 20);
        assert_eq!(b.runq_hist[3], 8);
        let d = b.since(&a);
        assert_eq!(d, a);
        assert_eq!(a.since(&b).oncpu_ns, 0);
    }

    #[test]
    fn summary_reports_mean_and_tail() {
        let mut t = SchedTotals {
            runq_ns: 100 * 1500,
            ..Default::default()
        };
        t.runq_hist[10] = 100;
        let s = summarize_runq(&t).unwrap();
        assert_eq!(s.count, 100);
        assert!((s.mean_us - 1.5).abs() < 1e-9);
        assert!((s.max_us - 2.048).abs() < 1e-9);
        assert!(summarize_runq(&SchedTotals::default()).is_none());
    }
}
