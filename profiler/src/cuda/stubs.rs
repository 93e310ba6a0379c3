//! Names runtime launches by their host stub: `cudaLaunchKernel(func, …)` passes the address
//! of the host-side stub nvcc generated for the kernel, whose ELF symbol is the kernel's mangled
//! name. Used when the driver-side name lookup happened before the profiler attached.

use std::collections::HashMap;

use crate::cuda::{
    analyzer::StubNames,
    discover::{self, FileId, Mapping},
    elf::ElfSymbols,
};

/// Reads process mappings and ELF symbol tables on demand, and keeps them.
#[derive(Default)]
pub struct StubSymbolizer {
    maps: HashMap<u32, Vec<Mapping>>,
    /// `None`: the file could not be read (do not retry).
    files: HashMap<FileId, Option<ElfSymbols>>,
}

impl StubSymbolizer {
    fn mapping_of(&mut self, pid: u32, addr: u64) -> Option<Mapping> {
        let find = |maps: &Vec<Mapping>| {
            maps.iter()
                .find(|m| addr >= m.start && addr < m.end)
                .cloned()
        };
        if let Some(m) = self.maps.get(&pid).and_then(find) {
            return Some(m);
        }
        // Not known yet: the library may have been loaded since the last read.
        let maps = discover::read_maps(pid)?;
        let m = find(&maps);
        self.maps.insert(pid, maps);
        m
    }
}

impl StubNames for StubSymbolizer {
    fn stub_name(&mut self, pid: u32, addr: u64) -> Option<String> {
        let m = self.mapping_of(pid, addr)?;
        let file_offset = addr - m.start + m.offset;
        let syms = self
            .files
            .entry(m.file.clone())
            .or_insert_with(|| ElfSymbols::read(&discover::host_path(pid, &m)).ok())
            .as_ref()?;
        syms.function_at_file_offset(file_offset)
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[unsafe(no_mangle)]
    #[inline(never)]
    pub extern "C" fn _Z21profiler_stub_test_fnPfi(x: u64) -> u64 {
        std::hint::black_box(x + 1)
    }

    #[test]
    fn names_a_function_of_this_process_by_its_address() {
        assert_eq!(_Z21profiler_stub_test_fnPfi(std::hint::black_box(1)), 2);
        let addr = _Z21profiler_stub_test_fnPfi as *const () as u64;
        let mut s = StubSymbolizer::default();
        let pid = std::process::id();
        assert_eq!(
            s.stub_name(pid, addr).as_deref(),
            Some("_Z21profiler_stub_test_fnPfi")
        );
        // An address in no mapping.
        assert_eq!(s.stub_name(pid, 8), None);
    }
}
