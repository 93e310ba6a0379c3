//! `text/event-stream` event splitting (no I/O).
//!
//! Fed the de-chunked body of a response piece by piece (captured bytes, and counts of bytes the
//! capture did not keep).
//!
//! Events end at a blank line (`\n\n`, `\r\n\r\n`, `\r\r`, or mixed line endings). An event with
//! at least one `data` field is a data event unless its data is exactly `[DONE]`; its time is
//! the timestamp of the write that carried its blank line.
//!
//! Unseen bytes (beyond the capture) make the scanner resynchronize. Servers write an event per
//! write, so when the next captured bytes begin with a field (`data:`, `event:`, `id:`,
//! `retry:`, or a `:` comment; after line endings and, in raw chunked bytes, a chunk-size line)
//! the unseen bytes are taken to have ended the event in progress, at the time of the write that
//! carried them. Otherwise the line in progress is treated as unknown: the next line ending ends
//! it and the next blank line ends the event. An event that straddled unseen bytes counts as a
//! data event (in LLM streams nearly every event carries data; its `[DONE]` cannot be told).
//! Events that lie wholly inside unseen bytes cannot be counted.
//!
//!
//! Each data event's data (its first `EVENT_DATA_KEPT` bytes) is classified by `llm_event`:
//! token-carrying or control. Usage counts come from `usage` over all of it.

use memchr::memchr2;

use super::llm_event::inspect;
use super::record::StreamStats;
use super::usage::UsageScanner;

/// Bytes of an event's data kept for `llm_event::classify` (the fields that tell come first in
/// every format we know; an event's text beyond this is still scanned for usage).
pub const EVENT_DATA_KEPT: usize = 1024;

/// Where the scanner is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line.
    Start,
    /// `n` bytes of `data` matched.
    Field(u8),
    /// `data` matched; `:` or the line end follow for a data field.
    FieldEnd,
    /// After `data:`: an optional space, then the value.
    ValueStart,
    Value,
    /// Any other line (comment, other field, or unknown after unseen bytes).
    Other,
}

const DONE: &[u8] = b"[DONE]";

