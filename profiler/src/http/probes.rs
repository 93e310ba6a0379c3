//! The HTTP capture's side of the eBPF object: its rows of the probe table (socket syscalls and
//! the socket tracepoints that recognise stream sockets inside them) and its map (the
//! socket-event ring buffer).
//! Privileged I/O on the maps.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use profiler_common::{NetConfig, counter, map_name};

use crate::bpf::{
    Probes,
    table::{ProbeSpec, RAW_TRACEPOINT},
};

/// The HTTP capture's ring buffer, taken out of the object at start.
pub struct SocketMaps {
    events: RingBuf<MapData>,
}

impl SocketMaps {
    pub fn take(probes: &mut Probes) -> Result<Self> {
        Ok(Self {
            events: RingBuf::try_from(probes.take_map(map_name::SOCK_EVENTS)?)?,
        })
    }

    /// The ring buffer, for the loop to wait on (its producers wake it when half full).
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// Hands every queued socket event to `f`.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(item) = self.events.next() {
            f(&item);
        }
    }
}

/// Socket events the kernel could not queue (ring buffer full).
pub fn sock_events_lost(probes: &Probes) -> u64 {
    probes.counter(counter::SOCK_EVENTS_LOST)
}

/// Socket-layer transfers of watched processes from callers the capture does not know.
pub fn sock_layer_unknown_callers(probes: &Probes) -> u64 {
    probes.counter(counter::SOCK_LAYER_UNKNOWN_CALLER)
}

/// Syscalls whose entry state was evicted before their exit.
pub fn active_calls_evicted(probes: &Probes) -> u64 {
    probes.counter(counter::ACTIVE_CALLS_EVICTED)
}

/// Set (not "0") to capture sockets on the syscall path even where the socket layer works
/// (tests run the HTTP suite both ways; comparisons).
pub const SYSCALL_PATH_ENV: &str = "PROFILER_SOCKETS_SYSCALL_PATH";

/// Where the socket capture hooks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketPath {
    /// `sock:sock_{recv,send}_length` and `inet_sock_set_state` only (6.2+): no syscall
    /// tracepoint, so other processes' file, pipe and eventfd I/O pays nothing.
    SocketLayer,
    /// Syscall tracepoints, sockets recognised inside each syscall by the socket tracepoints.
    Syscalls,
    /// Syscall tracepoints, each fd resolved to its socket in the kernel (before 6.2).
    FdLookup,
}

impl SocketPath {
    /// What the report calls it (`http.socket_classification`).
    pub fn name(self) -> &'static str {
        match self {
            SocketPath::SocketLayer => "socket-layer",
            SocketPath::Syscalls => "socket-tracepoints",
            SocketPath::FdLookup => "fd-lookup",
        }
    }

    /// How `profiler check` describes it.
    pub fn describe(self, net: &NetConfig) -> &'static str {
        match self {
            SocketPath::SocketLayer => {
                "socket layer: raw tracepoints sock_{recv,send}_length and inet_sock_set_state, \
                 no syscall tracepoints"
            }
            SocketPath::Syscalls => {
                "syscall tracepoints, sockets recognised inside each syscall (sock:sock_*_length)"
            }
            SocketPath::FdLookup if net.sockets.valid != 0 => {
                "syscall tracepoints (no sock:sock_recv_length): each syscall's fd resolved to \
                 its socket in the kernel"
            }
            SocketPath::FdLookup => {
                "syscall tracepoints (no sock:sock_recv_length) and no BTF offsets: sockets known \
                 only from accept/connect since attach"
            }
        }
    }
}

/// Attaches the socket capture's probes on the best path this kernel offers: the socket layer
/// where its tracepoints exist (falling back to the syscall path when its programs are
/// rejected), the syscall path otherwise.
pub fn attach_socket_probes(probes: &mut Probes, net: &NetConfig) -> Result<SocketPath> {
    if net.resolve_fds != 0 {
        probes.attach(SOCK_PROBES)?;
        return Ok(SocketPath::FdLookup);
    }
    let forced = std::env::var_os(SYSCALL_PATH_ENV).is_some_and(|v| v != "0");
    // The socket layer reads the socket's family and type at their BTF offsets.
    let layer_possible = net.sockets.valid != 0 && net.sockets.sk_type != 0;
    if !forced && layer_possible {
        let start = probes.status.len();
        probes.attach(SOCK_LAYER_PROBES)?;
        let layer_ok = probes.status[start..]
            .iter()
            .filter(|s| s.program != "sock_layer_state")
            .all(|s| s.attached);
        if layer_ok {
            return Ok(SocketPath::SocketLayer);
        }
    }
    probes.attach(SOCK_LENGTH_PROBES)?;
    probes.attach(SOCK_PROBES)?;
    Ok(SocketPath::Syscalls)
}

/// Socket-layer capture (6.2+): transfers from the socket tracepoints (raw: no perf-event record
/// built per transfer), with the syscall's arguments from the task's user registers; opens and
/// closes from TCP state changes.
pub const SOCK_LAYER_PROBES: &[ProbeSpec] = &[
    sock_layer(
        "sock_layer_recv",
        "sock_recv_length",
        "socket layer unavailable: the syscall path is used",
    ),
    sock_layer(
        "sock_layer_send",
        "sock_send_length",
        "socket layer unavailable: the syscall path is used",
    ),
    sock_layer(
        "sock_layer_state",
        "inet_sock_set_state",
        "TCP closes and connection open times not seen (connections end at eviction)",
    ),
];

const fn sock_layer(
    program: &'static str,
    tracepoint: &'static str,
    if_missing: &'static str,
) -> ProbeSpec {
    http_row(RAW_TRACEPOINT, program, tracepoint, if_missing)
}

/// An optional row of the HTTP capture: tracepoint `category:tracepoint` runs `program`.
const fn http_row(
    category: &'static str,
    program: &'static str,
    tracepoint: &'static str,
    if_missing: &'static str,
) -> ProbeSpec {
    ProbeSpec {
        program,
        category,
        tracepoint,
        feature: "http",
        required: false,
        if_missing,
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    }
}

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

/// Socket classification inside the syscall (kernels that have these tracepoints).
pub const SOCK_LENGTH_PROBES: &[ProbeSpec] = &[
    sock_length("sock_recv_length"),
    sock_length("sock_send_length"),
];

const fn sock_length(tracepoint: &'static str) -> ProbeSpec {
    http_row(
        "sock",
        "sock_length",
        tracepoint,
        "each syscall's fd resolved to its socket in the kernel instead",
    )
}

const fn sock(
    program: &'static str,
    tracepoint: &'static str,
    if_missing: &'static str,
) -> ProbeSpec {
    http_row("syscalls", program, tracepoint, if_missing)
}
