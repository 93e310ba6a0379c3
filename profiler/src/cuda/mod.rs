//! CUDA through uprobes: which kernels a process launches, how long the host spends launching,
//! how long it blocks in syncs, what it copies and allocates.
//!
//! `symbols` is the probe table, `discover` finds the CUDA libraries a process maps, `attach`
//! puts the uprobes on them, `stubs` names runtime launches by their host stub symbol; the pure
//! side — `analyzer` (events → aggregates, observed by the sinks through `observer`), `report`
//! (JSON/text) — needs no privileges and is unit-tested; `capture` is what the session calls.

pub mod aggregates;
pub mod analyzer;
pub mod attach;
pub mod capture;
pub mod discover;
pub mod elf;
pub mod names;
pub mod observer;
pub mod probes;
pub mod report;
pub mod stubs;
pub mod symbols;
#[cfg(test)]
pub(crate) mod testing;
