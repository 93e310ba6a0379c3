//! The CUDA symbols we probe: which exported function belongs to which API family, in which
//! library, and whether its return is probed (host time, results) by default.
//!
//! Hot calls (launches, async copies) get an entry probe only unless `--cuda-launch-latency`:
//! on an H100 host an entry uprobe adds ≈ 0.05–0.1 µs to a 3.6 µs `cuLaunchKernel`, a return
//! probe ≈ 0.9–1.6 µs more (DESIGN.md §2). Blocking and rare calls are always timed.

use profiler_common::cuda_api as api;

/// Which library exports a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibraryKind {
    /// `libcuda.so*`, the driver API: every launch from any library ends up here.
    Driver,
    /// `libcudart.so*`, the runtime API: probed only to name launches by their host stub.
    Runtime,
    /// An executable with the runtime linked in statically.
    RuntimeStatic,
}

/// When a symbol's return is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Entry only: no return probe.
    Never,
    /// A return probe only with `--cuda-launch-latency` (hot calls).
    OptIn,
    /// Always a return probe (blocking or rare calls, and calls whose result we need).
    Always,
}

#[derive(Debug, Clone, Copy)]
pub struct CudaSymbol {
    pub name: &'static str,
    pub api: u16,
    pub timing: Timing,
}

const fn sym(name: &'static str, api: u16, timing: Timing) -> CudaSymbol {
    CudaSymbol { name, api, timing }
}

use Timing::{Always, Never, OptIn};

/// Driver API symbols (`libcuda.so`). `_ptsz`/`_ptds` are the per-thread-default-stream
/// variants the runtime calls when built with `--default-stream per-thread`.
pub const DRIVER_SYMBOLS: &[CudaSymbol] = &[
    sym("cuLaunchKernel", api::LAUNCH_KERNEL, OptIn),
    sym("cuLaunchKernel_ptsz", api::LAUNCH_KERNEL, OptIn),
    sym("cuLaunchKernelEx", api::LAUNCH_KERNEL_EX, OptIn),
    sym("cuLaunchKernelEx_ptsz", api::LAUNCH_KERNEL_EX, OptIn),
    sym("cuLaunchCooperativeKernel", api::LAUNCH_COOPERATIVE, OptIn),
    sym(
        "cuLaunchCooperativeKernel_ptsz",
        api::LAUNCH_COOPERATIVE,
        OptIn,
    ),
    sym("cuGraphLaunch", api::GRAPH_LAUNCH, OptIn),
    sym("cuGraphLaunch_ptsz", api::GRAPH_LAUNCH, OptIn),
    sym("cuMemcpyHtoD_v2", api::MEMCPY_HTOD, Always),
    sym("cuMemcpyHtoD_v2_ptds", api::MEMCPY_HTOD, Always),
    sym("cuMemcpyDtoH_v2", api::MEMCPY_DTOH, Always),
    sym("cuMemcpyDtoH_v2_ptds", api::MEMCPY_DTOH, Always),
    sym("cuMemcpyDtoD_v2", api::MEMCPY_DTOD, Always),
    sym("cuMemcpyDtoD_v2_ptds", api::MEMCPY_DTOD, Always),
    sym("cuMemcpyHtoDAsync_v2", api::MEMCPY_HTOD_ASYNC, OptIn),
    sym("cuMemcpyHtoDAsync_v2_ptsz", api::MEMCPY_HTOD_ASYNC, OptIn),
    sym("cuMemcpyDtoHAsync_v2", api::MEMCPY_DTOH_ASYNC, OptIn),
    sym("cuMemcpyDtoHAsync_v2_ptsz", api::MEMCPY_DTOH_ASYNC, OptIn),
    sym("cuMemcpyDtoDAsync_v2", api::MEMCPY_DTOD_ASYNC, OptIn),
    sym("cuMemcpyDtoDAsync_v2_ptsz", api::MEMCPY_DTOD_ASYNC, OptIn),
    sym("cuMemcpy", api::MEMCPY, Always),
    sym("cuMemcpy_ptds", api::MEMCPY, Always),
    sym("cuMemcpyAsync", api::MEMCPY_ASYNC, OptIn),
    sym("cuMemcpyAsync_ptsz", api::MEMCPY_ASYNC, OptIn),
    sym("cuMemcpyPeer", api::MEMCPY_PEER, Always),
    sym("cuMemcpyPeer_ptds", api::MEMCPY_PEER, Always),
    sym("cuMemcpyPeerAsync", api::MEMCPY_PEER_ASYNC, OptIn),
    sym("cuMemcpyPeerAsync_ptsz", api::MEMCPY_PEER_ASYNC, OptIn),
    sym("cuMemcpy2D_v2", api::MEMCPY_2D, Always),
    sym("cuMemcpy2D_v2_ptds", api::MEMCPY_2D, Always),
    sym("cuMemcpy2DUnaligned_v2", api::MEMCPY_2D, Always),
    sym("cuMemcpy2DUnaligned_v2_ptds", api::MEMCPY_2D, Always),
    sym("cuMemcpy2DAsync_v2", api::MEMCPY_2D_ASYNC, OptIn),
    sym("cuMemcpy2DAsync_v2_ptsz", api::MEMCPY_2D_ASYNC, OptIn),
    sym("cuMemAlloc_v2", api::MEM_ALLOC, Always),
    sym("cuMemAllocPitch_v2", api::MEM_ALLOC_PITCH, Always),
    sym("cuMemAllocManaged", api::MEM_ALLOC_MANAGED, Always),
    sym("cuMemAllocAsync", api::MEM_ALLOC_ASYNC, Always),
    sym("cuMemAllocAsync_ptsz", api::MEM_ALLOC_ASYNC, Always),
    sym("cuMemAllocFromPoolAsync", api::MEM_ALLOC_ASYNC, Always),
    sym("cuMemAllocFromPoolAsync_ptsz", api::MEM_ALLOC_ASYNC, Always),
    sym("cuMemFree_v2", api::MEM_FREE, Always),
    sym("cuMemFreeAsync", api::MEM_FREE_ASYNC, Always),
    sym("cuMemFreeAsync_ptsz", api::MEM_FREE_ASYNC, Always),
    sym("cuStreamSynchronize", api::STREAM_SYNC, Always),
    sym("cuStreamSynchronize_ptsz", api::STREAM_SYNC, Always),
    sym("cuCtxSynchronize", api::CTX_SYNC, Always),
    sym("cuEventSynchronize", api::EVENT_SYNC, Always),
    sym("cuModuleGetFunction", api::MODULE_GET_FUNCTION, Always),
    sym("cuLibraryGetKernel", api::LIBRARY_GET_KERNEL, Always),
    // Entry only: the launch that follows on the same thread reads the CUfunction it wrote.
    sym("cuKernelGetFunction", api::KERNEL_GET_FUNCTION, Never),
];

