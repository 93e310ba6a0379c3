//! CUDA records: API ids and attach cookies, copy directions, the `CUDA_EVENTS` call record and
//! the `CUDA_NAMES` name record.

/// CUDA API families the uprobes report, one id per family of exported symbols with the same
/// arguments (`cuLaunchKernel` and `cuLaunchKernel_ptsz` share [`cuda_api::LAUNCH_KERNEL`]).
/// The id travels to the programs in the uprobe's attach cookie (see [`cuda_cookie`]).
pub mod cuda_api {
    /// `cuLaunchKernel(f, gx, gy, gz, bx, by, bz, sharedMem, stream, params, extra)`.
    pub const LAUNCH_KERNEL: u16 = 1;
    /// `cuLaunchKernelEx(const CUlaunchConfig *config, f, params, extra)`.
    pub const LAUNCH_KERNEL_EX: u16 = 2;
    /// `cuLaunchCooperativeKernel(f, gx, gy, gz, bx, by, bz, sharedMem, stream, params)`.
    pub const LAUNCH_COOPERATIVE: u16 = 3;
    /// `cuGraphLaunch(CUgraphExec exec, CUstream stream)`.
    pub const GRAPH_LAUNCH: u16 = 4;
    /// `cuMemcpyHtoD_v2(dst, srcHost, bytes)`.
    pub const MEMCPY_HTOD: u16 = 5;
    /// `cuMemcpyDtoH_v2(dstHost, src, bytes)`.
    pub const MEMCPY_DTOH: u16 = 6;
    /// `cuMemcpyDtoD_v2(dst, src, bytes)`.
    pub const MEMCPY_DTOD: u16 = 7;
    /// `cuMemcpyHtoDAsync_v2(dst, srcHost, bytes, stream)`.
    pub const MEMCPY_HTOD_ASYNC: u16 = 8;
    /// `cuMemcpyDtoHAsync_v2(dstHost, src, bytes, stream)`.
    pub const MEMCPY_DTOH_ASYNC: u16 = 9;
    /// `cuMemcpyDtoDAsync_v2(dst, src, bytes, stream)`.
    pub const MEMCPY_DTOD_ASYNC: u16 = 10;
    /// `cuMemcpy(dst, src, bytes)`: unified addressing, direction unknown.
    pub const MEMCPY: u16 = 11;
    /// `cuMemcpyAsync(dst, src, bytes, stream)`.
    pub const MEMCPY_ASYNC: u16 = 12;
    /// `cuMemcpyPeer(dst, dstCtx, src, srcCtx, bytes)`.
    pub const MEMCPY_PEER: u16 = 13;
    /// `cuMemcpyPeerAsync(dst, dstCtx, src, srcCtx, bytes, stream)`.
    pub const MEMCPY_PEER_ASYNC: u16 = 14;
    /// `cuMemcpy2D_v2(const CUDA_MEMCPY2D *copy)` (and `cuMemcpy2DUnaligned_v2`).
    pub const MEMCPY_2D: u16 = 15;
    /// `cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *copy, stream)`.
    pub const MEMCPY_2D_ASYNC: u16 = 16;
    /// `cuMemAlloc_v2(CUdeviceptr *dptr, bytes)`.
    pub const MEM_ALLOC: u16 = 17;
    /// `cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, widthBytes, height, elemSize)`.
    pub const MEM_ALLOC_PITCH: u16 = 18;
    /// `cuMemAllocManaged(CUdeviceptr *dptr, bytes, flags)`.
    pub const MEM_ALLOC_MANAGED: u16 = 19;
    /// `cuMemAllocAsync(CUdeviceptr *dptr, bytes, stream)` (and `cuMemAllocFromPoolAsync`).
    pub const MEM_ALLOC_ASYNC: u16 = 20;
    /// `cuMemFree_v2(CUdeviceptr dptr)`.
    pub const MEM_FREE: u16 = 21;
    /// `cuMemFreeAsync(CUdeviceptr dptr, stream)`.
    pub const MEM_FREE_ASYNC: u16 = 22;
    /// `cuStreamSynchronize(stream)`.
    pub const STREAM_SYNC: u16 = 23;
    /// `cuCtxSynchronize()`.
    pub const CTX_SYNC: u16 = 24;
    /// `cuEventSynchronize(event)`.
    pub const EVENT_SYNC: u16 = 25;
    /// `cuModuleGetFunction(CUfunction *f, CUmodule mod, const char *name)`.
    pub const MODULE_GET_FUNCTION: u16 = 26;
    /// `cuLibraryGetKernel(CUkernel *k, CUlibrary lib, const char *name)`.
    pub const LIBRARY_GET_KERNEL: u16 = 27;
    /// `cuKernelGetFunction(CUfunction *f, CUkernel k)`: resolved in the kernel against the
    /// thread's next launch, never reported on its own.
    pub const KERNEL_GET_FUNCTION: u16 = 28;
    /// Runtime `cudaLaunchKernel(const void *hostStub, dim3 grid, dim3 block, args, shmem,
    /// stream)`: names the driver launch the same thread makes next (never counted itself).
    pub const RT_LAUNCH_KERNEL: u16 = 29;
    /// Runtime `cudaLaunchKernelExC(const cudaLaunchConfig_t *config, const void *hostStub,
    /// args)`.
    pub const RT_LAUNCH_KERNEL_EX: u16 = 30;
    /// Ids are below this.
    pub const COUNT: u16 = 31;
}

