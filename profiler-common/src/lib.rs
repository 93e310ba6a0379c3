//! Types shared by the eBPF programs (`profiler-ebpf`) and userspace (`profiler`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into maps, userspace
//! reads the same bytes back. Keep field order and sizes stable within a release.
#![no_std]

/// Number of log2 buckets in a run-queue latency histogram. Bucket `i` counts waits in
/// `[2^i, 2^(i+1))` nanoseconds; the last bucket is open-ended (≥ 2^31 ns ≈ 2.1 s).
pub const RUNQ_BUCKETS: usize = 32;

/// Length of a task's `comm` as the kernel stores it (including the NUL).
pub const COMM_LEN: usize = 16;

/// Capacity of the per-thread statistics map.
pub const MAX_THREADS: u32 = 65_536;

/// Capacity of the watched-process map.
pub const MAX_WATCHED: u32 = 4_096;

/// `ThreadStats::flags`: the thread has passed `sched_process_exit`.
pub const THREAD_EXITED: u32 = 1;

/// Per-thread scheduler statistics, aggregated in the kernel.
///
/// The `*_since_ns` fields are state of the in-kernel state machine (0 = not in that state);
/// userspace uses them only to close an interval that is still open when it reads the map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadStats {
    pub tgid: u32,
    pub flags: u32,
    /// Time spent running on a CPU.
    pub oncpu_ns: u64,
    /// Time spent blocked (switched out voluntarily, until woken up).
    pub offcpu_ns: u64,
    /// Time spent runnable but waiting for a CPU (wakeup or preemption → running).
    pub runq_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub migrations: u64,
    pub on_cpu_since_ns: u64,
    pub blocked_since_ns: u64,
    pub runnable_since_ns: u64,
    pub runq_hist: [u64; RUNQ_BUCKETS],
    pub comm: [u8; COMM_LEN],
    /// The kernel's `se.sum_exec_runtime` of the thread when it last left (or, first, entered)
    /// the CPU (0 = not known yet): with the raw `sched_switch`, on-CPU time is the growth of
    /// this runtime, so a switch-in that was not seen loses nothing.
    pub runtime_base_ns: u64,
}

impl ThreadStats {
    pub const fn new(tgid: u32) -> Self {
        Self {
            tgid,
            flags: 0,
            oncpu_ns: 0,
            offcpu_ns: 0,
            runq_ns: 0,
            voluntary_switches: 0,
            involuntary_switches: 0,
            migrations: 0,
            on_cpu_since_ns: 0,
            blocked_since_ns: 0,
            runnable_since_ns: 0,
            runq_hist: [0; RUNQ_BUCKETS],
            comm: [0; COMM_LEN],
            runtime_base_ns: 0,
        }
    }
}

/// Byte offsets of the tracepoint fields the programs read.
///
/// Tracepoint layouts differ between kernels (e.g. `sched_migrate_task.comm` became a
/// `__data_loc` string, shifting `pid`), so userspace reads them from tracefs `format` files at
/// start-up and writes them into the programs' read-only data before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    pub switch_prev_comm: u32,
    pub switch_prev_pid: u32,
    pub switch_prev_state: u32,
    pub switch_next_pid: u32,
    pub wakeup_pid: u32,
    pub migrate_pid: u32,
    pub newtask_pid: u32,
    pub newtask_clone_flags: u32,
    /// Byte offset of `pid` in `struct task_struct`, from kernel BTF (0 = unknown: the raw
    /// `sched_switch` program is not attached and the perf-event one is used instead).
    pub task_pid: u32,
    /// Byte offset of `tgid` in `struct task_struct`, from kernel BTF (with `task_pid`).
    pub task_tgid: u32,
    /// Byte offset of `se.sum_exec_runtime` in `struct task_struct`, from kernel BTF (0 =
    /// unknown: on-CPU time is then measured from switch to switch).
    pub task_sum_exec_runtime: u32,
}

/// Indexes into the `COUNTERS` array map: the programs' own health counters.
pub mod counter {
    /// A new thread of a watched process could not be added: `THREAD_STATS` is full.
    pub const THREAD_MAP_FULL: u32 = 0;
    /// A new child process could not be watched: `WATCHED` is full.
    pub const WATCHED_MAP_FULL: u32 = 1;
    /// Hits of the `profiler check` uprobe self-test.
    pub const UPROBE_SELFTEST_HITS: u32 = 2;
    /// Socket events dropped because the ring buffer was full.
    pub const SOCK_EVENTS_LOST: u32 = 3;
    /// Socket syscalls not traced because `MAX_ACTIVE_CALLS` were already in progress.
    pub const ACTIVE_CALLS_EVICTED: u32 = 4;
    /// CUDA call or name events dropped because a CUDA ring buffer was full.
    pub const CUDA_EVENTS_LOST: u32 = 5;
    /// Timed CUDA calls whose entry record was replaced before their return (a nested timed
    /// call on the same thread, or `MAX_ACTIVE_CALLS` reached).
    pub const CUDA_CALLS_UNFINISHED: u32 = 6;
    /// On-CPU records (`--trace`) dropped because `ONCPU_EVENTS` was full.
    pub const ONCPU_EVENTS_LOST: u32 = 7;
    /// Switch-outs of a tracked thread whose switch-in had not been seen (the on-CPU interval
    /// before it is lost): the perf-event `sched_switch` skipped it, or the thread was seeded
    /// as sleeping from /proc just before it ran.
    pub const SWITCH_INS_MISSED: u32 = 8;
    pub const LEN: u32 = 9;
}

