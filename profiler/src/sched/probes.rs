//! The scheduler's side of the eBPF object: its rows of the probe table (context switches as a
//! raw tracepoint with its perf-event fallback, wakeups, migrations, new tasks, the timeline's
//! on-CPU intervals) and the maps of the on-CPU intervals. Privileged I/O on the maps.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::Result;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use profiler_common::{counter, map_name};

use crate::bpf::{
    Probes,
    table::{ProbeSpec, RAW_TRACEPOINT},
};

/// The maps of `sched_switch_trace` (the timeline's on-CPU intervals), taken out of the object
/// by whoever attaches it.
pub struct OnCpuMaps {
    events: RingBuf<MapData>,
    last_switch: PerCpuArray<MapData, u64>,
}

impl OnCpuMaps {
    pub fn take(probes: &mut Probes) -> Result<Self> {
        Ok(Self {
            events: RingBuf::try_from(probes.take_map(map_name::ONCPU_EVENTS)?)?,
            last_switch: PerCpuArray::try_from(probes.take_map(map_name::LAST_SWITCH)?)?,
        })
    }

    /// The ring buffer, for the loop to wait on (its producer wakes it when half full).
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// Hands every queued on-CPU record (`OnCpuEvent` bytes) to `f`.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(item) = self.events.next() {
            f(&item);
        }
    }

    /// Per CPU (by index), when it last switched tasks as `sched_switch_trace` saw it
    /// (CLOCK_MONOTONIC ns; 0 = not since attach).
    pub fn last_switch_ns(&self) -> Vec<u64> {
        self.last_switch
            .get(&0, 0)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// On-CPU intervals the kernel could not queue (ring buffer full).
pub fn oncpu_events_lost(probes: &Probes) -> u64 {
    probes.counter(counter::ONCPU_EVENTS_LOST)
}

/// The scheduler accounting's raw tracepoint (see `sched_switch_raw` in profiler-ebpf); where it
/// cannot be attached, `SCHED_SWITCH_FALLBACK` takes its place.
pub const SCHED_SWITCH_RAW: &str = "sched_switch_raw";

/// Set (not "0") to use the perf-event scheduler programs even where the raw tracepoints work
/// (for tests and comparisons).
pub const PERF_EVENT_SCHED_ENV: &str = "PROFILER_SCHED_PERF_EVENT";

/// Each scheduler program as a raw tracepoint (the default: the perf-event path shares a
/// per-CPU recursion guard with the syscall programs, so runs were skipped under load), with
/// its perf-event version as the fallback (kernels whose BTF lacks the task offsets, or that
/// reject the raw program).
pub const SCHED_PROBES: &[ProbeSpec] = &[
    raw(
        SCHED_SWITCH_RAW,
        "sched_switch",
        "scheduler",
        "no on/off-CPU or run-queue metrics",
        &SCHED_SWITCH_FALLBACK,
    ),
    raw(
        "sched_wakeup_raw",
        "sched_wakeup",
        "scheduler",
        WAKEUP_MISSING,
        &SCHED_WAKEUP_FALLBACK,
    ),
    raw(
        "sched_wakeup_new_raw",
        "sched_wakeup_new",
        "scheduler",
        WAKEUP_NEW_MISSING,
        &SCHED_WAKEUP_NEW_FALLBACK,
    ),
    raw(
        "sched_migrate_task_raw",
        "sched_migrate_task",
        "scheduler",
        MIGRATE_MISSING,
        &SCHED_MIGRATE_FALLBACK,
    ),
    raw(
        "task_newtask_raw",
        "task_newtask",
        "process-tracking",
        NEWTASK_MISSING,
        &TASK_NEWTASK_FALLBACK,
    ),
    raw(
        "sched_process_exit_raw",
        "sched_process_exit",
        "process-tracking",
        EXIT_MISSING,
        &SCHED_EXIT_FALLBACK,
    ),
];

const WAKEUP_MISSING: &str =
    "blocked time includes run-queue wait; run-queue latency only after preemption";
const WAKEUP_NEW_MISSING: &str = "first run-queue wait of new threads not measured";
const MIGRATE_MISSING: &str = "CPU migrations not counted";
const NEWTASK_MISSING: &str = "child processes started after attach are not followed; new \
                               threads are picked up at their first context switch";
const EXIT_MISSING: &str = "exited threads stay in kernel maps until detach";

/// The perf-event `sched_switch` program, used where `sched_switch_raw` cannot be attached
/// (kernels before 5.18, no `task_struct.pid` in BTF). It can lose switch-ins while syscall
/// tracepoint programs run (see docs/DEVELOPMENT.md).
pub const SCHED_SWITCH_FALLBACK: ProbeSpec = ProbeSpec {
    required: true,
    ..perf(
        "sched_switch",
        "sched",
        "sched_switch",
        "scheduler",
        "no on/off-CPU or run-queue metrics",
    )
};
const SCHED_WAKEUP_FALLBACK: ProbeSpec = perf(
    "sched_wakeup",
    "sched",
    "sched_wakeup",
    "scheduler",
    WAKEUP_MISSING,
);
const SCHED_WAKEUP_NEW_FALLBACK: ProbeSpec = perf(
    "sched_wakeup_new",
    "sched",
    "sched_wakeup_new",
    "scheduler",
    WAKEUP_NEW_MISSING,
);
const SCHED_MIGRATE_FALLBACK: ProbeSpec = perf(
    "sched_migrate_task",
    "sched",
    "sched_migrate_task",
    "scheduler",
    MIGRATE_MISSING,
);
const TASK_NEWTASK_FALLBACK: ProbeSpec = perf(
    "task_newtask",
    "task",
    "task_newtask",
    "process-tracking",
    NEWTASK_MISSING,
);
const SCHED_EXIT_FALLBACK: ProbeSpec = perf(
    "sched_process_exit",
    "sched",
    "sched_process_exit",
    "process-tracking",
    EXIT_MISSING,
);

/// A raw-tracepoint row that reads task pointers (BTF offsets), with its fallback.
const fn raw(
    program: &'static str,
    tracepoint: &'static str,
    feature: &'static str,
    if_missing: &'static str,
    fallback: &'static ProbeSpec,
) -> ProbeSpec {
    ProbeSpec {
        program,
        category: RAW_TRACEPOINT,
        tracepoint,
        feature,
        // Only the switch program is required, and its fallback carries that.
        required: false,
        if_missing,
        fallback: Some(fallback),
        off_switch: Some(PERF_EVENT_SCHED_ENV),
        needs_task_offsets: true,
    }
}

/// A perf-event tracepoint row (a fallback).
const fn perf(
    program: &'static str,
    category: &'static str,
    tracepoint: &'static str,
    feature: &'static str,
    if_missing: &'static str,
) -> ProbeSpec {
    ProbeSpec {
        program,
        category,
        tracepoint,
        feature,
        required: false,
        if_missing,
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    }
}

/// The timeline's on-CPU intervals (`--trace` only; `sched_switch` keeps the totals). A raw
/// tracepoint: see `sched_switch_trace` in profiler-ebpf for why.
pub const SCHED_TRACE_PROBES: &[ProbeSpec] = &[ProbeSpec {
    program: "sched_switch_trace",
    category: RAW_TRACEPOINT,
    tracepoint: "sched_switch",
    feature: "timeline",
    required: false,
    if_missing: "no on-CPU slices in the timeline (requests and CUDA calls are still written)",
    fallback: None,
    off_switch: None,
    needs_task_offsets: false,
}];
