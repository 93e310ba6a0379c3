//! The machine we run on: kernel BTF, tracefs, the checks that must pass before anything is
//! loaded, and /proc readers. I/O, no eBPF.

pub mod btf;
pub mod preflight;
pub mod procfs;
pub mod self_usage;
pub mod tracefs;
