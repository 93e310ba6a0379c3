//! The live summary on stderr: redrawn in place on a terminal, one line per interval otherwise
//! (so logs and CI output stay readable).

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
};

use crate::{
    cuda::{analyzer::CudaInterval, report::live_line},
    http::stats::IntervalRequests,
    sched::model::{SchedTotals, summarize_runq},
    sched::tracker::Tracker,
    util::fmt::{fmt_bytes, fmt_us},
};

pub struct LiveView {
    tty: bool,
    enabled: bool,
    drawn_lines: usize,
    previous: BTreeMap<u32, SchedTotals>,
    last_shown_s: f64,
}

/// One interval's figures for one process.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    pub pid: u32,
    pub comm: String,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    /// Proportional set size, read when several processes are watched (their RSS would count
    /// shared pages once per process).
    pub pss_bytes: Option<u64>,
    pub threads: u64,
    pub delta: SchedTotals,
    pub exited: bool,
}

impl LiveView {
    pub fn new(enabled: bool) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            enabled,
            drawn_lines: 0,
            previous: BTreeMap::new(),
            last_shown_s: 0.0,
        }
    }

    /// Seconds since the previous view (the rate denominator).
    fn interval_s(&mut self, elapsed_s: f64) -> f64 {
        let d = elapsed_s - self.last_shown_s;
        self.last_shown_s = elapsed_s;
        d
    }

    /// Computes this interval's rows and remembers the totals for the next one.
    pub fn rows(&mut self, tracker: &Tracker) -> Vec<IntervalRow> {
        let several = tracker.procs.values().filter(|p| !p.exited).count() > 1;
        tracker
            .procs
            .values()
            .map(|p| {
                let total = tracker.process_totals(p.pid);
                let delta = total.since(&self.previous.get(&p.pid).copied().unwrap_or_default());
                self.previous.insert(p.pid, total);
                let last = p.history.as_ref().map(|h| &h.last);
                IntervalRow {
                    pid: p.pid,
                    comm: p.comm.clone(),
                    cpu_percent: p.cpu_percent,
                    rss_bytes: last.map_or(0, |s| s.rss_bytes),
                    pss_bytes: (several && !p.exited)
                        .then(|| crate::host::procfs::pss_bytes(p.pid))
                        .flatten(),
                    threads: last.map_or(0, |s| s.threads),
                    delta,
                    exited: p.exited,
                }
            })
            .collect()
    }

    pub fn show(
        &mut self,
        tracker: &Tracker,
        requests: Option<&IntervalRequests>,
        cuda: Option<&CudaInterval>,
        notes: &[String],
        elapsed_s: f64,
    ) {
        let rows = self.rows(tracker);
        if !self.enabled {
            return;
        }
        let interval_s = self.interval_s(elapsed_s);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let mut lines = render_table(&rows, elapsed_s);
            if let Some(r) = requests {
                lines.push(format!(
                    "                  {}",
                    render_requests(r, interval_s)
                ));
            }
            if let Some(c) = cuda.filter(|c| **c != CudaInterval::default()) {
                lines.push(format!("                  {}", live_line(c, interval_s)));
            }
            for n in notes {
                lines.push(format!("                  {n}"));
            }
            if self.drawn_lines > 0 {
                // Move up over the previous drawing and clear to the end of the screen.
                let _ = write!(err, "\x1b[{}A\x1b[J", self.drawn_lines);
            }
            for l in &lines {
                let _ = writeln!(err, "{l}");
            }
            self.drawn_lines = lines.len();
        } else {
            let mut line = render_line(&rows, elapsed_s);
            if let Some(r) = requests {
                line.push(' ');
                line.push_str(&render_requests(r, interval_s));
            }
            if let Some(c) = cuda.filter(|c| **c != CudaInterval::default()) {
                line.push(' ');
                line.push_str(&live_line(c, interval_s));
            }
            for n in notes {
                line.push_str(&format!(" [{n}]"));
            }
            let _ = writeln!(err, "{line}");
        }
    }
}

fn runq_p99(d: &SchedTotals) -> String {
    summarize_runq(d).map_or("-".into(), |l| fmt_us(l.p99_us))
}

/// The terminal view: a header and one row per process.
pub fn render_table(rows: &[IntervalRow], elapsed_s: f64) -> Vec<String> {
    let mut lines = vec![format!(
        "profiler  {elapsed_s:>6.1}s  {:>8} {:<16} {:>7} {:>10} {:>4} {:>9} {:>9} {:>9} {:>5}",
        "pid", "comm", "cpu%", "rss", "thr", "runq p99", "vol-csw", "inv-csw", "migr"
    )];
    for r in rows {
        lines.push(format!(
            "                  {:>8} {:<16} {:>7.1} {:>10} {:>4} {:>9} {:>9} {:>9} {:>5}{}",
            r.pid,
            r.comm,
            r.cpu_percent,
            fmt_bytes(r.rss_bytes),
            r.threads,
            runq_p99(&r.delta),
            r.delta.voluntary_switches,
            r.delta.involuntary_switches,
            r.delta.migrations,
            if r.exited { " exited" } else { "" }
        ));
    }
    lines
}

