//! Kernel names: `CudaNameEvent` decoding, demangling, interning, and the per-process tables that
//! name a launch's CUfunction (directly, through the CUkernel it came from, or through the
//! runtime host stub of the same thread's `cudaLaunchKernel`).
//!
//! Names are interned once (`NameId`); tables hold ids, so a kernel launched a million times
//! costs one string. Every table is keyed by (tgid, handle): handles are per process.

use profiler_common::{CUDA_NAME_MAX, CudaEvent, CudaNameEvent, cuda_api as api, cuda_flag};
use rustc_hash::FxHashMap;

/// Names a runtime launch's host stub (a symbol of the process at `addr`). The analyzer asks
/// once per (pid, addr) and only when no driver table names the launch.
pub trait StubNames {
    fn stub_name(&mut self, pid: u32, addr: u64) -> Option<String>;
}

/// A `StubNames` that knows nothing (stubs already asked about are still named from the cache).
pub struct NoStubs;

impl StubNames for NoStubs {
    fn stub_name(&mut self, _pid: u32, _addr: u64) -> Option<String> {
        None
    }
}

/// Index of an interned [`KernelName`].
pub type NameId = u32;

/// A kernel name as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelName {
    /// Demangled when the raw name is a C++ mangled name, else the raw name.
    pub display: String,
    /// The raw name when it demangled (C++), `None` for plain C names.
    pub mangled: Option<String>,
    /// The name filled the whole `CUDA_NAME_MAX` buffer without a NUL: it was cut.
    pub truncated: bool,
    /// A placeholder (`unresolved@0x…`) for a launch no table could name.
    pub unresolved: bool,
}

/// Name events seen, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameCounts {
    pub functions: u64,
    pub kernels: u64,
    pub truncated: u64,
}

/// The name tables of every watched process.
#[derive(Debug, Default)]
pub struct Names {
    names: Vec<KernelName>,
    /// (raw name, truncated) → id.
    by_raw: FxHashMap<(String, bool), NameId>,
    /// CUfunction → id of its `unresolved@…` placeholder.
    unresolved: FxHashMap<u64, NameId>,
    /// (tgid, CUfunction) from `cuModuleGetFunction`.
    functions: FxHashMap<(u32, u64), NameId>,
    /// (tgid, CUkernel) from `cuLibraryGetKernel`.
    kernels: FxHashMap<(u32, u64), NameId>,
    /// (tgid, CUfunction) named once through its CUkernel or a runtime stub: later launches of
    /// the same function carry neither.
    aliases: FxHashMap<(u32, u64), NameId>,
    /// (tgid, host stub address) → what `StubNames` said, so it is asked once per stub.
    stubs: FxHashMap<(u32, u64), Option<NameId>>,
    pub counts: NameCounts,
}

/// Decodes one `CUDA_NAMES` record; `None` when it is short.
pub fn decode_name_event(record: &[u8]) -> Option<CudaNameEvent> {
    crate::util::pod::read_record(record)
}

/// The name bytes up to the first NUL (lossy UTF-8), and whether there was no NUL (cut).
pub fn name_text(bytes: &[u8; CUDA_NAME_MAX]) -> (String, bool) {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => (String::from_utf8_lossy(&bytes[..n]).into_owned(), false),
        None => (String::from_utf8_lossy(bytes).into_owned(), true),
    }
}

/// The demangled form of an Itanium C++ mangled name (`_Z…`), parameters kept (as
/// `torch.profiler` shows kernels); `None` for anything else or what does not demangle.
pub fn demangle(raw: &str) -> Option<String> {
    if !raw.starts_with("_Z") {
        return None;
    }
    // The names come from the watched process: a demangler panic on a hostile or cut name
    // must not take the profiler down, so it is contained and the raw name kept.
    std::panic::catch_unwind(|| {
        let sym = cpp_demangle::Symbol::new(raw.as_bytes()).ok()?;
        sym.demangle(&cpp_demangle::DemangleOptions::default()).ok()
    })
    .ok()
    .flatten()
    .filter(|s| !s.is_empty())
}

