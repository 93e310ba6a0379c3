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
pub mod util;

pub mod host;

pub mod bpf;

pub mod counters;
pub mod cuda;
pub mod energy;
pub mod gpu;
pub mod http;
pub mod sched;

pub mod derive;

pub mod sinks;

pub mod check;
pub mod session;

pub mod cli;
