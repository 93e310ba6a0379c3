//! Socket syscalls of watched processes: what was read and written on which socket, when, and the
//! leading bytes of each transfer, streamed to userspace for HTTP/SSE analysis.
//!
//! A syscall's arguments are only visible at entry and its result only at exit, so the entry
//! programs park the arguments per thread in `ACTIVE_CALLS` and one exit program (attached to
//! every `sys_exit_*` of interest) finishes the job. Whether the fd is a socket is learnt inside
//! the syscall from `sock:sock_{recv,send}_length` (kernels ≥ 6.2), or, where those tracepoints
//! do not exist, by resolving the fd to its socket in the kernel at the syscall's exit
//! (`fd_socket.rs`). `SOCKET_FDS` remembers the socket fds seen, so close() is reported.
//!
//! The records themselves (header, captured payload, addresses) are assembled by
//! `sock_record.rs`.

use aya_ebpf::{
    EbpfContext as _,
    helpers::bpf_get_current_pid_tgid,
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::TracePointContext,
};
use profiler_common::{MAX_ACTIVE_CALLS, MAX_SOCKET_FDS, counter, sock_event};

use crate::{
    fd_socket::{AF_INET, AF_INET6, AF_UNIX, stream_socket_of},
    maps::{bump, is_watched},
    sock_record::{
        ActiveCall, ECONNRESET, EPIPE, LAYOUT_BUF, LAYOUT_IOV, LAYOUT_MSG, LAYOUT_NONE, config,
        emit, emit_transfer, fd_key, header,
    },
};

pub(crate) const IPPROTO_TCP: u16 = 6;
const EINPROGRESS: i64 = 115;

/// Syscall tracepoint layout (stable ABI: `struct syscall_trace_enter/exit`): after the 8-byte
/// common header and the syscall number come the arguments (or the return value), 8 bytes each.
const ARG0: usize = 16;
const ARG1: usize = 24;
const ARG2: usize = 32;
const RET: usize = 16;

/// A plain (preallocated) hash: LRU updates cost ~3× more and this map is written twice per
/// syscall. Entries are removed at the syscall's exit, or by `forget_call` when a thread exits
/// inside one, so nothing accumulates.
#[map]
static ACTIVE_CALLS: HashMap<u32, ActiveCall> = HashMap::with_max_entries(MAX_ACTIVE_CALLS, 0);

/// Drops the syscall in progress of thread `tid` (it is exiting: its exit will never come).
#[inline(always)]
pub fn forget_call(tid: u32) {
    let _ = ACTIVE_CALLS.remove(tid);
}

/// Fds known to be sockets, keyed `tgid << 32 | fd`, so close() knows them; the value is the
/// socket (`struct sock` address) whose addresses were last sent for that fd, 0 for none yet.
#[map]
pub(crate) static SOCKET_FDS: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(MAX_SOCKET_FDS, 0);

/// Reads a syscall tracepoint argument or return value in place. Tracepoint programs may load
/// from their context directly at constant offsets, which saves a helper call per field.
#[inline(always)]
fn syscall_field(ctx: &TracePointContext, offset: usize) -> u64 {
    // SAFETY: `offset` is one of the constant, 8-byte aligned ARG*/RET offsets, inside every
    // `sys_enter_*`/`sys_exit_*` record; the verifier checks the access against the context.
    unsafe { core::ptr::read((ctx.as_ptr() as *const u8).add(offset) as *const u64) }
}

#[tracepoint]
pub fn sock_enter_read(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::READ, LAYOUT_BUF)
}

#[tracepoint]
pub fn sock_enter_readv(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::READ, LAYOUT_IOV)
}

#[tracepoint]
pub fn sock_enter_recvmsg(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::READ, LAYOUT_MSG)
}

#[tracepoint]
pub fn sock_enter_write(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::WRITE, LAYOUT_BUF)
}

#[tracepoint]
pub fn sock_enter_writev(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::WRITE, LAYOUT_IOV)
}

#[tracepoint]
pub fn sock_enter_sendmsg(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::WRITE, LAYOUT_MSG)
}

#[tracepoint]
pub fn sock_enter_sendfile(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::WRITE, LAYOUT_NONE)
}

#[tracepoint]
pub fn sock_enter_accept(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::ACCEPT, LAYOUT_NONE)
}

#[tracepoint]
pub fn sock_enter_connect(ctx: TracePointContext) -> u32 {
    enter(&ctx, sock_event::CONNECT, LAYOUT_NONE)
}

/// `close(fd)`: reported (and forgotten) only for fds known to be sockets.
#[tracepoint]
pub fn sock_enter_close(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !is_watched(tgid) {
        return 0;
    }
    // ARG0 is the fd argument of sys_enter_close.
    let fd = syscall_field(&ctx, ARG0) as i32;
    let key = fd_key(tgid, fd);
    // SAFETY: the value is plain data; only its presence matters.
    if unsafe { SOCKET_FDS.get(key) }.is_some() {
        let _ = SOCKET_FDS.remove(key);
        let header = header(sock_event::CLOSE, tgid, id as u32, fd, 0, 0, 0);
        emit(header, None, 0);
    }
    0
}

