//! Scheduler tracepoints: on-CPU, blocked and run-queue time, context switches, migrations.
//!
//! Per thread, a small state machine driven by three events:
//! switch-out → blocked (voluntary) or runnable (preempted); wakeup → runnable;
//! switch-in → running. Each transition closes the previous interval into a counter.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{PerCpuArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use profiler_common::{COMM_LEN, ONCPU_RING_BYTES, OnCpuEvent, RUNQ_BUCKETS, ThreadStats, counter};

use crate::maps::{
    THREAD_STATS, bump, is_watched, offsets, register_thread, ring_flags, shared_names,
};

/// On-CPU intervals of watched threads for the timeline (`--trace`), one `OnCpuEvent` each.
/// Only `sched_switch_trace` writes it.
#[map]
pub static ONCPU_EVENTS: RingBuf = RingBuf::with_byte_size(ONCPU_RING_BYTES, 0);

/// Per CPU, when it last switched tasks (CLOCK_MONOTONIC ns; 0 = not since attach): the start of
/// the interval of whichever thread runs there now.
#[map]
pub static LAST_SWITCH: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

shared_names!(map_name: ONCPU_EVENTS, LAST_SWITCH);

/// `prev_state` value the kernel reports for a preempted task (`TASK_REPORT_MAX`).
const TASK_REPORT_MAX: i64 = 0x100;

/// Bits of a task's raw `__state` that the `sched_switch` tracepoint reports as a sleep:
/// `TASK_REPORT` (0x7f) plus `TASK_DEAD` (0x80, reported through `exit_state`). A raw state
/// with none of them (running, or e.g. `TASK_FROZEN` alone) reads as 0 in the tracepoint.
const TASK_REPORTED_STATES: u64 = 0xff;

/// Scheduler accounting, perf-event tracepoint version: the **fallback** for kernels where
/// `sched_switch_raw` cannot be attached (no task_struct offsets in BTF, or no `prev_state`
/// argument before 5.18). On-CPU time runs from switch-in to switch-out here, so a switch-in
/// that is not seen loses the thread's whole next interval.
#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let _ = try_sched_switch(&ctx);
    0
}

/// Scheduler accounting, the default: same state machine as `sched_switch`, driven by the raw
/// tracepoint `TP_PROTO(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)` (prev_state since 5.18; attaching fails before that, as the
/// program reads four arguments). `current` is still `prev`; the incoming thread's tid and tgid
/// are read from `next`, and on-CPU time is the growth of the kernel's `se.sum_exec_runtime`
/// between switch-outs (offsets from BTF), so a switch-in that never arrives (on the dev VM the
/// kernel emits none for switches away from pid 1's threads) costs nothing.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn sched_switch_raw(ctx: RawTracePointContext) -> i32 {
    try_switch_raw(&ctx);
    0
}

/// The timeline's view of `sched_switch`: each switch ends the interval of the task leaving the
/// CPU (`current`), which began at the CPU's previous switch; intervals of watched threads are
/// written out whole, so no record needs a partner. Attached only with `--trace`, so a session
/// without a timeline pays nothing for it.
///
/// A raw tracepoint, not a perf-event one like `sched_switch`: with another tool's (or our own)
/// syscall-tracepoint programs active under load, the perf-event `sched_switch` path was seen
/// to skip switches away from threads of other processes without counting a recursion miss
/// (1–7 per few seconds here), each costing the next thread a whole interval; this program saw
/// none. Raw tracepoints only have per-program recursion protection (and no perf buffer).
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn sched_switch_trace(ctx: RawTracePointContext) -> i32 {
    try_switch_trace(&ctx);
    0
}

// The other scheduler programs come in two versions too. The raw tracepoint ones are the
// default: the perf-event path shares one per-CPU recursion guard among all perf-event
// tracepoint programs, so a wakeup that happens while a syscall tracepoint program runs on that
// CPU was skipped (counted in `recursion_misses`); raw tracepoints guard each program alone.
// Their argument is the task pointer: the pid is read from it at the BTF offset. The perf-event
// ones are the fallback where those offsets are unknown.

/// `sched_wakeup(struct task_struct *p)`.
#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn sched_wakeup_raw(ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = watched_task_tid(ctx.arg(0)) {
        woken(tid);
    }
    0
}

/// `sched_wakeup_new(struct task_struct *p)`.
#[raw_tracepoint(tracepoint = "sched_wakeup_new")]
pub fn sched_wakeup_new_raw(ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = watched_task_tid(ctx.arg(0)) {
        woken(tid);
    }
    0
}

/// `sched_migrate_task(struct task_struct *p, int dest_cpu)`.
#[raw_tracepoint(tracepoint = "sched_migrate_task")]
pub fn sched_migrate_task_raw(ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = watched_task_tid(ctx.arg(0)) {
        migrated(tid);
    }
    0
}

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    let _ = try_wakeup(&ctx);
    0
}