/// This interval's requests: rate, errors, latency, in flight, and TTFT/tokens when streaming.
pub fn render_requests(r: &IntervalRequests, interval_s: f64) -> String {
    let per_s = |n: u64| {
        if interval_s > 0.0 {
            n as f64 / interval_s
        } else {
            0.0
        }
    };
    let opt = |v: Option<f64>| v.map_or("-".into(), fmt_us);
    let mut s = format!(
        "req/s={:.1} err={} p50={} p99={} inflight={}",
        per_s(r.requests),
        r.errors,
        opt(r.p50_us),
        opt(r.p99_us),
        r.in_flight
    );
    if r.ttft_p50_us.is_some() || r.tokens > 0 {
        s.push_str(&format!(
            " ttft_p50={} tok/s={:.1}",
            opt(r.ttft_p50_us),
            per_s(r.tokens)
        ));
    }
    if r.events_lost > 0 {
        // The ring buffer overflowed: this interval's request figures undercount.
        s.push_str(&format!(" LOST={}events", r.events_lost));
    }
    s
}

/// The log view: everything for one interval on one line, processes summed.
pub fn render_line(rows: &[IntervalRow], elapsed_s: f64) -> String {
    let mut all = SchedTotals::default();
    for r in rows {
        all.add(&r.delta);
    }
    let live: Vec<&IntervalRow> = rows.iter().filter(|r| !r.exited).collect();
    // Several processes share pages (a server's workers, a model mapped by each): their RSS
    // would count those once per process, their PSS adds up to what they use together.
    let memory = match live.iter().map(|r| r.pss_bytes).sum::<Option<u64>>() {
        Some(pss) if live.len() > 1 => format!("pss={}", fmt_bytes(pss)),
        _ => format!("rss={}", fmt_bytes(rows.iter().map(|r| r.rss_bytes).sum())),
    };
    format!(
        "profiler: t={elapsed_s:.1}s procs={} threads={} cpu={:.1}% {memory} runq_p99={} \
         csw={}v/{}i migr={}",
        live.len(),
        rows.iter().map(|r| r.threads).sum::<u64>(),
        rows.iter().map(|r| r.cpu_percent).sum::<f64>(),
        runq_p99(&all),
        all.voluntary_switches,
        all.involuntary_switches,
        all.migrations
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_events_show_on_the_requests_part() {
        let mut r = IntervalRequests {
            requests: 10,
            ..Default::default()
        };
        assert!(!render_requests(&r, 1.0).contains("LOST"));
        r.events_lost = 1234;
        assert!(
            render_requests(&r, 1.0).ends_with(" LOST=1234events"),
            "{}",
            render_requests(&r, 1.0)
        );
    }

    fn row(pid: u32, cpu: f64, vol: u64) -> IntervalRow {
        IntervalRow {
            pid,
            comm: "srv".into(),
            cpu_percent: cpu,
            rss_bytes: 1 << 20,
            pss_bytes: None,
            threads: 3,
            delta: SchedTotals {
                voluntary_switches: vol,
                ..Default::default()
            },
            exited: false,
        }
    }

    #[test]
    fn line_sums_processes() {
        let l = render_line(&[row(1, 50.0, 3), row(2, 25.0, 4)], 2.0);
        assert!(
            l.starts_with("profiler: t=2.0s procs=2 threads=6 cpu=75.0%"),
            "{l}"
        );
        assert!(l.contains("rss=2.0 MiB"), "{l}");
        assert!(l.contains("csw=7v/0i"), "{l}");
        // With each process's PSS known, the line shows their sum instead of RSS.
        let mut a = row(1, 50.0, 3);
        let mut b = row(2, 25.0, 4);
        a.pss_bytes = Some(600 << 10);
        b.pss_bytes = Some(400 << 10);
        let l = render_line(&[a, b], 2.0);
        assert!(l.contains(" pss=1000.0 KiB ") && !l.contains("rss="), "{l}");
    }

    #[test]
    fn table_has_a_row_per_process() {
        let t = render_table(&[row(1, 50.0, 3), row(2, 25.0, 4)], 2.0);
        assert_eq!(t.len(), 3);
        assert!(t[1].contains("srv"));
    }

    #[test]
    fn rows_report_deltas_between_intervals() {
        let mut tracker = Tracker::default();
        tracker.add_process(7, true, None, 0.0);
        let mut s = profiler_common::ThreadStats::new(7);
        s.voluntary_switches = 5;
        tracker.apply_threads(&[(7, s)], 0);
        let mut view = LiveView::new(false);
        assert_eq!(view.rows(&tracker)[0].delta.voluntary_switches, 5);
        s.voluntary_switches = 8;
        tracker.apply_threads(&[(7, s)], 0);
        assert_eq!(view.rows(&tracker)[0].delta.voluntary_switches, 3);
    }
}