/// `sock:sock_recv_length` / `sock_send_length` fire inside the socket layer with the socket's
/// family and protocol: that is what marks the syscall in progress as a stream-socket transfer.
#[tracepoint]
pub fn sock_length(ctx: TracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // Only threads of watched processes have an entry: for everything else this is one lookup.
    let Some(call) = ACTIVE_CALLS.get_ptr_mut(tid) else {
        return 0;
    };
    let cfg = config();
    // SAFETY: offsets from this kernel's format file (NetConfig).
    let family = unsafe { ctx.read_at::<u16>(cfg.sock_len_family as usize) }.unwrap_or(0);
    // SAFETY: as above.
    let protocol = unsafe { ctx.read_at::<u16>(cfg.sock_len_protocol as usize) }.unwrap_or(0);
    let stream = match family {
        AF_INET | AF_INET6 => protocol == IPPROTO_TCP,
        AF_UNIX => true,
        _ => false,
    };
    if stream {
        // SAFETY: as above.
        let sk = unsafe { ctx.read_at::<u64>(cfg.sock_len_sk as usize) }.unwrap_or(0);
        // SAFETY: pointer from a successful lookup, valid for this program run.
        unsafe {
            (*call).is_stream_socket = 1;
            (*call).family = family as u8;
            (*call).sk = sk;
        }
    }
    0
}

/// Every `sys_exit_*` of the syscalls above.
#[tracepoint]
pub fn sock_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    // SAFETY: plain-data copy of the entry, removed right after.
    let Some(call) = (unsafe { ACTIVE_CALLS.get(tid) }).copied() else {
        return 0;
    };
    let _ = ACTIVE_CALLS.remove(tid);
    // RET is the return value of every sys_exit_* tracepoint.
    let ret = syscall_field(&ctx, RET) as i64;
    let tgid = (id >> 32) as u32;
    match call.kind {
        sock_event::ACCEPT => {
            if ret >= 0 {
                let fd = ret as i32;
                let _ = SOCKET_FDS.insert(fd_key(tgid, fd), 0, 0);
                emit(
                    header(sock_event::ACCEPT, tgid, tid, fd, ret, 0, 0),
                    None,
                    0,
                );
            }
        }
        sock_event::CONNECT => {
            if ret == 0 || ret == -EINPROGRESS {
                emit(
                    header(sock_event::CONNECT, tgid, tid, call.fd, ret, 0, 0),
                    None,
                    0,
                );
            }
        }
        _ => transfer_exit(&call, tgid, tid, ret),
    }
    0
}

#[inline(always)]
fn enter(ctx: &TracePointContext, kind: u8, layout: u8) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !is_watched(tgid) {
        return 0;
    }
    // ARG0..ARG2 are the first three arguments of every syscall these programs attach to.
    let fd = syscall_field(ctx, ARG0) as i32;
    let buf = syscall_field(ctx, ARG1);
    let count = syscall_field(ctx, ARG2);
    if kind == sock_event::CONNECT && config().resolve_fds != 0 {
        let _ = SOCKET_FDS.insert(fd_key(tgid, fd), 0, 0);
    }
    let call = ActiveCall {
        buf,
        count,
        sk: 0,
        fd,
        kind,
        layout,
        is_stream_socket: 0,
        family: 0,
    };
    if ACTIVE_CALLS.insert(id as u32, call, 0).is_err() {
        bump(counter::ACTIVE_CALLS_EVICTED);
    }
    0
}

#[inline(always)]
fn transfer_exit(call: &ActiveCall, tgid: u32, tid: u32, ret: i64) {
    // Decide on the return value first: the frequent EAGAIN of a non-blocking read costs no
    // map lookup.
    let interesting = ret > 0
        || (ret == 0 && call.kind == sock_event::READ)
        || ret == -ECONNRESET
        || ret == -EPIPE;
    if !interesting {
        return;
    }
    let key = fd_key(tgid, call.fd);
    // SAFETY: plain-data copy of the value.
    let known = unsafe { SOCKET_FDS.get(key) }.copied();
    let cfg = config();
    let (sk, family) = if call.is_stream_socket != 0 {
        (call.sk, call.family as u16)
    } else if cfg.resolve_fds != 0 && cfg.sockets.valid != 0 {
        // No socket tracepoints on this kernel: the fd says what it is.
        match stream_socket_of(&cfg.sockets, call.fd) {
            Some(s) => (s.sk, s.family),
            None => return,
        }
    } else if known.is_some() {
        // Without BTF offsets: an fd known from accept/connect.
        (0, 0)
    } else {
        return;
    };
    let h = header(call.kind, tgid, tid, call.fd, ret, sk, family as u8);
    let first = known != Some(sk);
    if first {
        // Remembered so that close() on it is reported, and the addresses sent once.
        let _ = SOCKET_FDS.insert(fd_key(h.tgid, h.fd), h.sk, 0);
    }
    emit_transfer(h, call, first, &cfg.sockets);
}
