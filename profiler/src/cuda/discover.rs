//! Which CUDA libraries a process maps, found in `/proc/<pid>/maps` — never at a fixed path:
//! pip wheels carry their own `libcudart`, containers their own `libcuda`.

use std::path::PathBuf;

use crate::cuda::{elf::ElfSymbols, symbols::LibraryKind};

/// One file-backed line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// Device and inode identify the file across mount namespaces.
    pub file: FileId,
    /// The path as the process sees it (inside its mount namespace), without " (deleted)".
    pub path: String,
    pub deleted: bool,
}

/// A file's identity: `major:minor` device (as maps prints it) and inode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: String,
    pub inode: u64,
}

/// A CUDA library (or an executable with the runtime linked in) mapped by a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLibrary {
    pub pid: u32,
    pub kind: LibraryKind,
    pub file: FileId,
    /// The path inside the process's mount namespace (what the report shows).
    pub path: String,
    /// A path this process can open for the same file: through `/proc/<pid>/root` (the
    /// process's mount namespace), or `/proc/<pid>/map_files/…` for a deleted file.
    pub host_path: PathBuf,
}

/// Parses `/proc/<pid>/maps`; anonymous and pseudo mappings (`[heap]`, `[vdso]`) are skipped,
/// malformed lines too.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    // start-end perms offset dev inode path (the path may contain spaces)
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let _perms = fields.next()?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let dev = fields.next()?.to_string();
    let inode: u64 = fields.next()?.parse().ok()?;
    let path = fields.next()?.trim_start();
    if inode == 0 || !path.starts_with('/') {
        return None;
    }
    let (path, deleted) = match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    };
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset,
        file: FileId { dev, inode },
        path: path.to_string(),
        deleted,
    })
}

/// `libcuda.so*` is the driver, `libcudart.so*` the runtime (by file name: the real files are
/// versioned, `libcuda.so.580.95.05`, `libcudart.so.13`).
pub fn library_kind(path: &str) -> Option<LibraryKind> {
    let name = path.rsplit('/').next()?;
    if name.starts_with("libcuda.so") {
        Some(LibraryKind::Driver)
    } else if name.starts_with("libcudart.so") {
        Some(LibraryKind::Runtime)
    } else {
        None
    }
}

/// The CUDA libraries among `maps`, one entry per file.
pub fn cuda_libraries(pid: u32, maps: &[Mapping]) -> Vec<FoundLibrary> {
    let mut found: Vec<FoundLibrary> = Vec::new();
    for m in maps {
        let Some(kind) = library_kind(&m.path) else {
            continue;
        };
        if found.iter().any(|f| f.file == m.file) {
            continue;
        }
        found.push(FoundLibrary {
            pid,
            kind,
            file: m.file.clone(),
            path: m.path.clone(),
            host_path: host_path(pid, m),
        });
    }
    found
}

/// Where file offset `offset` of `file` is in the memory of the process whose maps are `maps`
/// (every mapping that covers it).
pub fn addresses_of(maps: &[Mapping], file: &FileId, offset: u64) -> Vec<u64> {
    maps.iter()
        .filter(|m| m.file == *file && offset >= m.offset && offset - m.offset < m.end - m.start)
        .map(|m| m.start + (offset - m.offset))
        .collect()
}

/// Where this process (the profiler) can open the file of mapping `m` of process `pid`.
pub fn host_path(pid: u32, m: &Mapping) -> PathBuf {
    if m.deleted {
        PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end))
    } else {
        PathBuf::from(format!("/proc/{pid}/root{}", m.path))
    }
}

/// The mappings of `pid`, or `None` when it is gone.
pub fn read_maps(pid: u32) -> Option<Vec<Mapping>> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .map(|t| parse_maps(&t))
}

/// The mapping of `pid`'s executable.
pub fn exe_mapping(pid: u32, maps: &[Mapping]) -> Option<&Mapping> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_str()?;
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    maps.iter().find(|m| m.path == exe)
}

