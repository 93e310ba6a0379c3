//! Process lifecycle tracepoints: follow new threads and child processes of watched processes,
//! and mark exited threads so userspace can fold and remove them.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use profiler_common::THREAD_EXITED;

use crate::maps::{THREAD_STATS, is_watched, offsets, register_thread, watch_child};

const CLONE_THREAD: u64 = 0x0001_0000;

/// `task:task_newtask` fires in the parent, inside `copy_process`, with the clone flags: that is
/// what tells a new thread (same tgid) from a new process (tgid = its pid).
#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let _ = try_newtask(&ctx);
    0
}

/// Raw version (the default; see the note above `sched_wakeup_raw` in sched.rs):
/// `task_newtask(struct task_struct *task, unsigned long clone_flags)`.
#[raw_tracepoint(tracepoint = "task_newtask")]
pub fn task_newtask_raw(ctx: RawTracePointContext) -> i32 {
    if let Some(pid) = crate::sched::task_tid(ctx.arg(0)) {
        new_task(pid, ctx.arg(1));
    }
    0
}

/// Raw version (the default); only `current` is used, so the arguments (which changed across
/// kernel versions) do not matter.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit_raw(_ctx: RawTracePointContext) -> i32 {
    thread_exits();
    0
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    thread_exits();
    0
}

/// `current` is the exiting thread.
#[inline(always)]
fn thread_exits() {
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(stats) = THREAD_STATS.get_ptr_mut(tid) {
        // SAFETY: pointer from a successful lookup, valid for this run.
        unsafe { (*stats).flags |= THREAD_EXITED };
    }
    // A thread killed inside a traced socket syscall never reaches its exit.
    crate::net::forget_call(tid);
    crate::cuda::forget_thread(tid);
}

fn try_newtask(ctx: &TracePointContext) -> Result<(), i32> {
    let off = offsets();
    // SAFETY: offsets from the task_newtask format file.
    let pid = unsafe { ctx.read_at::<i32>(off.newtask_pid as usize)? } as u32;
    // SAFETY: as above.
    let clone_flags = unsafe { ctx.read_at::<u64>(off.newtask_clone_flags as usize)? };
    new_task(pid, clone_flags);
    Ok(())
}

/// The current task (the parent) created task `pid`: a thread of its process, or a child
/// process, which is watched too when the parent is.
#[inline(always)]
fn new_task(pid: u32, clone_flags: u64) {
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_watched(parent_tgid) {
        return;
    }
    let tgid = if clone_flags & CLONE_THREAD != 0 {
        parent_tgid
    } else {
        watch_child(pid);
        pid
    };
    register_thread(pid, tgid);
}
