//! CUDA driver/runtime calls of watched processes, from uprobes on `libcuda`/`libcudart`.
//!
//! One entry program serves every probed symbol: the attach cookie says which API family it is
//! (`profiler_common::cuda_api`) and whether a return probe is attached too. Kernels before 5.15
//! have no attach cookie: there `cuda_enter_by_address` looks the cookie up by the probed
//! address (the instruction pointer at a uprobe), which userspace files per process. Untimed calls are
//! emitted at entry (the cheap path for hot launches); timed ones are parked per thread and
//! emitted by the return program with the host time and the CUresult.
//!
//! Kernel names: `cuModuleGetFunction`/`cuLibraryGetKernel` are timed, and their return emits the
//! name with the handle it was written to. The CUDA 12 runtime turns a `CUkernel` into the
//! `CUfunction` it launches with `cuKernelGetFunction` right before every launch; instead of a
//! (costly) return probe there, its entry parks the output pointer, and the launch that follows on
//! the same thread reads the `CUfunction` back and tags itself with the `CUkernel`.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
        bpf_probe_read_user_str_bytes,
    },
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext},
};
use profiler_common::{
    CUDA_COOKIE_TIMED, CUDA_NAME_MAX, CUDA_NAMES_RING_BYTES, CUDA_RING_BYTES, CudaEvent,
    CudaNameEvent, CudaProbeAddr, MAX_ACTIVE_CALLS, MAX_CUDA_PROBE_ADDRS, copy_direction as dir,
    counter, cuda_api as api, cuda_flag,
};

use crate::maps::{bump, is_watched, ring_flags, shared_names};

/// A timed call between its entry and return.
#[repr(C)]
#[derive(Clone, Copy)]
struct ParkedCall {
    event: CudaEvent,
    /// Where the call writes its result (`CUfunction *`, `CUdeviceptr *`, …), 0 if nowhere.
    out_ptr: u64,
    /// The name argument of name lookups; `size_t *pitch` of `cuMemAllocPitch`.
    extra_ptr: u64,
}

/// Timed calls in progress, per thread. Removed at the return, or at thread exit.
#[map]
static CUDA_CALLS: HashMap<u32, ParkedCall> = HashMap::with_max_entries(MAX_ACTIVE_CALLS, 0);

/// `cuKernelGetFunction(CUfunction *out, CUkernel k)` entries waiting for the thread's next
/// launch: `[out, k]`.
#[map]
static KERNEL_LOOKUPS: HashMap<u32, [u64; 2]> = HashMap::with_max_entries(MAX_ACTIVE_CALLS, 0);

/// CUDA calls for userspace, one `CudaEvent` each.
#[map]
pub static CUDA_EVENTS: RingBuf = RingBuf::with_byte_size(CUDA_RING_BYTES, 0);

/// Kernel names for userspace (rare, big records), one `CudaNameEvent` each.
#[map]
pub static CUDA_NAMES: RingBuf = RingBuf::with_byte_size(CUDA_NAMES_RING_BYTES, 0);

/// The attach cookie of each probed address of each process (kernels without attach cookies).
#[map]
pub static CUDA_PROBE_COOKIES: HashMap<CudaProbeAddr, u64> =
    HashMap::with_max_entries(MAX_CUDA_PROBE_ADDRS, 0);

shared_names!(map_name: CUDA_EVENTS, CUDA_NAMES, CUDA_PROBE_COOKIES);

/// A name record (`CUDA_NAME_EVENT_SIZE` bytes) is too big for the 512-byte eBPF stack: it is
/// assembled here.
#[map]
static NAME_SCRATCH: PerCpuArray<CudaNameEvent> = PerCpuArray::with_max_entries(1, 0);

/// Drops thread `tid`'s parked CUDA state (it is exiting).
#[inline(always)]
pub fn forget_thread(tid: u32) {
    let _ = CUDA_CALLS.remove(tid);
    let _ = KERNEL_LOOKUPS.remove(tid);
}

#[uprobe]
pub fn cuda_enter(ctx: ProbeContext) -> u32 {
    // SAFETY: the helper only reads the cookie of the link that ran this program.
    let _ = try_enter(&ctx, |ctx, _| unsafe {
        bpf_get_attach_cookie(ctx.as_ptr())
    });
    0
}

