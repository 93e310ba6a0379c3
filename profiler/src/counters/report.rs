//! The counters section of the report (serializable, per process), its text and the live line.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    arith::{CounterTotals, Vectorization, WidthShares, miss_ratio, vectorization},
    events::{EventId, VectorSource},
    stats::{ProcessCounters, SamplerStatus},
};
use crate::util::fmt::fmt_secs;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountersSection {
    /// `user+kernel`, or `user` where kernel-mode counting is not permitted.
    pub scope: &'static str,
    pub software: Option<SoftwareCounters>,
    pub software_unavailable: Option<String>,
    pub hardware: Option<HardwareCounters>,
    pub hardware_unavailable: Option<String>,
    pub vectorization: Option<Vectorization>,
    pub vectorization_unavailable: Option<String>,
    /// Some counts are extrapolations: the PMU was time-shared (value × enabled / running).
    pub multiplexed: bool,
    /// The events that were scaled, when `multiplexed`.
    pub scaled_events: Vec<&'static str>,
    /// Threads counted over the session, and how many of them exited (their counts kept).
    pub threads_counted: u64,
    pub threads_exited: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftwareCounters {
    pub task_clock_ms: f64,
    pub page_faults: u64,
    /// Absent in `user` scope: switches and migrations happen in kernel mode.
    pub context_switches: Option<u64>,
    pub migrations: Option<u64>,
}

/// Absent fields: the PMU does not offer that event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HardwareCounters {
    pub cycles: Option<u64>,
    pub instructions: Option<u64>,
    pub ipc: Option<f64>,
    pub branch_instructions: Option<u64>,
    pub branch_misses: Option<u64>,
    pub branch_miss_ratio: Option<f64>,
    pub cache_references: Option<u64>,
    pub cache_misses: Option<u64>,
    pub cache_miss_ratio: Option<f64>,
    pub l1d_loads: Option<u64>,
    pub l1d_load_misses: Option<u64>,
    pub l1d_load_miss_ratio: Option<f64>,
    pub llc_loads: Option<u64>,
    pub llc_load_misses: Option<u64>,
    pub llc_load_miss_ratio: Option<f64>,
    pub unsupported_events: Vec<String>,
}

fn miss(t: &CounterTotals, misses: EventId, accesses: EventId) -> Option<f64> {
    miss_ratio(t.get(misses)?, t.get(accesses)?)
}

pub fn hardware_counters(t: &CounterTotals, unsupported: &[String]) -> Option<HardwareCounters> {
    use EventId::*;
    let g = |id| t.get(id);
    let h = HardwareCounters {
        cycles: g(Cycles),
        instructions: g(Instructions),
        ipc: t.ratio(Instructions, Cycles),
        branch_instructions: g(BranchInstructions),
        branch_misses: g(BranchMisses),
        branch_miss_ratio: miss(t, BranchMisses, BranchInstructions),
        cache_references: g(CacheReferences),
        cache_misses: g(CacheMisses),
        cache_miss_ratio: miss(t, CacheMisses, CacheReferences),
        l1d_loads: g(L1dLoads),
        l1d_load_misses: g(L1dLoadMisses),
        l1d_load_miss_ratio: miss(t, L1dLoadMisses, L1dLoads),
        llc_loads: g(LlcLoads),
        llc_load_misses: g(LlcLoadMisses),
        llc_load_miss_ratio: miss(t, LlcLoadMisses, LlcLoads),
        unsupported_events: unsupported.to_vec(),
    };
    let counted = [
        Cycles,
        Instructions,
        BranchInstructions,
        CacheReferences,
        L1dLoads,
        LlcLoads,
    ]
    .iter()
    .any(|&id| g(id).is_some());
    counted.then_some(h)
}

