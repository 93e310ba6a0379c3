//! Socket records: the `SOCK_EVENTS` record header, the connection addresses some records carry,
//! the kernel's scratch buffer, and the capture configuration.

/// Largest number of leading payload bytes captured per socket syscall (`--capture-bytes` upper
/// bound).
pub const CAPTURE_MAX: usize = 4096;

/// A transfer that begins like an HTTP head (three upper-case letters: a method or `HTTP`) and
/// is longer than `--capture-bytes` has its leading bytes captured up to this many, so request
/// and response heads up to 8 KiB are parsed whole at the default capture (flat buffers: read,
/// recv, write, send). A power of two: the eBPF side masks offsets with it for the verifier.
pub const HEAD_CAPTURE_MAX: usize = 8192;

/// A transfer longer than what was captured of its start also has its last this many bytes
/// captured (flat buffers), where a non-streamed JSON body keeps its `usage`.
pub const TAIL_CAPTURE: usize = 512;

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

/// One socket event in the ring buffer, followed by `captured` leading payload bytes, then
/// `tail` bytes that ended the transfer (the bytes between them were not captured), then, when
/// `addrs` is 1, the connection's [`ConnAddrs`].
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
    /// Address family (AF_INET, AF_INET6, AF_UNIX) when known; 0 unknown.
    pub family: u8,
    /// Bytes of the transfer's end after the leading ones (≤ `TAIL_CAPTURE`).
    pub tail: u16,
    /// 1: the record ends with the TCP connection's addresses, read from the socket at the event
    /// (so a socket address reused by a later connection cannot mislead); sent with the first
    /// transfer the kernel sees on this fd for this socket, not with every one (40 bytes of a
    /// 48-byte header).
    pub addrs: u8,
    pub _pad: [u8; 3],
}

/// `size_of::<SockEventHeader>()`: the fixed part of a `SOCK_EVENTS` record.
pub const SOCK_EVENT_HEADER_SIZE: usize = 48;
const _: () = assert!(core::mem::size_of::<SockEventHeader>() == SOCK_EVENT_HEADER_SIZE);

/// Per-CPU scratch space where an event is assembled before it is copied to the ring buffer.
/// The data area holds an offset masked to `2 × HEAD_CAPTURE_MAX` plus a length clamped to
/// `HEAD_CAPTURE_MAX` (or the addresses' 40 bytes), so every write provably fits.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockEventBuf {
    pub header: SockEventHeader,
    pub data: [u8; 3 * HEAD_CAPTURE_MAX],
}

/// `size_of::<SockEventBuf>()` (kernel-side scratch only; never read by userspace).
pub const SOCK_EVENT_BUF_SIZE: usize = 24624;
const _: () = assert!(core::mem::size_of::<SockEventBuf>() == SOCK_EVENT_BUF_SIZE);

/// Socket probe configuration, written by userspace before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// Leading payload bytes captured per syscall (≤ `CAPTURE_MAX`).
    pub capture_bytes: u32,
    /// 1 when `sock:sock_{recv,send}_length` are unavailable (before 6.2): each transfer's fd is
    /// then resolved to its socket in the kernel (`SocketOffsets`, when `sockets.valid`).
    pub resolve_fds: u32,
    /// Field offsets in `sock:sock_recv_length` / `sock_send_length` (same layout).
    pub sock_len_sk: u32,
    pub sock_len_family: u32,
    pub sock_len_protocol: u32,
    pub sock_len_ret: u32,
    pub sock_len_flags: u32,
    pub sockets: SocketOffsets,
}

/// `size_of::<NetConfig>()`.
pub const NET_CONFIG_SIZE: usize = 104;
const _: () = assert!(core::mem::size_of::<NetConfig>() == NET_CONFIG_SIZE);

/// Kernel struct member offsets, from kernel BTF, for the walk from the current task to the
/// socket behind an fd (task → files → fdtable → file → socket → sock) and for a connection's
/// addresses in `struct sock_common`. Offset 0 is a real offset here (`fdtable.max_fds`,
/// `sock_common.skc_daddr`): `valid` says whether the walk can be made, `v6_valid` whether the
/// IPv6 addresses can be read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketOffsets {
    pub valid: u32,
    pub v6_valid: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_inode: u32,
    pub file_private_data: u32,
    pub inode_mode: u32,
    pub socket_type: u32,
    pub socket_sk: u32,
    pub skc_family: u32,
    /// `sock.sk_type` (`SOCK_STREAM`...); 0 when unknown (the socket layer capture needs it).
    pub sk_type: u32,
    /// Local port, host byte order.
    pub skc_num: u32,
    /// Peer port, network byte order.
    pub skc_dport: u32,
    pub skc_rcv_saddr: u32,
    pub skc_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    pub skc_v6_daddr: u32,
}

/// Addresses of a TCP connection, as the kernel keeps them in `struct sock_common`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnAddrs {
    /// AF_INET or AF_INET6; 0 = no addresses.
    pub family: u16,
    /// Local port (host byte order).
    pub sport: u16,
    /// Peer port (host byte order).
    pub dport: u16,
    pub _pad: u16,
    /// Local and peer addresses; IPv4 ones IPv4-mapped (::ffff:a.b.c.d).
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// `size_of::<ConnAddrs>()`.
pub const CONN_ADDRS_SIZE: usize = 40;
const _: () = assert!(core::mem::size_of::<ConnAddrs>() == CONN_ADDRS_SIZE);
