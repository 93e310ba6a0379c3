//! Puts the CUDA uprobes on the libraries `discover` finds in watched processes, once per file
//! (a uprobe on a file fires in every process that maps it; the programs filter by watched pid),
//! at start and again whenever a watched process maps a CUDA library later.

use std::collections::HashSet;

use serde::Serialize;

use crate::{
    cuda::{
        discover::{self, FileId, FoundLibrary},
        elf::ElfSymbols,
        symbols::{CudaSymbol, DRIVER_SYMBOLS, LibraryKind, RUNTIME_SYMBOLS, Timing},
    },
    probes::Probes,
};
use profiler_common::cuda_cookie;

/// One CUDA library file the uprobes are attached to, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttachedLibrary {
    /// The first watched process seen mapping it.
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
    /// Files already handled (attached, failed, or checked for a static runtime).
    seen: HashSet<FileId>,
    pub libraries: Vec<AttachedLibrary>,
}

impl CudaAttacher {
    pub fn new(mode: ProbeMode) -> Self {
        Self {
            mode,
            seen: HashSet::new(),
            libraries: Vec::new(),
        }
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
            // The executable, once: a runtime linked in statically has its own launch entry.
            if let Some(exe) = discover::exe_mapping(pid, &maps)
                && self.seen.insert(exe.file.clone())
            {
                found.extend(discover::static_runtime(pid, exe));
            }
            for lib in found {
                if lib.kind != LibraryKind::RuntimeStatic && !self.seen.insert(lib.file.clone()) {
                    continue;
                }
                let attached = self.attach_library(probes, &lib);
                self.libraries.push(attached);
                new += 1;
            }
        }
        new
    }

    fn attach_library(&self, probes: &mut Probes, lib: &FoundLibrary) -> AttachedLibrary {
        let mut out = AttachedLibrary {
            pid: lib.pid,
            path: lib.path.clone(),
            kind: lib.kind,
            probes: 0,
            error: None,
        };
        let syms = match ElfSymbols::read(&lib.host_path) {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(format!("{e:#}"));
                return out;
            }
        };
        let table: &[CudaSymbol] = match lib.kind {
            LibraryKind::Driver => DRIVER_SYMBOLS,
            LibraryKind::Runtime | LibraryKind::RuntimeStatic => RUNTIME_SYMBOLS,
        };
        let mut errors = Vec::new();
        for sym in table {
            // Versions of the driver differ in what they export (`cuLibraryGetKernel` is 12.0+).
            let Some(offset) = syms.file_offset_of(sym.name) else {
                continue;
            };
            for (program, cookie) in self.probes_for(sym) {
                match probes.attach_uprobe(program, &lib.host_path, offset, cookie) {
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
        let default = CudaAttacher::new(ProbeMode::Default);
        let latency = CudaAttacher::new(ProbeMode::LaunchLatency);
        let entry_only = default.probes_for(&sym(Timing::OptIn));
        assert_eq!(entry_only, vec![("cuda_enter", 1)]);
        let timed = latency.probes_for(&sym(Timing::OptIn));
        assert_eq!(timed.len(), 2);
        assert_eq!(timed[1], ("cuda_exit", 1 | CUDA_COOKIE_TIMED));
        assert_eq!(default.probes_for(&sym(Timing::Always)).len(), 2);
        assert_eq!(latency.probes_for(&sym(Timing::Never)).len(), 1);
        let empty = CudaAttacher::new(ProbeMode::Empty);
        assert_eq!(
            empty.probes_for(&sym(Timing::Always)),
            vec![("cuda_empty", 0)]
        );
    }
}
