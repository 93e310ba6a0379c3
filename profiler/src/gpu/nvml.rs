//! The NVML sampler (I/O): one `GpuSample` per call, covering every GPU NVML enumerates.
//!
//! NVML is loaded once per process and kept for its lifetime (`NVML`): devices and GPM samples
//! borrow it, and a `'static` borrow lets the sampler own them without self-references.
//! Starting another sampler reuses the loaded library.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::Instant;

use nvml_wrapper::enum_wrappers::device::{Clock, PcieUtilCounter, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::{Device, GpmSample, Nvml};

use crate::gpu::sample::{GpmReading, GpuProcess, GpuReading, GpuSample, reason_names};

static NVML: OnceLock<Nvml> = OnceLock::new();

/// Where `libnvidia-ml.so.1` is tried: the loader's search path first, then where GPU images
/// and distributions put it when the loader is not told.
const LIB_CANDIDATES: [&str; 3] = [
    "libnvidia-ml.so.1",
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
];

/// The GPM metrics read each interval, in `GpmReading` field order.
const GPM_METRICS: [GpmMetricId; 4] = [
    GpmMetricId::SmUtil,
    GpmMetricId::SmOccupancy,
    GpmMetricId::AnyTensorUtil,
    GpmMetricId::DramBwUtil,
];

struct DeviceState {
    device: Device<'static>,
    index: u32,
    uuid: String,
    name: String,
    /// GPM is supported and the last GPM sample, to diff against on the next call.
    gpm: bool,
    gpm_prev: Option<GpmSample<'static>>,
    /// Newest per-process utilization timestamp seen (µs, CPU clock): the next query asks for
    /// samples after it.
    proc_ts_us: u64,
}

pub struct GpuSampler {
    devices: Vec<DeviceState>,
    start: Instant,
    driver_version: Option<String>,
    notes: Vec<String>,
}

const NO_LIBRARY: &str = "no NVIDIA driver (libnvidia-ml.so.1 not found)";

/// One line saying why NVML cannot be used.
fn init_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) => NO_LIBRARY.into(),
        NvmlError::DriverNotLoaded => "NVIDIA driver not loaded (NVML: driver not running)".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        NvmlError::LibRmVersionMismatch => {
            "NVML library and NVIDIA kernel driver versions differ (reboot or reload the driver)"
                .into()
        }
        e => format!("NVML initialization failed: {e}"),
    }
}

fn load() -> Result<&'static Nvml, String> {
    if let Some(n) = NVML.get() {
        return Ok(n);
    }
    for lib in LIB_CANDIDATES {
        match Nvml::builder().lib_path(OsStr::new(lib)).init() {
            // A racing thread may have stored one first: ours is then dropped (NVML counts
            // init/shutdown pairs).
            Ok(n) => return Ok(NVML.get_or_init(|| n)),
            // Only "library not found" moves on to the next path; a found library that fails
            // to initialize is the answer.
            Err(NvmlError::LibloadingError(_)) => {}
            Err(e) => return Err(init_reason(&e)),
        }
    }
    Err(NO_LIBRARY.into())
}

impl GpuSampler {
    /// Loads NVML and enumerates the GPUs. `Err` is a one-line reason (no driver, no GPU, no
    /// permission) for the report; it never panics.
    pub fn new() -> Result<Self, String> {
        let nvml = load()?;
        let count = nvml
            .device_count()
            .map_err(|e| format!("NVML could not count GPUs: {e}"))?;
        if count == 0 {
            return Err("NVML found no GPU".into());
        }
        let mut notes = Vec::new();
        let mut devices = Vec::new();
        for index in 0..count {
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    notes.push(format!("GPU {index} skipped: {e}"));
                    continue;
                }
            };
            let gpm = match device.gpm_support() {
                Ok(true) => true,
                Ok(false) => {
                    notes.push(format!("GPU {index}: no GPM (needs Hopper or later)"));
                    false
                }
                Err(e) => {
                    notes.push(format!("GPU {index}: no GPM ({e})"));
                    false
                }
            };
            // Baselines: a GPM sample to diff the first interval against, and the newest
            // per-process sample the driver holds (older ones predate the session).
            let gpm_prev = if gpm { device.gpm_sample().ok() } else { None };
            let proc_ts_us = device
                .process_utilization_stats(None)
                .ok()
                .and_then(|v| v.iter().map(|u| u.timestamp).max())
                .unwrap_or(0);
            devices.push(DeviceState {
                index,
                uuid: device.uuid().unwrap_or_default(),
                name: device.name().unwrap_or_default(),
                gpm,
                gpm_prev,
                proc_ts_us,
                device,
            });
        }
        if devices.is_empty() {
            return Err(format!("NVML could not open any of {count} GPU(s)"));
        }
        Ok(Self {
            devices,
            start: Instant::now(),
            driver_version: nvml.sys_driver_version().ok(),
            notes,
        })
    }

    pub fn driver_version(&self) -> Option<String> {
        self.driver_version.clone()
    }

    /// What the sampler could not do (skipped GPUs, GPU without GPM), for the report.
    pub fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// Reads every GPU now. `watched_pids`: the processes whose GPU memory and SM utilization
    /// are reported (others on the GPU are not listed).
    pub fn sample(&mut self, watched_pids: &[u32]) -> GpuSample {
        let t_s = self.start.elapsed().as_secs_f64();
        let gpus = self
            .devices
            .iter_mut()
            .map(|d| read_device(d, watched_pids))
            .collect();
        GpuSample { t_s, gpus }
    }
}

