//! Incremental HTTP/1.1 message framing of captured socket bytes (no I/O).
//!
//! Start lines, heads collected across segments, the header summary, and body framing
//! (Content-Length, chunked with extensions and trailers, close-delimited), with bytes beyond the
//! capture ("unseen") consuming lengths.
//!
//! Everything here is lenient (LF alone ends a line, unknown headers are ignored) and never
//! panics: numbers saturate, lines and heads are bounded by the caller's limit.
//!
//! - `line`: the request line (recognised byte by byte, before its head is complete) and the
//!   status line.
//! - `head`: heads collected across segments and their header summary (`httparse` for
//!   well-formed heads, a lenient line scan for the rest).
//! - `framing`: which body a head announces (RFC 9112 §6.3).
//! - `body`: consuming a body: Content-Length, chunked, close-delimited.

mod body;
mod framing;
mod head;
mod line;

pub use body::{Body, ChunkState, Fed, Lost, Piece};
pub use framing::{Framing, ResponseKind, request_framing, response_kind};
pub use head::{
    ContentKind, HeadAcc, HeadInfo, HeadPush, find_head_end, parse_headers, parse_request_head,
    parse_response_head,
};
pub use line::{LineClass, MAX_METHOD_LEN, Method, classify_request_line, parse_status_line};
