//! Opens and reads the perf counters of watched processes: per thread, one perf group per
//! event family (software always; hardware and vector groups where the PMU offers them).
//!
//! What the machine offers is probed once, at `new`, on the profiler's own thread: never per
//! thread. Each interval the session calls `refresh_all` (new and exited threads, from
//! `/proc/<pid>/task`) and `read`; at the end `finish`. Each read scales what every group
//! gathered since the previous read (as `perf stat -I` does) and adds it to the process
//! total, so a thread that exits keeps everything it counted up to its last read, and its
//! last stretch is read once more when it is removed.

use std::{collections::BTreeMap, io};

use super::{
    arith::CounterTotals,
    events::{self, EventId, Family, FamilyKind},
    report::{CountersSection, build_section},
    stats::{ProcessCounters, SamplerStatus},
    sys::{self, OpenGroup},
};

#[derive(Default)]
struct ProcState {
    threads: BTreeMap<u32, Vec<OpenGroup>>,
    /// What threads removed since the previous read counted last.
    pending: CounterTotals,
    counters: ProcessCounters,
}

pub struct CounterSampler {
    families: Vec<Family>,
    status: SamplerStatus,
    procs: BTreeMap<u32, ProcState>,
    /// Descriptors ran out: stop opening until a thread is removed.
    fd_exhausted: bool,
}

impl CounterSampler {
    /// Probes what this machine can count, then opens counters on every thread of `pids`.
    pub fn new(pids: &[u32]) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let (families, status) = probe(&cpuinfo);
        crate::host::preflight::raise_fd_limit();
        let mut s = Self {
            families,
            status,
            procs: BTreeMap::new(),
            fd_exhausted: false,
        };
        for &pid in pids {
            s.add_process(pid);
        }
        s
    }

    /// What the machine offers: the same for every process.
    pub fn status(&self) -> &SamplerStatus {
        &self.status
    }

    /// The groups opened per thread (after probing).
    #[cfg(test)]
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Starts watching a process (e.g. a child found after attach) and all its threads.
    pub fn add_process(&mut self, pid: u32) {
        self.procs.entry(pid).or_insert_with(|| ProcState {
            counters: ProcessCounters {
                pid,
                ..Default::default()
            },
            ..Default::default()
        });
        self.refresh(pid);
    }

    /// Opens counters on one thread. False when nothing was opened: the thread is gone
    /// (skipped silently), the process is not watched, or opening failed (`open_error`).
    pub fn add_thread(&mut self, pid: u32, tid: u32) -> bool {
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        if p.threads.contains_key(&tid) {
            return true;
        }
        if self.fd_exhausted || self.families.is_empty() {
            return false;
        }
        let mut groups = Vec::with_capacity(self.families.len());
        for fam in &self.families {
            match OpenGroup::open(fam, tid as i32, self.status.kernel_included) {
                Ok(g) => groups.push(g),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return false,
                Err(e) => {
                    let what = format!("thread {tid} ({} events)", fam.name);
                    p.counters.open_error = Some(describe(&what, &e));
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        self.fd_exhausted = true;
                        break;
                    }
                }
            }
        }
        if groups.is_empty() {
            return false;
        }
        p.threads.insert(tid, groups);
        p.counters.threads_counted += 1;
        true
    }

    /// A thread exited (or is no longer watched): its last counts are read and kept in the
    /// process total, then its counters are closed.
    pub fn remove_thread(&mut self, pid: u32, tid: u32) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if let Some(mut groups) = p.threads.remove(&tid) {
            for g in &mut groups {
                if let Ok(deltas) = g.read_delta() {
                    for (id, r) in deltas {
                        p.pending.add_reading(id, r);
                    }
                }
            }
            p.counters.threads_exited += 1;
            self.fd_exhausted = false;
        }
    }

    /// Brings the counted threads in line with `/proc/<pid>/task`: opens new threads,
    /// folds and closes exited ones (all of them once the process is gone). Returns
    /// (threads added, threads removed).
    pub fn refresh(&mut self, pid: u32) -> (usize, usize) {
        let Some(p) = self.procs.get(&pid) else {
            return (0, 0);
        };
        let listed = list_tasks(pid);
        let gone: Vec<u32> = p
            .threads
            .keys()
            .filter(|t| !listed.contains(t))
            .copied()
            .collect();
        let new: Vec<u32> = listed
            .iter()
            .filter(|t| !p.threads.contains_key(t))
            .copied()
            .collect();
        for &tid in &gone {
            self.remove_thread(pid, tid);
        }
        let added = new
            .into_iter()
            .filter(|&tid| self.add_thread(pid, tid))
            .count();
        (added, gone.len())
    }

    /// `refresh` for every watched process.
    pub fn refresh_all(&mut self) {
        let pids: Vec<u32> = self.procs.keys().copied().collect();
        for pid in pids {
            self.refresh(pid);
        }
    }

    /// Reads every group: per process, the interval's scaled counts (threads summed) and the
    /// running total.
    pub fn read(&mut self) -> Vec<ProcessCounters> {
        for p in self.procs.values_mut() {
            let mut interval = std::mem::take(&mut p.pending);
            for groups in p.threads.values_mut() {
                for g in groups {
                    // A failed read loses this group's interval only; the next read's delta
                    // covers the gap.
                    if let Ok(deltas) = g.read_delta() {
                        for (id, r) in deltas {
                            interval.add_reading(id, r);
                        }
                    }
                }
            }
            p.counters.total.merge(&interval);
            p.counters.interval = interval;
            p.counters.threads_live = p.threads.len();
        }
        self.procs.values().map(|p| p.counters.clone()).collect()
    }

    /// The latest counts of one process.
    pub fn counters(&self, pid: u32) -> Option<&ProcessCounters> {
        self.procs.get(&pid).map(|p| &p.counters)
    }

    /// The report section of one process, from its total as of the latest `read`.
    #[cfg(test)]
    pub fn section(&self, pid: u32) -> Option<CountersSection> {
        Some(build_section(&self.status, self.counters(pid)?))
    }

    /// Final read, closes every counter, and returns each process's section.
    pub fn finish(&mut self) -> BTreeMap<u32, CountersSection> {
        self.read();
        for p in self.procs.values_mut() {
            p.threads.clear();
            p.counters.threads_live = 0;
        }
        self.procs
            .iter()
            .map(|(&pid, p)| (pid, build_section(&self.status, &p.counters)))
            .collect()
    }
}

