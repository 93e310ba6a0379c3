//! Scheduler accounting: on-CPU, off-CPU and run-queue time, context switches and migrations
//! per thread, from the kernel's per-thread records, plus the userspace bookkeeping of every
//! thread and process seen.
//!
//! `model`: pure arithmetic over the kernel records; `tracker`: what was seen, fed by the
//! session.

pub mod model;
pub mod probes;
pub mod section;
pub mod tracker;
