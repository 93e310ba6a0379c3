//! One connection's state machine: segments in, `RequestRecord`s out. (API stub; the analyzer
//! is being written.)

use super::record::RequestRecord;

/// Direction of a segment from the watched process's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The process received these bytes (read/recv).
    Read,
    /// The process sent these bytes (write/send/sendfile).
    Write,
}

/// One successful socket syscall's transfer.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// CLOCK_MONOTONIC ns when the syscall returned.
    pub ts_ns: u64,
    pub dir: Direction,
    /// Bytes the syscall transferred (> 0).
    pub len: u64,
    /// The leading captured bytes of those `len` (`data.len() <= len`; empty for sendfile).
    pub data: &'a [u8],
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// The process called close() on the fd.
    Closed,
    /// A read returned 0: the peer closed its side.
    PeerEof,
    /// A syscall failed with ECONNRESET or EPIPE.
    Reset,
}

/// Bounds on per-connection state; every time one is hit a drop counter goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of an incomplete head (or chunk-size line) buffered across segments.
    pub max_head_bytes: usize,
    /// Requests read (pipelined) but not yet answered.
    pub max_pending: usize,
    /// Inter-event gaps kept per stream.
    pub max_gaps_per_stream: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_pending: 64,
            max_gaps_per_stream: 100_000,
        }
    }
}

/// Counters of what a connection could not analyse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnDrops {
    /// A head exceeded `max_head_bytes`.
    pub head_overflow: u64,
    /// Pipelined requests beyond `max_pending`.
    pub pending_overflow: u64,
    /// Bytes that did not parse as HTTP/1.x (the connection then ignores its traffic).
    pub not_http: u64,
}

#[derive(Debug, Default)]
pub struct Connection {
    pub limits: Limits,
    pub drops: ConnDrops,
}

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            drops: ConnDrops::default(),
        }
    }

    /// Feeds one segment; finished exchanges are appended to `out`.
    pub fn on_segment(&mut self, _seg: &Segment<'_>, _out: &mut Vec<RequestRecord>) {}

    /// The connection ended at `ts_ns`; every unfinished exchange is appended to `out`.
    pub fn on_close(&mut self, _ts_ns: u64, _how: CloseKind, _out: &mut Vec<RequestRecord>) {}

    /// Requests started (first byte seen) whose response has not completed.
    pub fn in_flight(&self) -> usize {
        0
    }

    /// Whether the connection carries HTTP/1.x as far as seen (false once it was ruled out).
    pub fn is_http(&self) -> bool {
        true
    }
}
