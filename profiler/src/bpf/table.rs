//! The declarative probe table: which eBPF program attaches to which tracepoint, what it
//! serves and what the user loses without it: the row type. Each capability declares its rows in
//! its own `probes.rs`; `bpf/probes.rs` attaches them.

/// One row of the probe table: what is attached where, what it serves, and what the user loses
/// without it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub program: &'static str,
    pub category: &'static str,
    pub tracepoint: &'static str,
    pub feature: &'static str,
    /// Without a required probe the feature makes no sense: attaching fails.
    pub required: bool,
    /// What degrades when an optional probe cannot attach.
    pub if_missing: &'static str,
    /// Attached instead when this one cannot be (recorded as not attached, with the reason).
    pub fallback: Option<&'static ProbeSpec>,
    /// An environment variable that, set to anything but "0", keeps this probe off (so its
    /// fallback runs: for tests and comparisons).
    pub off_switch: Option<&'static str>,
    /// The program reads `task_struct` fields at offsets from kernel BTF: without them it is
    /// not attached.
    pub needs_task_offsets: bool,
}

/// `ProbeSpec::category` of a raw tracepoint (attached by name, no tracefs category).
pub const RAW_TRACEPOINT: &str = "raw_tracepoint";
