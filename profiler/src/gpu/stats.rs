//! GPU samples aggregated over the session (pure): per GPU mean/min/max of each metric, energy
//! both from the NVML counter and from integrating power (the two are reported side by side so
//! they can be checked against each other), busy seconds, throttled time and intervals; per
//! watched process peak GPU memory and SM utilization. `render_text` writes the report block.
//! Schema: the report's `gpu` section.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::gpu::sample::{GpuReading, GpuSample};
use crate::gpu::series::Series;
pub use crate::gpu::series::{CounterEnergy, Stat, ThrottleInterval, ThrottleTracker, Trapezoid};

/// Throttled intervals kept in the report (a flapping power cap could make thousands).
pub const MAX_INTERVALS: usize = 200;

#[derive(Debug, Default)]
struct GpuAcc {
    uuid: String,
    name: String,
    watched: bool,
    util: Series,
    mem_util: Series,
    power: Series,
    temp: Series,
    sm_clock: Series,
    mem_clock: Series,
    pcie_tx: Series,
    pcie_rx: Series,
    gpm: [Series; 4],
    mem_used_peak: Option<u64>,
    mem_total: Option<u64>,
    counter: CounterEnergy,
    power_int: Trapezoid,
    busy: Trapezoid,
    throttle: ThrottleTracker,
}

#[derive(Debug, Default)]
struct ProcAcc {
    mem_peak: Option<u64>,
    sm: Series,
}

/// Most GPU readings kept for `GpuSection::timeline` (an hour of 1 s intervals on 2 GPUs);
/// later ones are counted in `timeline_dropped`.
pub const MAX_TIMELINE: usize = 7_200;

/// One GPU at one sample, for the timeline: what is needed to tell busy from idle intervals
/// (the per-interval view the session aggregates cannot give).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the GPU sampler started (at attach: `started_at_unix_s`).
    pub t_s: f64,
    pub gpu: u32,
    pub utilization_pct: Option<u32>,
    pub power_w: Option<f64>,
    pub energy_mj: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub sm_activity_pct: Option<f64>,
    pub sm_occupancy_pct: Option<f64>,
    pub tensor_activity_pct: Option<f64>,
    pub dram_bw_util_pct: Option<f64>,
}

impl TimelinePoint {
    fn of(t_s: f64, g: &GpuReading) -> Self {
        let gpm = g.gpm.as_ref();
        Self {
            t_s,
            gpu: g.index,
            utilization_pct: g.utilization_gpu_pct,
            power_w: g.power_w,
            energy_mj: g.energy_mj,
            memory_used_bytes: g.memory_used_bytes,
            sm_activity_pct: gpm.and_then(|m| m.sm_activity_pct),
            sm_occupancy_pct: gpm.and_then(|m| m.sm_occupancy_pct),
            tensor_activity_pct: gpm.and_then(|m| m.tensor_activity_pct),
            dram_bw_util_pct: gpm.and_then(|m| m.dram_bw_util_pct),
        }
    }
}

