//! The scheduler's side of the eBPF object: its rows of the probe table (context switches as a
//! raw tracepoint with its perf-event fallback, wakeups, migrations, new tasks, the timeline's
//! on-CPU intervals) and the maps of the on-CPU intervals. Privileged I/O on the maps.

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

/// Set (not "0") to use the perf-event `sched_switch` program even where the raw tracepoint
/// works (for tests and comparisons).
pub const PERF_EVENT_SWITCH_ENV: &str = "PROFILER_SCHED_SWITCH_PERF_EVENT";

pub const SCHED_PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: SCHED_SWITCH_RAW,
        category: RAW_TRACEPOINT,
        tracepoint: "sched_switch",
        feature: "scheduler",
        required: true,
        if_missing: "no on/off-CPU or run-queue metrics",
        fallback: Some(&SCHED_SWITCH_FALLBACK),
        off_switch: Some(PERF_EVENT_SWITCH_ENV),
        needs_task_offsets: true,
    },
    ProbeSpec {
        program: "sched_wakeup",
        category: "sched",
        tracepoint: "sched_wakeup",
        feature: "scheduler",
        required: false,
        if_missing: "blocked time includes run-queue wait; run-queue latency only after preemption",
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    },
    ProbeSpec {
        program: "sched_wakeup_new",
        category: "sched",
        tracepoint: "sched_wakeup_new",
        feature: "scheduler",
        required: false,
        if_missing: "first run-queue wait of new threads not measured",
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    },
    ProbeSpec {
        program: "sched_migrate_task",
        category: "sched",
        tracepoint: "sched_migrate_task",
        feature: "scheduler",
        required: false,
        if_missing: "CPU migrations not counted",
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    },
    ProbeSpec {
        program: "task_newtask",
        category: "task",
        tracepoint: "task_newtask",
        feature: "process-tracking",
        required: false,
        if_missing: "child processes started after attach are not followed; new threads are \
                     picked up at their first context switch",
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    },
    ProbeSpec {
        program: "sched_process_exit",
        category: "sched",
        tracepoint: "sched_process_exit",
        feature: "process-tracking",
        required: false,
        if_missing: "exited threads stay in kernel maps until detach",
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    },
];

/// The perf-event `sched_switch` program, used where `sched_switch_raw` cannot be attached
/// (kernels before 5.18, no `task_struct.pid` in BTF). It can lose switch-ins while syscall
/// tracepoint programs run (see docs/DEVELOPMENT.md).
pub const SCHED_SWITCH_FALLBACK: ProbeSpec = ProbeSpec {
    program: "sched_switch",
    category: "sched",
    tracepoint: "sched_switch",
    feature: "scheduler",
    required: true,
    if_missing: "no on/off-CPU or run-queue metrics",
    fallback: None,
    off_switch: None,
    needs_task_offsets: false,
};

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
