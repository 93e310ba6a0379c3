//! Streams trace events into a Chrome/Perfetto JSON Object Format file:
//! `{"displayTimeUnit":"ms","traceEvents":[…],"otherData":{…}}`, bounded by an event limit.
//!
//! Events are written as they come (the file never holds the session in memory); `close` ends
//! the array and adds `otherData`. If the writer is dropped unclosed (an error path, a panic
//! unwinding), `Drop` closes it, so the file is valid JSON however the session ends.

use std::io::{BufWriter, Write};

use serde::Serialize;

use super::event::TraceEvent;

const HEADER: &[u8] = b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";

pub struct TraceWriter {
    /// `None` once closed.
    out: Option<BufWriter<Box<dyn Write>>>,
    limit: u64,
    written: u64,
    dropped: u64,
    metadata: u64,
    error: Option<String>,
    buf: Vec<u8>,
}

impl TraceWriter {
    /// Starts the file. `limit`: events written at most, metadata (names) not counted.
    pub fn new(writer: Box<dyn Write>, limit: u64) -> Self {
        let mut w = Self {
            out: Some(BufWriter::with_capacity(1 << 16, writer)),
            limit,
            written: 0,
            dropped: 0,
            metadata: 0,
            error: None,
            buf: Vec::with_capacity(512),
        };
        w.raw(HEADER);
        w
    }

    /// Whether `n` more events fit under the limit. When they do not, they count as dropped:
    /// callers write related events (an async begin and its end) all or none.
    pub fn reserve(&mut self, n: u64) -> bool {
        if self.out.is_none() || self.written.saturating_add(n) > self.limit {
            self.dropped += n;
            return false;
        }
        true
    }

    /// Writes an event, counted against the limit; call [`reserve`](Self::reserve) first.
    pub fn write<A: Serialize>(&mut self, ev: &TraceEvent<'_, A>) {
        if self.push(ev) {
            self.written += 1;
        }
    }

    /// Writes a metadata event (process/thread names): not counted against the limit.
    pub fn write_metadata<A: Serialize>(&mut self, ev: &TraceEvent<'_, A>) {
        if self.push(ev) {
            self.metadata += 1;
        }
    }

    /// Ends the event array, writes `other` as `otherData` and flushes. Later writes are
    /// ignored (counted as dropped). Returns the first write error, if any.
    pub fn close(&mut self, other: &impl Serialize) -> Result<(), String> {
        if self.out.is_some() {
            self.raw(b"\n],\"otherData\":");
            self.buf.clear();
            match serde_json::to_writer(&mut self.buf, other) {
                Ok(()) => {
                    let tail = std::mem::take(&mut self.buf);
                    self.raw(&tail);
                    self.buf = tail;
                }
                Err(e) => {
                    self.keep_error(e.to_string());
                    self.raw(b"{}");
                }
            }
            self.raw(b"}\n");
            if let Some(mut out) = self.out.take()
                && let Err(e) = out.flush()
            {
                self.keep_error(e.to_string());
            }
        }
        self.error.clone().map_or(Ok(()), Err)
    }

    /// Events written (metadata not included).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Events left out because of the limit.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    #[cfg(test)]
    pub fn metadata_written(&self) -> u64 {
        self.metadata
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn push<A: Serialize>(&mut self, ev: &TraceEvent<'_, A>) -> bool {
        if self.out.is_none() || self.error.is_some() {
            return false;
        }
        self.buf.clear();
        if self.written + self.metadata > 0 {
            self.buf.extend_from_slice(b",\n");
        }
        if let Err(e) = serde_json::to_writer(&mut self.buf, ev) {
            self.keep_error(e.to_string());
            return false;
        }
        let line = std::mem::take(&mut self.buf);
        self.raw(&line);
        self.buf = line;
        self.error.is_none()
    }

    fn raw(&mut self, bytes: &[u8]) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if self.error.is_none()
            && let Err(e) = out.write_all(bytes)
        {
            self.keep_error(e.to_string());
        }
    }