/// `cuda_enter` for kernels without `bpf_get_attach_cookie` (before 5.15): the cookie is filed
/// under the probed address, which a uprobe's program sees as the instruction pointer.
#[uprobe]
pub fn cuda_enter_by_address(ctx: ProbeContext) -> u32 {
    let _ = try_enter(&ctx, |ctx, tgid| {
        let key = CudaProbeAddr {
            tgid,
            _pad: 0,
            ip: instruction_pointer(ctx),
        };
        // SAFETY: the value is copied out at once; entries are plain integers.
        match unsafe { CUDA_PROBE_COOKIES.get(key) } {
            Some(cookie) => *cookie,
            None => {
                // Mapped again elsewhere since userspace filed it: the call is lost.
                bump(counter::CUDA_EVENTS_LOST);
                0
            }
        }
    });
    0
}

#[uretprobe]
pub fn cuda_exit(ctx: RetProbeContext) -> u32 {
    let _ = try_exit(&ctx);
    0
}

/// Benchmarks only (`--cuda-empty-probes`): the cost of a uprobe that does nothing.
#[uprobe]
pub fn cuda_empty(_ctx: ProbeContext) -> u32 {
    0
}

/// Argument registers before arguments spill to the stack, and where the first stack argument
/// is at function entry (x86-64: above the return address).
#[cfg(bpf_target_arch = "aarch64")]
const REG_ARGS: usize = 8;
#[cfg(bpf_target_arch = "aarch64")]
const FIRST_STACK_ARG: u64 = 0;
#[cfg(not(bpf_target_arch = "aarch64"))]
const REG_ARGS: usize = 6;
#[cfg(not(bpf_target_arch = "aarch64"))]
const FIRST_STACK_ARG: u64 = 8;

/// Integer/pointer argument `n` (from 0) at a function's first instruction.
#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    if n < REG_ARGS {
        return ctx.arg::<u64>(n).unwrap_or(0);
    }
    read_u64(stack_arg_addr(ctx, n))
}

/// Where stack argument `n` (≥ `REG_ARGS`) is at a function's first instruction.
#[inline(always)]
fn stack_arg_addr(ctx: &ProbeContext, n: usize) -> u64 {
    stack_pointer(ctx) + FIRST_STACK_ARG + 8 * (n - REG_ARGS) as u64
}

/// Arguments `n..n + 3` in one go: each user-memory read costs ~150 ns on our VM, so the
/// stack-passed arguments of a launch are read together.
#[inline(always)]
fn args3(ctx: &ProbeContext, n: usize) -> [u64; 3] {
    if n + 3 <= REG_ARGS {
        return [arg(ctx, n), arg(ctx, n + 1), arg(ctx, n + 2)];
    }
    if n >= REG_ARGS {
        // SAFETY: bpf_probe_read_user checks the address; a fault returns an error.
        return unsafe { bpf_probe_read_user(stack_arg_addr(ctx, n) as *const [u64; 3]) }
            .unwrap_or([0; 3]);
    }
    [arg(ctx, n), arg(ctx, n + 1), arg(ctx, n + 2)]
}

