//! The socket behind an fd of the current task, and a connection's addresses, read from the
//! kernel's own structures at offsets from kernel BTF (`profiler_common::SocketOffsets`):
//! task → files → fdtable → file → (a sockfs inode) → socket → sock.
//!
//! Kernels before 6.2 have no `sock:sock_{recv,send}_length`, so a syscall's fd is recognised
//! here, whoever opened it (an inherited, dup'ed or passed fd, an `accept4()` already blocked at
//! attach). On every kernel the addresses of connections established before attach come from
//! here too (`inet_sock_set_state` only sees new ones).

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use profiler_common::{ConnAddrs, SocketOffsets};

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `inode.i_mode` file-type bits and the socket type.
const S_IFMT: u16 = 0o170_000;
const S_IFSOCK: u16 = 0o140_000;
pub const SOCK_STREAM: i16 = 1;

/// A stream socket: its kernel `struct sock` address and address family.
pub struct StreamSocket {
    pub sk: u64,
    pub family: u16,
}

/// `T` at `base + offset` in kernel memory; `None` for a null base or a fault.
#[inline(always)]
fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a fault returns an error. Offsets come
    // from this kernel's BTF.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// The TCP or Unix stream socket that `fd` of the current task is, if it is one.
#[inline(always)]
pub fn stream_socket_of(o: &SocketOffsets, fd: i32) -> Option<StreamSocket> {
    if o.valid == 0 || fd < 0 {
        return None;
    }
    // SAFETY: no preconditions; the task is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task, o.task_files)?;
    let fdt: u64 = read(files, o.files_fdt)?;
    let max_fds: u32 = read(fdt, o.fdt_max_fds)?;
    if fd as u32 >= max_fds {
        return None;
    }
    let fd_array: u64 = read(fdt, o.fdt_fd)?;
    let file: u64 = read(fd_array, 8 * fd as u32)?;
    let inode: u64 = read(file, o.file_inode)?;
    let mode: u16 = read(inode, o.inode_mode)?;
    if mode & S_IFMT != S_IFSOCK {
        return None;
    }
    let socket: u64 = read(file, o.file_private_data)?;
    let kind: i16 = read(socket, o.socket_type)?;
    if kind != SOCK_STREAM {
        return None;
    }
    let sk: u64 = read(socket, o.socket_sk)?;
    let family: u16 = read(sk, o.skc_family)?;
    match family {
        AF_UNIX | AF_INET | AF_INET6 => Some(StreamSocket { sk, family }),
        _ => None,
    }
}

/// The addresses of TCP connection `sk` as `sock:inet_sock_set_state` reports them (ports in
/// host order, IPv4 addresses IPv4-mapped).
#[inline(always)]
pub fn conn_addrs_of(o: &SocketOffsets, sk: u64, family: u16) -> Option<ConnAddrs> {
    if o.valid == 0 {
        return None;
    }
    let mut addrs = ConnAddrs {
        family,
        sport: read(sk, o.skc_num)?,
        dport: u16::from_be(read(sk, o.skc_dport)?),
        ..ConnAddrs::default()
    };
    if family == AF_INET {
        let local: [u8; 4] = read(sk, o.skc_rcv_saddr)?;
        let peer: [u8; 4] = read(sk, o.skc_daddr)?;
        addrs.saddr = v4_mapped(local);
        addrs.daddr = v4_mapped(peer);
    } else if o.v6_valid != 0 {
        addrs.saddr = read(sk, o.skc_v6_rcv_saddr)?;
        addrs.daddr = read(sk, o.skc_v6_daddr)?;
    }
    Some(addrs)
}

#[inline(always)]
fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}