/// Where a field line begins at the start of `data` (after line endings and a chunk-size line),
/// if it does.
fn field_start(data: &[u8]) -> Option<usize> {
    fn is_field(d: &[u8]) -> bool {
        [&b"data:"[..], b"event:", b"id:", b"retry:", b":"]
            .iter()
            .any(|f| d.starts_with(f))
    }
    let mut i = data
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if is_field(&data[i..]) {
        return Some(i);
    }
    // A chunk-size line (raw bytes of a response whose chunk framing was lost).
    let hex = data[i..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if hex == 0 {
        return None;
    }
    i += hex;
    if data[i..].starts_with(b"\r\n") {
        i += 2;
    } else if data[i..].starts_with(b"\n") {
        i += 1;
    } else {
        return None;
    }
    is_field(&data[i..]).then_some(i)
}

/// Splits an event stream into events and collects `StreamStats`.
#[derive(Debug, Clone)]
pub struct SseScanner {
    stats: StreamStats,
    max_gaps: usize,
    line: Line,
    /// The previous byte was a CR (a following LF belongs to the same line ending).
    last_cr: bool,
    /// Data lines in the current event.
    ev_data_lines: u32,
    /// The current event's first data line is exactly `[DONE]`.
    ev_first_done: bool,
    /// The current event straddled unseen bytes.
    ev_partial: bool,
    /// Unseen bytes ended the last piece, carried by a write at this time.
    resync_ts: Option<u64>,
    /// Bytes of the current data line's value.
    val_len: u64,
    /// The current data line's value is a prefix of `[DONE]` so far.
    val_done: bool,
    /// The current event's data (lines joined by `\n`), its first `EVENT_DATA_KEPT` bytes.
    ev_data: Vec<u8>,
    usage: UsageScanner,
}

impl SseScanner {
    pub fn new(max_gaps: usize) -> Self {
        Self {
            stats: StreamStats::default(),
            max_gaps,
            line: Line::Start,
            last_cr: false,
            ev_data_lines: 0,
            ev_first_done: false,
            ev_partial: false,
            resync_ts: None,
            val_len: 0,
            val_done: true,
            ev_data: Vec::new(),
            usage: UsageScanner::default(),
        }
    }

    /// The stream's end was seen.
    pub fn ended(&self) -> bool {
        self.stats.ended
    }

    /// Figures so far.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats.clone();
        s.prompt_tokens = self.usage.prompt_tokens;
        s.completion_tokens = self.usage.completion_tokens;
        s
    }

    /// The final figures.
    pub fn into_stats(self) -> StreamStats {
        let mut s = self.stats;
        s.prompt_tokens = self.usage.prompt_tokens;
        s.completion_tokens = self.usage.completion_tokens;
        s
    }

    /// Scans captured body bytes written by a syscall that returned at `ts_ns`.
    pub fn feed(&mut self, data: &[u8], ts_ns: u64) {
        let mut i = 0;
        if !data.is_empty()
            && let Some(gap_ts) = self.resync_ts.take()
            && let Some(at) = field_start(data)
        {
            // The unseen bytes ended the event in progress.
            self.dispatch(gap_ts);
            self.line = Line::Start;
            self.last_cr = false;
            i = at;
        }
        while i < data.len() {
            if matches!(self.line, Line::Value | Line::Other) {
                let rest = &data[i..];
                let end = memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
                if end > 0 {
                    if self.line == Line::Value {
                        self.value_bytes(&rest[..end]);
                    }
                    self.last_cr = false;
                    i += end;
                    continue;
                }
            }
            let b = data[i];
            i += 1;
            if b == b'\n' || b == b'\r' {
                self.line_end(b, ts_ns);
                continue;
            }
            self.last_cr = false;
            self.line = match self.line {
                Line::Start if b == b'd' => Line::Field(1),
                Line::Field(n) if b == b"data"[usize::from(n)] => {
                    if n == 3 {
                        Line::FieldEnd
                    } else {
                        Line::Field(n + 1)
                    }
                }
                Line::FieldEnd if b == b':' => {
                    self.val_len = 0;
                    self.val_done = true;
                    Line::ValueStart
                }
                Line::ValueStart => {
                    if b != b' ' {
                        self.value_bytes(&[b]);
                    }
                    Line::Value
                }
                Line::Value => {
                    self.value_bytes(&[b]);
                    Line::Value
                }
                _ => Line::Other,
            };
        }
    }

    /// `n` body bytes, written by a syscall that returned at `ts_ns`, were not captured.
    pub fn skip(&mut self, n: u64, ts_ns: u64) {
        if n == 0 {
            return;
        }
        self.ev_partial = true;
        self.resync_ts = Some(ts_ns);
        self.line = Line::Other;
        self.last_cr = false;
        self.usage.gap();
    }

    fn value_bytes(&mut self, v: &[u8]) {
        if self.val_done {
            let at = self.val_len as usize;
            self.val_done = at + v.len() <= DONE.len() && DONE[at..at + v.len()] == *v;
        }
        self.val_len = self.val_len.saturating_add(v.len() as u64);
        self.usage.feed(v);
        self.keep(v);
    }

    fn keep(&mut self, v: &[u8]) {
        let room = EVENT_DATA_KEPT.saturating_sub(self.ev_data.len());
        self.ev_data.extend_from_slice(&v[..v.len().min(room)]);
    }

    fn line_end(&mut self, b: u8, ts_ns: u64) {
        if b == b'\n' && self.last_cr {
            self.last_cr = false;
            return;
        }
        self.last_cr = b == b'\r';
        match self.line {
            Line::Start => self.dispatch(ts_ns),
            Line::FieldEnd | Line::ValueStart | Line::Value => {
                if self.line == Line::FieldEnd {
                    self.val_len = 0;
                    self.val_done = true;
                }
                if self.ev_data_lines == 0 {
                    self.ev_first_done = self.val_done && self.val_len == DONE.len() as u64;
                }
                self.ev_data_lines = self.ev_data_lines.saturating_add(1);
                // Data lines join with a newline.
                self.usage.feed(b"\n");
                self.keep(b"\n");
            }
            Line::Field(_) | Line::Other => {}
        }
        self.line = Line::Start;
    }

    fn dispatch(&mut self, ts_ns: u64) {
        let is_data = match self.ev_data_lines {
            0 => self.ev_partial,
            1 => !self.ev_first_done,
            _ => true,
        };
        if is_data {
            let info = inspect(&self.ev_data);
            self.stats
                .on_event(ts_ns, info.class.carries_tokens(), self.max_gaps);
            self.stats.ended |= info.is_final;
        } else if self.ev_data_lines == 1 && self.ev_first_done {
            self.stats.ended = true;
        }
        self.ev_data.clear();
        self.usage.end();
        self.ev_data_lines = 0;
        self.ev_first_done = false;
        self.ev_partial = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_done() {
        let mut s = SseScanner::new(10);
        s.feed(b"data: {\"a\":1}\n\n", 100);
        s.feed(b": comment\n\n", 150);
        s.feed(b"event: x\r\ndata: a\r\ndata: b\r\n\r\n", 200);
        s.feed(b"data:[DONE]\r\r", 300);
        s.feed(b"data: [DONE]\n\n", 400);
        assert!(s.ended());
        let st = s.into_stats();
        assert_eq!(st.events, 2);
        assert_eq!(st.first_event_ns, Some(100));
        assert_eq!(st.last_content_ns, Some(200));
        assert_eq!(st.inter_token_ns, vec![100]);
    }

    #[test]
    fn events_split_byte_by_byte() {
        let wire =
            b"data: {\"usage\":{\"prompt_tokens\":3}}\r\n\r\ndata: x\r\n\r\ndata: [DONE]\r\n\r\n";
        let mut s = SseScanner::new(10);
        for (i, b) in wire.iter().enumerate() {
            s.feed(std::slice::from_ref(b), i as u64);
        }
        let st = s.into_stats();
        assert_eq!(st.events, 2);
        assert_eq!(st.prompt_tokens, Some(3));
        // An event completes at the CR that begins its blank line (a line ending by itself).
        let blank: Vec<usize> = (0..wire.len() - 3)
            .filter(|&i| &wire[i..i + 4] == b"\r\n\r\n")
            .map(|i| i + 2)
            .collect();
        assert_eq!(st.first_event_ns, Some(blank[0] as u64));
        assert_eq!(st.last_content_ns, Some(blank[1] as u64));
    }

    #[test]
    fn resync_after_unseen() {
        let mut s = SseScanner::new(10);
        // An event whose middle was not captured still counts once its blank line is seen.
        s.feed(b"data: {\"text\":\"aaaa", 1);
        s.skip(1000, 1);
        s.feed(b"aaa\"}\n\n", 2);
        // An event that began in unseen bytes counts too.
        s.skip(10, 2);
        s.feed(b"zz\"}\n\ndata: y\n\n", 3);
        // An event whose end was not captured ends where the next write starts a field.
        s.feed(b"data: {\"text\":\"bbbb", 10);
        s.skip(1000, 10);
        s.feed(b"data: {\"usage\":{\"completion_tokens\":4}}\n\n", 20);
        // Also in raw chunked bytes.
        s.feed(b"data: {\"text\":\"cccc", 30);
        s.skip(1000, 30);
        s.feed(b"\r\n3e8\r\ndata: x\n\n", 40);
        // Not a field start: the unseen bytes ended mid-line.
        s.feed(b"data: {\"text\":\"dddd", 50);
        s.skip(1000, 50);
        s.feed(b"dd\"}\n\n", 60);
        let st = s.into_stats();
        assert_eq!(st.events, 8);
        assert_eq!(st.content_events, 7);
        assert_eq!(
            st.inter_token_ns,
            // The usage-only event at 20 carries no token.
            vec![1, 0, 7, 20, 10, 20],
            "{:?}",
            (st.first_event_ns, st.last_content_ns)
        );
        assert_eq!(st.completion_tokens, Some(4));
    }

    #[test]
    fn gaps_are_bounded() {
        let mut s = SseScanner::new(3);
        for i in 0..10 {
            s.feed(b"data: x\n\n", i * 10);
        }
        let st = s.into_stats();
        assert_eq!(st.events, 10);
        assert_eq!(st.inter_token_ns, vec![10, 10, 10]);
    }
}