/// The section for one process from its session totals.
pub fn build_section(status: &SamplerStatus, p: &ProcessCounters) -> CountersSection {
    use EventId::*;
    let t = &p.total;
    let not_opened = |what: &str| {
        Some(match &p.open_error {
            Some(e) => format!("no {what} counter could be opened for this process: {e}"),
            None => format!("no {what} counts (no thread of this process was counted)"),
        })
    };
    let software = t.get(TaskClock).map(|clock_ns| SoftwareCounters {
        task_clock_ms: clock_ns as f64 / 1e6,
        page_faults: t.get(PageFaults).unwrap_or(0),
        context_switches: t.get(ContextSwitches),
        migrations: t.get(CpuMigrations),
    });
    let software_unavailable = match (&software, &status.software_unavailable) {
        (Some(_), _) => None,
        (None, Some(reason)) => Some(reason.clone()),
        (None, None) => not_opened("software"),
    };
    let hardware = hardware_counters(t, &status.unsupported_events);
    let hardware_unavailable = match (&hardware, &status.hardware_unavailable) {
        (Some(_), _) => None,
        (None, Some(reason)) => Some(reason.clone()),
        (None, None) => not_opened("hardware"),
    };
    let vector = status.vector_source.and_then(|s| vectorization(s, t));
    let vectorization_unavailable = match (&vector, &status.vectorization_unavailable) {
        (Some(_), _) => None,
        (None, _) if status.hardware_unavailable.is_some() => {
            Some("needs hardware counters (unavailable here)".into())
        }
        (None, Some(reason)) => Some(reason.clone()),
        (None, None) => not_opened("vectorization"),
    };
    CountersSection {
        scope: if status.kernel_included {
            "user+kernel"
        } else {
            "user"
        },
        software,
        software_unavailable,
        hardware,
        hardware_unavailable,
        vectorization: vector,
        vectorization_unavailable,
        multiplexed: t.multiplexed(),
        scaled_events: t.multiplexed_events(),
        threads_counted: p.threads_counted,
        threads_exited: p.threads_exited,
    }
}

/// 1234 → "1234", 12_345 → "12.3 k", 4.5e6 → "4.5 M", 2.1e9 → "2.10 G".
pub fn fmt_count(v: u64) -> String {
    let f = v as f64;
    if f >= 1e9 {
        format!("{:.2} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} M", f / 1e6)
    } else if f >= 1e4 {
        format!("{:.1} k", f / 1e3)
    } else {
        v.to_string()
    }
}

fn pct(r: f64) -> String {
    if r > 0.0 && r < 0.001 {
        format!("{:.2}%", r * 100.0)
    } else {
        format!("{:.1}%", r * 100.0)
    }
}

fn widths(s: &WidthShares) -> String {
    format!(
        "scalar {}, 128-bit {}, 256-bit {}, 512-bit {}",
        pct(s.scalar),
        pct(s.packed_128),
        pct(s.packed_256),
        pct(s.packed_512)
    )
}

/// A miss figure: `L1d load miss 3.1% of 800.0 M`.
fn miss_text(label: &str, ratio: Option<f64>, of: Option<u64>) -> Option<String> {
    Some(format!("{label} {} of {}", pct(ratio?), fmt_count(of?)))
}

