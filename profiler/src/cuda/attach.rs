//! Attaching the CUDA uprobes to the libraries `discover` found (work in progress).

use serde::Serialize;

use crate::cuda::symbols::LibraryKind;

/// One CUDA library file the uprobes are attached to, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttachedLibrary {
    /// The first watched process seen mapping it.
    pub pid: u32,
    /// The path as that process maps it (inside its mount namespace).
    pub path: String,
    pub kind: LibraryKind,
    /// Uprobes and uretprobes attached to it.
    pub probes: u32,
    /// Why some or all probes could not be attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
