//! Types shared by the eBPF programs (`profiler-ebpf`) and userspace (`profiler`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into maps, userspace
//! reads the same bytes back. Keep field order and sizes stable within a release.
#![no_std]

mod cuda;
mod net;
mod sched;

pub use cuda::*;
pub use net::*;
pub use sched::*;

/// Number of log2 buckets in a run-queue latency histogram. Bucket `i` counts waits in
/// `[2^i, 2^(i+1))` nanoseconds; the last bucket is open-ended (≥ 2^31 ns ≈ 2.1 s).
pub const RUNQ_BUCKETS: usize = 32;

/// Length of a task's `comm` as the kernel stores it (including the NUL).
pub const COMM_LEN: usize = 16;

/// Capacity of the per-thread statistics map.
pub const MAX_THREADS: u32 = 65_536;

/// Capacity of the watched-process map.
pub const MAX_WATCHED: u32 = 4_096;

/// Words of the watched-pid bitmaps (`map_name::WATCHED_BITS`, `FORKED_BITS`): one bit per
/// possible pid (`PID_MAX_LIMIT`, 2^22 on 64-bit kernels).
pub const PID_BITMAP_WORDS: u32 = (1 << 22) / 64;

/// `ThreadStats::flags`: the thread has passed `sched_process_exit`.
pub const THREAD_EXITED: u32 = 1;

// Ring-buffer sizes, in bytes. The eBPF maps are declared with them; userspace may still pass
// them to `EbpfLoader::map_max_entries`, which then changes nothing. A ring buffer's size must
// be a power of two and a multiple of the page size (checked below for 4 KiB pages).
//
// They are the agent's largest memory: the kernel maps a ring's data pages into the agent
// twice (so records can wrap), all of them at once, and they count in its RSS — 8 MiB of
// socket ring was 16 MiB of the 48 MiB an idle `attach` showed.

/// Size of the socket-event ring buffer (`SOCK_EVENTS`): at ~300 bytes per event (a
/// [`SOCK_EVENT_HEADER_SIZE`]-byte header plus a request or response head), about 14k events.
/// The agent drains it every [`DRAIN_MS`] or as soon as it is half full ([`wake_at`]): half a
/// ring is ~7k events, 23 ms of an nginx worker serving 100k requests/s (3 events each), for
/// the agent to wake up in.
pub const SOCK_RING_BYTES: u32 = 4 << 20;

/// Size of the CUDA call ring buffer (`CUDA_EVENTS`): [`CUDA_EVENT_SIZE`]-byte records (+8 of
/// header), ~20k; drained like the socket ring (every [`DRAIN_MS`], or when half full).
pub const CUDA_RING_BYTES: u32 = 2 << 20;

/// Size of the kernel-name ring buffer (`CUDA_NAMES`): [`CUDA_NAME_EVENT_SIZE`]-byte records
/// (+8 of header), ~1.9k; drained like the socket ring (every [`DRAIN_MS`], or when half full).
/// Names are rare (one per `cuModuleGetFunction`/`cuLibraryGetKernel` call, mostly while
/// modules load).
pub const CUDA_NAMES_RING_BYTES: u32 = 1 << 20;

/// Size of the on-CPU ring buffer (`ONCPU_EVENTS`, `--trace`): [`ONCPU_EVENT_SIZE`]-byte records
/// (+8 of header), ~50k; drained like the socket ring (every [`DRAIN_MS`], or when half full).
pub const ONCPU_RING_BYTES: u32 = 2 << 20;

/// How often the agent drains the ring buffers when nothing wakes it earlier. Producers write
/// without waking it (a wakeup per record would cost more than the record), and fewer, larger
/// batches cost it less per record: on the 2-vCPU benchmark VM, draining every 50 ms instead of
/// every 10 ms took its CPU per request down by ≈ 10% (docs/benchmarks.md).
pub const DRAIN_MS: u64 = 50;

/// Unread bytes at which a producer wakes the agent instead of waiting for the next drain: half
/// of a `ring_bytes` ring, so a burst between two drains is read before the ring overflows.
pub const fn wake_at(ring_bytes: u32) -> u64 {
    ring_bytes as u64 / 2
}

const fn valid_ring_size(bytes: u32) -> bool {
    bytes.is_power_of_two() && bytes >= 4096
}
const _: () = assert!(valid_ring_size(SOCK_RING_BYTES));
const _: () = assert!(valid_ring_size(CUDA_RING_BYTES));
const _: () = assert!(valid_ring_size(CUDA_NAMES_RING_BYTES));
const _: () = assert!(valid_ring_size(ONCPU_RING_BYTES));

