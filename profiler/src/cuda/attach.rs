//! Puts the CUDA uprobes on the libraries `discover` finds in watched processes, once per
//! (process, file), scoped to that process: the kernel installs the breakpoints in the watched
//! process only, so another service using the same `libcuda` on the node pays nothing. Done at
//! start and again whenever a watched process (or a new child) maps a CUDA library later.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::{
    bpf::probes::Probes,
    cuda::{
        discover::{self, FileId, FoundLibrary, Mapping},
        elf::ElfSymbols,
        probes::CookiesByAddress,
        symbols::{CudaSymbol, DRIVER_SYMBOLS, LibraryKind, RUNTIME_SYMBOLS, Timing},
    },
};
use profiler_common::cuda_cookie;

/// One CUDA library file the uprobes are attached to, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttachedLibrary {
    /// The process the probes are attached for.
    pub pid: u32,
    /// The path as that process maps it (inside its mount namespace).
    pub path: String,
    pub kind: LibraryKind,
    /// Uprobes and uretprobes attached to it.
    pub probes: u32,
    /// Why some or all probes could not be attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which probes go on CUDA symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// Entry probes, return probes on `Timing::Always` symbols.
    Default,
    /// Return probes on `Timing::OptIn` symbols too (`--cuda-launch-latency`).
    LaunchLatency,
    /// Benchmarks: an empty program on the entry of every symbol, nothing else.
    Empty,
}

pub struct CudaAttacher {
    mode: ProbeMode,
    /// (process, library file) pairs already handled (attached or failed).
    seen: HashSet<(u32, FileId)>,
    /// Executables checked for a statically linked runtime, and whether they have one.
    static_runtime: HashMap<FileId, bool>,
    /// Per library file, the offsets of the probed symbols it exports (or why it could not be
    /// read): every worker process of a server maps the same `libcuda`.
    offsets: HashMap<FileId, Result<Vec<(CudaSymbol, u64)>, String>>,
    /// Kernels without attach cookies (before 5.15): the entry probes run
    /// `cuda_enter_by_address`, and each probed address's cookie is filed here.
    by_address: Option<CookiesByAddress>,
    pub libraries: Vec<AttachedLibrary>,
}

impl CudaAttacher {
    pub fn new(mode: ProbeMode, by_address: Option<CookiesByAddress>) -> Self {
        Self {
            mode,
            by_address,
            seen: HashSet::new(),
            static_runtime: HashMap::new(),
            offsets: HashMap::new(),
            libraries: Vec::new(),
        }
    }

    pub fn forget_process(&mut self, pid: u32) {
        if let Some(cookies) = &mut self.by_address {
            cookies.forget_process(pid);
        }
        self.seen.retain(|&(p, _)| p != pid);
        self.libraries.retain(|l| l.pid != pid);
    }

    /// Looks for CUDA libraries not seen yet in the maps of `pids` and attaches to them;
    /// returns how many new libraries were found.
    pub fn scan(&mut self, probes: &mut Probes, pids: impl IntoIterator<Item = u32>) -> usize {
        let mut new = 0;
        for pid in pids {
            let Some(maps) = discover::read_maps(pid) else {
                continue;
            };
            let mut found = discover::cuda_libraries(pid, &maps);
            // A runtime linked into the executable has its own launch entry points (the ELF
            // symbols of each executable file are read once).
            if let Some(exe) = discover::exe_mapping(pid, &maps)
                && !self.seen.contains(&(pid, exe.file.clone()))
                && *self
                    .static_runtime
                    .entry(exe.file.clone())
                    .or_insert_with(|| discover::has_static_runtime(pid, exe))
            {
                found.push(discover::static_runtime(pid, exe));
            }
            for lib in found {
                if !self.seen.insert((pid, lib.file.clone())) {
                    continue;
                }
                let attached = self.attach_library(probes, &lib, &maps);
                self.libraries.push(attached);
                new += 1;
            }
        }
        new
    }

