//! The text block of the report's `gpu` section.

use std::fmt::Write as _;

use crate::gpu::stats::{GpuSection, GpuSummary, Stat};
use crate::util::fmt::{fmt_bytes, fmt_secs};

fn mean_max(s: &Option<Stat>, unit: &str) -> String {
    s.map_or("-".into(), |s| {
        format!("{:.1}{unit} avg, {:.1}{unit} max", s.mean, s.max)
    })
}

fn mean(s: &Option<Stat>, unit: &str) -> String {
    s.map_or("-".into(), |s| format!("{:.1}{unit}", s.mean))
}

/// Appends the GPU block to `out` (a leading blank line, like the other sections).
pub fn render_text(section: &GpuSection, out: &mut String) {
    out.push('\n');
    if !section.available {
        let _ = writeln!(
            out,
            "GPU: unavailable — {}",
            section
                .unavailable_reason
                .as_deref()
                .unwrap_or("unknown reason")
        );
        return;
    }
    let _ = writeln!(
        out,
        "GPU: {} device(s), driver {}, {} samples over {}",
        section.gpus.len(),
        section.driver_version.as_deref().unwrap_or("?"),
        section.samples,
        fmt_secs(section.span_s)
    );
    for g in &section.gpus {
        write_gpu(out, g);
    }
    for p in &section.processes {
        let _ = writeln!(
            out,
            "  pid {} on GPU {}: peak memory {}, SM {}",
            p.pid,
            p.gpu,
            p.memory_peak_bytes.map_or("-".into(), fmt_bytes),
            mean_max(&p.sm_util_pct, "%")
        );
    }
    if !section.throttled_intervals.is_empty() {
        let _ = writeln!(out, "  throttled intervals (s since start):");
        for iv in &section.throttled_intervals {
            let _ = writeln!(
                out,
                "    GPU {} {:.1}–{:.1} s: {}",
                iv.gpu,
                iv.start_s,
                iv.end_s,
                iv.reasons.join(", ")
            );
        }
        if section.throttled_intervals_dropped > 0 {
            let _ = writeln!(
                out,
                "    … {} more not listed",
                section.throttled_intervals_dropped
            );
        }
    }
    for n in &section.notes {
        let _ = writeln!(out, "  note: {n}");
    }
}

fn write_gpu(out: &mut String, g: &GpuSummary) {
    let _ = writeln!(
        out,
        "  GPU {} {} ({}){}",
        g.index,
        g.name,
        g.uuid,
        if g.used_by_watched {
            ", used by the watched processes"
        } else {
            ""
        }
    );
    let mem = match (g.memory_used_peak_bytes, g.memory_total_bytes) {
        (Some(u), Some(t)) => format!("{} peak of {}", fmt_bytes(u), fmt_bytes(t)),
        (Some(u), None) => format!("{} peak", fmt_bytes(u)),
        _ => "-".into(),
    };
    let _ = writeln!(
        out,
        "    utilization {}   memory bus {}   memory {}",
        mean_max(&g.utilization_pct, "%"),
        mean_max(&g.memory_utilization_pct, "%"),
        mem
    );
    let e = &g.energy;
    let energy = match (e.counter_j, e.power_integral_j) {
        (Some(c), Some(p)) => format!(
            "{c:.1} J (counter), {p:.1} J (∫ power{})",
            e.counter_vs_power_pct
                .map_or(String::new(), |d| format!(", counter {d:+.1}%"))
        ),
        (Some(c), None) => format!("{c:.1} J (counter)"),
        (None, Some(p)) => format!("{p:.1} J (∫ power; no energy counter)"),
        (None, None) => "-".into(),
    };
    let _ = writeln!(
        out,
        "    power {}   energy {}   temperature {} max",
        mean_max(&g.power_w, " W"),
        energy,
        g.temperature_c
            .map_or("-".into(), |t| format!("{:.0} °C", t.max))
    );
    let _ = writeln!(
        out,
        "    SM clock {} (min {})   memory clock {}   PCIe tx {} rx {}   busy {}",
        mean(&g.sm_clock_mhz, " MHz"),
        g.sm_clock_mhz
            .map_or("-".into(), |s| format!("{:.0} MHz", s.min)),
        mean(&g.mem_clock_mhz, " MHz"),
        mean(&g.pcie_tx_kb_s, " KB/s"),
        mean(&g.pcie_rx_kb_s, " KB/s"),
        g.busy_s.map_or("-".into(), fmt_secs)
    );
    match &g.gpm {
        Some(m) => {
            let _ = writeln!(
                out,
                "    GPM: SM activity {}   SM occupancy {}   tensor {}   DRAM bandwidth {}",
                mean_max(&m.sm_activity_pct, "%"),
                mean_max(&m.sm_occupancy_pct, "%"),
                mean_max(&m.tensor_activity_pct, "%"),
                mean_max(&m.dram_bw_util_pct, "%")
            );
        }
        None => {
            let _ = writeln!(out, "    GPM: not available on this GPU");
        }
    }
    if g.throttled_s > 0.0 {
        let reasons: Vec<String> = g
            .clock_event_s
            .iter()
            .filter(|&(r, s)| crate::gpu::sample::is_throttle(r) && *s > 0.0)
            .map(|(r, s)| format!("{r} {}", fmt_secs(*s)))
            .collect();
        let _ = writeln!(
            out,
            "    throttled {}: {}",
            fmt_secs(g.throttled_s),
            reasons.join(", ")
        );
    }
}
