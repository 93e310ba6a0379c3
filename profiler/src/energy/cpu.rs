//! CPU energy over the session (pure): per-domain totals from `RaplSampler` intervals and the
//! estimate attributed to each watched process by its CPU-time share. Schema: the report's
//! `cpu_energy` section.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::energy::arith::cpu_share;
use crate::energy::rapl::{CpuEnergyInterval, DomainEnergy, DomainKind};
use crate::util::fmt::fmt_secs;

/// The energy attribution is based on: the package domains summed, or psys when there is no
/// package domain. None when a needed domain could not be read this interval.
pub fn attribution_base(domains: &[DomainEnergy]) -> Option<(DomainKind, f64)> {
    for kind in [DomainKind::Package, DomainKind::Psys] {
        let of_kind: Vec<Option<f64>> = domains
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.joules)
            .collect();
        if !of_kind.is_empty() {
            return of_kind.into_iter().sum::<Option<f64>>().map(|j| (kind, j));
        }
    }
    None
}

#[derive(Debug, Default)]
struct ProcAcc {
    ticks: u64,
    joules: f64,
}

/// The session-long aggregate: `push` each interval, `finish` at the end.
#[derive(Debug, Default)]
pub struct CpuEnergyStats {
    duration_s: f64,
    domains: BTreeMap<(DomainKind, String), (f64, u64)>,
    base: Option<DomainKind>,
    base_j: f64,
    busy_ticks: u64,
    ticks_per_s: f64,
    procs: BTreeMap<u32, ProcAcc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuEnergySection {
    pub available: bool,
    /// Why there are no figures (no powercap and no power PMU, not root).
    pub unavailable_reason: Option<String>,
    /// `powercap` or `perf-power-pmu`.
    pub source: Option<String>,
    pub duration_s: f64,
    pub domains: Vec<DomainSummary>,
    /// Machine energy the attribution is based on: package domains summed, else psys.
    pub machine_j: Option<f64>,
    /// `package` or `psys` (platform energy: more than the CPU).
    pub machine_domain: Option<DomainKind>,
    /// Shares of `machine_j` for the watched processes; always an estimate.
    pub attribution: Option<Attribution>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DomainSummary {
    pub domain: String,
    pub kind: DomainKind,
    pub label: &'static str,
    pub joules: f64,
    pub mean_w: Option<f64>,
    /// Intervals whose counter could not be read (their energy is missing).
    pub unread_intervals: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attribution {
    pub estimate: bool,
    pub method: &'static str,
    pub processes: Vec<ProcessEnergy>,
    /// Sum over the watched processes.
    pub total_j: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessEnergy {
    pub pid: u32,
    pub cpu_s: f64,
    /// The process's CPU time as a share of the machine's busy CPU time, percent.
    pub busy_share_pct: f64,
    pub joules: f64,
}

pub const METHOD: &str =
    "each interval: machine energy × the process's share of busy CPU time (/proc/stat)";

impl CpuEnergyStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Joules so far per domain name (for the exporter).
    pub fn domain_joules(&self) -> Vec<(String, f64)> {
        self.domains
            .iter()
            .map(|((_, name), &(j, _))| (name.clone(), j))
            .collect()
    }

    /// Joules attributed so far to `pid` (estimate), when RAPL is readable.
    pub fn process_joules(&self, pid: u32) -> Option<f64> {
        self.procs.get(&pid).map(|p| p.joules)
    }

    pub fn push(&mut self, iv: &CpuEnergyInterval) {
        self.duration_s += iv.dt_s;
        self.ticks_per_s = iv.ticks_per_s;
        for d in &iv.domains {
            let e = self.domains.entry((d.kind, d.domain.clone())).or_default();
            match d.joules {
                Some(j) => e.0 += j,
                None => e.1 += 1,
            }
        }
        let Some((kind, base_j)) = attribution_base(&iv.domains) else {
            return;
        };
        self.base = Some(kind);
        self.base_j += base_j;
        self.busy_ticks += iv.busy_ticks;
        for p in &iv.processes {
            let acc = self.procs.entry(p.pid).or_default();
            acc.ticks += p.ticks;
            acc.joules += cpu_share(p.ticks, iv.busy_ticks) * base_j;
        }
    }

    pub fn finish(self, source: &str, mut notes: Vec<String>) -> CpuEnergySection {
        let dur = self.duration_s;
        let domains: Vec<DomainSummary> = self
            .domains
            .into_iter()
            .map(|((kind, domain), (joules, unread))| DomainSummary {
                domain,
                kind,
                label: kind.label(),
                joules,
                mean_w: (dur > 0.0).then(|| joules / dur),
                unread_intervals: unread,
            })
            .collect();
        for d in &domains {
            if d.joules == 0.0 && dur >= 1.0 {
                notes.push(format!(
                    "{} counter did not advance in {} (not counted on this machine?)",
                    d.domain,
                    fmt_secs(dur)
                ));
            }
        }
        if self.base == Some(DomainKind::Psys) {
            notes.push(
                "no CPU package domain: figures use platform (psys) energy, which also covers \
                 memory, chipset and more"
                    .into(),
            );
        }
        let tps = if self.ticks_per_s > 0.0 {
            self.ticks_per_s
        } else {
            100.0
        };
        let attribution = self.base.map(|_| {
            let processes: Vec<ProcessEnergy> = self
                .procs
                .iter()
                .map(|(&pid, a)| ProcessEnergy {
                    pid,
                    cpu_s: a.ticks as f64 / tps,
                    busy_share_pct: cpu_share(a.ticks, self.busy_ticks) * 100.0,
                    joules: a.joules,
                })
                .collect();
            Attribution {
                estimate: true,
                method: METHOD,
                total_j: processes.iter().map(|p| p.joules).sum(),
                processes,
            }
        });
        CpuEnergySection {
            available: true,
            unavailable_reason: None,
            source: Some(source.into()),
            duration_s: dur,
            domains,
            machine_j: self.base.map(|_| self.base_j),
            machine_domain: self.base,
            attribution,
            notes,
        }
    }
}

impl CpuEnergySection {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            unavailable_reason: Some(reason.into()),
            source: None,
            duration_s: 0.0,
            domains: Vec::new(),
            machine_j: None,
            machine_domain: None,
            attribution: None,
            notes: Vec::new(),
        }
    }

    /// Joules attributed to the watched processes (estimate), when RAPL was readable.
    pub fn attributed_j(&self) -> Option<f64> {
        self.attribution.as_ref().map(|a| a.total_j)
    }
}

/// Appends the CPU energy block to `out`.
pub fn render_text(s: &CpuEnergySection, out: &mut String) {
    out.push('\n');
    if !s.available {
        let _ = writeln!(
            out,
            "CPU energy: unavailable — {}",
            s.unavailable_reason.as_deref().unwrap_or("unknown reason")
        );
        return;
    }
    let domains: Vec<String> = s
        .domains
        .iter()
        .map(|d| {
            let w = d
                .mean_w
                .map_or(String::new(), |w| format!(", {w:.1} W avg"));
            format!("{} [{}] {:.1} J{w}", d.domain, d.label, d.joules)
        })
        .collect();
    let _ = writeln!(
        out,
        "CPU energy ({}, {}): {}",
        s.source.as_deref().unwrap_or("?"),
        fmt_secs(s.duration_s),
        domains.join("; ")
    );
    if let Some(a) = &s.attribution {
        for p in &a.processes {
            let _ = writeln!(
                out,
                "  pid {}: {:.1} J estimated ({:.1}% of busy CPU time, {} CPU)",
                p.pid,
                p.joules,
                p.busy_share_pct,
                fmt_secs(p.cpu_s)
            );
        }
        let _ = writeln!(out, "  estimate: {}", a.method);
    }
    for n in &s.notes {
        let _ = writeln!(out, "  note: {n}");
    }
}

#[cfg(test)]
#[path = "cpu_tests.rs"]
mod tests;
