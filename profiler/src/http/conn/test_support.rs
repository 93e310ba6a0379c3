//! Helpers for the connection unit tests: a connection fed from strings (no I/O).
//!
//! Also the traffic snippets several tests share.

use super::*;

/// A connection under test with helpers to feed it.
pub(super) struct T {
    pub(super) c: Connection,
    pub(super) out: Vec<RequestRecord>,
}

impl T {
    pub(super) fn new() -> Self {
        Self::with(Limits::default())
    }

    pub(super) fn with(limits: Limits) -> Self {
        Self {
            c: Connection::new(limits),
            out: Vec::new(),
        }
    }

    pub(super) fn seg(&mut self, ts: u64, dir: Direction, data: &[u8], len: u64) -> &mut Self {
        let seg = Segment {
            ts_ns: ts,
            dir,
            len,
            data,
        };
        self.c.on_segment(&seg, &mut self.out);
        self
    }

    /// A fully captured read.
    pub(super) fn r(&mut self, ts: u64, data: &str) -> &mut Self {
        self.seg(ts, Direction::Read, data.as_bytes(), data.len() as u64)
    }

    /// A fully captured write.
    pub(super) fn w(&mut self, ts: u64, data: &str) -> &mut Self {
        self.seg(ts, Direction::Write, data.as_bytes(), data.len() as u64)
    }

    /// A write of `len` bytes of which only `data` was captured.
    pub(super) fn w_cut(&mut self, ts: u64, data: &str, len: u64) -> &mut Self {
        self.seg(ts, Direction::Write, data.as_bytes(), len)
    }

    pub(super) fn r_cut(&mut self, ts: u64, data: &str, len: u64) -> &mut Self {
        self.seg(ts, Direction::Read, data.as_bytes(), len)
    }

    pub(super) fn close(&mut self, ts: u64, how: CloseKind) -> &mut Self {
        self.c.on_close(ts, how, &mut self.out);
        self
    }

    pub(super) fn take(&mut self) -> Vec<RequestRecord> {
        std::mem::take(&mut self.out)
    }

    pub(super) fn one(&mut self) -> RequestRecord {
        let mut v = self.take();
        assert_eq!(v.len(), 1, "{v:#?}");
        v.remove(0)
    }
}

pub(super) const GET: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
pub(super) const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

pub(super) const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Writes `payload` as one chunk per write, hyper style (size line, data, CRLF together).
pub(super) fn chunk(payload: &str) -> String {
    format!("{:x}\r\n{payload}\r\n", payload.len())
}