#[cfg(not(bpf_target_arch = "aarch64"))]
#[inline(always)]
fn stack_pointer(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` is the probe's pt_regs, valid for the program's run.
    unsafe { (*ctx.regs).rsp }
}

/// The probed address: the kernel sets the instruction pointer back to the breakpoint before
/// it runs a uprobe's programs.
#[cfg(not(bpf_target_arch = "aarch64"))]
#[inline(always)]
fn instruction_pointer(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` is the probe's pt_regs, valid for the program's run.
    unsafe { (*ctx.regs).rip }
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn instruction_pointer(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` is the probe's pt_regs, valid for the program's run.
    unsafe { (*ctx.regs).pc }
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn stack_pointer(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` is the probe's pt_regs, valid for the program's run.
    unsafe { (*ctx.regs).sp }
}

/// A u64 from the process's memory; 0 when unreadable.
#[inline(always)]
fn read_u64(addr: u64) -> u64 {
    if addr == 0 {
        return 0;
    }
    // SAFETY: bpf_probe_read_user checks the address; a fault returns an error.
    unsafe { bpf_probe_read_user(addr as *const u64) }.unwrap_or(0)
}

/// `CUlaunchConfig` (driver) and the head of `cudaLaunchConfig_t` (runtime) share this layout:
/// grid and block dimensions, dynamic shared memory, then the stream at offset 32 (the runtime
/// has a `size_t` shared memory at 24, whose low half is the same on little-endian).
#[repr(C)]
#[derive(Clone, Copy)]
struct LaunchConfigHead {
    grid: [u32; 3],
    block: [u32; 3],
    shared_mem: u32,
    _pad: u32,
    stream: u64,
}

/// The fields of `CUDA_MEMCPY2D` that say what moves where (offsets from cuda.h).
const MEMCPY2D_SRC_TYPE: u64 = 16;
const MEMCPY2D_DST_TYPE: u64 = 72;
const MEMCPY2D_WIDTH: u64 = 112;
const MEMCPY2D_HEIGHT: u64 = 120;

/// `CUmemorytype`.
const MEM_HOST: u64 = 1;
const MEM_DEVICE: u64 = 2;
const MEM_ARRAY: u64 = 3;

/// `cookie_of(ctx, tgid)` says which probe ran (see `cuda_cookie`); 0 = unknown.
#[inline(always)]
fn try_enter(ctx: &ProbeContext, cookie_of: impl Fn(&ProbeContext, u32) -> u64) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !is_watched(tgid) {
        return None;
    }
    let tid = pid_tgid as u32;
    let cookie = cookie_of(ctx, tgid);
    let api_id = cookie as u16;
    if api_id == 0 {
        return None;
    }
    if api_id == api::KERNEL_GET_FUNCTION {
        let _ = KERNEL_LOOKUPS.insert(tid, [arg(ctx, 0), arg(ctx, 1)], 0);
        return Some(());
    }
    let event = CudaEvent {
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        tgid,
        tid,
        api: api_id,
        ..CudaEvent::default()
    };
    if cookie & CUDA_COOKIE_TIMED == 0 {
        // Hot path (untimed launches): the event is written straight into the ring buffer.
        let Some(mut slot) = CUDA_EVENTS.reserve::<CudaEvent>(0) else {
            bump(counter::CUDA_EVENTS_LOST);
            return None;
        };
        let ev = slot.write(event);
        let (mut out_ptr, mut extra_ptr) = (0, 0);
        describe_call(ctx, ev, &mut out_ptr, &mut extra_ptr);
        slot.submit(ring_flags(&CUDA_EVENTS, CUDA_RING_BYTES));
        return Some(());
    }
    let mut call = ParkedCall {
        event,
        out_ptr: 0,
        extra_ptr: 0,
    };
    describe_call(ctx, &mut call.event, &mut call.out_ptr, &mut call.extra_ptr);
    const BPF_NOEXIST: u64 = 1;
    if CUDA_CALLS.insert(tid, call, BPF_NOEXIST).is_err() {
        // A timed call already parked on this thread never returned through its probe
        // (nested call, or the map is full): replace it, and count it.
        bump(counter::CUDA_CALLS_UNFINISHED);
        let _ = CUDA_CALLS.insert(tid, call, 0);
    }
    Some(())
}

