//! Socket records for userspace, shared by both socket paths (the syscall tracepoints of
//! `net.rs` and the socket layer of `sock_layer.rs`): the record header, the payload captured
//! from the transfer's user buffers (leading bytes, a head copied whole, the tail), the
//! connection's addresses on its first record per fd, and the ring buffer they go to.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use profiler_common::{
    CONN_ADDRS_SIZE, ConnAddrs, HEAD_CAPTURE_MAX, NetConfig, SOCK_RING_BYTES, SockEventBuf,
    SockEventHeader, SocketOffsets, TAIL_CAPTURE, counter,
};

use crate::{
    fd_socket::{AF_INET, AF_INET6, conn_addrs_of},
    maps::{bump, ring_flags, shared_names},
};

/// How the syscall passes its buffer.
pub(crate) const LAYOUT_NONE: u8 = 0;
/// `(fd, buf, count)`: read, write, recvfrom, sendto.
pub(crate) const LAYOUT_BUF: u8 = 1;
/// `(fd, iov, iovcnt)`: readv, writev.
pub(crate) const LAYOUT_IOV: u8 = 2;
/// `(fd, msghdr, flags)`: recvmsg, sendmsg.
pub(crate) const LAYOUT_MSG: u8 = 3;

/// iovec entries inspected per call for the capture (hyper writes a chunked SSE event as 3);
/// later ones only count as length.
const MAX_IOV: u64 = 32;

pub(crate) const ECONNRESET: i64 = 104;
pub(crate) const EPIPE: i64 = 32;

/// A socket syscall between its entry and exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ActiveCall {
    pub(crate) buf: u64,
    pub(crate) count: u64,
    pub(crate) sk: u64,
    pub(crate) fd: i32,
    pub(crate) kind: u8,
    pub(crate) layout: u8,
    /// Set by the socket tracepoints: the fd is a TCP or Unix stream socket.
    pub(crate) is_stream_socket: u8,
    pub(crate) family: u8,
}

/// Socket events for userspace: a `SockEventHeader` followed by `captured` payload bytes each.
#[map]
pub static SOCK_EVENTS: RingBuf = RingBuf::with_byte_size(SOCK_RING_BYTES, 0);

#[map]
static EVENT_SCRATCH: PerCpuArray<SockEventBuf> = PerCpuArray::with_max_entries(1, 0);

/// Written by userspace before load (see `NetConfig`).
#[unsafe(no_mangle)]
static NET_CONFIG: NetConfig = NetConfig {
    capture_bytes: 0,
    resolve_fds: 0,
    sock_len_sk: 0,
    sock_len_family: 0,
    sock_len_protocol: 0,
    sock_len_ret: 0,
    sock_len_flags: 0,
    sockets: SocketOffsets {
        valid: 0,
        v6_valid: 0,
        task_files: 0,
        files_fdt: 0,
        fdt_max_fds: 0,
        fdt_fd: 0,
        file_inode: 0,
        file_private_data: 0,
        inode_mode: 0,
        socket_type: 0,
        socket_sk: 0,
        skc_family: 0,
        sk_type: 0,
        skc_num: 0,
        skc_dport: 0,
        skc_rcv_saddr: 0,
        skc_daddr: 0,
        skc_v6_rcv_saddr: 0,
        skc_v6_daddr: 0,
    },
};

shared_names!(map_name: SOCK_EVENTS);
shared_names!(global_name: NET_CONFIG);

#[inline(always)]
pub(crate) fn config() -> NetConfig {
    // SAFETY: plain data in .rodata; the volatile read keeps the compiler from folding in the
    // placeholder values that userspace replaces at load time.
    unsafe { core::ptr::read_volatile(&NET_CONFIG) }
}

#[inline(always)]
pub(crate) fn fd_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | fd as u32 as u64
}

/// Emits transfer `h` of `call`. The first one the kernel sees of a connection on its fd
/// carries the connection's addresses, read now (a socket address can be reused by a later
/// connection before userspace reads the event).
#[inline(always)]
pub(crate) fn emit_transfer(
    h: SockEventHeader,
    call: &ActiveCall,
    first: bool,
    offsets: &SocketOffsets,
) {
    let family = h.family as u16;
    let addrs = if first && (family == AF_INET || family == AF_INET6) {
        conn_addrs_of(offsets, h.sk, family)
    } else {
        None
    };
    emit_with_addrs(h, Some(call), h.ret, addrs);
}

#[inline(always)]
pub(crate) fn header(
    kind: u8,
    tgid: u32,
    tid: u32,
    fd: i32,
    ret: i64,
    sk: u64,
    family: u8,
) -> SockEventHeader {
    SockEventHeader {
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ret,
        sk,
        tgid,
        tid,
        fd,
        captured: 0,
        kind,
        family,
        tail: 0,
        addrs: 0,
        _pad: [0; 3],
    }
}

/// Assembles the header and the captured payload in per-CPU scratch space and copies them to the
/// ring buffer (waking userspace only when the ring is half full: it drains on a timer, which
/// keeps the cost per event low). A full ring buffer is counted, never silent.
#[inline(always)]
pub(crate) fn emit(header: SockEventHeader, call: Option<&ActiveCall>, ret: i64) {
    emit_with_addrs(header, call, ret, None);
}

