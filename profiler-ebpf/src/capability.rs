//! Minimal programs `profiler check` loads to find out, for real, which hook types this kernel
//! accepts. They do nothing else; `attach`/`run` never load them.

use aya_ebpf::{
    macros::{fentry, kprobe, uprobe},
    programs::{FEntryContext, ProbeContext},
};
use profiler_common::counter;

use crate::maps::bump;

#[uprobe]
pub fn selftest_uprobe(_ctx: ProbeContext) -> u32 {
    bump(counter::UPROBE_SELFTEST_HITS);
    0
}

#[kprobe]
pub fn selftest_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

#[fentry(function = "do_nanosleep")]
pub fn selftest_fentry(_ctx: FEntryContext) -> u32 {
    0
}