/// The session-long aggregate: `push` each sample, `finish` at the end.
#[derive(Debug, Default)]
pub struct GpuStats {
    gpus: BTreeMap<u32, GpuAcc>,
    procs: BTreeMap<(u32, u32), ProcAcc>,
    timeline: Vec<TimelinePoint>,
    timeline_dropped: u64,
    samples: u64,
    first_t: Option<f64>,
    last_t: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpuSection {
    pub available: bool,
    /// Why there are no GPU figures (no driver, no GPU, no permission).
    pub unavailable_reason: Option<String>,
    pub driver_version: Option<String>,
    pub samples: u64,
    /// Seconds from the first sample to the last.
    pub span_s: f64,
    pub gpus: Vec<GpuSummary>,
    /// Watched processes per GPU they used.
    pub processes: Vec<GpuProcessSummary>,
    /// Spans with an active throttle reason, all GPUs, in time order per GPU (at most
    /// `MAX_INTERVALS`).
    pub throttled_intervals: Vec<ThrottleInterval>,
    pub throttled_intervals_dropped: u64,
    /// Every reading of every GPU in time order (at most `MAX_TIMELINE`), so busy and idle
    /// intervals can be told apart.
    pub timeline: Vec<TimelinePoint>,
    pub timeline_dropped: u64,
    /// What the sampler could not do (GPU without GPM, skipped devices).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpuSummary {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// A watched process held memory or ran kernels on this GPU.
    pub used_by_watched: bool,
    pub utilization_pct: Option<Stat>,
    pub memory_utilization_pct: Option<Stat>,
    pub memory_used_peak_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub power_w: Option<Stat>,
    pub temperature_c: Option<Stat>,
    pub sm_clock_mhz: Option<Stat>,
    pub mem_clock_mhz: Option<Stat>,
    pub pcie_tx_kb_s: Option<Stat>,
    pub pcie_rx_kb_s: Option<Stat>,
    /// NVML GPM (Hopper and later); null where the GPU has none.
    pub gpm: Option<GpmSummary>,
    pub energy: GpuEnergy,
    /// Utilization integrated over time: seconds a kernel was running (NVML's coarse
    /// utilization, not per-SM activity).
    pub busy_s: Option<f64>,
    /// Seconds with an active throttle reason.
    pub throttled_s: f64,
    /// Seconds each clock-event reason was active, throttles and informational ones.
    pub clock_event_s: BTreeMap<&'static str, f64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct GpmSummary {
    pub sm_activity_pct: Option<Stat>,
    pub sm_occupancy_pct: Option<Stat>,
    pub tensor_activity_pct: Option<Stat>,
    pub dram_bw_util_pct: Option<Stat>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct GpuEnergy {
    /// From the NVML total-energy counter (the figure to use).
    pub counter_j: Option<f64>,
    pub counter_covered_s: f64,
    /// Times the counter went backwards (driver reload); those segments are left out.
    pub counter_resets: u32,
    /// Power readings integrated with the trapezoid rule (a cross-check).
    pub power_integral_j: Option<f64>,
    pub power_covered_s: f64,
    /// How far the counter's mean power is from the integrated power's, percent (the energy
    /// difference when both cover the same span).
    pub counter_vs_power_pct: Option<f64>,
}

impl GpuEnergy {
    /// The counter when the GPU has one, the power integral otherwise.
    pub fn best_j(&self) -> Option<f64> {
        self.counter_j.or(self.power_integral_j)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GpuProcessSummary {
    pub pid: u32,
    pub gpu: u32,
    pub memory_peak_bytes: Option<u64>,
    pub sm_util_pct: Option<Stat>,
}

impl GpuStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, s: &GpuSample) {
        self.samples += 1;
        self.first_t.get_or_insert(s.t_s);
        self.last_t = s.t_s;
        for g in &s.gpus {
            let acc = self.gpus.entry(g.index).or_insert_with(|| GpuAcc {
                throttle: ThrottleTracker::new(g.index),
                ..Default::default()
            });
            acc.add(s.t_s, g);
            if self.timeline.len() < MAX_TIMELINE {
                self.timeline.push(TimelinePoint::of(s.t_s, g));
            } else {
                self.timeline_dropped += 1;
            }
            for p in &g.processes {
                let pa = self.procs.entry((p.pid, g.index)).or_default();
                pa.mem_peak = pa.mem_peak.max(p.memory_used_bytes);
                pa.sm.add(p.sm_util_pct.map(f64::from));
            }
        }
    }

    pub fn finish(self, driver_version: Option<String>, notes: Vec<String>) -> GpuSection {
        let mut intervals = Vec::new();
        let mut gpus = Vec::new();
        for (index, mut a) in self.gpus {
            a.throttle.finish();
            intervals.append(&mut a.throttle.intervals);
            gpus.push(a.summary(index));
        }
        let dropped = intervals.len().saturating_sub(MAX_INTERVALS) as u64;
        intervals.truncate(MAX_INTERVALS);
        GpuSection {
            available: true,
            unavailable_reason: None,
            driver_version,
            samples: self.samples,
            span_s: self.first_t.map_or(0.0, |t| self.last_t - t),
            gpus,
            processes: self
                .procs
                .into_iter()
                .map(|((pid, gpu), p)| GpuProcessSummary {
                    pid,
                    gpu,
                    memory_peak_bytes: p.mem_peak,
                    sm_util_pct: p.sm.stat(),
                })
                .collect(),
            throttled_intervals: intervals,
            throttled_intervals_dropped: dropped,
            timeline: self.timeline,
            timeline_dropped: self.timeline_dropped,
            notes,
        }
    }
}

impl GpuAcc {
    fn add(&mut self, t: f64, g: &GpuReading) {
        self.uuid.clone_from(&g.uuid);
        self.name.clone_from(&g.name);
        self.watched |= !g.processes.is_empty();
        let f = |v: Option<u32>| v.map(f64::from);
        self.util.add(f(g.utilization_gpu_pct));
        self.mem_util.add(f(g.utilization_mem_pct));
        self.power.add(g.power_w);
        self.temp.add(f(g.temperature_c));
        self.sm_clock.add(f(g.sm_clock_mhz));
        self.mem_clock.add(f(g.mem_clock_mhz));
        self.pcie_tx.add(f(g.pcie_tx_kb_s));
        self.pcie_rx.add(f(g.pcie_rx_kb_s));
        if let Some(m) = &g.gpm {
            let vals = [
                m.sm_activity_pct,
                m.sm_occupancy_pct,
                m.tensor_activity_pct,
                m.dram_bw_util_pct,
            ];
            for (s, v) in self.gpm.iter_mut().zip(vals) {
                s.add(v);
            }
        }
        self.mem_used_peak = self.mem_used_peak.max(g.memory_used_bytes);
        self.mem_total = g.memory_total_bytes.or(self.mem_total);
        self.counter.push(t, g.energy_mj);
        self.power_int.push(t, g.power_w);
        self.busy
            .push(t, f(g.utilization_gpu_pct).map(|u| u / 100.0));
        self.throttle
            .push(t, g.clock_event_reasons.as_deref().unwrap_or_default());
    }

    fn summary(self, index: u32) -> GpuSummary {
        let c = self.counter;
        let p = self.power_int;
        let counter_j = (c.covered_s > 0.0).then_some(c.joules);
        let power_integral_j = (p.covered_s > 0.0).then_some(p.integral);
        let counter_vs_power_pct = match (counter_j, power_integral_j) {
            (Some(cj), Some(pj)) if pj > 0.0 => {
                Some((cj / c.covered_s - pj / p.covered_s) / (pj / p.covered_s) * 100.0)
            }
            _ => None,
        };
        let gpm = self.gpm.iter().any(|s| s.n > 0).then(|| GpmSummary {
            sm_activity_pct: self.gpm[0].stat(),
            sm_occupancy_pct: self.gpm[1].stat(),
            tensor_activity_pct: self.gpm[2].stat(),
            dram_bw_util_pct: self.gpm[3].stat(),
        });
        GpuSummary {
            index,
            uuid: self.uuid,
            name: self.name,
            used_by_watched: self.watched,
            utilization_pct: self.util.stat(),
            memory_utilization_pct: self.mem_util.stat(),
            memory_used_peak_bytes: self.mem_used_peak,
            memory_total_bytes: self.mem_total,
            power_w: self.power.stat(),
            temperature_c: self.temp.stat(),
            sm_clock_mhz: self.sm_clock.stat(),
            mem_clock_mhz: self.mem_clock.stat(),
            pcie_tx_kb_s: self.pcie_tx.stat(),
            pcie_rx_kb_s: self.pcie_rx.stat(),
            gpm,
            energy: GpuEnergy {
                counter_j,
                counter_covered_s: c.covered_s,
                counter_resets: c.resets,
                power_integral_j,
                power_covered_s: p.covered_s,
                counter_vs_power_pct,
            },
            busy_s: (self.busy.covered_s > 0.0).then_some(self.busy.integral),
            throttled_s: self.throttle.throttled_s,
            clock_event_s: self.throttle.reason_s,
        }
    }
}

impl GpuSection {
    /// The section when NVML cannot be used: the reason, no figures.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            unavailable_reason: Some(reason.into()),
            driver_version: None,
            samples: 0,
            span_s: 0.0,
            gpus: Vec::new(),
            processes: Vec::new(),
            throttled_intervals: Vec::new(),
            throttled_intervals_dropped: 0,
            timeline: Vec::new(),
            timeline_dropped: 0,
            notes: Vec::new(),
        }
    }

    fn selected(&self, watched_only: bool) -> impl Iterator<Item = &GpuSummary> {
        self.gpus
            .iter()
            .filter(move |g| !watched_only || g.used_by_watched)
    }

    /// Joules over the session summed over GPUs (all, or those a watched process used); None
    /// when no selected GPU has an energy figure. Whole-GPU energy: other processes sharing a
    /// GPU are included.
    pub fn energy_j(&self, watched_only: bool) -> Option<f64> {
        let v: Vec<f64> = self
            .selected(watched_only)
            .filter_map(|g| g.energy.best_j())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }

    /// GPU busy seconds (utilization × time) summed over the same GPUs as `energy_j`.
    pub fn busy_s(&self, watched_only: bool) -> Option<f64> {
        let v: Vec<f64> = self
            .selected(watched_only)
            .filter_map(|g| g.busy_s)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
