//! The HTTP capture's rows of the probe table: socket syscalls, the socket tracepoints that
//! recognise stream sockets inside them, and connection state changes. Declarations only.

use crate::bpf::table::ProbeSpec;

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
    fallback: None,
    off_switch: None,
    needs_task_offsets: false,
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
