//! The hardware side of a session: perf counters on the watched processes, GPU telemetry from
//! NVML, CPU energy from RAPL, and the efficiency figures that combine them with requests and
//! tokens. Each part that cannot run here says why once and the rest carries on.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::{
    bpf::{Capability, Probes},
    counters::{CounterSampler, CountersSection, arith::CounterTotals, events::EventId},
    derive::efficiency::{EfficiencyInputs, EfficiencySection},
    energy::{CpuEnergySection, CpuEnergyStats, RaplSampler},
    gpu::{GpuSampler, GpuSection, GpuStats, sample::GpuSample},
};

/// What the user asked of the hardware samplers.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Open perf counters on the watched processes.
    pub counters: bool,
    /// Sample the GPUs through NVML.
    pub gpu: bool,
    /// Grid carbon intensity (gCO2/kWh) for the carbon estimate.
    pub carbon_intensity: Option<f64>,
}

pub struct HardwareCapture {
    counters: Option<CounterSampler>,
    counted: HashSet<u32>,
    gpu: Result<(GpuSampler, GpuStats), String>,
    cpu: Result<(RaplSampler, CpuEnergyStats), String>,
    carbon_intensity: Option<f64>,
    /// The latest GPU reading and each GPU's energy counter (mJ) at the first one, for the
    /// exporter.
    last_gpu: Option<GpuSample>,
    gpu_energy_base_mj: BTreeMap<u32, u64>,
}

/// What the report shows of it.
#[derive(Debug, Serialize)]
pub struct HardwareReport {
    /// Per process (by pid); also shown under each process in the text report.
    #[serde(skip)]
    pub counters: BTreeMap<u32, CountersSection>,
    pub gpu: GpuSection,
    pub cpu_energy: CpuEnergySection,
    pub efficiency: EfficiencySection,
}

/// What the request and CUDA capabilities contribute to the efficiency figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Workload {
    pub requests: Option<u64>,
    pub output_tokens: Option<u64>,
    /// GPU busy seconds estimated from CUDA launch→sync spans (used without NVML).
    pub cuda_busy_s: Option<f64>,
}

impl HardwareCapture {
    pub fn start(pids: &[u32], config: &Config) -> Self {
        let counters = config.counters.then(|| CounterSampler::new(pids));
        let gpu = if !config.gpu {
            Err("GPU sampling off (--no-gpu)".to_string())
        } else {
            GpuSampler::new().map(|mut s| {
                // A reading at attach, so the energy counter's delta covers the first interval.
                let mut stats = GpuStats::new();
                let first = s.sample(pids);
                stats.push(&first);
                (s, stats, first)
            })
        };
        let cpu = RaplSampler::new().map(|mut s| {
            // The first sample sets each process's baseline.
            let _ = s.sample(pids);
            (s, CpuEnergyStats::new())
        });
        let (gpu, last_gpu) = match gpu {
            Ok((s, stats, first)) => (Ok((s, stats)), Some(first)),
            Err(e) => (Err(e), None),
        };
        let gpu_energy_base_mj = last_gpu
            .iter()
            .flat_map(|s| &s.gpus)
            .filter_map(|g| Some((g.index, g.energy_mj?)))
            .collect();
        Self {
            counters,
            counted: pids.iter().copied().collect(),
            gpu,
            cpu,
            carbon_intensity: config.carbon_intensity,
            last_gpu,
            gpu_energy_base_mj,
        }
    }