/// One interval a thread of a watched process spent on a CPU, written when it was switched out,
/// in the `ONCPU_EVENTS` ring buffer. Only produced while a timeline is recorded (`--trace`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnCpuEvent {
    /// CLOCK_MONOTONIC ns of the CPU's previous context switch (when this thread got the CPU);
    /// 0 when the CPU has not switched since the program was attached.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns of the switch that took the CPU from it.
    pub end_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub cpu: u32,
    /// 1 when it was still runnable (preempted or yielded), 0 when it blocked.
    pub preempted: u32,
}

/// Largest number of leading payload bytes captured per socket syscall (`--capture-bytes` upper
/// bound). A power of two: the eBPF side masks offsets with it to satisfy the verifier.
pub const CAPTURE_MAX: usize = 4096;

/// Capacity of the map of file descriptors known to be sockets, per (tgid, fd).
pub const MAX_SOCKET_FDS: u32 = 65_536;

/// Capacity of the map of socket syscalls in progress (one per thread at most).
pub const MAX_ACTIVE_CALLS: u32 = 16_384;

/// `SockEventHeader::kind` values.
pub mod sock_event {
    /// Bytes received (read, readv, recvfrom, recvmsg); `ret` 0 = the peer closed.
    pub const READ: u8 = 1;
    /// Bytes sent (write, writev, sendto, sendmsg, sendfile).
    pub const WRITE: u8 = 2;
    /// The process closed the socket.
    pub const CLOSE: u8 = 3;
    /// accept/accept4 returned a new connection (`fd` is the new descriptor).
    pub const ACCEPT: u8 = 4;
    /// connect() started an outbound connection.
    pub const CONNECT: u8 = 5;
}

/// One socket event in the ring buffer, followed by `captured` payload bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEventHeader {
    /// CLOCK_MONOTONIC ns when the syscall returned.
    pub ts_ns: u64,
    /// The syscall's return value: bytes transferred, a new fd, or -errno.
    pub ret: i64,
    /// Kernel socket address (an identity only, never dereferenced), 0 when unknown.
    pub sk: u64,
    pub tgid: u32,
    pub tid: u32,
    pub fd: i32,
    pub captured: u32,
    pub kind: u8,
    /// Address family (AF_INET, AF_INET6, AF_UNIX) when the socket tracepoints told; 0 unknown.
    pub family: u8,
    pub _pad: [u8; 6],
}

/// Per-CPU scratch space where an event is assembled before it is copied to the ring buffer.
/// The data area is twice the capture limit so a masked offset plus a clamped length always fits.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockEventBuf {
    pub header: SockEventHeader,
    pub data: [u8; 2 * CAPTURE_MAX],
}

/// Socket probe configuration, written by userspace before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Leading payload bytes captured per syscall (≤ `CAPTURE_MAX`).
    pub capture_bytes: u32,
    /// 1 when `sock:sock_{recv,send}_length` are unavailable: sockets are then known only from
    /// accept, connect and the fd table scanned at attach.
    pub fd_table_only: u32,
    /// Field offsets in `sock:sock_recv_length` / `sock_send_length` (same layout).
    pub sock_len_sk: u32,
    pub sock_len_family: u32,
    pub sock_len_protocol: u32,
    /// Field offsets in `sock:inet_sock_set_state`.
    pub state_skaddr: u32,
    pub state_newstate: u32,
    pub state_sport: u32,
    pub state_dport: u32,
    pub state_family: u32,
    pub state_saddr_v6: u32,
    pub state_daddr_v6: u32,
}

/// Addresses of an established TCP connection, from `sock:inet_sock_set_state`, keyed by the
/// kernel socket address that socket events carry (`SockEventHeader::sk`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnAddrs {
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub _pad: u16,
    /// IPv6 addresses; IPv4 appears as IPv4-mapped (::ffff:a.b.c.d), as the kernel fills them.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Capacity of the connection address map.
pub const MAX_CONN_ADDRS: u32 = 65_536;

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

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are #[repr(C)], contain only integers and integer arrays, and every bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::ThreadStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TracepointOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NetConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnAddrs {}
}
