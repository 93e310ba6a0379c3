//! Socket records: the `SOCK_EVENTS` record header and buffer, the capture configuration and
//! connection addresses (`CONN_ADDRS`).

/// Largest number of leading payload bytes captured per socket syscall (`--capture-bytes` upper
/// bound). A power of two: the eBPF side masks offsets with it to satisfy the verifier.
pub const CAPTURE_MAX: usize = 4096;

/// Capacity of the map of file descriptors known to be sockets, per (tgid, fd).
pub const MAX_SOCKET_FDS: u32 = 65_536;

/// Capacity of the map of socket syscalls in progress (one per thread at most).
pub const MAX_ACTIVE_CALLS: u32 = 16_384;

/// `SockEventHeader::kind` values.
pub mod sock_event {
    /// Bytes received (read, readv, recvfrom, recvmsg); `ret` 0 = the peer closed.
    pub const READ: u8 = 1;
    /// Bytes sent (write, writev, sendto, sendmsg, sendfile).
    pub const WRITE: u8 = 2;
    /// The process closed the socket.
    pub const CLOSE: u8 = 3;
    /// accept/accept4 returned a new connection (`fd` is the new descriptor).
    pub const ACCEPT: u8 = 4;
    /// connect() started an outbound connection.
    pub const CONNECT: u8 = 5;
}

/// One socket event in the ring buffer, followed by `captured` payload bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEventHeader {
    /// CLOCK_MONOTONIC ns when the syscall returned.
    pub ts_ns: u64,
    /// The syscall's return value: bytes transferred, a new fd, or -errno.
    pub ret: i64,
    /// Kernel socket address (an identity only, never dereferenced), 0 when unknown.
    pub sk: u64,
    pub tgid: u32,
    pub tid: u32,
    pub fd: i32,
    pub captured: u32,
    pub kind: u8,
    /// Address family (AF_INET, AF_INET6, AF_UNIX) when the socket tracepoints told; 0 unknown.
    pub family: u8,
    pub _pad: [u8; 6],
}

/// `size_of::<SockEventHeader>()`: the fixed part of a `SOCK_EVENTS` record.
pub const SOCK_EVENT_HEADER_SIZE: usize = 48;
const _: () = assert!(core::mem::size_of::<SockEventHeader>() == SOCK_EVENT_HEADER_SIZE);

/// Per-CPU scratch space where an event is assembled before it is copied to the ring buffer.
/// The data area is twice the capture limit so a masked offset plus a clamped length always fits.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockEventBuf {
    pub header: SockEventHeader,
    pub data: [u8; 2 * CAPTURE_MAX],
}

/// `size_of::<SockEventBuf>()` (kernel-side scratch only; never read by userspace).
pub const SOCK_EVENT_BUF_SIZE: usize = 8240;
const _: () = assert!(core::mem::size_of::<SockEventBuf>() == SOCK_EVENT_BUF_SIZE);

/// Socket probe configuration, written by userspace before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Leading payload bytes captured per syscall (≤ `CAPTURE_MAX`).
    pub capture_bytes: u32,
    /// 1 when `sock:sock_{recv,send}_length` are unavailable: sockets are then known only from
    /// accept, connect and the fd table scanned at attach.
    pub fd_table_only: u32,
    /// Field offsets in `sock:sock_recv_length` / `sock_send_length` (same layout).
    pub sock_len_sk: u32,
    pub sock_len_family: u32,
    pub sock_len_protocol: u32,
    /// Field offsets in `sock:inet_sock_set_state`.
    pub state_skaddr: u32,
    pub state_newstate: u32,
    pub state_sport: u32,
    pub state_dport: u32,
    pub state_family: u32,
    pub state_saddr_v6: u32,
    pub state_daddr_v6: u32,
}

/// `size_of::<NetConfig>()`.
pub const NET_CONFIG_SIZE: usize = 48;
const _: () = assert!(core::mem::size_of::<NetConfig>() == NET_CONFIG_SIZE);

/// Addresses of an established TCP connection, from `sock:inet_sock_set_state`, keyed by the
/// kernel socket address that socket events carry (`SockEventHeader::sk`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnAddrs {
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub _pad: u16,
    /// IPv6 addresses; IPv4 appears as IPv4-mapped (::ffff:a.b.c.d), as the kernel fills them.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// `size_of::<ConnAddrs>()`.
pub const CONN_ADDRS_SIZE: usize = 40;
const _: () = assert!(core::mem::size_of::<ConnAddrs>() == CONN_ADDRS_SIZE);

/// Capacity of the connection address map.
pub const MAX_CONN_ADDRS: u32 = 65_536;
