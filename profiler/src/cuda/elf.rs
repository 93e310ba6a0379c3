//! Function symbols of an ELF file and the file offsets they live at: where to put a uprobe,
//! and which function a code address in a process belongs to.

use std::{fs::File, path::Path};

use anyhow::{Context as _, Result};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _, ReadCache, SymbolKind};

/// A function symbol: its virtual address range in the ELF image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Function {
    addr: u64,
    size: u64,
    name: String,
}

/// A loadable segment: where a virtual address range sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    addr: u64,
    size: u64,
    file_offset: u64,
}

/// The function symbols (`.symtab` and `.dynsym`) of one ELF file.
#[derive(Debug, Default)]
pub struct ElfSymbols {
    /// Sorted by address; symbols of size 0 are kept (hand-written assembly entry points).
    functions: Vec<Function>,
    segments: Vec<Segment>,
}

impl ElfSymbols {
    /// Reads only the headers and symbol tables (through a read cache: `libtorch_cuda.so` is
    /// about 1 GB).
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let cache = ReadCache::new(file);
        let elf = object::File::parse(&cache)
            .with_context(|| format!("{} is not an ELF file we can read", path.display()))?;
        let mut functions: Vec<Function> = elf
            .symbols()
            .chain(elf.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.address() != 0)
            .filter_map(|s| {
                Some(Function {
                    addr: s.address(),
                    size: s.size(),
                    name: s.name().ok()?.to_string(),
                })
            })
            .collect();
        functions.sort_by(|a, b| (a.addr, &a.name).cmp(&(b.addr, &b.name)));
        functions.dedup();
        let segments = elf
            .segments()
            .map(|s| {
                let (file_offset, _) = s.file_range();
                Segment {
                    addr: s.address(),
                    size: s.size(),
                    file_offset,
                }
            })
            .collect();
        Ok(Self {
            functions,
            segments,
        })
    }

    /// File offset of function `name` (what a uprobe attaches at).
    pub fn file_offset_of(&self, name: &str) -> Option<u64> {
        let f = self.functions.iter().find(|f| f.name == name)?;
        self.addr_to_file_offset(f.addr)
    }

    /// The function containing the code at `file_offset` (a host stub address in a process,
    /// translated through its mapping).
    pub fn function_at_file_offset(&self, file_offset: u64) -> Option<&str> {
        let addr = self.file_offset_to_addr(file_offset)?;
        let i = self.functions.partition_point(|f| f.addr <= addr);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (addr == f.addr || addr < f.addr + f.size).then_some(f.name.as_str())
    }

    fn addr_to_file_offset(&self, addr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| addr >= s.addr && addr < s.addr + s.size)
            .map(|s| addr - s.addr + s.file_offset)
    }

    fn file_offset_to_addr(&self, off: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| off >= s.file_offset && off < s.file_offset + s.size)
            .map(|s| off - s.file_offset + s.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function in this test binary to look up.
    #[unsafe(no_mangle)]
    #[inline(never)]
    pub extern "C" fn profiler_elf_test_target(x: u64) -> u64 {
        std::hint::black_box(x.wrapping_mul(3))
    }

    #[test]
    fn finds_a_function_of_this_binary_both_ways() {
        // Called, so the linker keeps it.
        assert_eq!(profiler_elf_test_target(std::hint::black_box(2)), 6);
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let syms = ElfSymbols::read(&exe).unwrap();
        let off = syms
            .file_offset_of("profiler_elf_test_target")
            .expect("symbol present");
        assert_eq!(
            syms.function_at_file_offset(off),
            Some("profiler_elf_test_target")
        );
        assert!(syms.file_offset_of("no_such_function_anywhere").is_none());
    }

    #[test]
    fn a_non_elf_file_is_an_error_not_a_panic() {
        let err = ElfSymbols::read(Path::new("/proc/self/status")).unwrap_err();
        assert!(err.to_string().contains("not an ELF"), "{err}");
    }
}
