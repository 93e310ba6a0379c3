//! The eBPF object: loading it, the probe table type, attaching and detaching programs, the maps
//! every capability shares (the watched set, health counters) and the kernel's own statistics
//! of our programs. Privileged I/O; capabilities take their own maps from here.

pub mod capability;
pub mod probes;
pub mod table;
pub mod verifier;

pub use capability::Capability;
pub use probes::{ProbeStatus, Probes};