    /// One line per part that is unavailable, for the start-up notes.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(c) = &self.counters {
            let st = c.status();
            if let Some(e) = &st.software_unavailable {
                notes.push(format!("software perf counters unavailable: {e}"));
            }
            if let Some(e) = &st.hardware_unavailable {
                notes.push(format!("hardware perf counters unavailable: {e}"));
            }
        }
        if let Err(e) = &self.gpu {
            notes.push(format!("GPU metrics unavailable: {e}"));
        }
        if let Err(e) = &self.cpu {
            notes.push(format!("CPU energy unavailable: {e}"));
        }
        notes
    }

    /// Opens counters on threads (and child processes) that appeared since the last call: a
    /// thread is counted from the first call after it started (the session's poll tick, every
    /// 50 ms).
    fn follow_threads(&mut self, pids: &[u32]) {
        if let Some(c) = self.counters.as_mut() {
            for &pid in pids {
                if self.counted.insert(pid) {
                    c.add_process(pid);
                }
            }
            c.refresh_all();
        }
    }

    /// Samples every part for the interval that just ended; returns the live-view lines
    /// (counters of each process whose threads ran, throttled GPUs).
    pub fn sample(&mut self, pids: &[u32], interval_s: f64) -> Vec<String> {
        let mut live = Vec::new();
        self.follow_threads(pids);
        if let Some(c) = self.counters.as_mut() {
            for pc in c.read() {
                if pc.interval.get(EventId::TaskClock).is_some_and(|ns| ns > 0) {
                    live.push(format!(
                        "pid {}: {}",
                        pc.pid,
                        crate::counters::live_line(&pc.interval, interval_s)
                    ));
                }
            }
        }
        if let Ok((sampler, stats)) = self.gpu.as_mut() {
            let s = sampler.sample(pids);
            for (gpu, reasons) in s.throttled() {
                live.push(format!("gpu{gpu} throttled: {}", reasons.join(", ")));
            }
            stats.push(&s);
            self.last_gpu = Some(s);
        }
        if let Ok((sampler, stats)) = self.cpu.as_mut() {
            stats.push(&sampler.sample(pids));
        }
        live
    }

    /// perf counter totals of `pid` so far.
    pub fn counter_totals(&self, pid: u32) -> Option<&CounterTotals> {
        self.counters.as_ref()?.counters(pid).map(|c| &c.total)
    }

    /// The latest GPU reading.
    pub fn last_gpu(&self) -> Option<&GpuSample> {
        self.last_gpu.as_ref()
    }

    /// Energy of GPU `index` since the first reading (joules), from the NVML energy counter.
    pub fn gpu_energy_since_start_j(&self, index: u32) -> Option<f64> {
        let base = *self.gpu_energy_base_mj.get(&index)?;
        let now = self
            .last_gpu
            .as_ref()?
            .gpus
            .iter()
            .find(|g| g.index == index)?
            .energy_mj?;
        Some(now.saturating_sub(base) as f64 / 1e3)
    }

    /// CPU energy so far, when RAPL is readable.
    pub fn cpu_energy(&self) -> Option<&CpuEnergyStats> {
        self.cpu.as_ref().ok().map(|(_, stats)| stats)
    }

    pub fn finish(mut self, pids: &[u32], duration_s: f64, workload: Workload) -> HardwareReport {
        // A last reading, so energy covers the time after the last interval too.
        if let Ok((sampler, stats)) = self.gpu.as_mut() {
            stats.push(&sampler.sample(pids));
        }
        if let Ok((sampler, stats)) = self.cpu.as_mut() {
            stats.push(&sampler.sample(pids));
        }
        let counters = self.counters.map(|mut c| c.finish()).unwrap_or_default();
        let gpu = match self.gpu {
            Ok((sampler, stats)) => stats.finish(sampler.driver_version(), sampler.notes()),
            Err(reason) => GpuSection::unavailable(reason),
        };
        let cpu_energy = match self.cpu {
            Ok((sampler, stats)) => stats.finish(sampler.source(), vec![]),
            Err(reason) => CpuEnergySection::unavailable(reason),
        };
        let (gpu_busy_s, gpu_busy_source) = match (gpu.busy_s(true), workload.cuda_busy_s) {
            (Some(s), _) => (Some(s), Some("nvml-utilization")),
            (None, Some(s)) => (Some(s), Some("cuda-estimate")),
            (None, None) => (None, None),
        };
        let efficiency = crate::derive::efficiency::compute(&EfficiencyInputs {
            duration_s,
            requests: workload.requests,
            output_tokens: workload.output_tokens,
            gpu_energy_j: gpu.energy_j(true),
            cpu_energy_j: cpu_energy.attributed_j(),
            gpu_busy_s,
            gpu_busy_source,
            carbon_intensity_g_per_kwh: self.carbon_intensity,
        });
        HardwareReport {
            counters,
            gpu,
            cpu_energy,
            efficiency,
        }
    }
}

impl Capability for HardwareCapture {
    fn poll(&mut self, _probes: &mut Probes, watched: &[u32]) {
        self.follow_threads(watched);
    }
}
