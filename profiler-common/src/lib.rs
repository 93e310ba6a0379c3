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

// Ring-buffer sizes, in bytes. The eBPF maps are declared with them; userspace may still pass
// them to `EbpfLoader::map_max_entries`, which then changes nothing. A ring buffer's size must
// be a power of two and a multiple of the page size (checked below for 4 KiB pages).

/// Size of the socket-event ring buffer (`SOCK_EVENTS`): at ~600 bytes per event (a
/// [`SOCK_EVENT_HEADER_SIZE`]-byte header plus the captured payload), about 14k events between
/// two drains (every 10 ms), i.e. headroom for ~1M socket syscalls/s.
pub const SOCK_RING_BYTES: u32 = 8 << 20;

/// Size of the CUDA call ring buffer (`CUDA_EVENTS`): [`CUDA_EVENT_SIZE`]-byte records (+8 of
/// header), ~40k between two drains (every 10 ms), i.e. headroom for ~4M calls/s.
pub const CUDA_RING_BYTES: u32 = 4 << 20;

/// Size of the kernel-name ring buffer (`CUDA_NAMES`): [`CUDA_NAME_EVENT_SIZE`]-byte records
/// (+8 of header), ~1.9k between two drains. Names are rare (one per
/// `cuModuleGetFunction`/`cuLibraryGetKernel` call, mostly while modules load).
pub const CUDA_NAMES_RING_BYTES: u32 = 1 << 20;

/// Size of the on-CPU ring buffer (`ONCPU_EVENTS`, `--trace`): [`ONCPU_EVENT_SIZE`]-byte records
/// (+8 of header), ~50k between two drains (every 10 ms), i.e. headroom for ~5M context
/// switches/s of watched threads.
pub const ONCPU_RING_BYTES: u32 = 2 << 20;

const fn valid_ring_size(bytes: u32) -> bool {
    bytes.is_power_of_two() && bytes >= 4096
}
const _: () = assert!(valid_ring_size(SOCK_RING_BYTES));
const _: () = assert!(valid_ring_size(CUDA_RING_BYTES));
const _: () = assert!(valid_ring_size(CUDA_NAMES_RING_BYTES));
const _: () = assert!(valid_ring_size(ONCPU_RING_BYTES));