/// Fills the event from the arguments of the API family it belongs to.
#[inline(always)]
fn describe_call(ctx: &ProbeContext, ev: &mut CudaEvent, out_ptr: &mut u64, extra_ptr: &mut u64) {
    match ev.api {
        api::LAUNCH_KERNEL | api::LAUNCH_COOPERATIVE => {
            ev.handle = arg(ctx, 0);
            ev.grid = [arg(ctx, 1) as u32, arg(ctx, 2) as u32, arg(ctx, 3) as u32];
            // x86-64: blockDimZ, sharedMemBytes and the stream are on the stack.
            let [bz, shared, stream] = args3(ctx, 6);
            ev.block = [arg(ctx, 4) as u32, arg(ctx, 5) as u32, bz as u32];
            ev.shared_mem = shared as u32;
            ev.stream = stream;
            resolve_kernel(ev);
        }
        api::LAUNCH_KERNEL_EX => {
            read_launch_config(ev, arg(ctx, 0));
            ev.handle = arg(ctx, 1);
            resolve_kernel(ev);
        }
        api::GRAPH_LAUNCH => {
            ev.handle = arg(ctx, 0);
            ev.stream = arg(ctx, 1);
        }
        api::MEMCPY_HTOD | api::MEMCPY_DTOH | api::MEMCPY_DTOD | api::MEMCPY => {
            ev.bytes = arg(ctx, 2);
            ev.direction = fixed_direction(ev.api);
        }
        api::MEMCPY_HTOD_ASYNC
        | api::MEMCPY_DTOH_ASYNC
        | api::MEMCPY_DTOD_ASYNC
        | api::MEMCPY_ASYNC => {
            ev.bytes = arg(ctx, 2);
            ev.stream = arg(ctx, 3);
            ev.direction = fixed_direction(ev.api);
        }
        api::MEMCPY_PEER => {
            ev.bytes = arg(ctx, 4);
            ev.direction = dir::PEER;
        }
        api::MEMCPY_PEER_ASYNC => {
            ev.bytes = arg(ctx, 4);
            ev.stream = arg(ctx, 5);
            ev.direction = dir::PEER;
        }
        api::MEMCPY_2D | api::MEMCPY_2D_ASYNC => {
            let copy = arg(ctx, 0);
            if copy != 0 {
                ev.bytes = read_u64(copy + MEMCPY2D_WIDTH) * read_u64(copy + MEMCPY2D_HEIGHT);
                // The enums are 4 bytes; the padding after them is not ours to trust.
                let src = read_u64(copy + MEMCPY2D_SRC_TYPE) & 0xffff_ffff;
                let dst = read_u64(copy + MEMCPY2D_DST_TYPE) & 0xffff_ffff;
                ev.direction = direction_2d(src, dst);
            }
            if ev.api == api::MEMCPY_2D_ASYNC {
                ev.stream = arg(ctx, 1);
            }
        }
        api::MEM_ALLOC | api::MEM_ALLOC_MANAGED | api::MEM_ALLOC_ASYNC => {
            *out_ptr = arg(ctx, 0);
            ev.bytes = arg(ctx, 1);
        }
        api::MEM_ALLOC_PITCH => {
            // Bytes = pitch × height; the pitch is only known at return.
            *out_ptr = arg(ctx, 0);
            *extra_ptr = arg(ctx, 1);
            ev.bytes = arg(ctx, 3);
        }
        api::MEM_FREE => ev.handle = arg(ctx, 0),
        api::MEM_FREE_ASYNC => {
            ev.handle = arg(ctx, 0);
            ev.stream = arg(ctx, 1);
        }
        api::STREAM_SYNC => ev.stream = arg(ctx, 0),
        api::EVENT_SYNC => ev.handle = arg(ctx, 0),
        api::MODULE_GET_FUNCTION | api::LIBRARY_GET_KERNEL => {
            *out_ptr = arg(ctx, 0);
            ev.handle2 = arg(ctx, 1);
            *extra_ptr = arg(ctx, 2);
        }
        api::RT_LAUNCH_KERNEL => {
            // dim3 is passed by value in two registers each: {x, y} then {z}.
            ev.handle = arg(ctx, 0);
            let (gxy, gz, bxy, bz) = (arg(ctx, 1), arg(ctx, 2), arg(ctx, 3), arg(ctx, 4));
            ev.grid = [gxy as u32, (gxy >> 32) as u32, gz as u32];
            ev.block = [bxy as u32, (bxy >> 32) as u32, bz as u32];
            ev.shared_mem = arg(ctx, 6) as u32;
            ev.stream = arg(ctx, 7);
        }
        api::RT_LAUNCH_KERNEL_EX => {
            read_launch_config(ev, arg(ctx, 0));
            ev.handle = arg(ctx, 1);
        }
        _ => {}
    }
}

#[inline(always)]
fn read_launch_config(ev: &mut CudaEvent, config: u64) {
    if config == 0 {
        return;
    }
    // SAFETY: bpf_probe_read_user checks the address; a fault returns an error.
    if let Ok(c) = unsafe { bpf_probe_read_user(config as *const LaunchConfigHead) } {
        ev.grid = c.grid;
        ev.block = c.block;
        ev.shared_mem = c.shared_mem;
        ev.stream = c.stream;
    }
}

