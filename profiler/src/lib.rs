//! profiler: zero-instrumentation eBPF profiler for ML inference services.
//!
//! Layers, lowest first; a module imports only from its own layer or lower ones, and the
//! capabilities never import each other (`cargo xtask layers` checks this):
//! `util` (formatting, histograms, record reading) ← `host` (BTF, tracefs, preflight, /proc) ←
//! `bpf` (loading and attaching the eBPF object, shared maps, health) ← capabilities (`sched`,
//! `http`, `cuda`, `counters`, `gpu`, `energy`) ← `derive` (figures combining capabilities) ←
//! `sinks` (report, live view, event log, Prometheus, timeline) ← `session` (the run loop,
//! targets, daemon) and `check` ← `cli` (clap) ← `main`.

pub mod error;
pub(crate) mod util;

pub(crate) mod host;

pub(crate) mod bpf;

pub(crate) mod counters;
pub(crate) mod cuda;
pub(crate) mod energy;
pub(crate) mod gpu;
/// Public for the fuzz target (`fuzz/fuzz_targets/http_conn.rs`).
pub mod http;
pub(crate) mod sched;

pub(crate) mod derive;

pub(crate) mod sinks;

pub(crate) mod check;
pub(crate) mod session;

/// What `main` runs.
pub mod cli;