/// Defines `pub const NAME: &str = "NAME";` for each identifier: a constant's value is its name.
macro_rules! names {
    ($($(#[$attr:meta])* $name:ident;)+) => {
        $($(#[$attr])* pub const $name: &str = stringify!($name);)+
    };
}

/// Names of the maps userspace takes out of the loaded object (`Ebpf::take_map`,
/// `EbpfLoader::map_max_entries`).
///
/// aya names a map after the identifier of its `#[map]` static in `profiler-ebpf`, so each
/// constant here is the identifier of that static (and its value is its own name). The eBPF
/// crate checks at compile time that a static of each name exists (`shared_names!` in
/// `profiler-ebpf/src/maps.rs`); renaming a static means renaming its constant here too.
/// Maps private to the kernel side (`ACTIVE_CALLS`, `CUDA_CALLS`, scratch buffers, …) are not
/// listed.
pub mod map_name {
    names! {
        /// `HashMap<u32, u8>`: watched processes (tgids).
        WATCHED;
        /// `HashMap<u32, ThreadStats>`: per-thread statistics, by tid.
        THREAD_STATS;
        /// `PerCpuArray<u64>`: health counters, indexed by [`crate::counter`].
        COUNTERS;
        /// `LruHashMap<u64, u8>`: fds known to be sockets, keyed `tgid << 32 | fd`.
        SOCKET_FDS;
        /// `LruHashMap<u64, ConnAddrs>`: TCP connection addresses, by kernel socket address.
        CONN_ADDRS;
        /// Ring buffer of socket events ([`crate::SOCK_RING_BYTES`]).
        SOCK_EVENTS;
        /// Ring buffer of [`crate::CudaEvent`]s ([`crate::CUDA_RING_BYTES`]).
        CUDA_EVENTS;
        /// Ring buffer of [`crate::CudaNameEvent`]s ([`crate::CUDA_NAMES_RING_BYTES`]).
        CUDA_NAMES;
        /// Ring buffer of [`crate::OnCpuEvent`]s ([`crate::ONCPU_RING_BYTES`]).
        ONCPU_EVENTS;
        /// `PerCpuArray<u64>`: when each CPU last switched tasks.
        LAST_SWITCH;
    }
}

/// Names of the read-only globals userspace writes before load (`EbpfLoader::override_global`):
/// the identifiers of `#[unsafe(no_mangle)]` statics in `profiler-ebpf`, checked there like
/// [`map_name`].
pub mod global_name {
    names! {
        /// A [`crate::TracepointOffsets`].
        TP_OFFSETS;
        /// A [`crate::NetConfig`].
        NET_CONFIG;
    }
}

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

/// `size_of::<ThreadStats>()`.
pub const THREAD_STATS_SIZE: usize = 360;
const _: () = assert!(core::mem::size_of::<ThreadStats>() == THREAD_STATS_SIZE);

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

/// `size_of::<TracepointOffsets>()`.
pub const TRACEPOINT_OFFSETS_SIZE: usize = 44;
const _: () = assert!(core::mem::size_of::<TracepointOffsets>() == TRACEPOINT_OFFSETS_SIZE);

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

/// `size_of::<OnCpuEvent>()`: the size of an `ONCPU_EVENTS` record.
pub const ONCPU_EVENT_SIZE: usize = 32;
const _: () = assert!(core::mem::size_of::<OnCpuEvent>() == ONCPU_EVENT_SIZE);

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

/// `size_of::<SockEventHeader>()`: the fixed part of a `SOCK_EVENTS` record.
pub const SOCK_EVENT_HEADER_SIZE: usize = 48;
const _: () = assert!(core::mem::size_of::<SockEventHeader>() == SOCK_EVENT_HEADER_SIZE);

/// Per-CPU scratch space where an event is assembled before it is copied to the ring buffer.
/// The data area is twice the capture limit so a masked offset plus a clamped length always fits.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockEventBuf {
    pub header: SockEventHeader,
    pub data: [u8; 2 * CAPTURE_MAX],
}

/// `size_of::<SockEventBuf>()` (kernel-side scratch only; never read by userspace).
pub const SOCK_EVENT_BUF_SIZE: usize = 8240;
const _: () = assert!(core::mem::size_of::<SockEventBuf>() == SOCK_EVENT_BUF_SIZE);

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

/// `size_of::<NetConfig>()`.
pub const NET_CONFIG_SIZE: usize = 48;
const _: () = assert!(core::mem::size_of::<NetConfig>() == NET_CONFIG_SIZE);

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

/// `size_of::<ConnAddrs>()`.
pub const CONN_ADDRS_SIZE: usize = 40;
const _: () = assert!(core::mem::size_of::<ConnAddrs>() == CONN_ADDRS_SIZE);

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

/// `aya::Pod` for the map values and ring-buffer records userspace reads or writes.
#[cfg(feature = "user")]
mod pod {
    // SAFETY (every impl below): the type is #[repr(C)] and `Copy`, holds only integers and
    // integer arrays (every bit pattern is a valid value), and has no implicit padding (gaps
    // are explicit `_pad` fields; `no_implicit_padding` in the tests checks it), so all of its
    // bytes are initialised when aya copies it to or from the kernel.
    unsafe impl aya::Pod for super::ThreadStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TracepointOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NetConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnAddrs {}
    // SAFETY: as above (an `ONCPU_EVENTS` record).
    unsafe impl aya::Pod for super::OnCpuEvent {}
    // SAFETY: as above (the header of a `SOCK_EVENTS` record).
    unsafe impl aya::Pod for super::SockEventHeader {}
    // SAFETY: as above (a `CUDA_EVENTS` record).
    unsafe impl aya::Pod for super::CudaEvent {}
    // SAFETY: as above (a `CUDA_NAMES` record).
    unsafe impl aya::Pod for super::CudaNameEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{size_of, size_of_val};

    /// The size of `$t` is the sum of its fields' sizes: no padding anywhere. Every field must
    /// be listed (a missing one makes the sum too small).
    macro_rules! assert_no_padding {
        ($t:ty { $($field:ident),+ $(,)? }) => {{
            // SAFETY: all-integer types, for which all-zero bytes are a valid value.
            let v: $t = unsafe { core::mem::zeroed() };
            let fields = 0 $(+ size_of_val(&v.$field))+;
            assert_eq!(fields, size_of::<$t>(), "{} has padding", stringify!($t));
        }};
    }

    #[test]
    fn no_implicit_padding() {
        assert_no_padding!(ThreadStats {
            tgid,
            flags,
            oncpu_ns,
            offcpu_ns,
            runq_ns,
            voluntary_switches,
            involuntary_switches,
            migrations,
            on_cpu_since_ns,
            blocked_since_ns,
            runnable_since_ns,
            runq_hist,
            comm,
            runtime_base_ns,
        });
        assert_no_padding!(TracepointOffsets {
            switch_prev_comm,
            switch_prev_pid,
            switch_prev_state,
            switch_next_pid,
            wakeup_pid,
            migrate_pid,
            newtask_pid,
            newtask_clone_flags,
            task_pid,
            task_tgid,
            task_sum_exec_runtime,
        });
        assert_no_padding!(OnCpuEvent {
            start_ns,
            end_ns,
            tgid,
            tid,
            cpu,
            preempted
        });
        assert_no_padding!(SockEventHeader {
            ts_ns,
            ret,
            sk,
            tgid,
            tid,
            fd,
            captured,
            kind,
            family,
            _pad,
        });
        assert_no_padding!(SockEventBuf { header, data });
        assert_no_padding!(NetConfig {
            capture_bytes,
            fd_table_only,
            sock_len_sk,
            sock_len_family,
            sock_len_protocol,
            state_skaddr,
            state_newstate,
            state_sport,
            state_dport,
            state_family,
            state_saddr_v6,
            state_daddr_v6,
        });
        assert_no_padding!(ConnAddrs {
            family,
            sport,
            dport,
            _pad,
            saddr,
            daddr
        });
        assert_no_padding!(CudaEvent {
            ts_ns,
            duration_ns,
            handle,
            handle2,
            stream,
            bytes,
            tgid,
            tid,
            grid,
            block,
            shared_mem,
            ret,
            api,
            flags,
            direction,
            _pad,
        });
        assert_no_padding!(CudaNameEvent {
            ts_ns,
            handle,
            scope,
            tgid,
            tid,
            api,
            truncated,
            _pad,
            name,
        });
    }

    #[test]
    fn names_are_their_identifiers() {
        assert_eq!(map_name::CUDA_NAMES, "CUDA_NAMES");
        assert_eq!(global_name::TP_OFFSETS, "TP_OFFSETS");
    }
}
