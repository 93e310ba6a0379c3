//! Shared helpers with no knowledge of any capability: human-readable units, HDR histogram
//! helpers, ratios, and reading `#[repr(C)]` records out of ring-buffer bytes. No I/O.

pub mod fmt;
pub mod hist;
pub mod mem;
pub mod num;
pub mod pod;