/// Runtime API symbols (`libcudart.so`, or an executable with the runtime linked in): only to
/// learn the host stub of each launch, which names the kernel when the driver lookup happened
/// before we attached.
pub const RUNTIME_SYMBOLS: &[CudaSymbol] = &[
    sym("cudaLaunchKernel", api::RT_LAUNCH_KERNEL, Never),
    sym("cudaLaunchKernel_ptsz", api::RT_LAUNCH_KERNEL, Never),
    sym("cudaLaunchKernelExC", api::RT_LAUNCH_KERNEL_EX, Never),
    sym("cudaLaunchKernelExC_ptsz", api::RT_LAUNCH_KERNEL_EX, Never),
];

/// The name an API family is reported under: its first symbol without the version suffix.
pub fn api_name(api: u16) -> &'static str {
    match api {
        api::LAUNCH_KERNEL => "cuLaunchKernel",
        api::LAUNCH_KERNEL_EX => "cuLaunchKernelEx",
        api::LAUNCH_COOPERATIVE => "cuLaunchCooperativeKernel",
        api::GRAPH_LAUNCH => "cuGraphLaunch",
        api::MEMCPY_HTOD => "cuMemcpyHtoD",
        api::MEMCPY_DTOH => "cuMemcpyDtoH",
        api::MEMCPY_DTOD => "cuMemcpyDtoD",
        api::MEMCPY_HTOD_ASYNC => "cuMemcpyHtoDAsync",
        api::MEMCPY_DTOH_ASYNC => "cuMemcpyDtoHAsync",
        api::MEMCPY_DTOD_ASYNC => "cuMemcpyDtoDAsync",
        api::MEMCPY => "cuMemcpy",
        api::MEMCPY_ASYNC => "cuMemcpyAsync",
        api::MEMCPY_PEER => "cuMemcpyPeer",
        api::MEMCPY_PEER_ASYNC => "cuMemcpyPeerAsync",
        api::MEMCPY_2D => "cuMemcpy2D",
        api::MEMCPY_2D_ASYNC => "cuMemcpy2DAsync",
        api::MEM_ALLOC => "cuMemAlloc",
        api::MEM_ALLOC_PITCH => "cuMemAllocPitch",
        api::MEM_ALLOC_MANAGED => "cuMemAllocManaged",
        api::MEM_ALLOC_ASYNC => "cuMemAllocAsync",
        api::MEM_FREE => "cuMemFree",
        api::MEM_FREE_ASYNC => "cuMemFreeAsync",
        api::STREAM_SYNC => "cuStreamSynchronize",
        api::CTX_SYNC => "cuCtxSynchronize",
        api::EVENT_SYNC => "cuEventSynchronize",
        api::MODULE_GET_FUNCTION => "cuModuleGetFunction",
        api::LIBRARY_GET_KERNEL => "cuLibraryGetKernel",
        api::KERNEL_GET_FUNCTION => "cuKernelGetFunction",
        api::RT_LAUNCH_KERNEL => "cudaLaunchKernel",
        api::RT_LAUNCH_KERNEL_EX => "cudaLaunchKernelExC",
        _ => "unknown",
    }
}

