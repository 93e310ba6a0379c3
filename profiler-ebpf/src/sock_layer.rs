//! Socket capture at the socket layer (kernels with `sock:sock_{recv,send}_length`, 6.2+): no
//! syscall tracepoint at all. Those two tracepoints fire only for socket I/O, inside the syscall,
//! after the data moved, with the socket and the byte count; the syscall's own arguments
//! (number, fd, buffer) are read from the task's saved user registers. Connection open and close
//! come from `sock:inet_sock_set_state`.
//!
//! All three run as raw tracepoints: the program gets the tracepoint's arguments as they are
//! (socket pointer, return value, flags) without the perf-event tracepoint's record being built
//! first, for every socket transfer on the node (measured: docs/benchmarks.md "Raw socket
//! tracepoints"). The socket's family and type are read from `struct sock` (BTF offsets).
//!
//! What this path cannot see is counted (`counter::SOCK_LAYER_UNKNOWN_CALLER`): socket I/O not
//! made by one of the read/write syscalls it knows (io_uring, splice, `recvmmsg`/`sendmmsg`),
//! whose bytes have no user buffer or fd to attach to.

#[cfg(not(bpf_target_arch = "aarch64"))]
use aya_ebpf::bindings::pt_regs;
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::{map, raw_tracepoint},
    maps::LruHashMap,
    programs::RawTracePointContext,
};
use profiler_common::{MAX_SOCKET_FDS, SocketOffsets, counter, sock_event};

use crate::{
    fd_socket::{AF_INET, AF_INET6, AF_UNIX, SOCK_STREAM},
    maps::{bump, is_watched},
    sock_record::{
        ActiveCall, ECONNRESET, EPIPE, LAYOUT_BUF, LAYOUT_IOV, LAYOUT_MSG, LAYOUT_NONE, config,
        emit, emit_transfer, fd_key, header,
    },
};

/// Fds of watched processes that carry one connection (`fd_key`s; 0 = free): a socket read
/// through dup'ed fds (BusyBox httpd reads fd 0 and writes fd 1) or shared after a fork.
const SEEN_BY: usize = 4;

/// What is known of a TCP or Unix stream connection, by socket address.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockConn {
    /// When it was established (CLOCK_MONOTONIC ns), 0 when before the session or not TCP.
    established: u64,
    /// The fds whose transfers on it were seen (their first one carried its addresses).
    seen_by: [u64; SEEN_BY],
}

impl SockConn {
    #[inline(always)]
    fn new(established: u64, seen_by: [u64; SEEN_BY]) -> Self {
        Self {
            established,
            seen_by,
        }
    }
}

/// Every TCP connection established on the node since attach, and every connection a watched
/// process transferred on, by socket address. A socket address is reused by the next
/// connection within microseconds (often on the same fd number): its establishment replaces
/// the entry, so that connection's first transfer on each fd is seen as a first again. One
/// lookup per transfer; LRU-bounded (an evicted connection's next transfer counts as a first,
/// without an open time).
#[map]
static CONNS: LruHashMap<u64, SockConn> = LruHashMap::with_max_entries(MAX_SOCKET_FDS, 0);

const MSG_PEEK: i32 = 2;

const TCP_ESTABLISHED: i32 = 1;
const TCP_FIN_WAIT1: i32 = 4;
const TCP_CLOSE: i32 = 7;
const TCP_CLOSE_WAIT: i32 = 8;
const TCP_LAST_ACK: i32 = 9;

