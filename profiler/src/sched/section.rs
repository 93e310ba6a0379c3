//! The scheduler's part of the report: per process and thread, on-CPU, off-CPU and run-queue
//! time, switches, migrations and run-queue latency (serializable), and its text lines. Pure.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    sched::model::{LatencySummary, SchedTotals, bucket_high_ns, summarize_runq},
    util::fmt::{fmt_secs, fmt_us},
};

#[derive(Debug, Serialize, PartialEq)]
pub struct SchedReport {
    pub oncpu_s: f64,
    pub offcpu_s: f64,
    pub runq_wait_s: f64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub migrations: u64,
    pub runq_latency: Option<LatencySummary>,
    /// Log2 histogram of run-queue waits: `le_us` is each bucket's upper bound.
    pub runq_histogram: Vec<Bucket>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Bucket {
    pub le_us: f64,
    pub count: u64,
}

impl From<&SchedTotals> for SchedReport {
    fn from(t: &SchedTotals) -> Self {
        Self {
            oncpu_s: t.oncpu_ns as f64 / 1e9,
            offcpu_s: t.offcpu_ns as f64 / 1e9,
            runq_wait_s: t.runq_ns as f64 / 1e9,
            voluntary_switches: t.voluntary_switches,
            involuntary_switches: t.involuntary_switches,
            migrations: t.migrations,
            runq_latency: summarize_runq(t),
            runq_histogram: t
                .runq_hist
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(i, &count)| Bucket {
                    le_us: bucket_high_ns(i) as f64 / 1e3,
                    count,
                })
                .collect(),
        }
    }
}

/// One line (two with run-queue latency) of scheduler figures, each starting with `indent`.
pub fn write_sched_line(out: &mut String, indent: &str, s: &SchedReport) {
    let _ = write!(
        out,
        "{indent}threads summed: on-cpu {}   off-cpu (blocked) {}   run-queue wait {}   switches {} \
         voluntary, {} involuntary   migrations {}",
        fmt_secs(s.oncpu_s),
        fmt_secs(s.offcpu_s),
        fmt_secs(s.runq_wait_s),
        s.voluntary_switches,
        s.involuntary_switches,
        s.migrations
    );
    if let Some(l) = &s.runq_latency {
        let _ = write!(
            out,
            "\n{indent}run-queue latency ({} waits): mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  \
             max < {}",
            l.count,
            fmt_us(l.mean_us),
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us)
        );
    }
    out.push('\n');
}
