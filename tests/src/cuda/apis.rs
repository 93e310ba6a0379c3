//! API families and the symbols behind them: which the profiler probes (the stubs export each),
//! which the report may list, which are timed, and the host time the stub spends in each.

use super::run::Durations;

/// API families timed with return probes only under `--cuda-launch-latency`.
pub const LAUNCH_LATENCY_APIS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
    "cuGraphLaunch",
    "cuMemcpyHtoDAsync",
    "cuMemcpyDtoHAsync",
    "cuMemcpyDtoDAsync",
    "cuMemcpyAsync",
];

/// API families always timed.
pub const ALWAYS_TIMED_APIS: &[&str] = &[
    "cuMemcpyHtoD",
    "cuMemcpyDtoH",
    "cuMemcpyDtoD",
    "cuMemcpy",
    "cuMemcpyPeer",
    "cuMemcpy2D",
    "cuMemAlloc",
    "cuMemAllocPitch",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemFree",
    "cuMemFreeAsync",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
];

pub const SYNC_APIS: &[&str] = &[
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
];

/// The host time the stub spends in each call of `api` (µs), where it sets one.
pub fn nominal_us(api: &str, d: Durations) -> Option<u64> {
    match api {
        "cuLaunchKernel" | "cuLaunchKernelEx" | "cuLaunchCooperativeKernel" | "cuGraphLaunch" => {
            Some(d.launch_us)
        }
        "cuMemcpyHtoD" | "cuMemcpyDtoH" | "cuMemcpyDtoD" | "cuMemcpy" | "cuMemcpyPeer"
        | "cuMemcpy2D" => Some(d.copy_us),
        "cuStreamSynchronize" | "cuCtxSynchronize" | "cuEventSynchronize" => Some(d.sync_us),
        _ => None,
    }
    .filter(|us| *us > 0)
}

/// The driver symbols the profiler probes (profiler/src/cuda/symbols.rs): the stub exports
/// every one of them.
pub const PROBED_DRIVER_SYMBOLS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernel_ptsz",
    "cuLaunchKernelEx",
    "cuLaunchKernelEx_ptsz",
    "cuLaunchCooperativeKernel",
    "cuLaunchCooperativeKernel_ptsz",
    "cuGraphLaunch",
    "cuGraphLaunch_ptsz",
    "cuMemcpyHtoD_v2",
    "cuMemcpyHtoD_v2_ptds",
    "cuMemcpyDtoH_v2",
    "cuMemcpyDtoH_v2_ptds",
    "cuMemcpyDtoD_v2",
    "cuMemcpyDtoD_v2_ptds",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyHtoDAsync_v2_ptsz",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoHAsync_v2_ptsz",
    "cuMemcpyDtoDAsync_v2",
    "cuMemcpyDtoDAsync_v2_ptsz",
    "cuMemcpy",
    "cuMemcpy_ptds",
    "cuMemcpyAsync",
    "cuMemcpyAsync_ptsz",
    "cuMemcpyPeer",
    "cuMemcpyPeer_ptds",
    "cuMemcpyPeerAsync",
    "cuMemcpyPeerAsync_ptsz",
    "cuMemcpy2D_v2",
    "cuMemcpy2D_v2_ptds",
    "cuMemcpy2DUnaligned_v2",
    "cuMemcpy2DUnaligned_v2_ptds",
    "cuMemcpy2DAsync_v2",
    "cuMemcpy2DAsync_v2_ptsz",
    "cuMemAlloc_v2",
    "cuMemAllocPitch_v2",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemAllocAsync_ptsz",
    "cuMemAllocFromPoolAsync",
    "cuMemAllocFromPoolAsync_ptsz",
    "cuMemFree_v2",
    "cuMemFreeAsync",
    "cuMemFreeAsync_ptsz",
    "cuStreamSynchronize",
    "cuStreamSynchronize_ptsz",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
    "cuKernelGetFunction",
];

pub const PROBED_RUNTIME_SYMBOLS: &[&str] = &[
    "cudaLaunchKernel",
    "cudaLaunchKernel_ptsz",
    "cudaLaunchKernelExC",
    "cudaLaunchKernelExC_ptsz",
];

/// The API family (report name) of an exported symbol: without `_ptsz`/`_ptds` and `_v2`.
/// `None` for symbols the profiler does not report on their own.
pub fn api_family(symbol: &str) -> Option<&'static str> {
    let base = symbol
        .trim_end_matches("_ptsz")
        .trim_end_matches("_ptds")
        .trim_end_matches("_v2");
    let base = match base {
        "cuMemcpy2DUnaligned" => "cuMemcpy2D",
        "cuMemAllocFromPoolAsync" => "cuMemAllocAsync",
        other => other,
    };
    REPORTED_APIS.iter().copied().find(|a| *a == base)
}

/// Every API family the report may list.
pub const REPORTED_APIS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
    "cuGraphLaunch",
    "cuMemcpyHtoD",
    "cuMemcpyDtoH",
    "cuMemcpyDtoD",
    "cuMemcpyHtoDAsync",
    "cuMemcpyDtoHAsync",
    "cuMemcpyDtoDAsync",
    "cuMemcpy",
    "cuMemcpyAsync",
    "cuMemcpyPeer",
    "cuMemcpyPeerAsync",
    "cuMemcpy2D",
    "cuMemcpy2DAsync",
    "cuMemAlloc",
    "cuMemAllocPitch",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemFree",
    "cuMemFreeAsync",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
];