/// Whether the executable mapped as `m` has the CUDA runtime linked in statically (its own
/// `cudaLaunchKernel`).
pub fn has_static_runtime(pid: u32, m: &Mapping) -> bool {
    ElfSymbols::read(&host_path(pid, m))
        .is_ok_and(|syms| syms.file_offset_of("cudaLaunchKernel").is_some())
}

/// The executable mapped as `m`, as a statically linked runtime to probe.
pub fn static_runtime(pid: u32, m: &Mapping) -> FoundLibrary {
    FoundLibrary {
        pid,
        kind: LibraryKind::RuntimeStatic,
        file: m.file.clone(),
        path: m.path.clone(),
        host_path: host_path(pid, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1311 /usr/bin/python3.12
7f3a10000000-7f3a10021000 rw-p 00000000 00:00 0 
7f3a20000000-7f3a20400000 r--p 00000000 fd:01 777 /usr/local/nvidia/lib64/libcuda.so.580.95.05
7f3a20400000-7f3a21000000 r-xp 00400000 fd:01 777 /usr/local/nvidia/lib64/libcuda.so.580.95.05
7f3a30000000-7f3a30100000 r-xp 00000000 fd:01 900 /opt/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcudart.so.13
7f3a40000000-7f3a40100000 r-xp 00000000 fd:01 901 /tmp/my lib/libcudart.so.12 (deleted)
7f3a50000000-7f3a50100000 r-xp 00000000 fd:01 902 /usr/lib/libcudnn.so.9
7ffd1000000-7ffd1021000 rw-p 00000000 00:00 0                          [stack]
garbage line
";

    #[test]
    fn finds_driver_and_runtime_once_each_with_their_namespace_paths() {
        let maps = parse_maps(MAPS);
        let libs = cuda_libraries(42, &maps);
        assert_eq!(libs.len(), 3, "{libs:?}");
        assert_eq!(libs[0].kind, LibraryKind::Driver);
        assert_eq!(libs[0].file.inode, 777);
        assert_eq!(
            libs[0].host_path,
            PathBuf::from("/proc/42/root/usr/local/nvidia/lib64/libcuda.so.580.95.05")
        );
        assert_eq!(libs[1].kind, LibraryKind::Runtime);
        assert!(libs[1].path.ends_with("cu13/lib/libcudart.so.13"));
        // A deleted (replaced) file is still reachable through map_files.
        assert_eq!(libs[2].path, "/tmp/my lib/libcudart.so.12");
        assert_eq!(
            libs[2].host_path,
            PathBuf::from("/proc/42/map_files/7f3a40000000-7f3a40100000")
        );
    }

    #[test]
    fn a_file_offset_is_found_in_the_mapping_that_covers_it() {
        let maps = parse_maps(MAPS);
        let libcuda = FileId {
            dev: "fd:01".into(),
            inode: 777,
        };
        // The second mapping starts at file offset 0x400000.
        assert_eq!(
            addresses_of(&maps, &libcuda, 0x401234),
            vec![0x7f3a20401234]
        );
        assert_eq!(addresses_of(&maps, &libcuda, 0x1234), vec![0x7f3a20001234]);
        assert!(addresses_of(&maps, &libcuda, 0x1000000).is_empty());
    }

    #[test]
    fn library_names_are_matched_by_file_name_only() {
        assert_eq!(library_kind("/x/libcuda.so.1"), Some(LibraryKind::Driver));
        assert_eq!(library_kind("/x/libcuda.so"), Some(LibraryKind::Driver));
        assert_eq!(library_kind("/libcuda.so/libfoo.so"), None);
        assert_eq!(
            library_kind("/x/libcudart.so.13"),
            Some(LibraryKind::Runtime)
        );
        assert_eq!(library_kind("/x/libcudart_static.a"), None);
        assert_eq!(library_kind("/x/libcudnn.so.9"), None);
    }

    #[test]
    fn parses_offsets_and_skips_anonymous_and_malformed_lines() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[2].offset, 0x400000);
        assert_eq!(maps[2].start, 0x7f3a20400000);
        assert!(maps.iter().all(|m| m.path.starts_with('/')));
    }
}