#[tracepoint]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    let _ = try_wakeup(&ctx);
    0
}

#[tracepoint]
pub fn sched_migrate_task(ctx: TracePointContext) -> u32 {
    let _ = try_migrate(&ctx);
    0
}

/// The pid (kernel tid) of `task` (a task_struct pointer from a raw tracepoint's arguments) when
/// its process is watched: other processes' tasks (most, on a node) are settled by a bit, not a
/// lookup in the thread map.
#[inline(always)]
fn watched_task_tid(task: *const u8) -> Option<u32> {
    let off = offsets();
    if task.is_null() || off.task_pid == 0 || off.task_tgid == 0 {
        return None;
    }
    let (tid, tgid) = task_ids(task, off.task_pid, off.task_tgid)?;
    is_watched(tgid).then_some(tid)
}

/// The pid (kernel tid) of `task` (a task_struct pointer from a raw tracepoint's arguments).
#[inline(always)]
pub fn task_tid(task: *const u8) -> Option<u32> {
    let off = offsets().task_pid;
    if task.is_null() || off == 0 {
        return None;
    }
    // SAFETY: a task_struct pointer from the tracepoint arguments and an offset from this
    // kernel's BTF; bpf_probe_read_kernel checks the access.
    let pid = unsafe { bpf_probe_read_kernel(task.wrapping_add(off as usize).cast::<i32>()) };
    match pid {
        Ok(pid) if pid > 0 => Some(pid as u32),
        _ => None,
    }
}

fn try_sched_switch(ctx: &TracePointContext) -> Result<(), i32> {
    let off = offsets();
    let now = monotonic_ns();
    // SAFETY: offsets come from this kernel's tracefs format file for sched_switch.
    let prev_pid = unsafe { ctx.read_at::<i32>(off.switch_prev_pid as usize)? } as u32;
    // SAFETY: as above.
    let next_pid = unsafe { ctx.read_at::<i32>(off.switch_next_pid as usize)? } as u32;
    if prev_pid != 0 {
        // A failure on the way out must not cost the incoming thread its switch-in: that
        // would lose its whole next on-CPU interval.
        let _ = switch_out(prev_pid, now, || {
            // SAFETY: offset from the format file; a long in every kernel we support.
            let state = unsafe { ctx.read_at::<i64>(off.switch_prev_state as usize)? };
            // SAFETY: offset from the format file; char[16] in every kernel we support.
            let comm = unsafe { ctx.read_at::<[u8; COMM_LEN]>(off.switch_prev_comm as usize)? };
            // Preemption and yield keep the task runnable (state 0 or TASK_REPORT_MAX).
            Ok((state == 0 || state & TASK_REPORT_MAX != 0, comm, 0))
        });
    }
    if next_pid != 0 {
        switch_in(next_pid, now);
    }
    Ok(())
}

fn try_switch_raw(ctx: &RawTracePointContext) {
    let off = offsets();
    let id = bpf_get_current_pid_tgid();
    let prev_tid = id as u32;
    let prev_watched = prev_tid != 0 && is_watched((id >> 32) as u32);
    let next: *const u8 = ctx.arg(2);
    // Most switches on a node are other processes': a bit in the watched set settles them,
    // before the clock is read.
    let next_ids = if next.is_null() || off.task_pid == 0 || off.task_tgid == 0 {
        None
    } else {
        task_ids(next, off.task_pid, off.task_tgid).filter(|&(_, tgid)| is_watched(tgid))
    };
    if !prev_watched && next_ids.is_none() {
        return;
    }
    let now = monotonic_ns();
    if prev_watched {
        let prev: *const u8 = ctx.arg(1);
        let _ = switch_out(prev_tid, now, || {
            let preempt: u64 = ctx.arg(0);
            let prev_state: u64 = ctx.arg(3);
            // What the tracepoint reports as prev_state 0 or TASK_REPORT_MAX (see
            // `__trace_sched_switch_state`): preempted, or no sleeping state bit.
            let involuntary = preempt & 1 != 0 || prev_state & TASK_REPORTED_STATES == 0;
            let runtime = task_runtime(prev, off.task_sum_exec_runtime);
            Ok((involuntary, bpf_get_current_comm()?, runtime))
        });
    }
    let Some((tid, tgid)) = next_ids else {
        return;
    };
    if THREAD_STATS.get_ptr(tid).is_none() {
        // A thread of a watched process not registered yet (its task_newtask was not seen):
        // register it now rather than lose this on-CPU interval.
        register_thread(tid, tgid);
    }
    switch_in(tid, now);
    if let Some(stats) = THREAD_STATS.get_ptr_mut(tid) {
        // SAFETY: see switch_out. The base for a thread's first interval; later ones start
        // where its previous switch-out left it (the runtime does not grow off-CPU).
        unsafe {
            if (*stats).runtime_base_ns == 0 {
                (*stats).runtime_base_ns = task_runtime(next, off.task_sum_exec_runtime);
            }
        }
    }
}