fn read_device(d: &mut DeviceState, watched: &[u32]) -> GpuReading {
    let dev = &d.device;
    let util = dev.utilization_rates().ok();
    let mem = dev.memory_info().ok();
    GpuReading {
        index: d.index,
        uuid: d.uuid.clone(),
        name: d.name.clone(),
        utilization_gpu_pct: util.as_ref().map(|u| u.gpu),
        utilization_mem_pct: util.as_ref().map(|u| u.memory),
        memory_used_bytes: mem.as_ref().map(|m| m.used),
        memory_total_bytes: mem.as_ref().map(|m| m.total),
        power_w: dev.power_usage().ok().map(|mw| f64::from(mw) / 1e3),
        energy_mj: dev.total_energy_consumption().ok(),
        temperature_c: dev.temperature(TemperatureSensor::Gpu).ok(),
        sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
        mem_clock_mhz: dev.clock_info(Clock::Memory).ok(),
        clock_event_reasons: dev
            .current_throttle_reasons()
            .ok()
            .map(|r| reason_names(r.bits())),
        pcie_tx_kb_s: dev.pcie_throughput(PcieUtilCounter::Send).ok(),
        pcie_rx_kb_s: dev.pcie_throughput(PcieUtilCounter::Receive).ok(),
        gpm: read_gpm(d),
        processes: read_processes(d, watched),
    }
}

/// GPM metrics since the previous call's GPM sample; keeps this call's sample for the next.
fn read_gpm(d: &mut DeviceState) -> Option<GpmReading> {
    if !d.gpm {
        return None;
    }
    let nvml = NVML.get()?;
    // A failed sample drops the previous one too: never diff across a gap.
    let Ok(now) = d.device.gpm_sample() else {
        d.gpm_prev = None;
        return None;
    };
    let prev = d.gpm_prev.replace(now)?;
    let cur = d.gpm_prev.as_ref()?;
    let results = gpm_metrics_get(nvml, &prev, cur, &GPM_METRICS).ok()?;
    let value = |i: usize| {
        results
            .get(i)
            .and_then(|r| r.as_ref().ok())
            .map(|m| m.value)
    };
    Some(GpmReading {
        sm_activity_pct: value(0),
        sm_occupancy_pct: value(1),
        tensor_activity_pct: value(2),
        dram_bw_util_pct: value(3),
    })
}

/// Watched processes on this GPU: memory from the compute-process list, SM and memory
/// utilization averaged over the driver's per-process samples since the previous call.
fn read_processes(d: &mut DeviceState, watched: &[u32]) -> Vec<GpuProcess> {
    if watched.is_empty() {
        return Vec::new();
    }
    let mut out: BTreeMap<u32, GpuProcess> = BTreeMap::new();
    if let Ok(procs) = d.device.running_compute_processes() {
        for p in procs.iter().filter(|p| watched.contains(&p.pid)) {
            let used = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            };
            let e = out.entry(p.pid).or_insert(GpuProcess {
                pid: p.pid,
                ..Default::default()
            });
            // MIG lists a process once per instance: add them up.
            e.memory_used_bytes = match (e.memory_used_bytes, used) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
    }
    let utils = match d.device.process_utilization_stats(d.proc_ts_us) {
        Ok(v) => Some(v),
        // NOT_FOUND: no process ran kernels since the timestamp.
        Err(NvmlError::NotFound) => Some(Vec::new()),
        Err(_) => None,
    };
    let Some(utils) = utils else {
        return out.into_values().collect();
    };
    let mut sums: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
    for u in &utils {
        d.proc_ts_us = d.proc_ts_us.max(u.timestamp);
        if watched.contains(&u.pid) {
            let s = sums.entry(u.pid).or_default();
            s.0 += u64::from(u.sm_util);
            s.1 += u64::from(u.mem_util);
            s.2 += 1;
        }
    }
    for (pid, (sm, mem, n)) in sums {
        let e = out.entry(pid).or_insert(GpuProcess {
            pid,
            ..Default::default()
        });
        e.sm_util_pct = Some((sm / n) as u32);
        e.mem_util_pct = Some((mem / n) as u32);
    }
    for e in out.values_mut() {
        e.sm_util_pct.get_or_insert(0);
        e.mem_util_pct.get_or_insert(0);
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a driver (this development machine) `new` must fail with a one-line reason;
    /// with one it must succeed and sample without panicking.
    #[test]
    fn new_gives_a_reason_or_samples() {
        match GpuSampler::new() {
            Err(reason) => {
                assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
                eprintln!("GpuSampler::new: {reason}");
            }
            Ok(mut s) => {
                let a = s.sample(&[std::process::id()]);
                let b = s.sample(&[]);
                assert!(!a.gpus.is_empty());
                assert!(b.t_s >= a.t_s);
            }
        }
    }

    #[test]
    fn init_reasons_are_one_line() {
        assert_eq!(
            init_reason(&NvmlError::DriverNotLoaded),
            "NVIDIA driver not loaded (NVML: driver not running)"
        );
        assert!(!init_reason(&NvmlError::Unknown).contains('\n'));
    }
}
