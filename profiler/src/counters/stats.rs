//! What the perf-counter sampler knows: per process its counts (interval and total), and what
//! the machine can count at all. Pure data, filled by `sampler`, read by `report`.

use super::{arith::CounterTotals, events::VectorSource};

/// What the sampler found the machine can count, decided once at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerStatus {
    /// Counts include kernel-mode work (false when perf_event_paranoid forbade it).
    pub kernel_included: bool,
    pub software_unavailable: Option<String>,
    pub hardware_unavailable: Option<String>,
    pub vector_source: Option<VectorSource>,
    pub vectorization_unavailable: Option<String>,
    /// Events this PMU does not offer (`name: reason`); the others are counted.
    pub unsupported_events: Vec<String>,
}

/// A process's counts as of the latest `read`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessCounters {
    pub pid: u32,
    /// Since the previous `read` (including threads that exited in between).
    pub interval: CounterTotals,
    /// Since the process was added.
    pub total: CounterTotals,
    /// Threads with open counters now.
    pub threads_live: usize,
    /// Threads ever counted, and how many of them exited.
    pub threads_counted: u64,
    pub threads_exited: u64,
    /// The latest reason a thread's counters could not be opened (a thread that is gone
    /// is not an error).
    pub open_error: Option<String>,
}
