//! profiler: zero-instrumentation eBPF profiler for ML inference services.
//!
//! Layout: `probes` loads and attaches the eBPF programs (one declarative table); `tracker`,
//! `sched`, `procstat` turn map contents and /proc readings into totals; `report` and `live`
//! present them; `session` runs the whole thing; `check` reports what the machine supports.

pub mod btf;
pub mod check;
pub mod cli;
pub mod counters;
pub mod cuda;
pub mod daemon;
pub mod discovery;
pub mod energy;
pub mod error;
pub mod gpu;
pub mod hardware;
pub mod http;
pub mod http_capture;
pub mod live;
pub mod metrics;
pub mod observe;
pub mod preflight;
pub mod probe_table;
pub mod probes;
pub mod procstat;
pub mod report;
pub mod requests;
pub mod sched;
pub mod session;
pub mod sockets;
pub mod targets;
pub mod timeline;
pub mod tracefs;
pub mod tracker;
