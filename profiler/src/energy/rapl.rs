//! CPU energy from RAPL (I/O, with the arithmetic as pure functions below it).
//!
//! Sources, tried in order:
//! 1. powercap sysfs: `/sys/class/powercap/intel-rapl:*` (AMD too on recent kernels), each zone's
//!    `energy_uj`, which wraps at `max_energy_range_uj`; reading it needs root.
//! 2. the perf `power` PMU: type from `/sys/bus/event_source/devices/power/type`, events
//!    `energy-{pkg,cores,ram,gpu,psys}` with their `.scale` (joules per count), opened
//!    system-wide on each CPU of the PMU's `cpumask` (root). The kernel extends the hardware
//!    counter to 64 bits, so only a 64-bit wrap is possible.
//!
//! `psys` is platform energy (package, memory, chipset and more, as the platform defines it),
//! not CPU energy. It counts as a usable domain and is labelled `platform (psys)`; the CPU
//! figure and the attribution use the package domains when there are any and fall back to
//! psys (saying so) when it is the only domain, as on the GPU machine.
//!
//! Attribution to a watched process: each interval, the base energy × the process's share of
//! all busy CPU time (`/proc/<pid>/stat` utime+stime vs `/proc/stat` non-idle time). Idle
//! power is thereby spread over the busy processes: an estimate, reported as one.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use perf_event::{Builder, Counter};
use serde::Serialize;

use crate::energy::arith::{
    CpuTicks, parse_cpu_list, parse_event_config, parse_pid_ticks, parse_proc_stat, wrap_delta,
};

const POWERCAP: &str = "/sys/class/powercap";
const POWER_PMU: &str = "/sys/bus/event_source/devices/power";

/// What a RAPL domain measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainKind {
    Package,
    Cores,
    Uncore,
    Dram,
    Gpu,
    Psys,
    Other,
}

impl DomainKind {
    pub fn from_name(name: &str) -> Self {
        match name {
            n if n.starts_with("package") || n == "pkg" => Self::Package,
            "core" | "cores" => Self::Cores,
            "uncore" => Self::Uncore,
            "dram" | "ram" => Self::Dram,
            "gpu" => Self::Gpu,
            "psys" => Self::Psys,
            _ => Self::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Package => "CPU package",
            Self::Cores => "CPU cores",
            Self::Uncore => "uncore",
            Self::Dram => "DRAM",
            Self::Gpu => "integrated GPU",
            Self::Psys => "platform (psys)",
            Self::Other => "other",
        }
    }
}

/// One domain's energy over an interval; None when its counter could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEnergy {
    pub domain: String,
    pub kind: DomainKind,
    pub joules: Option<f64>,
}

/// CPU ticks a watched process used over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessTicks {
    pub pid: u32,
    pub ticks: u64,
}

/// What one `RaplSampler::sample` call measured since the previous call (or `new`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuEnergyInterval {
    pub dt_s: f64,
    pub domains: Vec<DomainEnergy>,
    /// Non-idle and all CPU time of the machine, clock ticks (`/proc/stat`).
    pub busy_ticks: u64,
    pub total_ticks: u64,
    pub ticks_per_s: f64,
    /// Watched processes read in both this and the previous call.
    pub processes: Vec<ProcessTicks>,
}

enum Reader {
    Powercap {
        energy_uj: PathBuf,
        max_range_uj: u64,
    },
    Perf {
        counters: Vec<Counter>,
        scale_j: f64,
    },
}

struct Domain {
    name: String,
    kind: DomainKind,
    reader: Reader,
    last: u64,
}

impl Domain {
    fn read(&mut self) -> Option<u64> {
        match &mut self.reader {
            Reader::Powercap { energy_uj, .. } => read_u64(energy_uj),
            Reader::Perf { counters, .. } => counters
                .iter_mut()
                .map(|c| c.read().ok())
                .try_fold(0u64, |sum, v| v.map(|v| sum.wrapping_add(v))),
        }
    }