    fn attach_library(
        &mut self,
        probes: &mut Probes,
        lib: &FoundLibrary,
        maps: &[Mapping],
    ) -> AttachedLibrary {
        let mut out = AttachedLibrary {
            pid: lib.pid,
            path: lib.path.clone(),
            kind: lib.kind,
            probes: 0,
            error: None,
        };
        let symbols = self
            .offsets
            .entry(lib.file.clone())
            .or_insert_with(|| symbol_offsets(lib))
            .clone();
        let symbols = match symbols {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        };
        let mut errors = Vec::new();
        for (sym, offset) in &symbols {
            for (program, cookie) in self.probes_for(sym) {
                match self.attach_probe(probes, lib, maps, program, *offset, cookie) {
                    Ok(()) => out.probes += 1,
                    Err(e) => errors.push(format!("{} ({program}): {e:#}", sym.name)),
                }
            }
        }
        if out.probes == 0 && errors.is_empty() {
            errors.push("none of the probed CUDA symbols is exported".into());
        }
        if !errors.is_empty() {
            let more = errors.len().saturating_sub(3);
            errors.truncate(3);
            let mut msg = errors.join("; ");
            if more > 0 {
                msg.push_str(&format!("; and {more} more"));
            }
            out.error = Some(msg);
        }
        out
    }

    /// Attaches one probe; without attach cookies, the entry probe's cookie is filed under the
    /// addresses where the process maps `offset` first (before the breakpoint can fire).
    fn attach_probe(
        &mut self,
        probes: &mut Probes,
        lib: &FoundLibrary,
        maps: &[Mapping],
        program: &'static str,
        offset: u64,
        cookie: u64,
    ) -> anyhow::Result<()> {
        let Some(cookies) = self.by_address.as_mut() else {
            return probes.attach_uprobe(program, &lib.host_path, offset, Some(cookie), lib.pid);
        };
        if program == "cuda_enter" {
            let addresses = discover::addresses_of(maps, &lib.file, offset);
            anyhow::ensure!(!addresses.is_empty(), "offset {offset:#x} is not mapped");
            for ip in addresses {
                cookies.file(lib.pid, ip, cookie)?;
            }
            return probes.attach_uprobe(
                "cuda_enter_by_address",
                &lib.host_path,
                offset,
                None,
                lib.pid,
            );
        }
        probes.attach_uprobe(program, &lib.host_path, offset, None, lib.pid)
    }

    /// The (program, cookie) pairs that go on `sym` in this mode.
    fn probes_for(&self, sym: &CudaSymbol) -> Vec<(&'static str, u64)> {
        let timed = match (self.mode, sym.timing) {
            (ProbeMode::Empty, _) => return vec![("cuda_empty", 0)],
            (_, Timing::Always) | (ProbeMode::LaunchLatency, Timing::OptIn) => true,
            _ => false,
        };
        let cookie = cuda_cookie(sym.api, timed);
        let mut v = vec![("cuda_enter", cookie)];
        if timed {
            v.push(("cuda_exit", cookie));
        }
        v
    }

    pub fn probe_mode(&self) -> ProbeMode {
        self.mode
    }
}

/// The probed symbols `lib` exports and their file offsets. Versions of the driver differ in
/// what they export (`cuLibraryGetKernel` is 12.0+): missing ones are skipped.
fn symbol_offsets(lib: &FoundLibrary) -> Result<Vec<(CudaSymbol, u64)>, String> {
    let syms = ElfSymbols::read(&lib.host_path).map_err(|e| format!("{e:#}"))?;
    let table: &[CudaSymbol] = match lib.kind {
        LibraryKind::Driver => DRIVER_SYMBOLS,
        LibraryKind::Runtime | LibraryKind::RuntimeStatic => RUNTIME_SYMBOLS,
    };
    Ok(table
        .iter()
        .filter_map(|sym| Some((*sym, syms.file_offset_of(sym.name)?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::symbols::Timing;
    use profiler_common::{CUDA_COOKIE_TIMED, cuda_api};

    fn sym(timing: Timing) -> CudaSymbol {
        CudaSymbol {
            name: "cuLaunchKernel",
            api: cuda_api::LAUNCH_KERNEL,
            timing,
        }
    }

    #[test]
    fn hot_calls_get_a_return_probe_only_when_asked() {
        let default = CudaAttacher::new(ProbeMode::Default, None);
        let latency = CudaAttacher::new(ProbeMode::LaunchLatency, None);
        let entry_only = default.probes_for(&sym(Timing::OptIn));
        assert_eq!(entry_only, vec![("cuda_enter", 1)]);
        let timed = latency.probes_for(&sym(Timing::OptIn));
        assert_eq!(timed.len(), 2);
        assert_eq!(timed[1], ("cuda_exit", 1 | CUDA_COOKIE_TIMED));
        assert_eq!(default.probes_for(&sym(Timing::Always)).len(), 2);
        assert_eq!(latency.probes_for(&sym(Timing::Never)).len(), 1);
        let empty = CudaAttacher::new(ProbeMode::Empty, None);
        assert_eq!(
            empty.probes_for(&sym(Timing::Always)),
            vec![("cuda_empty", 0)]
        );
    }
}