/// Defines `pub const NAME: &str = "NAME";` for each identifier: a constant's value is its name.
macro_rules! names {
    ($($(#[$attr:meta])* $name:ident;)+) => {
        $($(#[$attr])* pub const $name: &str = stringify!($name);)+
    };
}

/// Names of the maps userspace takes out of the loaded object (`Ebpf::take_map`,
/// `EbpfLoader::map_max_entries`).
///
/// aya names a map after the identifier of its `#[map]` static in `profiler-ebpf`, so each
/// constant here is the identifier of that static (and its value is its own name). The eBPF
/// crate checks at compile time that a static of each name exists (`shared_names!` in
/// `profiler-ebpf/src/maps.rs`); renaming a static means renaming its constant here too.
/// Maps private to the kernel side (`ACTIVE_CALLS`, `CUDA_CALLS`, scratch buffers, …) are not
/// listed.
pub mod map_name {
    names! {
        /// `HashMap<u32, u8>`: watched processes (tgids).
        WATCHED;
        /// `Array<u64>` of [`crate::PID_BITMAP_WORDS`]: bit `tgid % 64` of word `tgid / 64` set
        /// for each tgid userspace watches (written by userspace only).
        WATCHED_BITS;
        /// `HashMap<u32, ThreadStats>`: per-thread statistics, by tid.
        THREAD_STATS;
        /// `PerCpuArray<u64>`: health counters, indexed by [`crate::counter`].
        COUNTERS;
        /// Ring buffer of socket events ([`crate::SOCK_RING_BYTES`]).
        SOCK_EVENTS;
        /// Ring buffer of [`crate::CudaEvent`]s ([`crate::CUDA_RING_BYTES`]).
        CUDA_EVENTS;
        /// Ring buffer of [`crate::CudaNameEvent`]s ([`crate::CUDA_NAMES_RING_BYTES`]).
        CUDA_NAMES;
        /// `HashMap<CudaProbeAddr, u64>`: the attach cookie of each probed address, for kernels
        /// without `bpf_get_attach_cookie`.
        CUDA_PROBE_COOKIES;
        /// Ring buffer of [`crate::OnCpuEvent`]s ([`crate::ONCPU_RING_BYTES`]).
        ONCPU_EVENTS;
        /// `PerCpuArray<u64>`: when each CPU last switched tasks.
        LAST_SWITCH;
    }
}

/// Names of the read-only globals userspace writes before load (`EbpfLoader::override_global`):
/// the identifiers of `#[unsafe(no_mangle)]` statics in `profiler-ebpf`, checked there like
/// [`map_name`].
pub mod global_name {
    names! {
        /// A [`crate::TracepointOffsets`].
        TP_OFFSETS;
        /// A [`crate::NetConfig`].
        NET_CONFIG;
    }
}

/// Indexes into the `COUNTERS` array map: the programs' own health counters.
pub mod counter {
    /// A new thread of a watched process could not be added: `THREAD_STATS` is full.
    pub const THREAD_MAP_FULL: u32 = 0;
    /// A new child process could not be watched: `WATCHED` is full.
    pub const WATCHED_MAP_FULL: u32 = 1;
    /// Hits of the `profiler check` uprobe self-test.
    pub const UPROBE_SELFTEST_HITS: u32 = 2;
    /// Socket events dropped because the ring buffer was full.
    pub const SOCK_EVENTS_LOST: u32 = 3;
    /// Socket syscalls not traced because `MAX_ACTIVE_CALLS` were already in progress.
    pub const ACTIVE_CALLS_EVICTED: u32 = 4;
    /// CUDA call or name events dropped because a CUDA ring buffer was full.
    pub const CUDA_EVENTS_LOST: u32 = 5;
    /// Timed CUDA calls whose entry record was replaced before their return (a nested timed
    /// call on the same thread, or `MAX_ACTIVE_CALLS` reached).
    pub const CUDA_CALLS_UNFINISHED: u32 = 6;
    /// On-CPU records (`--trace`) dropped because `ONCPU_EVENTS` was full.
    pub const ONCPU_EVENTS_LOST: u32 = 7;
    /// Switch-outs of a tracked thread whose switch-in had not been seen (the on-CPU interval
    /// before it is lost): the perf-event `sched_switch` skipped it, or the thread was seeded
    /// as sleeping from /proc just before it ran.
    pub const SWITCH_INS_MISSED: u32 = 8;
    /// Socket-layer capture: stream-socket transfers of a watched process made by something
    /// other than the read/write syscalls it knows (io_uring, splice, recvmmsg/sendmmsg): not
    /// analysed.
    pub const SOCK_LAYER_UNKNOWN_CALLER: u32 = 9;
    pub const LEN: u32 = 10;
}

/// `aya::Pod` for the map values and ring-buffer records userspace reads or writes.
#[cfg(feature = "user")]
mod pod {
    // SAFETY (every impl below): the type is #[repr(C)] and `Copy`, holds only integers and
    // integer arrays (every bit pattern is a valid value), and has no implicit padding (gaps
    // are explicit `_pad` fields; `no_implicit_padding` in the tests checks it), so all of its
    // bytes are initialised when aya copies it to or from the kernel.
    unsafe impl aya::Pod for super::ThreadStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TracepointOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NetConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnAddrs {}
    // SAFETY: as above (an `ONCPU_EVENTS` record).
    unsafe impl aya::Pod for super::OnCpuEvent {}
    // SAFETY: as above (the header of a `SOCK_EVENTS` record).
    unsafe impl aya::Pod for super::SockEventHeader {}
    // SAFETY: as above (a `CUDA_EVENTS` record).
    unsafe impl aya::Pod for super::CudaEvent {}
    // SAFETY: as above (a `CUDA_NAMES` record).
    unsafe impl aya::Pod for super::CudaNameEvent {}
    // SAFETY: as above (a `CUDA_PROBE_COOKIES` key).
    unsafe impl aya::Pod for super::CudaProbeAddr {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{size_of, size_of_val};

    /// The size of `$t` is the sum of its fields' sizes: no padding anywhere. Every field must
    /// be listed (a missing one makes the sum too small).
    macro_rules! assert_no_padding {
        ($t:ty { $($field:ident),+ $(,)? }) => {{
            // SAFETY: all-integer types, for which all-zero bytes are a valid value.
            let v: $t = unsafe { core::mem::zeroed() };
            let fields = 0 $(+ size_of_val(&v.$field))+;
            assert_eq!(fields, size_of::<$t>(), "{} has padding", stringify!($t));
        }};
    }

    #[test]
    fn no_implicit_padding() {
        assert_no_padding!(ThreadStats {
            tgid,
            flags,
            oncpu_ns,
            offcpu_ns,
            runq_ns,
            voluntary_switches,
            involuntary_switches,
            migrations,
            on_cpu_since_ns,
            blocked_since_ns,
            runnable_since_ns,
            runq_hist,
            comm,
            runtime_base_ns,
        });
        assert_no_padding!(TracepointOffsets {
            switch_prev_comm,
            switch_prev_pid,
            switch_prev_state,
            switch_next_pid,
            wakeup_pid,
            migrate_pid,
            newtask_pid,
            newtask_clone_flags,
            task_pid,
            task_tgid,
            task_sum_exec_runtime,
        });
        assert_no_padding!(OnCpuEvent {
            start_ns,
            end_ns,
            tgid,
            tid,
            cpu,
            preempted
        });
        assert_no_padding!(SockEventHeader {
            ts_ns,
            ret,
            sk,
            tgid,
            tid,
            fd,
            captured,
            kind,
            family,
            tail,
            addrs,
            _pad,
        });
        assert_no_padding!(SockEventBuf { header, data });
        assert_no_padding!(NetConfig {
            capture_bytes,
            resolve_fds,
            sock_len_sk,
            sock_len_family,
            sock_len_protocol,
            sock_len_ret,
            sock_len_flags,
            sockets,
        });
        assert_no_padding!(SocketOffsets {
            valid,
            v6_valid,
            task_files,
            files_fdt,
            fdt_max_fds,
            fdt_fd,
            file_inode,
            file_private_data,
            inode_mode,
            socket_type,
            socket_sk,
            skc_family,
            sk_type,
            skc_num,
            skc_dport,
            skc_rcv_saddr,
            skc_daddr,
            skc_v6_rcv_saddr,
            skc_v6_daddr,
        });
        assert_no_padding!(ConnAddrs {
            family,
            sport,
            dport,
            _pad,
            saddr,
            daddr
        });
        assert_no_padding!(CudaProbeAddr { tgid, _pad, ip });
        assert_no_padding!(CudaEvent {
            ts_ns,
            duration_ns,
            handle,
            handle2,
            stream,
            bytes,
            tgid,
            tid,
            grid,
            block,
            shared_mem,
            ret,
            api,
            flags,
            direction,
            _pad,
        });
        assert_no_padding!(CudaNameEvent {
            ts_ns,
            handle,
            scope,
            tgid,
            tid,
            api,
            truncated,
            _pad,
            name,
        });
    }

    #[test]
    fn names_are_their_identifiers() {
        assert_eq!(map_name::CUDA_NAMES, "CUDA_NAMES");
        assert_eq!(global_name::TP_OFFSETS, "TP_OFFSETS");
    }
}