/// [`emit`], the record ending with the connection's addresses when given.
#[inline(always)]
fn emit_with_addrs(
    header: SockEventHeader,
    call: Option<&ActiveCall>,
    ret: i64,
    addrs: Option<ConnAddrs>,
) {
    // A record with nothing after its header (a close, an open, a `sendfile`, a failed or empty
    // transfer, `--capture-bytes 0`) is written straight into the ring: no scratch, no copy.
    let no_payload =
        call.is_none_or(|c| ret <= 0 || c.layout == LAYOUT_NONE || config().capture_bytes == 0);
    if addrs.is_none() && no_payload {
        match SOCK_EVENTS.reserve::<SockEventHeader>(0) {
            Some(mut slot) => {
                slot.write(header);
                slot.submit(ring_flags(&SOCK_EVENTS, SOCK_RING_BYTES));
            }
            None => bump(counter::SOCK_EVENTS_LOST),
        }
        return;
    }
    let Some(scratch) = EVENT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: pointer from a successful per-CPU lookup: this CPU's slot, not shared while this
    // program runs.
    let scratch = unsafe { &mut *scratch };
    scratch.header = header;
    let mut captured = 0u64;
    let mut tail = 0u64;
    if let Some(call) = call
        && ret > 0
    {
        let data = scratch.data.as_mut_ptr();
        let cap = config().capture_bytes as u64;
        let mut want = cap;
        if want > ret as u64 {
            want = ret as u64;
        }
        captured = capture(call, want, data);
        if cap > 0 && ret as u64 > captured && captured == want {
            if call.layout == LAYOUT_BUF
                && looks_like_head(&scratch.data)
                && captured < HEAD_CAPTURE_MAX as u64
            {
                let mut more = ret as u64 - captured;
                if more > HEAD_CAPTURE_MAX as u64 - captured {
                    more = HEAD_CAPTURE_MAX as u64 - captured;
                }
                captured += copy_user(data, captured, call.buf + captured, more);
            }
            if ret as u64 > captured {
                let mut n = ret as u64 - captured;
                if n > TAIL_CAPTURE as u64 {
                    n = TAIL_CAPTURE as u64;
                }
                tail = capture_tail(call, ret as u64, n, data, captured);
            }
        }
    }
    if captured > HEAD_CAPTURE_MAX as u64 {
        captured = HEAD_CAPTURE_MAX as u64;
    }
    if tail > TAIL_CAPTURE as u64 {
        tail = TAIL_CAPTURE as u64;
    }
    scratch.header.captured = captured as u32;
    scratch.header.tail = tail as u16;
    let mut size = core::mem::size_of::<SockEventHeader>() + captured as usize + tail as usize;
    if let Some(addrs) = addrs {
        // After the tail; the mask is a no-op (captured + tail ≤ HEAD_CAPTURE_MAX + TAIL_CAPTURE)
        // that shows the verifier the write fits, kept through a volatile read as in copy_user.
        // SAFETY: a read of a local.
        let end = unsafe { core::ptr::read_volatile(&(captured + tail)) };
        let off = end & (2 * HEAD_CAPTURE_MAX as u64 - 1);
        // SAFETY: off + CONN_ADDRS_SIZE ≤ 2 × HEAD_CAPTURE_MAX + 40 ≤ the data area's size; the
        // write is unaligned-safe.
        unsafe {
            core::ptr::write_unaligned(
                scratch
                    .data
                    .as_mut_ptr()
                    .add(off as usize)
                    .cast::<ConnAddrs>(),
                addrs,
            );
        }
        scratch.header.addrs = 1;
        size += CONN_ADDRS_SIZE;
    }
    // A no-op clamp the verifiers before 6.2 need to see (they lose the bounds of the sum
    // above: "R3 min value is negative"), opaque to LLVM through the volatile read.
    // SAFETY: a read of a local.
    let mut size = unsafe { core::ptr::read_volatile(&size) };
    if size > MAX_RECORD {
        size = MAX_RECORD;
    }
    // SAFETY: `scratch` is a SockEventBuf; `size` ≤ MAX_RECORD ≤ its size.
    let bytes =
        unsafe { core::slice::from_raw_parts(scratch as *const SockEventBuf as *const u8, size) };
    if SOCK_EVENTS
        .output::<[u8]>(bytes, ring_flags(&SOCK_EVENTS, SOCK_RING_BYTES))
        .is_err()
    {
        bump(counter::SOCK_EVENTS_LOST);
    }
}

/// The longest record: header, head capture, tail, addresses.
const MAX_RECORD: usize =
    core::mem::size_of::<SockEventHeader>() + HEAD_CAPTURE_MAX + TAIL_CAPTURE + CONN_ADDRS_SIZE;
const _: () = assert!(MAX_RECORD <= core::mem::size_of::<SockEventBuf>());