#[inline(always)]
fn fixed_direction(api_id: u16) -> u8 {
    match api_id {
        api::MEMCPY_HTOD | api::MEMCPY_HTOD_ASYNC => dir::HTOD,
        api::MEMCPY_DTOH | api::MEMCPY_DTOH_ASYNC => dir::DTOH,
        api::MEMCPY_DTOD | api::MEMCPY_DTOD_ASYNC => dir::DTOD,
        _ => dir::UNKNOWN,
    }
}

#[inline(always)]
fn direction_2d(src: u64, dst: u64) -> u8 {
    let on_device = |t: u64| t == MEM_DEVICE || t == MEM_ARRAY;
    match (src, dst) {
        (MEM_HOST, MEM_HOST) => dir::HTOH,
        (MEM_HOST, d) if on_device(d) => dir::HTOD,
        (s, MEM_HOST) if on_device(s) => dir::DTOH,
        (s, d) if on_device(s) && on_device(d) => dir::DTOD,
        _ => dir::UNKNOWN,
    }
}

/// Tags a launch with the `CUkernel` that `cuKernelGetFunction` just turned into its function.
#[inline(always)]
fn resolve_kernel(ev: &mut CudaEvent) {
    let Some(lookup) = KERNEL_LOOKUPS.get_ptr(ev.tid) else {
        return;
    };
    // SAFETY: pointer from a successful lookup, valid for this run.
    let [out, kernel] = unsafe { *lookup };
    if out != 0 && read_u64(out) == ev.handle {
        ev.handle2 = kernel;
        ev.flags |= cuda_flag::KERNEL_RESOLVED;
    }
    let _ = KERNEL_LOOKUPS.remove(ev.tid);
}

fn try_exit(ctx: &RetProbeContext) -> Option<()> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let parked = CUDA_CALLS.get_ptr(tid)?;
    // SAFETY: pointer from a successful lookup; copied out before the entry is removed.
    let call = unsafe { *parked };
    let _ = CUDA_CALLS.remove(tid);
    let mut ev = call.event;
    // SAFETY: no preconditions.
    ev.duration_ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(ev.ts_ns);
    ev.ret = ctx.ret::<u64>() as i32;
    ev.flags |= cuda_flag::TIMED;
    if ev.ret == 0 {
        match ev.api {
            api::MEM_ALLOC | api::MEM_ALLOC_MANAGED | api::MEM_ALLOC_ASYNC => {
                ev.handle = read_u64(call.out_ptr);
            }
            api::MEM_ALLOC_PITCH => {
                ev.handle = read_u64(call.out_ptr);
                ev.bytes *= read_u64(call.extra_ptr);
            }
            api::MODULE_GET_FUNCTION | api::LIBRARY_GET_KERNEL => {
                ev.handle = read_u64(call.out_ptr);
                emit_name(&ev, call.extra_ptr);
            }
            _ => {}
        }
    }
    emit(&ev);
    Some(())
}

#[inline(always)]
fn emit(ev: &CudaEvent) {
    if CUDA_EVENTS
        .output::<CudaEvent>(ev, ring_flags(&CUDA_EVENTS, CUDA_RING_BYTES))
        .is_err()
    {
        bump(counter::CUDA_EVENTS_LOST);
    }
}

#[inline(always)]
fn emit_name(ev: &CudaEvent, name_ptr: u64) {
    let Some(scratch) = NAME_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU scratch slot is this CPU's and nothing else runs on it meanwhile.
    let rec = unsafe { &mut *scratch };
    rec.ts_ns = ev.ts_ns;
    rec.handle = ev.handle;
    rec.scope = ev.handle2;
    rec.tgid = ev.tgid;
    rec.tid = ev.tid;
    rec.api = ev.api;
    rec.name[0] = 0;
    rec.truncated = 0;
    if name_ptr != 0 {
        // SAFETY: the helper checks the source address and NUL-terminates within the buffer.
        let read = unsafe { bpf_probe_read_user_str_bytes(name_ptr as *const u8, &mut rec.name) };
        // The helper stops at the buffer's end: a name that filled it may have been longer.
        if read.is_ok_and(|s| s.len() + 1 >= CUDA_NAME_MAX) {
            rec.truncated = 1;
        }
    }
    if CUDA_NAMES
        .output::<CudaNameEvent>(&*rec, ring_flags(&CUDA_NAMES, CUDA_NAMES_RING_BYTES))
        .is_err()
    {
        bump(counter::CUDA_EVENTS_LOST);
    }
}