/// A uprobe's attach cookie: the API id in the low 16 bits, and [`CUDA_COOKIE_TIMED`] when a
/// return probe is attached too (the entry program then parks the call instead of emitting it).
pub const fn cuda_cookie(api: u16, timed: bool) -> u64 {
    api as u64 | if timed { CUDA_COOKIE_TIMED } else { 0 }
}

/// See [`cuda_cookie`].
pub const CUDA_COOKIE_TIMED: u64 = 1 << 16;

/// A probed instruction in one process: the key of `CUDA_PROBE_COOKIES`, which stands in for
/// the attach cookie on kernels without `bpf_get_attach_cookie` (before 5.15). A uprobe's
/// program sees the probed address as the instruction pointer, so userspace, which knows where
/// the process mapped the library, files the cookie under that address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CudaProbeAddr {
    pub tgid: u32,
    pub _pad: u32,
    /// The probed function's first instruction, as the process maps it.
    pub ip: u64,
}

/// Capacity of `CUDA_PROBE_COOKIES`: ~60 probed symbols per library, two libraries per process.
pub const MAX_CUDA_PROBE_ADDRS: u32 = 32_768;

/// `CudaEvent::direction` values (copies).
pub mod copy_direction {
    pub const UNKNOWN: u8 = 0;
    pub const HTOD: u8 = 1;
    pub const DTOH: u8 = 2;
    pub const DTOD: u8 = 3;
    pub const HTOH: u8 = 4;
    pub const PEER: u8 = 5;
}

/// `CudaEvent::flags` bits.
pub mod cuda_flag {
    /// `duration_ns` and `ret` are valid (a return probe finished the call).
    pub const TIMED: u16 = 1;
    /// `handle2` holds the `CUkernel` that `cuKernelGetFunction` turned into this launch's
    /// `CUfunction` (runtime launches through CUDA 12+ libraries).
    pub const KERNEL_RESOLVED: u16 = 2;
}

/// One CUDA API call of a watched process, in the `CUDA_EVENTS` ring buffer.
///
/// Which fields mean something depends on `api`:
/// - launches: `handle` = CUfunction (cuLaunchKernel*), `handle2` = CUkernel when
///   `KERNEL_RESOLVED`, `stream`, `grid`, `block`, `shared_mem`;
/// - `GRAPH_LAUNCH`: `handle` = CUgraphExec, `stream`;
/// - copies: `bytes`, `direction`, `stream` (async ones);
/// - allocations: `bytes`, `handle` = the device pointer returned (timed calls only);
///   frees: `handle` = the device pointer;
/// - syncs: `stream` (stream sync), `handle` = CUevent (event sync);
/// - `RT_LAUNCH_KERNEL*`: `handle` = host stub address in the process, `stream`, `grid`,
///   `block`, `shared_mem`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CudaEvent {
    /// CLOCK_MONOTONIC ns at the call's entry.
    pub ts_ns: u64,
    /// Host time inside the call, when `flags & TIMED`; 0 otherwise.
    pub duration_ns: u64,
    pub handle: u64,
    pub handle2: u64,
    pub stream: u64,
    pub bytes: u64,
    pub tgid: u32,
    pub tid: u32,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem: u32,
    /// The CUresult returned (0 = CUDA_SUCCESS), when `flags & TIMED`.
    pub ret: i32,
    pub api: u16,
    pub flags: u16,
    pub direction: u8,
    pub _pad: [u8; 3],
}

/// `size_of::<CudaEvent>()`: the size of a `CUDA_EVENTS` record.
pub const CUDA_EVENT_SIZE: usize = 96;
const _: () = assert!(core::mem::size_of::<CudaEvent>() == CUDA_EVENT_SIZE);

/// Longest kernel name copied from `cuModuleGetFunction`/`cuLibraryGetKernel` (with its NUL);
/// longer (template-heavy) names are cut and marked truncated by userspace.
pub const CUDA_NAME_MAX: usize = 512;

/// A kernel name and the handle it was looked up as, in the `CUDA_NAMES` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CudaNameEvent {
    pub ts_ns: u64,
    /// The CUfunction (`MODULE_GET_FUNCTION`) or CUkernel (`LIBRARY_GET_KERNEL`) returned.
    pub handle: u64,
    /// The CUmodule or CUlibrary it came from.
    pub scope: u64,
    pub tgid: u32,
    pub tid: u32,
    pub api: u16,
    /// 1 when the name filled `name` (it may have been cut at `CUDA_NAME_MAX - 1` bytes).
    pub truncated: u8,
    pub _pad: [u8; 5],
    /// NUL-terminated name as the process passed it (usually mangled).
    pub name: [u8; CUDA_NAME_MAX],
}

/// `size_of::<CudaNameEvent>()`: the size of a `CUDA_NAMES` record.
pub const CUDA_NAME_EVENT_SIZE: usize = 552;
const _: () = assert!(core::mem::size_of::<CudaNameEvent>() == CUDA_NAME_EVENT_SIZE);