/// Copies up to `want` leading bytes of the transfer into `data`; returns how many it copied.
#[inline(always)]
fn capture(call: &ActiveCall, want: u64, data: *mut u8) -> u64 {
    match call.layout {
        LAYOUT_BUF => copy_user(data, 0, call.buf, want),
        LAYOUT_IOV => capture_iov(call.buf, call.count, want, data),
        LAYOUT_MSG => {
            // struct user_msghdr: msg_iov at offset 16, msg_iovlen at offset 24.
            // SAFETY: reading user memory through the checked helper.
            let iov = unsafe { bpf_probe_read_user((call.buf + 16) as *const u64) }.unwrap_or(0);
            // SAFETY: as above.
            let iovlen = unsafe { bpf_probe_read_user((call.buf + 24) as *const u64) }.unwrap_or(0);
            capture_iov(iov, iovlen, want, data)
        }
        _ => 0,
    }
}

/// Copies the last `n` of the transfer's `end` bytes to `data[off..]` (for scattered buffers,
/// only the part in the buffer where the transfer ended); returns how many it copied.
#[inline(always)]
fn capture_tail(call: &ActiveCall, end: u64, n: u64, data: *mut u8, off: u64) -> u64 {
    match call.layout {
        LAYOUT_BUF => copy_user(data, off, call.buf + end - n, n),
        LAYOUT_IOV => tail_iov(call.buf, call.count, end, n, data, off),
        LAYOUT_MSG => {
            // SAFETY: reading user memory through the checked helper (user_msghdr as above).
            let iov = unsafe { bpf_probe_read_user((call.buf + 16) as *const u64) }.unwrap_or(0);
            // SAFETY: as above.
            let iovlen = unsafe { bpf_probe_read_user((call.buf + 24) as *const u64) }.unwrap_or(0);
            tail_iov(iov, iovlen, end, n, data, off)
        }
        _ => 0,
    }
}

#[inline(always)]
fn tail_iov(iov: u64, iovcnt: u64, end: u64, n: u64, data: *mut u8, off: u64) -> u64 {
    let mut total = 0u64;
    for i in 0..MAX_IOV {
        if i >= iovcnt {
            break;
        }
        // SAFETY: reading user memory through the checked helper.
        let Ok(entry) = (unsafe { bpf_probe_read_user((iov + i * 16) as *const [u64; 2]) }) else {
            break;
        };
        total += entry[1];
        if total >= end {
            // The transfer ended `used` bytes into this buffer.
            let used = entry[1] - (total - end);
            let mut take = n;
            if take > used {
                take = used;
            }
            return copy_user(data, off, entry[0] + used - take, take);
        }
    }
    0
}

#[inline(always)]
fn capture_iov(iov: u64, iovcnt: u64, want: u64, data: *mut u8) -> u64 {
    let mut off = 0u64;
    for i in 0..MAX_IOV {
        if i >= iovcnt || off >= want {
            break;
        }
        // struct iovec { void *iov_base; size_t iov_len; }
        // SAFETY: reading user memory through the checked helper.
        let Ok(entry) = (unsafe { bpf_probe_read_user((iov + i * 16) as *const [u64; 2]) }) else {
            break;
        };
        let mut n = want - off;
        if entry[1] < n {
            n = entry[1];
        }
        let copied = copy_user(data, off, entry[0], n);
        off += copied;
        if copied < n {
            break;
        }
    }
    off
}

/// Whether captured bytes begin like an HTTP head: three upper-case letters (a method, `HTTP`).
/// A chunk-size line in upper-case hex can pass too: that only copies more.
#[inline(always)]
fn looks_like_head(data: &[u8; 3 * HEAD_CAPTURE_MAX]) -> bool {
    data[0].is_ascii_uppercase() && data[1].is_ascii_uppercase() && data[2].is_ascii_uppercase()
}

/// Copies `n` bytes from user address `src` to `data[off..]`; returns `n`, or 0 on a fault.
#[inline(always)]
fn copy_user(data: *mut u8, off: u64, src: u64, n: u64) -> u64 {
    // The mask and the clamp are no-ops for valid inputs (off ≤ HEAD_CAPTURE_MAX, n ≤
    // HEAD_CAPTURE_MAX) and let the verifier prove the write stays inside the
    // 3 × HEAD_CAPTURE_MAX data area. Read through volatile loads, the values are opaque to
    // LLVM: it would otherwise drop the checks where the callers' arithmetic already bounds
    // them, which the verifiers before 6.2 cannot follow ("R2 min value is negative").
    // SAFETY: reads of two locals.
    let (off, n) = unsafe { (core::ptr::read_volatile(&off), core::ptr::read_volatile(&n)) };
    let off = off & (2 * HEAD_CAPTURE_MAX as u64 - 1);
    let mut n = n;
    if n > HEAD_CAPTURE_MAX as u64 {
        n = HEAD_CAPTURE_MAX as u64;
    }
    // SAFETY: dst is inside the scratch buffer (bounds above); the helper checks src.
    let rc = unsafe {
        generated::bpf_probe_read_user(
            data.add(off as usize).cast(),
            n as u32,
            src as *const core::ffi::c_void,
        )
    };
    if rc == 0 { n } else { 0 }
}
