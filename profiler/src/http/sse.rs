//! `text/event-stream` event splitting and `usage` token extraction (no I/O).
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
//! Usage: a byte scan (no JSON parse, works on truncated data) for `"prompt_tokens"`,
//! `"completion_tokens"`, `"input_tokens"` or `"output_tokens"` followed by optional white
//! space, `:`, optional white space and digits; the last value seen wins.

use memchr::{memchr, memchr2};

use super::record::StreamStats;

/// Which count a usage key gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Prompt,
    Completion,
}

const KEYS: [(&[u8], Count); 4] = [
    (b"prompt_tokens", Count::Prompt),
    (b"completion_tokens", Count::Completion),
    (b"input_tokens", Count::Prompt),
    (b"output_tokens", Count::Completion),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Looking for an (unescaped) `"`.
    #[default]
    Idle,
    /// Just after a `"`.
    Quote,
    /// `pos` bytes of key `k` matched.
    Key {
        k: u8,
        pos: u8,
    },
    /// Key matched; expecting its closing `"`.
    KeyEnd {
        k: u8,
    },
    /// Expecting `:`.
    Colon {
        k: u8,
    },
    /// Expecting the first digit.
    Value {
        k: u8,
    },
    Digits {
        k: u8,
        value: u64,
    },
}

