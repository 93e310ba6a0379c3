//! Maps and read-only configuration shared by all hook families.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use profiler_common::{
    MAX_THREADS, MAX_WATCHED, PID_BITMAP_WORDS, ThreadStats, TracepointOffsets, counter, wake_at,
};

/// Checks at compile time that each listed static has a constant of the same identifier in
/// `profiler_common::$module` (`map_name` for `#[map]` statics, `global_name` for globals
/// userspace overrides). aya names a map or global after its static's identifier, and those
/// constants (whose value is their identifier) are the names userspace looks them up by: a
/// static renamed without its constant no longer compiles.
macro_rules! shared_names {
    ($module:ident: $($name:ident),+ $(,)?) => {
        const _: fn() = || {
            $(let _ = (&$name, profiler_common::$module::$name);)+
        };
    };
}
pub(crate) use shared_names;

shared_names!(map_name: WATCHED, WATCHED_BITS, THREAD_STATS, COUNTERS);
shared_names!(global_name: TP_OFFSETS);

/// Where `register_thread` assembles a new thread's record (kept off the 512-byte stack).
#[map]
static NEW_THREAD: PerCpuArray<ThreadStats> = PerCpuArray::with_max_entries(1, 0);

/// Processes (tgids) being profiled: those userspace watches and the children the kernel side
/// found (`process.rs`). Looked up only for pids set in `FORKED_BITS` (see `is_watched`).
#[map]
pub static WATCHED: HashMap<u32, u8> = HashMap::with_max_entries(MAX_WATCHED, 0);

/// The tgids userspace watches, one bit each (written by userspace only). Every program on
/// every process of the node starts with `is_watched`: a bit in an array, which the verifier
/// inlines, costs a fraction of a hash lookup (docs/benchmarks.md "Raw socket tracepoints").
#[map]
static WATCHED_BITS: Array<u64> = Array::with_max_entries(PID_BITMAP_WORDS, 0);

/// Children of watched processes the kernel side added to `WATCHED`, one bit each (written by
/// the kernel side only, never cleared: a pid reused later costs a hash lookup, no more).
#[map]
static FORKED_BITS: Array<u64> = Array::with_max_entries(PID_BITMAP_WORDS, 0);

/// Per-thread scheduler statistics of watched processes, keyed by tid.
#[map]
pub static THREAD_STATS: HashMap<u32, ThreadStats> = HashMap::with_max_entries(MAX_THREADS, 0);

/// Health counters (see `profiler_common::counter`), per CPU so increments need no atomics.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::LEN, 0);

/// Tracepoint field offsets, written by userspace before load (see `TracepointOffsets`).
#[unsafe(no_mangle)]
static TP_OFFSETS: TracepointOffsets = TracepointOffsets {
    switch_prev_comm: 0,
    switch_prev_pid: 0,
    switch_prev_state: 0,
    switch_next_pid: 0,
    wakeup_pid: 0,
    migrate_pid: 0,
    newtask_pid: 0,
    newtask_clone_flags: 0,
    task_pid: 0,
    task_tgid: 0,
    task_sum_exec_runtime: 0,
};

#[inline(always)]
pub fn offsets() -> TracepointOffsets {
    // SAFETY: TP_OFFSETS is plain data in .rodata; the volatile read keeps the compiler from
    // folding in the zero placeholder values that userspace replaces at load time.
    unsafe { core::ptr::read_volatile(&TP_OFFSETS) }
}

#[inline(always)]
pub fn is_watched(tgid: u32) -> bool {
    let (word, bit) = (tgid / 64, 1u64 << (tgid % 64));
    if WATCHED_BITS.get(word).is_some_and(|w| w & bit != 0) {
        return true;
    }
    FORKED_BITS.get(word).is_some_and(|w| w & bit != 0) && WATCHED.get_ptr(tgid).is_some()
}

/// Adds child process `tgid` to the watched set.
#[inline(always)]
pub fn watch_child(tgid: u32) {
    if WATCHED.insert(tgid, 1u8, 0).is_err() {
        bump(counter::WATCHED_MAP_FULL);
        return;
    }
    if let Some(word) = FORKED_BITS.get_ptr_mut(tgid / 64) {
        // SAFETY: an array map value, valid while the program runs. Only this function writes
        // the map. Not atomic (the BPF target has no atomic OR in Rust): two watched parents
        // forking children of one 64-pid block at the same instant on two CPUs can lose a bit;
        // that child is then watched from userspace's next scan of `WATCHED` (`Probes::adopt`).
        unsafe { *word |= 1u64 << (tgid % 64) };
    }
}

#[inline(always)]
pub fn bump(index: u32) {
    if let Some(ptr) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer comes from a successful lookup in a per-CPU map: this CPU's slot,
        // which nothing else writes while this program runs (programs are not preempted).
        unsafe { *ptr += 1 };
    }
}

/// Registers thread `tid` of watched process `tgid`; returns its stats slot.
#[inline(always)]
pub fn register_thread(tid: u32, tgid: u32) -> Option<*mut ThreadStats> {
    const BPF_NOEXIST: u64 = 1;
    // The new record is assembled in a per-CPU map, not on the stack: a `ThreadStats` there
    // (THREAD_STATS_SIZE bytes) pushed `sched_switch_raw` past 6.1's 512-byte combined stack
    // and its padding was an uninitialized stack read on 5.10. The scratch entry stays zero but
    // for `tgid`, which is set on every call, so it is always `ThreadStats::new(tgid)`.
    let scratch = NEW_THREAD.get_ptr_mut(0)?;
    // SAFETY: a per-CPU map value, valid for this program's run and used by no other CPU;
    // programs on one CPU do not interleave their runs of this function.
    let fresh = unsafe {
        (*scratch).tgid = tgid;
        &*scratch
    };
    if THREAD_STATS.insert(tid, fresh, BPF_NOEXIST).is_err() {
        // Either another CPU registered it first (fine) or the map is full (counted).
        if THREAD_STATS.get_ptr_mut(tid).is_none() {
            bump(counter::THREAD_MAP_FULL);
        }
    }
    THREAD_STATS.get_ptr_mut(tid)
}

/// Flags for a record written to `ring` (of `ring_bytes`): no wakeup — the agent drains on a
/// timer — unless the ring is already half full, when the agent is woken now rather than
/// records lost.
#[inline(always)]
pub fn ring_flags(ring: &RingBuf, ring_bytes: u32) -> u64 {
    if ring.query(BPF_RB_AVAIL_DATA as u64) >= wake_at(ring_bytes) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
