//! The scanner of a streamed response body, by its media type (no I/O).

use super::ndjson::NdjsonScanner;
use super::parse::ContentKind;
use super::record::StreamStats;
use super::sse::SseScanner;

#[derive(Debug, Clone)]
pub enum StreamScanner {
    /// `text/event-stream`.
    Sse(SseScanner),
    /// `application/x-ndjson` and its aliases.
    Ndjson(NdjsonScanner),
}

impl StreamScanner {
    /// The scanner for a body of this kind; `None` when it is not a stream.
    pub fn for_content(kind: ContentKind, max_gaps: usize) -> Option<Box<Self>> {
        match kind {
            ContentKind::EventStream => Some(Box::new(Self::Sse(SseScanner::new(max_gaps)))),
            ContentKind::Ndjson => Some(Box::new(Self::Ndjson(NdjsonScanner::new(max_gaps)))),
            ContentKind::Json | ContentKind::Other => None,
        }
    }

    /// Captured body bytes written by a syscall that returned at `ts_ns`.
    pub fn feed(&mut self, data: &[u8], ts_ns: u64) {
        match self {
            Self::Sse(s) => s.feed(data, ts_ns),
            Self::Ndjson(s) => s.feed(data, ts_ns),
        }
    }

    /// `n` body bytes written by a syscall that returned at `ts_ns` were not captured.
    pub fn skip(&mut self, n: u64, ts_ns: u64) {
        match self {
            Self::Sse(s) => s.skip(n, ts_ns),
            Self::Ndjson(s) => s.skip(n, ts_ns),
        }
    }

    /// The stream's end marker was seen: a close after it loses nothing the client wanted.
    pub fn ended(&self) -> bool {
        match self {
            Self::Sse(s) => s.ended(),
            Self::Ndjson(s) => s.ended(),
        }
    }

    pub fn into_stats(self) -> StreamStats {
        match self {
            Self::Sse(s) => s.into_stats(),
            Self::Ndjson(s) => s.into_stats(),
        }
    }
}