/// A short form for one-line views: no return type, parameters or template arguments, at most
/// 48 characters (`void at::native::foo<4, …>(…)` → `at::native::foo<…>`).
pub fn short_name(display: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in display.chars() {
        match c {
            '<' => {
                if depth == 0 {
                    out.push_str("<…>");
                }
                depth += 1;
            }
            '>' => depth = depth.saturating_sub(1),
            '(' if depth == 0 => break,
            ' ' if depth == 0 => out.clear(), // a return type ("void ") or qualifier before the name
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    if out.is_empty() {
        out = display.to_string();
    }
    if out.chars().count() > 48 {
        out = out.chars().take(47).collect::<String>() + "…";
    }
    out
}

impl Names {
    pub fn get(&self, id: NameId) -> &KernelName {
        &self.names[id as usize]
    }

    fn push(&mut self, name: KernelName) -> NameId {
        let id = self.names.len() as NameId;
        self.names.push(name);
        id
    }

    /// Interns a raw (possibly mangled) name.
    pub fn intern(&mut self, raw: &str, truncated: bool) -> NameId {
        if let Some(&id) = self.by_raw.get(&(raw.to_string(), truncated)) {
            return id;
        }
        let (display, mangled) = match demangle(raw) {
            Some(d) => (d, Some(raw.to_string())),
            None => (raw.to_string(), None),
        };
        let name = KernelName {
            display,
            mangled,
            truncated,
            unresolved: false,
        };
        let id = self.push(name);
        self.by_raw.insert((raw.to_string(), truncated), id);
        id
    }

    /// The placeholder name of a launch nothing could name.
    pub fn intern_unresolved(&mut self, handle: u64) -> NameId {
        if let Some(&id) = self.unresolved.get(&handle) {
            return id;
        }
        let id = self.push(KernelName {
            display: format!("unresolved@{handle:#x}"),
            mangled: None,
            truncated: false,
            unresolved: true,
        });
        self.unresolved.insert(handle, id);
        id
    }

    /// Records a name event; `false` when it is not one (wrong api, no name).
    pub fn add(&mut self, ev: &CudaNameEvent) -> bool {
        let (raw, cut_here) = name_text(&ev.name);
        let truncated = cut_here || ev.truncated != 0;
        if raw.is_empty() {
            return false;
        }
        if ev.api != api::MODULE_GET_FUNCTION && ev.api != api::LIBRARY_GET_KERNEL {
            return false;
        }
        let id = self.intern(&raw, truncated);
        // A handle can be reused after its module is unloaded: the latest name wins.
        if ev.api == api::MODULE_GET_FUNCTION {
            self.counts.functions += 1;
            self.functions.insert((ev.tgid, ev.handle), id);
        } else {
            self.counts.kernels += 1;
            self.kernels.insert((ev.tgid, ev.handle), id);
        }
        self.counts.truncated += u64::from(truncated);
        true
    }

    /// The name of a runtime host stub, asking `stubs` only the first time per (pid, address).
    pub fn stub(&mut self, pid: u32, addr: u64, stubs: &mut dyn StubNames) -> Option<NameId> {
        if let Some(&known) = self.stubs.get(&(pid, addr)) {
            return known;
        }
        let id = stubs
            .stub_name(pid, addr)
            .filter(|s| !s.is_empty())
            .map(|s| self.intern(&s, false));
        self.stubs.insert((pid, addr), id);
        id
    }

    /// Names a driver launch: its CUfunction's own name, else the CUkernel it was resolved
    /// from, else what an earlier launch of the same function learnt, else the host stub of the
    /// runtime call `stub` (the thread's pending `cudaLaunchKernel`), else a placeholder.
    /// Returns the id and whether a real name was found.
    pub fn resolve_launch(
        &mut self,
        ev: &CudaEvent,
        stub: Option<u64>,
        stubs: &mut dyn StubNames,
    ) -> (NameId, bool) {
        let f = (ev.tgid, ev.handle);
        if let Some(&id) = self.functions.get(&f) {
            return (id, true);
        }
        if ev.flags & cuda_flag::KERNEL_RESOLVED != 0
            && let Some(&id) = self.kernels.get(&(ev.tgid, ev.handle2))
        {
            self.aliases.insert(f, id);
            return (id, true);
        }
        if let Some(&id) = self.aliases.get(&f) {
            return (id, true);
        }
        if let Some(id) = stub.and_then(|addr| self.stub(ev.tgid, addr, stubs)) {
            self.aliases.insert(f, id);
            return (id, true);
        }
        (self.intern_unresolved(ev.handle), false)
    }
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