    /// Joules since the last reading, wrap-safe; the reading becomes the new baseline.
    fn advance(&mut self) -> Option<f64> {
        let cur = self.read()?;
        let prev = std::mem::replace(&mut self.last, cur);
        match &self.reader {
            Reader::Powercap { max_range_uj, .. } => {
                wrap_delta(prev, cur, *max_range_uj).map(|uj| uj as f64 / 1e6)
            }
            Reader::Perf { scale_j, .. } => Some(cur.wrapping_sub(prev) as f64 * scale_j),
        }
    }
}

pub struct RaplSampler {
    source: &'static str,
    domains: Vec<Domain>,
    last_cpu: Option<CpuTicks>,
    last_pids: HashMap<u32, u64>,
    last_t: Instant,
    ticks_per_s: f64,
}

impl RaplSampler {
    /// Finds RAPL counters and takes the baseline reading. `Err` is a one-line reason for the
    /// report (no powercap and no power PMU, or not readable without root).
    pub fn new() -> Result<Self, String> {
        let (source, mut domains) = match powercap_domains() {
            Ok(d) => ("powercap", d),
            Err(pc) => match perf_domains() {
                Ok(d) => ("perf-power-pmu", d),
                Err(pmu) => return Err(format!("no RAPL energy counters: {pc}; {pmu}")),
            },
        };
        for d in &mut domains {
            d.last = d.read().unwrap_or(0);
        }
        domains.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Ok(Self {
            source,
            domains,
            last_cpu: read_cpu_ticks(),
            last_pids: HashMap::new(),
            last_t: Instant::now(),
            ticks_per_s: procfs::ticks_per_second() as f64,
        })
    }

    /// `powercap` or `perf-power-pmu`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Energy per domain and CPU time since the previous call. A watched pid is baselined the
    /// first time it is passed (its ticks count from the next call): call `sample(&pids)`
    /// once right after `new` so the first interval is attributed too.
    pub fn sample(&mut self, watched_pids: &[u32]) -> CpuEnergyInterval {
        let now = Instant::now();
        let dt_s = now.duration_since(self.last_t).as_secs_f64();
        self.last_t = now;
        let domains = self
            .domains
            .iter_mut()
            .map(|d| DomainEnergy {
                domain: d.name.clone(),
                kind: d.kind,
                joules: d.advance(),
            })
            .collect();
        let cpu = read_cpu_ticks();
        let (busy_ticks, total_ticks) = match (cpu, self.last_cpu) {
            (Some(c), Some(p)) => (
                c.busy.saturating_sub(p.busy),
                c.total.saturating_sub(p.total),
            ),
            _ => (0, 0),
        };
        if cpu.is_some() {
            self.last_cpu = cpu;
        }
        let mut processes = Vec::new();
        let mut seen = HashMap::new();
        for &pid in watched_pids {
            let Some(t) = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_pid_ticks(&s))
            else {
                continue;
            };
            if let Some(&p) = self.last_pids.get(&pid) {
                processes.push(ProcessTicks {
                    pid,
                    ticks: t.saturating_sub(p),
                });
            }
            seen.insert(pid, t);
        }
        self.last_pids = seen;
        CpuEnergyInterval {
            dt_s,
            domains,
            busy_ticks,
            total_ticks,
            ticks_per_s: self.ticks_per_s,
            processes,
        }
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn powercap_domains() -> Result<Vec<Domain>, String> {
    let entries = fs::read_dir(POWERCAP).map_err(|_| format!("{POWERCAP} is absent"))?;
    let mut zones: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("intel-rapl:"))
        })
        .collect();
    zones.sort();
    if zones.is_empty() {
        return Err(format!("{POWERCAP} has no intel-rapl zones"));
    }
    let zone_name = |p: &Path| fs::read_to_string(p.join("name")).map(|s| s.trim().to_string());
    let mut domains = Vec::new();
    let mut unreadable = 0;
    for z in &zones {
        let Ok(name) = zone_name(z) else { continue };
        let energy_uj = z.join("energy_uj");
        if read_u64(&energy_uj).is_none() {
            unreadable += 1;
            continue;
        }
        // intel-rapl:0:1 is a subzone of intel-rapl:0: name it "package-0/core".
        let file = z.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let full = match file.rsplit_once(':') {
            Some((parent, _)) if parent.contains(':') => {
                let parent_name = zone_name(&Path::new(POWERCAP).join(parent)).unwrap_or_default();
                format!("{parent_name}/{name}")
            }
            _ => name.clone(),
        };
        domains.push(Domain {
            name: full,
            kind: DomainKind::from_name(&name),
            reader: Reader::Powercap {
                max_range_uj: read_u64(&z.join("max_energy_range_uj")).unwrap_or(0),
                energy_uj,
            },
            last: 0,
        });
    }
    if domains.is_empty() {
        return Err(format!(
            "{unreadable} powercap zone(s) but energy_uj is unreadable (needs root)"
        ));
    }
    Ok(domains)
}

