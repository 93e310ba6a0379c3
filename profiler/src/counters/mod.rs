//! Per-process perf counters: software events always (task clock, page faults, context
//! switches, migrations), hardware events where a PMU exists (cycles, instructions, cache,
//! branches) and vendor raw events for vectorization.
//!
//! `events` chooses what to open (pure, from /proc/cpuinfo), `arith` does the scaling and
//! ratios (pure), `sampler` opens one perf group per event family per thread and reads them
//! (privileged I/O, unsafe confined to `sys`), `report` builds the serializable section, its
//! text and the live line.

pub mod arith;
pub mod events;
pub mod report;
pub mod sampler;
pub mod stats;
mod sys;

pub use report::{CountersSection, live_line, render_text};
pub use sampler::CounterSampler;