/// Appends the section as indented lines, to go under a process heading.
pub fn render_text(s: &CountersSection, out: &mut String) {
    let _ = write!(
        out,
        "  perf counters ({}, {} thread(s)",
        s.scope, s.threads_counted
    );
    if s.threads_exited > 0 {
        let _ = write!(out, ", {} exited", s.threads_exited);
    }
    out.push_str(")\n");
    match (&s.software, &s.software_unavailable) {
        (Some(sw), _) => {
            let opt =
                |v: Option<u64>| v.map_or("- (kernel side not counted)".into(), |v| v.to_string());
            let _ = writeln!(
                out,
                "    software  task-clock {}   page faults {}   context switches {}   \
                 migrations {}",
                fmt_secs(sw.task_clock_ms / 1e3),
                sw.page_faults,
                opt(sw.context_switches),
                opt(sw.migrations)
            );
        }
        (None, reason) => unavailable(out, "software", reason.as_deref()),
    }
    match (&s.hardware, &s.hardware_unavailable) {
        (Some(h), _) => {
            let mut parts = Vec::new();
            if let (Some(ipc), Some(i), Some(c)) = (h.ipc, h.instructions, h.cycles) {
                parts.push(format!(
                    "IPC {ipc:.2} ({} instructions / {} cycles)",
                    fmt_count(i),
                    fmt_count(c)
                ));
            }
            let misses = [
                miss_text("branch miss", h.branch_miss_ratio, h.branch_instructions),
                miss_text("cache miss", h.cache_miss_ratio, h.cache_references),
                miss_text("L1d load miss", h.l1d_load_miss_ratio, h.l1d_loads),
                miss_text("LLC load miss", h.llc_load_miss_ratio, h.llc_loads),
            ];
            parts.extend(misses.into_iter().flatten());
            let _ = writeln!(out, "    hardware  {}", parts.join("   "));
            if !h.unsupported_events.is_empty() {
                let _ = writeln!(
                    out,
                    "              not offered: {}",
                    h.unsupported_events.join("; ")
                );
            }
        }
        (None, reason) => unavailable(out, "hardware", reason.as_deref()),
    }
    match (&s.vectorization, &s.vectorization_unavailable) {
        (Some(v), _) => {
            let mut line = format!("    vector    {} FP {}", fmt_count(v.fp_ops), v.unit);
            if let Some(w) = &v.share_by_width {
                let _ = write!(line, ": {}", widths(w));
            }
            if let Some(f) = v.flops.filter(|_| v.unit != "flops") {
                let _ = write!(line, "; {} FLOPs", fmt_count(f));
            }
            if let Some(w) = &v.flop_share_by_width {
                let _ = write!(line, " (512-bit {} of FLOPs)", pct(w.packed_512));
            }
            if let Some(sp) = v.single_precision_flop_share {
                let _ = write!(line, "; single precision {} of FLOPs", pct(sp));
            }
            let _ = writeln!(out, "{line}");
        }
        (None, reason) => unavailable(out, "vector", reason.as_deref()),
    }
    if s.multiplexed {
        let _ = writeln!(
            out,
            "    note: scaled for PMU multiplexing (value × enabled / running): {}",
            s.scaled_events.join(", ")
        );
    }
}

fn unavailable(out: &mut String, label: &str, reason: Option<&str>) {
    let _ = writeln!(
        out,
        "    {label:<9} unavailable: {}",
        reason.unwrap_or("unknown reason")
    );
}

/// One short live-view line for an interval, e.g.
/// `perf: 1.85 CPUs, 120 csw/s, 3 migr/s, 40 faults/s, IPC 1.21, LLC miss 12.0%, packed FP 80%`
/// (`~` marks figures scaled for multiplexing).
pub fn live_line(iv: &CounterTotals, interval_s: f64) -> String {
    use EventId::*;
    let per_s = |id| {
        iv.get(id).map(|v| {
            if interval_s > 0.0 {
                v as f64 / interval_s
            } else {
                0.0
            }
        })
    };
    let mut s = String::from("perf:");
    let mut sep = " ";
    let mut push = |s: &mut String, text: String| {
        let _ = write!(s, "{sep}{text}");
        sep = ", ";
    };
    if let Some(ns) = per_s(TaskClock) {
        push(&mut s, format!("{:.2} CPUs", ns / 1e9));
    }
    for (id, unit) in [
        (ContextSwitches, "csw"),
        (CpuMigrations, "migr"),
        (PageFaults, "faults"),
    ] {
        if let Some(r) = per_s(id) {
            push(&mut s, format!("{r:.0} {unit}/s"));
        }
    }
    if let Some(ipc) = iv.ratio(Instructions, Cycles) {
        push(&mut s, format!("IPC {ipc:.2}"));
    }
    let misses = [
        ("cache miss", CacheMisses, CacheReferences),
        ("LLC miss", LlcLoadMisses, LlcLoads),
        ("branch miss", BranchMisses, BranchInstructions),
    ];
    for (label, m, a) in misses {
        if let Some(r) = miss(iv, m, a) {
            push(&mut s, format!("{label} {}", pct(r)));
        }
    }
    let sources = [VectorSource::IntelFpArith, VectorSource::AmdByWidth];
    if let Some(p) = sources
        .iter()
        .find_map(|&src| vectorization(src, iv).and_then(|v| v.packed_share))
    {
        push(&mut s, format!("packed FP {}", pct(p)));
    }
    if iv.multiplexed() {
        s.push_str(" ~");
    }
    if s == "perf:" {
        s.push_str(" no counts");
    }
    s
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