/// perf `power` PMU events and the domain each measures.
const PMU_EVENTS: [(&str, &str); 5] = [
    ("energy-pkg", "package"),
    ("energy-cores", "cores"),
    ("energy-ram", "dram"),
    ("energy-gpu", "gpu"),
    ("energy-psys", "psys"),
];

fn perf_domains() -> Result<Vec<Domain>, String> {
    let pmu = Path::new(POWER_PMU);
    let pmu_type: u32 = fs::read_to_string(pmu.join("type"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no perf `power` PMU ({POWER_PMU})"))?;
    let cpus = fs::read_to_string(pmu.join("cpumask"))
        .ok()
        .and_then(|s| parse_cpu_list(&s))
        .unwrap_or_else(|| vec![0]);
    let mut domains = Vec::new();
    let mut errors = Vec::new();
    for (event, name) in PMU_EVENTS {
        let Some(config) = fs::read_to_string(pmu.join("events").join(event))
            .ok()
            .and_then(|s| parse_event_config(&s))
        else {
            continue;
        };
        let scale_j = fs::read_to_string(pmu.join("events").join(format!("{event}.scale")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1.0);
        // psys is one platform-wide counter: reading it on several CPUs would count it twice.
        let on = if name == "psys" {
            &cpus[..1]
        } else {
            &cpus[..]
        };
        match open_power_event(pmu_type, config, on) {
            Ok(counters) => domains.push(Domain {
                name: name.into(),
                kind: DomainKind::from_name(name),
                reader: Reader::Perf { counters, scale_j },
                last: 0,
            }),
            Err(e) => errors.push(format!("{event}: {e}")),
        }
    }
    match (domains.is_empty(), errors.is_empty()) {
        (false, _) => Ok(domains),
        (true, true) => Err("the perf `power` PMU lists no energy events".into()),
        (true, false) => Err(format!(
            "perf `power` PMU events could not be opened (needs root): {}",
            errors.join(", ")
        )),
    }
}

/// One system-wide counter per CPU of the PMU's cpumask (one per package or die).
fn open_power_event(pmu_type: u32, config: u64, cpus: &[usize]) -> std::io::Result<Vec<Counter>> {
    let mut counters = Vec::new();
    for &cpu in cpus {
        let mut b = Builder::new().any_pid().one_cpu(cpu);
        let attrs = b.attrs_mut();
        attrs.type_ = pmu_type;
        attrs.config = config;
        // The power PMU rejects events with any exclude_* bit (PERF_PMU_CAP_NO_EXCLUDE).
        attrs.set_exclude_kernel(0);
        attrs.set_exclude_hv(0);
        let mut c = b.build()?;
        c.enable()?;
        counters.push(c);
    }
    Ok(counters)
}

fn read_cpu_ticks() -> Option<CpuTicks> {
    parse_proc_stat(&fs::read_to_string("/proc/stat").ok()?)
}

#[cfg(test)]
#[path = "rapl_tests.rs"]
mod tests;