/// Finds usage token counts in JSON text fed in pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageScanner {
    phase: Phase,
    /// Last byte of the previous piece (to tell an escaped `\"`).
    last: u8,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl UsageScanner {
    /// Scans the next piece of text.
    pub fn feed(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            if self.phase == Phase::Idle {
                let Some(p) = memchr(b'"', &data[i..]) else {
                    break;
                };
                let at = i + p;
                let prev = if at > 0 { data[at - 1] } else { self.last };
                i = at + 1;
                if prev == b'\\' {
                    continue;
                }
                let rest = &data[i..];
                let Some(&first) = rest.first() else {
                    self.phase = Phase::Quote;
                    break;
                };
                // Fast path: the whole key and its closing quote are in this piece.
                if let Some(k) = KEYS.iter().position(|(key, _)| key[0] == first) {
                    let key = KEYS[k].0;
                    if rest.len() > key.len() {
                        if rest.starts_with(key) && rest[key.len()] == b'"' {
                            self.phase = Phase::Colon { k: k as u8 };
                            i += key.len() + 1;
                        }
                    } else {
                        self.phase = Phase::Quote;
                    }
                }
                continue;
            }
            self.step(data[i]);
            i += 1;
        }
        if let Some(&b) = data.last() {
            self.last = b;
        }
    }

    /// Bytes were lost: whatever was being matched is abandoned.
    pub fn gap(&mut self) {
        self.phase = Phase::Idle;
        self.last = 0;
    }

    /// The text ended (end of an event): a number being read is complete.
    pub fn end(&mut self) {
        if let Phase::Digits { k, value } = self.phase {
            self.commit(k, value);
        }
        self.phase = Phase::Idle;
        self.last = 0;
    }

    fn commit(&mut self, k: u8, value: u64) {
        match KEYS[usize::from(k)].1 {
            Count::Prompt => self.prompt_tokens = Some(value),
            Count::Completion => self.completion_tokens = Some(value),
        }
    }

    fn after_mismatch(b: u8) -> Phase {
        if b == b'"' { Phase::Quote } else { Phase::Idle }
    }

    fn step(&mut self, b: u8) {
        self.phase = match self.phase {
            Phase::Idle => Self::after_mismatch(b),
            Phase::Quote => match KEYS.iter().position(|(key, _)| key[0] == b) {
                Some(k) => Phase::Key { k: k as u8, pos: 1 },
                None => Self::after_mismatch(b),
            },
            Phase::Key { k, pos } => {
                let key = KEYS[usize::from(k)].0;
                if key[usize::from(pos)] == b {
                    if usize::from(pos) + 1 == key.len() {
                        Phase::KeyEnd { k }
                    } else {
                        Phase::Key { k, pos: pos + 1 }
                    }
                } else {
                    Self::after_mismatch(b)
                }
            }
            Phase::KeyEnd { k } => {
                if b == b'"' {
                    Phase::Colon { k }
                } else {
                    Phase::Idle
                }
            }
            Phase::Colon { k } => match b {
                b':' => Phase::Value { k },
                _ if is_ws(b) => Phase::Colon { k },
                _ => Self::after_mismatch(b),
            },
            Phase::Value { k } => match b {
                b'0'..=b'9' => Phase::Digits {
                    k,
                    value: u64::from(b - b'0'),
                },
                _ if is_ws(b) => Phase::Value { k },
                _ => Self::after_mismatch(b),
            },
            Phase::Digits { k, value } => match b {
                b'0'..=b'9' => Phase::Digits {
                    k,
                    value: value.saturating_mul(10).saturating_add(u64::from(b - b'0')),
                },
                _ => {
                    self.commit(k, value);
                    Self::after_mismatch(b)
                }
            },
        };
    }
}

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
            usage: UsageScanner::default(),
        }
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
            let s = &mut self.stats;
            s.events += 1;
            if let Some(last) = s.last_event_ns
                && s.inter_event_ns.len() < self.max_gaps
            {
                s.inter_event_ns.push(ts_ns.saturating_sub(last));
            }
            s.first_event_ns.get_or_insert(ts_ns);
            s.last_event_ns = Some(ts_ns);
        }
        self.usage.end();
        self.ev_data_lines = 0;
        self.ev_first_done = false;
        self.ev_partial = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(text: &[u8]) -> (Option<u64>, Option<u64>) {
        let mut u = UsageScanner::default();
        u.feed(text);
        u.end();
        (u.prompt_tokens, u.completion_tokens)
    }

    #[test]
    fn usage_keys() {
        assert_eq!(
            usage(br#"{"usage":{"prompt_tokens":12,"completion_tokens": 345,"total_tokens":357}}"#),
            (Some(12), Some(345))
        );
        assert_eq!(
            usage(br#"{"usage": {"input_tokens" : 7 , "output_tokens":	9}}"#),
            (Some(7), Some(9))
        );
        // Similar keys and escaped quotes do not match; null is no value.
        assert_eq!(
            usage(br#"{"completion_tokens_details":{"x":1},"prompt_tokens":null}"#),
            (None, None)
        );
        assert_eq!(
            usage(br#"{"text":"say \"prompt_tokens\": 5"}"#),
            (None, None)
        );
        // Truncated text still yields what was complete, and a number cut by the end counts.
        assert_eq!(
            usage(br#"{"prompt_tokens":5,"completion_tok"#),
            (Some(5), None)
        );
        assert_eq!(usage(br#"{"prompt_tokens":51"#), (Some(51), None));
        // Huge numbers saturate.
        assert_eq!(
            usage(br#"{"prompt_tokens":99999999999999999999999999}"#),
            (Some(u64::MAX), None)
        );
    }

    #[test]
    fn usage_split_anywhere() {
        let text = br#"{"usage":{"prompt_tokens":12,"completion_tokens":345}}"#;
        for split in 0..text.len() {
            let mut u = UsageScanner::default();
            u.feed(&text[..split]);
            u.feed(&text[split..]);
            assert_eq!(
                (u.prompt_tokens, u.completion_tokens),
                (Some(12), Some(345)),
                "split {split}"
            );
        }
    }

    #[test]
    fn events_and_done() {
        let mut s = SseScanner::new(10);
        s.feed(b"data: {\"a\":1}\n\n", 100);
        s.feed(b": comment\n\n", 150);
        s.feed(b"event: x\r\ndata: a\r\ndata: b\r\n\r\n", 200);
        s.feed(b"data:[DONE]\r\r", 300);
        s.feed(b"data: [DONE]\n\n", 400);
        let st = s.into_stats();
        assert_eq!(st.events, 2);
        assert_eq!(st.first_event_ns, Some(100));
        assert_eq!(st.last_event_ns, Some(200));
        assert_eq!(st.inter_event_ns, vec![100]);
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
        assert_eq!(st.last_event_ns, Some(blank[1] as u64));
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
        assert_eq!(
            st.inter_event_ns,
            vec![1, 0, 7, 10, 10, 10, 20],
            "{:?}",
            (st.first_event_ns, st.last_event_ns)
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
        assert_eq!(st.inter_event_ns, vec![10, 10, 10]);
    }
}