    fn keep_error(&mut self, e: String) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = self.close(&serde_json::json!({ "incomplete": true }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::timeline::{
        event::{MetaArgs, NoArgs, metadata},
        testing::MemorySink,
    };

    fn slice(i: u64) -> TraceEvent<'static, NoArgs> {
        TraceEvent::complete(
            "on-cpu",
            "sched",
            (1, 2),
            i * 1000,
            i * 1000 + 500,
            NoArgs {},
        )
    }

    #[test]
    fn empty_trace_is_valid_json_object_format() {
        let out = MemorySink::default();
        let mut w = TraceWriter::new(Box::new(out.clone()), 10);
        w.close(&serde_json::json!({"k": 1})).unwrap();
        let v = out.json();
        assert_eq!(v["displayTimeUnit"], "ms");
        assert_eq!(v["traceEvents"], serde_json::json!([]));
        assert_eq!(v["otherData"]["k"], 1);
    }

    #[test]
    fn events_and_metadata_are_comma_separated() {
        let out = MemorySink::default();
        let mut w = TraceWriter::new(Box::new(out.clone()), 10);
        assert!(w.reserve(2));
        w.write(&slice(1));
        w.write(&slice(2));
        w.write_metadata(&metadata(
            "thread_name",
            (1, 2),
            MetaArgs {
                name: Some("t"),
                sort_index: None,
            },
        ));
        w.close(&NoArgs {}).unwrap();
        let v = out.json();
        let events = v["traceEvents"].as_array().unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[1]["ts"], 2.0);
        assert_eq!(events[2]["ph"], "M");
        assert_eq!((w.written(), w.metadata_written(), w.dropped()), (2, 1, 0));
    }

    #[test]
    fn limit_drops_whole_groups_and_counts_them() {
        let out = MemorySink::default();
        let mut w = TraceWriter::new(Box::new(out.clone()), 5);
        let mut groups = 0;
        for i in 0..4 {
            if w.reserve(2) {
                w.write(&slice(i));
                w.write(&slice(i));
                groups += 1;
            }
        }
        assert_eq!(groups, 2, "a third pair would pass the limit of 5");
        assert!(w.reserve(1));
        w.write(&slice(9));
        assert!(!w.reserve(1));
        // Metadata is written past the limit.
        w.write_metadata(&metadata(
            "process_name",
            (1, 1),
            MetaArgs {
                name: Some("p"),
                sort_index: None,
            },
        ));
        w.close(&NoArgs {}).unwrap();
        assert_eq!(w.written(), 5);
        assert_eq!(w.dropped(), 2 + 2 + 1);
        assert_eq!(out.json()["traceEvents"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn drop_without_close_still_leaves_valid_json() {
        let out = MemorySink::default();
        {
            let mut w = TraceWriter::new(Box::new(out.clone()), 10);
            assert!(w.reserve(1));
            w.write(&slice(1));
        }
        let v = out.json();
        assert_eq!(v["traceEvents"].as_array().unwrap().len(), 1);
        assert_eq!(v["otherData"]["incomplete"], true);
    }

    #[test]
    fn writes_after_close_are_ignored() {
        let out = MemorySink::default();
        let mut w = TraceWriter::new(Box::new(out.clone()), 10);
        w.close(&NoArgs {}).unwrap();
        assert!(!w.reserve(1));
        w.write(&slice(1));
        assert_eq!(out.json()["traceEvents"].as_array().unwrap().len(), 0);
        assert_eq!(w.dropped(), 1);
    }

    #[test]
    fn write_errors_are_reported_once_at_close() {
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = TraceWriter::new(Box::new(Failing), 1 << 20);
        // The 64 KiB buffer hides the failure until it fills.
        for i in 0..2000 {
            if w.reserve(1) {
                w.write(&slice(i));
            }
        }
        let err = w.close(&NoArgs {}).unwrap_err();
        assert!(err.contains("disk full"), "{err}");
    }
}