/// (pid, tgid) of `task`, in one read where the two are adjacent (they are in every kernel we
/// know); `None` for the idle task or a failed read.
#[inline(always)]
fn task_ids(task: *const u8, pid_at: u32, tgid_at: u32) -> Option<(u32, u32)> {
    // SAFETY: `task` is the kernel's task_struct pointer from the tracepoint arguments and the
    // offsets come from this kernel's BTF; bpf_probe_read_kernel checks the access anyway.
    let read = |at: u32| unsafe {
        bpf_probe_read_kernel(task.wrapping_add(at as usize).cast::<i32>()).ok()
    };
    let (pid, tgid) = if tgid_at == pid_at + 4 {
        // SAFETY: as above.
        let both =
            unsafe { bpf_probe_read_kernel(task.wrapping_add(pid_at as usize).cast::<[i32; 2]>()) };
        let [pid, tgid] = both.ok()?;
        (pid, tgid)
    } else {
        (read(pid_at)?, read(tgid_at)?)
    };
    (pid > 0 && tgid > 0).then_some((pid as u32, tgid as u32))
}

/// `se.sum_exec_runtime` of `task` (0 when unknown): the CPU time the scheduler charged it.
#[inline(always)]
fn task_runtime(task: *const u8, offset: u32) -> u64 {
    if task.is_null() || offset == 0 {
        return 0;
    }
    // SAFETY: a task_struct pointer from the tracepoint arguments and an offset from this
    // kernel's BTF; bpf_probe_read_kernel checks the access.
    unsafe { bpf_probe_read_kernel(task.wrapping_add(offset as usize).cast::<u64>()) }.unwrap_or(0)
}

/// The outgoing thread `tid` (`current`) leaves the CPU. `read_state` gives (involuntary, comm,
/// the kernel's runtime of the thread or 0); it runs only for watched threads.
#[inline(always)]
fn switch_out(
    tid: u32,
    now: u64,
    read_state: impl FnOnce() -> Result<(bool, [u8; COMM_LEN], u64), i32>,
) -> Result<(), i32> {
    // `current` is still the previous task here, so its tgid is at hand: other processes'
    // switches end at one lookup in the small watched set.
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_watched(tgid) {
        return Ok(());
    }
    let (stats, known) = match THREAD_STATS.get_ptr_mut(tid) {
        Some(stats) => (stats, true),
        None => {
            // A thread of a watched process that we have not seen yet (born between the /proc
            // scan and attach) is registered on its first switch-out.
            match register_thread(tid, tgid) {
                Some(stats) => (stats, false),
                None => return Ok(()),
            }
        }
    };
    let (involuntary, comm, runtime) = read_state()?;
    // SAFETY: the pointer comes from a map lookup and is valid for the program's run; a thread
    // runs on one CPU at a time, so its switch events do not race with each other.
    let s = unsafe { &mut *stats };
    // With the kernel's runtime (raw tracepoint), on-CPU time is its growth since the last
    // switch-out: exact even when the switch-in was not seen. Without it, switch to switch.
    let ran = if runtime != 0 && s.runtime_base_ns != 0 && runtime >= s.runtime_base_ns {
        Some(runtime - s.runtime_base_ns)
    } else {
        None
    };
    if s.on_cpu_since_ns != 0 {
        s.oncpu_ns += ran.unwrap_or(now.saturating_sub(s.on_cpu_since_ns));
        s.on_cpu_since_ns = 0;
    } else if known {
        // A tracked thread leaves the CPU but its arrival was not seen (the kernel emitted no
        // event for it, or the perf-event program was skipped).
        bump(counter::SWITCH_INS_MISSED);
        if let Some(ran) = ran {
            s.oncpu_ns += ran;
            // It waited from `runnable_since` until it got the CPU, then ran `ran`.
            if s.runnable_since_ns != 0 {
                let waited = now.saturating_sub(s.runnable_since_ns).saturating_sub(ran);
                s.runq_ns += waited;
                record_runq(s, waited);
                s.runnable_since_ns = 0;
            }
        }
    }
    if runtime != 0 {
        s.runtime_base_ns = runtime;
    }
    // The kernel counts a switch as voluntary when the task blocks; preemption and yield keep
    // it runnable, which is what /proc calls nonvoluntary.
    if involuntary {
        s.involuntary_switches += 1;
        s.runnable_since_ns = now;
    } else {
        s.voluntary_switches += 1;
        s.blocked_since_ns = now;
    }
    s.comm = comm;
    Ok(())
}