/// Syscall numbers whose arguments say where the bytes are.
#[cfg(not(bpf_target_arch = "aarch64"))]
mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const SENDFILE: u64 = 40;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
}
#[cfg(bpf_target_arch = "aarch64")]
mod nr {
    pub const READ: u64 = 63;
    pub const WRITE: u64 = 64;
    pub const READV: u64 = 65;
    pub const WRITEV: u64 = 66;
    pub const SENDFILE: u64 = 71;
    pub const SENDTO: u64 = 206;
    pub const RECVFROM: u64 = 207;
    pub const SENDMSG: u64 = 211;
    pub const RECVMSG: u64 = 212;
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)`.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn sock_layer_recv(ctx: RawTracePointContext) -> i32 {
    let _ = transfer(&ctx, sock_event::READ);
    0
}

/// `sock_send_length(struct sock *sk, int ret, int flags)`.
#[raw_tracepoint(tracepoint = "sock_send_length")]
pub fn sock_layer_send(ctx: RawTracePointContext) -> i32 {
    let _ = transfer(&ctx, sock_event::WRITE);
    0
}

/// The syscall in progress, from the current task's saved user registers: (number, fd,
/// buffer argument, count argument).
#[cfg(not(bpf_target_arch = "aarch64"))]
#[inline(always)]
fn syscall_args() -> Option<(u64, u64, u64, u64)> {
    // SAFETY: both helpers take and return kernel-checked BTF pointers; the registers are only
    // read through bpf_probe_read_kernel.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const pt_regs;
    if regs.is_null() {
        return None;
    }
    // `dx`, `si`, `di`, `orig_ax` are consecutive in x86-64's pt_regs: one read for the four.
    // SAFETY: addr_of! computes the field's address without reading; the helper checks it.
    let [dx, si, di, nr] =
        unsafe { bpf_probe_read_kernel(core::ptr::addr_of!((*regs).rdx) as *const [u64; 4]) }
            .ok()?;
    Some((nr, di, si, dx))
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn syscall_args() -> Option<(u64, u64, u64, u64)> {
    // arm64's `struct pt_regs` (opaque in the bindings): `regs[31]` (x0.. at 0), sp, pc,
    // pstate, orig_x0, then `s32 syscallno` at byte 280.
    const SYSCALLNO: usize = 280;
    // SAFETY: as above.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    if regs.is_null() {
        return None;
    }
    // SAFETY: reads of the task's pt_regs through the checked helper.
    unsafe {
        let [x0, x1, x2] = bpf_probe_read_kernel(regs as *const [u64; 3]).ok()?;
        let nr: i32 = bpf_probe_read_kernel(regs.wrapping_add(SYSCALLNO) as *const i32).ok()?;
        Some((nr as u64, x0, x1, x2))
    }
}

#[inline(always)]
fn transfer(ctx: &RawTracePointContext, kind: u8) -> Option<()> {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !is_watched(tgid) {
        return None;
    }
    let sk: u64 = ctx.arg(0);
    let ret = ctx.arg::<i32>(1) as i64;
    let flags: i32 = ctx.arg(2);
    // A peek leaves the bytes for the read that follows.
    if flags & MSG_PEEK != 0 {
        return None;
    }
    let interesting =
        ret > 0 || (ret == 0 && kind == sock_event::READ) || ret == -ECONNRESET || ret == -EPIPE;
    if !interesting {
        return None;
    }
    let cfg = config();
    // Read per transfer, not kept by socket address: a freed socket's address can come back
    // as another kind of socket.
    let family = stream_family(sk, &cfg.sockets)?;
    let (nr, fd, buf, count) = syscall_args()?;
    let layout = match nr {
        nr::READ | nr::RECVFROM | nr::WRITE | nr::SENDTO => LAYOUT_BUF,
        nr::READV | nr::WRITEV => LAYOUT_IOV,
        nr::RECVMSG | nr::SENDMSG => LAYOUT_MSG,
        nr::SENDFILE => LAYOUT_NONE,
        _ => {
            bump(counter::SOCK_LAYER_UNKNOWN_CALLER);
            return None;
        }
    };
    let fd = fd as i32;
    let call = ActiveCall {
        buf,
        count,
        sk,
        fd,
        kind,
        layout,
        is_stream_socket: 1,
        family: family as u8,
    };
    let tid = id as u32;
    let key = fd_key(tgid, fd);
    let (first, established) = first_on_fd(sk, key);
    if first && established != 0 {
        opened(tgid, tid, fd, sk, established);
    }
    let h = header(kind, tgid, tid, fd, ret, sk, family as u8);
    emit_transfer(h, &call, first, &cfg.sockets);
    Some(())
}

/// The family of socket `sk` when it is a TCP or Unix stream socket.
#[inline(always)]
fn stream_family(sk: u64, o: &SocketOffsets) -> Option<u16> {
    // SAFETY: `sk` is the tracepoint's live `struct sock`; the helper checks every read.
    let (family, kind) = unsafe {
        (
            bpf_probe_read_kernel((sk + o.skc_family as u64) as *const u16).ok()?,
            bpf_probe_read_kernel((sk + o.sk_type as u64) as *const u16).ok()?,
        )
    };
    let stream = kind as i16 == SOCK_STREAM && matches!(family, AF_INET | AF_INET6 | AF_UNIX);
    stream.then_some(family)
}

/// Whether this is the first transfer on connection `sk` through fd `key` (noting it), and
/// when the connection was established (0: unknown).
#[inline(always)]
fn first_on_fd(sk: u64, key: u64) -> (bool, u64) {
    let Some(conn) = CONNS.get_ptr_mut(sk) else {
        let mut seen_by = [0; SEEN_BY];
        seen_by[0] = key;
        let _ = CONNS.insert(sk, SockConn::new(0, seen_by), 0);
        return (true, 0);
    };
    // SAFETY: pointer from a successful lookup; a racing update of the same entry on another
    // CPU can at worst record an fd twice or report a first twice (addresses sent again).
    let conn = unsafe { &mut *conn };
    let mut free = SEEN_BY;
    for (i, &seen) in conn.seen_by.iter().enumerate() {
        if seen == key {
            return (false, conn.established);
        }
        if seen == 0 && free == SEEN_BY {
            free = i;
        }
    }
    // A fifth fd takes the last slot: its fds alternating would only resend addresses.
    conn.seen_by[if free < SEEN_BY { free } else { SEEN_BY - 1 }] = key;
    (true, conn.established)
}

/// The first transfer of a connection on an fd: when it was established, as an accept event
/// (userspace's connection open time). Connections older than the session have no time.
#[inline(always)]
fn opened(tgid: u32, tid: u32, fd: i32, sk: u64, established: u64) {
    // Naming the socket tells userspace that closes come by socket on this path.
    let mut h = header(sock_event::ACCEPT, tgid, tid, fd, fd as i64, sk, 0);
    h.ts_ns = established;
    emit(h, None, 0);
}

/// `inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)`: establishment
/// times of every TCP connection, and closes made by watched processes (process context:
/// `close()`, or the process exiting).
#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn sock_layer_state(ctx: RawTracePointContext) -> i32 {
    let _ = state_change(&ctx);
    0
}

#[inline(always)]
fn state_change(ctx: &RawTracePointContext) -> Option<()> {
    let sk: u64 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    if new == TCP_ESTABLISHED {
        // SAFETY: no preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        let _ = CONNS.insert(sk, SockConn::new(now, [0; SEEN_BY]), 0);
        return Some(());
    }
    // The connection ends: the process closes it first (ESTABLISHED → FIN_WAIT1), after the
    // peer did (CLOSE_WAIT → LAST_ACK), or aborts it (→ CLOSE, a reset either way). Later
    // transitions of an ending connection are not news. BPF tracepoint programs cannot tell
    // interrupt context from the record (its common fields hold a pointer for them): a reset
    // arriving while a watched process runs ends that connection a little early, at worst.
    let ending = matches!(
        (old, new),
        (TCP_ESTABLISHED, TCP_FIN_WAIT1)
            | (TCP_CLOSE_WAIT, TCP_LAST_ACK)
            | (TCP_ESTABLISHED | TCP_CLOSE_WAIT, TCP_CLOSE)
    );
    if !ending {
        return None;
    }
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !is_watched(tgid) {
        return None;
    }
    emit(
        header(sock_event::CLOSE, tgid, id as u32, -1, 0, sk, 0),
        None,
        0,
    );
    Some(())
}
