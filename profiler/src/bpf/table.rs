//! The declarative probe table: which eBPF program attaches to which tracepoint, what it
//! serves and what the user loses without it. `probes.rs` loads and attaches from it.

/// One row of the probe table: what is attached where, what it serves, and what the user loses
/// without it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub program: &'static str,
    pub category: &'static str,
    pub tracepoint: &'static str,
    pub feature: &'static str,
    /// Without a required probe the feature makes no sense: attaching fails.
    pub required: bool,
    /// What degrades when an optional probe cannot attach.
    pub if_missing: &'static str,
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
    },
    ProbeSpec {
        program: "sched_wakeup",
        category: "sched",
        tracepoint: "sched_wakeup",
        feature: "scheduler",
        required: false,
        if_missing: "blocked time includes run-queue wait; run-queue latency only after preemption",
    },
    ProbeSpec {
        program: "sched_wakeup_new",
        category: "sched",
        tracepoint: "sched_wakeup_new",
        feature: "scheduler",
        required: false,
        if_missing: "first run-queue wait of new threads not measured",
    },
    ProbeSpec {
        program: "sched_migrate_task",
        category: "sched",
        tracepoint: "sched_migrate_task",
        feature: "scheduler",
        required: false,
        if_missing: "CPU migrations not counted",
    },
    ProbeSpec {
        program: "task_newtask",
        category: "task",
        tracepoint: "task_newtask",
        feature: "process-tracking",
        required: false,
        if_missing: "child processes started after attach are not followed; new threads are \
                     picked up at their first context switch",
    },
    ProbeSpec {
        program: "sched_process_exit",
        category: "sched",
        tracepoint: "sched_process_exit",
        feature: "process-tracking",
        required: false,
        if_missing: "exited threads stay in kernel maps until detach",
    },
];

/// `ProbeSpec::category` of a raw tracepoint (attached by name, no tracefs category).
pub const RAW_TRACEPOINT: &str = "raw_tracepoint";

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
};

pub(crate) fn fallback_for(program: &str) -> Option<&'static ProbeSpec> {
    (program == SCHED_SWITCH_RAW).then_some(&SCHED_SWITCH_FALLBACK)
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
}];

const SOCK_IO_MISSING: &str = "no HTTP request metrics";

/// Socket syscalls for HTTP analysis. One program may serve several tracepoints (same argument
/// layout); `sock_exit` finishes every syscall its entry programs started.
pub const SOCK_PROBES: &[ProbeSpec] = &[
    sock("sock_enter_read", "sys_enter_read", SOCK_IO_MISSING),
    sock(
        "sock_enter_read",
        "sys_enter_recvfrom",
        "recv()/recvfrom() traffic not seen",
    ),
    sock(
        "sock_enter_readv",
        "sys_enter_readv",
        "readv() traffic not seen",
    ),
    sock(
        "sock_enter_recvmsg",
        "sys_enter_recvmsg",
        "recvmsg() traffic not seen",
    ),
    sock("sock_enter_write", "sys_enter_write", SOCK_IO_MISSING),
    sock(
        "sock_enter_write",
        "sys_enter_sendto",
        "send()/sendto() traffic not seen",
    ),
    sock(
        "sock_enter_writev",
        "sys_enter_writev",
        "writev() traffic not seen",
    ),
    sock(
        "sock_enter_sendmsg",
        "sys_enter_sendmsg",
        "sendmsg() traffic not seen",
    ),
    sock(
        "sock_enter_sendfile",
        "sys_enter_sendfile64",
        "sendfile() bodies not seen",
    ),
    sock(
        "sock_enter_accept",
        "sys_enter_accept",
        "connection starts inferred from traffic",
    ),
    sock(
        "sock_enter_accept",
        "sys_enter_accept4",
        "connection starts inferred from traffic",
    ),
    sock(
        "sock_enter_connect",
        "sys_enter_connect",
        "outbound connection starts not seen",
    ),
    sock(
        "sock_enter_close",
        "sys_enter_close",
        "closes not seen: errors on close not counted",
    ),
    sock("sock_exit", "sys_exit_read", SOCK_IO_MISSING),
    sock(
        "sock_exit",
        "sys_exit_recvfrom",
        "recv()/recvfrom() traffic not seen",
    ),
    sock("sock_exit", "sys_exit_readv", "readv() traffic not seen"),
    sock(
        "sock_exit",
        "sys_exit_recvmsg",
        "recvmsg() traffic not seen",
    ),
    sock("sock_exit", "sys_exit_write", SOCK_IO_MISSING),
    sock(
        "sock_exit",
        "sys_exit_sendto",
        "send()/sendto() traffic not seen",
    ),
    sock("sock_exit", "sys_exit_writev", "writev() traffic not seen"),
    sock(
        "sock_exit",
        "sys_exit_sendmsg",
        "sendmsg() traffic not seen",
    ),
    sock(
        "sock_exit",
        "sys_exit_sendfile64",
        "sendfile() bodies not seen",
    ),
    sock(
        "sock_exit",
        "sys_exit_accept",
        "connection starts inferred from traffic",
    ),
    sock(
        "sock_exit",
        "sys_exit_accept4",
        "connection starts inferred from traffic",
    ),
    sock(
        "sock_exit",
        "sys_exit_connect",
        "outbound connection starts not seen",
    ),
];

/// Connection addresses and ports (both classification modes).
pub const SOCK_STATE_PROBES: &[ProbeSpec] = &[ProbeSpec {
    program: "sock_state",
    category: "sock",
    tracepoint: "inet_sock_set_state",
    feature: "http",
    required: false,
    if_missing: "no local ports or peer addresses per connection",
}];

/// Socket classification inside the syscall (kernels that have these tracepoints).
pub const SOCK_LENGTH_PROBES: &[ProbeSpec] = &[
    sock_length("sock_recv_length"),
    sock_length("sock_send_length"),
];

const fn sock_length(tracepoint: &'static str) -> ProbeSpec {
    ProbeSpec {
        program: "sock_length",
        category: "sock",
        tracepoint,
        feature: "http",
        required: false,
        if_missing: "sockets known only from accept/connect and the fd table at attach",
    }
}

const fn sock(
    program: &'static str,
    tracepoint: &'static str,
    if_missing: &'static str,
) -> ProbeSpec {
    ProbeSpec {
        program,
        category: "syscalls",
        tracepoint,
        feature: "http",
        required: false,
        if_missing,
    }
}