#[inline(always)]
fn switch_in(tid: u32, now: u64) {
    let Some(stats) = THREAD_STATS.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: see switch_out.
    let s = unsafe { &mut *stats };
    if s.runnable_since_ns != 0 {
        let waited = now.saturating_sub(s.runnable_since_ns);
        s.runq_ns += waited;
        record_runq(s, waited);
        s.runnable_since_ns = 0;
    }
    if s.blocked_since_ns != 0 {
        // The wakeup was not seen (e.g. the thread was registered mid-sleep): count the whole
        // gap as blocked rather than lose it.
        s.offcpu_ns += now.saturating_sub(s.blocked_since_ns);
        s.blocked_since_ns = 0;
    }
    s.on_cpu_since_ns = now;
}

fn try_switch_trace(ctx: &RawTracePointContext) {
    let now = monotonic_ns();
    let Some(last) = LAST_SWITCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the pointer comes from a successful lookup in a per-CPU map: this CPU's slot,
    // which only this program writes, and it is not re-entered on one CPU.
    let start_ns = unsafe { core::ptr::replace(last, now) };
    // `current` is still the task leaving the CPU.
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if tid == 0 || !is_watched(tgid) {
        return;
    }
    // TP_PROTO(bool preempt, struct task_struct *prev, struct task_struct *next,
    //          unsigned int prev_state): a preempted or yielding task stays runnable.
    let preempt: u64 = ctx.arg(0);
    let prev_state: u64 = ctx.arg(3);
    let event = OnCpuEvent {
        start_ns,
        end_ns: now,
        tgid,
        tid,
        // SAFETY: no preconditions.
        cpu: unsafe { bpf_get_smp_processor_id() },
        preempted: u32::from(preempt & 1 != 0 || prev_state as u32 == 0),
    };
    match ONCPU_EVENTS.reserve::<OnCpuEvent>(0) {
        Some(mut slot) => {
            slot.write(event);
            slot.submit(ring_flags(&ONCPU_EVENTS, ONCPU_RING_BYTES));
        }
        None => bump(counter::ONCPU_EVENTS_LOST),
    }
}

fn try_wakeup(ctx: &TracePointContext) -> Result<(), i32> {
    let off = offsets();
    // SAFETY: offset from the sched_wakeup format file (same layout for sched_wakeup_new).
    let pid = unsafe { ctx.read_at::<i32>(off.wakeup_pid as usize)? } as u32;
    woken(pid);
    Ok(())
}

/// Thread `pid` was woken: its blocked time ends, its run-queue wait starts.
#[inline(always)]
fn woken(pid: u32) {
    let Some(stats) = THREAD_STATS.get_ptr_mut(pid) else {
        return;
    };
    let now = monotonic_ns();
    // SAFETY: see switch_out. A wakeup can race with the thread's own switch on another CPU;
    // the worst case is one interval attributed to the neighbouring state.
    let s = unsafe { &mut *stats };
    if s.blocked_since_ns != 0 {
        s.offcpu_ns += now.saturating_sub(s.blocked_since_ns);
        s.blocked_since_ns = 0;
    }
    // A wakeup of a task that never left the CPU (woken before it slept) starts no wait.
    if s.on_cpu_since_ns == 0 && s.runnable_since_ns == 0 {
        s.runnable_since_ns = now;
    }
}

fn try_migrate(ctx: &TracePointContext) -> Result<(), i32> {
    let off = offsets();
    // SAFETY: offset from the sched_migrate_task format file.
    let pid = unsafe { ctx.read_at::<i32>(off.migrate_pid as usize)? } as u32;
    migrated(pid);
    Ok(())
}

#[inline(always)]
fn migrated(pid: u32) {
    if let Some(stats) = THREAD_STATS.get_ptr_mut(pid) {
        // SAFETY: see switch_out.
        unsafe { (*stats).migrations += 1 };
    }
}

#[inline(always)]
fn monotonic_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions; it reads CLOCK_MONOTONIC.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn record_runq(s: &mut ThreadStats, waited_ns: u64) {
    let bucket = (log2(waited_ns) as usize).min(RUNQ_BUCKETS - 1);
    if let Some(slot) = s.runq_hist.get_mut(bucket) {
        *slot += 1;
    }
}

/// floor(log2(v)) without loops (the verifier prefers straight-line code); log2(0) = 0.
#[inline(always)]
fn log2(mut v: u64) -> u32 {
    let mut r = 0;
    for shift in [32u32, 16, 8, 4, 2, 1] {
        if v >= 1u64 << shift {
            v >>= shift;
            r += shift;
        }
    }
    r
}
