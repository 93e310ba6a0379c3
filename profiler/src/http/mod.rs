//! HTTP/1.1 and SSE analysis of socket traffic, from the bytes and timestamps of the watched
//! process's own syscalls. Pure: no I/O, no root; fed by the socket collector.
//!
//! - `record`: what one request/response exchange produced (the analyzer's output).
//! - `parse`: incremental HTTP/1.1 message framing (heads, Content-Length, chunked, 1xx, HEAD,
//!   204/304, bodies larger than the capture).
//! - `sse`: `text/event-stream` event splitting and `usage` token extraction.
//! - `conn`: one connection's state machine: segments in, `RequestRecord`s out.

pub mod analyzer;
pub mod capture;
pub mod conn;
pub mod decode;
pub mod endpoints;
pub mod llm_event;
pub mod ndjson;
pub mod observer;
pub mod parse;
pub mod probes;
pub mod record;
pub mod section;
pub mod sse;
pub mod stats;
pub mod stream;
#[cfg(test)]
pub(crate) mod testing;
pub mod usage;

pub use conn::{CloseKind, Connection, Direction, Limits, Segment};
pub use record::{Outcome, RequestRecord, Role, StreamStats};
