//! Scheduler records: per-thread statistics (`THREAD_STATS`), the tracepoint field offsets
//! userspace writes before load, and the timeline's on-CPU intervals (`ONCPU_EVENTS`).

use crate::{COMM_LEN, RUNQ_BUCKETS};

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