/// Thread ids of a process; empty once it is gone.
pub fn list_tasks(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Decides, on the calling thread, which families can be opened and why others cannot.
fn probe(cpuinfo: &str) -> (Vec<Family>, SamplerStatus) {
    let cpu = events::parse_cpuinfo(cpuinfo);
    let vector = events::select_vector_source(cpu.as_ref());
    let mut all = events::event_families(vector.as_ref().ok().copied());
    let mut status = SamplerStatus {
        kernel_included: true,
        ..Default::default()
    };

    let software_ok = probe_software(&mut all[0], &mut status);
    let kernel = status.kernel_included;

    // One instructions counter decides whether there is a hardware PMU at all.
    let insn = all
        .iter()
        .flat_map(|f| &f.events)
        .find(|e| e.id == EventId::Instructions)
        .copied()
        .expect("instructions is in the event set");
    let hardware_ok = match sys::open_event(&insn, sys::SELF, None, kernel) {
        Ok(_) => true,
        Err(e) => {
            status.hardware_unavailable = Some(hardware_reason(&e));
            false
        }
    };

    let mut families = Vec::new();
    let mut vector_missing = Vec::new();
    for mut fam in all {
        match fam.kind {
            FamilyKind::Software if software_ok => families.push(fam),
            FamilyKind::Hardware | FamilyKind::Vector if hardware_ok => {
                let before = fam.events.len();
                fam.events
                    .retain(|e| match sys::open_event(e, sys::SELF, None, kernel) {
                        Ok(_) => true,
                        Err(err) => {
                            status
                                .unsupported_events
                                .push(format!("{}: {err}", e.id.name()));
                            false
                        }
                    });
                // The group as a whole must also fit the PMU.
                let whole = !fam.events.is_empty()
                    && match OpenGroup::open(&fam, sys::SELF, kernel) {
                        Ok(_) => true,
                        Err(err) => {
                            status
                                .unsupported_events
                                .push(format!("group {}: {err}", fam.name));
                            false
                        }
                    };
                if fam.kind == FamilyKind::Vector && (!whole || fam.events.len() < before) {
                    vector_missing.push(fam.name);
                } else if whole {
                    families.push(fam);
                }
            }
            _ => {}
        }
    }
    match vector {
        Ok(src) if hardware_ok && vector_missing.is_empty() => status.vector_source = Some(src),
        Ok(src) if hardware_ok => {
            // A partial width breakdown would misstate the shares: count none of it.
            families.retain(|f| f.kind != FamilyKind::Vector);
            status.vectorization_unavailable = Some(format!(
                "{}: the PMU refused {}",
                src.describe(),
                vector_missing.join(", ")
            ));
        }
        Ok(_) => {} // no PMU: the section points at hardware_unavailable
        Err(reason) => status.vectorization_unavailable = Some(reason),
    }
    (families, status)
}

/// Whether the software family can be opened: counting kernel-mode work (context switches
/// and migrations happen there) unless perf_event_paranoid forbids it, then user mode only
/// (without the two kernel-side events, which would read 0).
fn probe_software(software: &mut Family, status: &mut SamplerStatus) -> bool {
    match OpenGroup::open(software, sys::SELF, true) {
        Ok(_) => true,
        Err(e) if is_permission(&e) => match OpenGroup::open(software, sys::SELF, false) {
            Ok(_) => {
                // Switches and migrations happen in kernel mode: they would read 0.
                status.kernel_included = false;
                let kernel_side = [EventId::ContextSwitches, EventId::CpuMigrations];
                software.events.retain(|e| !kernel_side.contains(&e.id));
                true
            }
            Err(e) => {
                status.software_unavailable = Some(describe("software events", &e));
                false
            }
        },
        Err(e) => {
            status.software_unavailable = Some(describe("software events", &e));
            false
        }
    }
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

fn paranoid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// A one-line reason for an open failure.
pub fn describe(what: &str, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => format!(
            "{what}: not permitted ({e}; perf_event_paranoid is {}): run as root or with \
             CAP_PERFMON",
            paranoid()
        ),
        Some(libc::EMFILE | libc::ENFILE) => {
            format!("{what}: out of file descriptors ({e}): raise the open-file limit")
        }
        _ => format!("{what}: {e}"),
    }
}

/// Why hardware counters are unavailable, from the failed instructions counter.
pub fn hardware_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV) => {
            let devices = std::path::Path::new("/sys/bus/event_source/devices");
            let pmu = ["cpu", "cpu_core"].iter().any(|d| devices.join(d).exists());
            format!(
                "no hardware PMU: this kernel offers no hardware counters (perf_event_open \
                 of `instructions`: {e}{}); usual in VMs without PMU passthrough",
                if pmu {
                    ""
                } else {
                    "; no cpu PMU in /sys/bus/event_source/devices"
                }
            )
        }
        _ => describe("hardware counters", e),
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
