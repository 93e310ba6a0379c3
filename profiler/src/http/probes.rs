//! The HTTP capture's side of the eBPF object: its rows of the probe table (socket syscalls and
//! the socket tracepoints that recognise stream sockets inside them) and its map (the
//! socket-event ring buffer).
//! Privileged I/O on the maps.

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use profiler_common::{counter, map_name};

use crate::bpf::{Probes, table::ProbeSpec};

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

/// Syscalls whose entry state was evicted before their exit.
pub fn active_calls_evicted(probes: &Probes) -> u64 {
    probes.counter(counter::ACTIVE_CALLS_EVICTED)
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
    ProbeSpec {
        program: "sock_length",
        category: "sock",
        tracepoint,
        feature: "http",
        required: false,
        if_missing: "each syscall's fd resolved to its socket in the kernel instead",
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
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
        fallback: None,
        off_switch: None,
        needs_task_offsets: false,
    }
}