/// What kind of work an API family does, for grouping in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiClass {
    Launch,
    GraphLaunch,
    Copy,
    Alloc,
    Free,
    Sync,
    Name,
    Runtime,
}

pub fn api_class(api: u16) -> ApiClass {
    match api {
        api::LAUNCH_KERNEL | api::LAUNCH_KERNEL_EX | api::LAUNCH_COOPERATIVE => ApiClass::Launch,
        api::GRAPH_LAUNCH => ApiClass::GraphLaunch,
        api::MEMCPY_HTOD..=api::MEMCPY_2D_ASYNC => ApiClass::Copy,
        api::MEM_ALLOC..=api::MEM_ALLOC_ASYNC => ApiClass::Alloc,
        api::MEM_FREE | api::MEM_FREE_ASYNC => ApiClass::Free,
        api::STREAM_SYNC | api::CTX_SYNC | api::EVENT_SYNC => ApiClass::Sync,
        api::MODULE_GET_FUNCTION | api::LIBRARY_GET_KERNEL | api::KERNEL_GET_FUNCTION => {
            ApiClass::Name
        }
        _ => ApiClass::Runtime,
    }
}

/// Whether calls of `api` name a stream (launches, copies, stream syncs, async allocations and
/// frees).
pub fn has_stream(api: u16) -> bool {
    match api_class(api) {
        ApiClass::Launch | ApiClass::Runtime | ApiClass::GraphLaunch | ApiClass::Copy => true,
        _ => matches!(
            api,
            api::STREAM_SYNC | api::MEM_ALLOC_ASYNC | api::MEM_FREE_ASYNC
        ),
    }
}

/// Whether calls of `api` move or allocate a number of bytes (copies, allocations).
pub fn has_bytes(api: u16) -> bool {
    matches!(api_class(api), ApiClass::Copy | ApiClass::Alloc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_has_a_name_and_a_class() {
        for s in DRIVER_SYMBOLS.iter().chain(RUNTIME_SYMBOLS) {
            assert!(s.api > 0 && s.api < api::COUNT, "{}", s.name);
            let family = api_name(s.api);
            let pool_alloc = s.name.starts_with("cuMemAllocFromPoolAsync");
            assert!(s.name.starts_with(family) || pool_alloc, "{}", s.name);
        }
        assert_eq!(api_class(api::MEMCPY_PEER), ApiClass::Copy);
        assert_eq!(api_class(api::MEM_ALLOC_MANAGED), ApiClass::Alloc);
        assert_eq!(api_class(api::RT_LAUNCH_KERNEL), ApiClass::Runtime);
    }

    #[test]
    fn symbols_are_unique() {
        let mut names: Vec<&str> = DRIVER_SYMBOLS
            .iter()
            .chain(RUNTIME_SYMBOLS)
            .map(|s| s.name)
            .collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
