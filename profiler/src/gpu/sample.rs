//! One NVML reading of every GPU: plain serializable data, filled by `nvml::GpuSampler` and
//! aggregated by `stats::GpuStats`. Every metric a device or driver may not offer is an
//! `Option` (None = not supported or the query failed), never an error for the whole sample.

use serde::Serialize;

/// All GPUs at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuSample {
    /// Seconds since the sampler was created (monotonic clock).
    pub t_s: f64,
    pub gpus: Vec<GpuReading>,
}

/// One GPU at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuReading {
    /// NVML index (not necessarily the CUDA device index).
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// Percent of the last sample period (driver-defined, 1/6 s to 1 s) a kernel was running.
    pub utilization_gpu_pct: Option<u32>,
    /// Percent of the last sample period device memory was read or written.
    pub utilization_mem_pct: Option<u32>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// Board power draw, watts (NVML reports milliwatts).
    pub power_w: Option<f64>,
    /// NVML total energy counter, millijoules since the driver was loaded (Volta and later).
    pub energy_mj: Option<u64>,
    pub temperature_c: Option<u32>,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    /// Active clock-event ("throttle") reasons by name (see `REASONS`); None when unsupported.
    pub clock_event_reasons: Option<Vec<&'static str>>,
    /// PCIe throughput over NVML's 20 ms window, KB/s as NVML reports it.
    pub pcie_tx_kb_s: Option<u32>,
    pub pcie_rx_kb_s: Option<u32>,
    /// GPM metrics between the previous sample and this one (Hopper and later); None when the
    /// device has no GPM or this is the first sample.
    pub gpm: Option<GpmReading>,
    /// Watched processes that hold a context on this GPU or used it since the last sample.
    pub processes: Vec<GpuProcess>,
}

/// NVML GPM metrics, percent (0–100) over the interval between two GPM samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GpmReading {
    /// `SM_UTIL`: time each SM had at least one warp assigned, averaged over SMs.
    pub sm_activity_pct: Option<f64>,
    /// `SM_OCCUPANCY`: resident warps vs the theoretical maximum, averaged over SMs.
    pub sm_occupancy_pct: Option<f64>,
    /// `ANY_TENSOR_UTIL`: time the SMs' tensor pipes were active.
    pub tensor_activity_pct: Option<f64>,
    /// `DRAM_BW_UTIL`: DRAM bandwidth used vs peak.
    pub dram_bw_util_pct: Option<f64>,
}

/// A watched process on one GPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// Device memory the process holds (None when the driver does not say, e.g. under MIG
    /// without permission).
    pub memory_used_bytes: Option<u64>,
    /// Mean SM utilization the driver attributed to the process since the previous sample;
    /// Some(0) when per-process stats work and the process did not run kernels.
    pub sm_util_pct: Option<u32>,
    pub mem_util_pct: Option<u32>,
}

/// NVML clock-event reason bits (`nvmlClocksEventReason*`), their report names, and whether
/// the reason lowers clocks below what the workload asked for (a throttle) rather than being
/// informational (idle, application or display clock settings).
pub const REASONS: [(u64, &str, bool); 9] = [
    (0x001, "gpu-idle", false),
    (0x002, "applications-clocks-setting", false),
    (0x004, "sw-power-cap", true),
    (0x008, "hw-slowdown", true),
    (0x010, "sync-boost", true),
    (0x020, "sw-thermal-slowdown", true),
    (0x040, "hw-thermal-slowdown", true),
    (0x080, "hw-power-brake-slowdown", true),
    (0x100, "display-clock-setting", false),
];

/// Names of the reasons set in an NVML clock-event bitmask (unknown bits are ignored).
pub fn reason_names(bits: u64) -> Vec<&'static str> {
    REASONS
        .iter()
        .filter(|(bit, _, _)| bits & bit != 0)
        .map(|&(_, name, _)| name)
        .collect()
}

/// Whether a reason name (from `REASONS`) is a throttle.
pub fn is_throttle(name: &str) -> bool {
    REASONS
        .iter()
        .any(|&(_, n, throttle)| throttle && n == name)
}

impl GpuReading {
    /// The active reasons that are throttles (empty when none or unsupported).
    pub fn throttle_reasons(&self) -> Vec<&'static str> {
        self.clock_event_reasons
            .iter()
            .flatten()
            .copied()
            .filter(|r| is_throttle(r))
            .collect()
    }
}

impl GpuSample {
    /// GPUs throttled at this instant, with their throttle reasons: for the live view and for
    /// flagging the interval this sample closes.
    pub fn throttled(&self) -> Vec<(u32, Vec<&'static str>)> {
        self.gpus
            .iter()
            .map(|g| (g.index, g.throttle_reasons()))
            .filter(|(_, r)| !r.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_bits_map_to_names_and_throttles() {
        assert_eq!(reason_names(0), Vec::<&str>::new());
        assert_eq!(reason_names(0x1 | 0x4), vec!["gpu-idle", "sw-power-cap"]);
        assert_eq!(reason_names(0x40 | 0x8000), vec!["hw-thermal-slowdown"]);
        assert!(is_throttle("sw-power-cap"));
        assert!(!is_throttle("gpu-idle"));
        assert!(!is_throttle("no-such-reason"));
        let s = GpuSample {
            t_s: 1.0,
            gpus: vec![
                GpuReading {
                    index: 0,
                    clock_event_reasons: Some(reason_names(0x1)),
                    ..Default::default()
                },
                GpuReading {
                    index: 1,
                    clock_event_reasons: Some(reason_names(0x1 | 0x20)),
                    ..Default::default()
                },
                GpuReading {
                    index: 2,
                    ..Default::default()
                },
            ],
        };
        assert_eq!(s.throttled(), vec![(1, vec!["sw-thermal-slowdown"])]);
    }
}
