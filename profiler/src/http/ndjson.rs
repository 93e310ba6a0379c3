//! Newline-delimited JSON streams (`application/x-ndjson`: Ollama's `/api/generate` and
//! `/api/chat`) split into events (no I/O).
//!
//! Fed the de-chunked body piece by piece, like `sse`. Each non-blank line is one event, timed
//! by the write that carried its newline, classified by `llm_event` and scanned for usage
//! (Ollama's final `done` object: `prompt_eval_count`, `eval_count`). Servers write a line per
//! write, so after bytes the capture did not keep, a piece that starts with `{` is taken to
//! begin the next line: the unseen bytes ended the line in progress, at their write's time.

use super::llm_event::inspect;
use super::record::StreamStats;
use super::sse::EVENT_DATA_KEPT;
use super::usage::UsageScanner;

#[derive(Debug, Clone)]
pub struct NdjsonScanner {
    stats: StreamStats,
    max_gaps: usize,
    /// The current line's first `EVENT_DATA_KEPT` bytes.
    line: Vec<u8>,
    /// The current line has a byte other than white space.
    line_has_text: bool,
    /// Unseen bytes ended the last piece, carried by a write at this time.
    resync_ts: Option<u64>,
    usage: UsageScanner,
}

impl NdjsonScanner {
    pub fn new(max_gaps: usize) -> Self {
        Self {
            stats: StreamStats::default(),
            max_gaps,
            line: Vec::new(),
            line_has_text: false,
            resync_ts: None,
            usage: UsageScanner::default(),
        }
    }

    /// The stream's final object was seen.
    pub fn ended(&self) -> bool {
        self.stats.ended
    }

    pub fn into_stats(self) -> StreamStats {
        let mut s = self.stats;
        s.prompt_tokens = self.usage.prompt_tokens;
        s.completion_tokens = self.usage.completion_tokens;
        s
    }

    /// Scans captured body bytes written by a syscall that returned at `ts_ns`.
    pub fn feed(&mut self, data: &[u8], ts_ns: u64) {
        if let Some(gap_ts) = self.resync_ts.take()
            && data.first() == Some(&b'{')
        {
            self.end_line(gap_ts);
        }
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, newline) = match memchr::memchr(b'\n', rest) {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            self.usage.feed(piece);
            let room = EVENT_DATA_KEPT.saturating_sub(self.line.len());
            self.line.extend_from_slice(&piece[..piece.len().min(room)]);
            self.line_has_text |= piece.iter().any(|b| !b.is_ascii_whitespace());
            if !newline {
                break;
            }
            self.end_line(ts_ns);
            rest = &rest[piece.len() + 1..];
        }
    }

    /// `n` body bytes, written by a syscall that returned at `ts_ns`, were not captured.
    pub fn skip(&mut self, n: u64, ts_ns: u64) {
        if n == 0 {
            return;
        }
        self.usage.gap();
        // The line goes on in the unseen bytes: it has text, whatever was seen of it.
        self.line_has_text = true;
        self.resync_ts = Some(ts_ns);
    }

    fn end_line(&mut self, ts_ns: u64) {
        if self.line_has_text {
            let info = inspect(&self.line);
            self.stats
                .on_event(ts_ns, info.class.carries_tokens(), self.max_gaps);
            self.stats.ended |= info.is_final;
        }
        self.usage.end();
        self.line.clear();
        self.line_has_text = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLLAMA_CHAT: [&str; 4] = [
        r#"{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"The"},"done":false}"#,
        r#"{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":" sky"},"done":false}"#,
        r#"{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":" is"},"done":false}"#,
        r#"{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":5,"prompt_eval_count":26,"prompt_eval_duration":1,"eval_count":3,"eval_duration":2}"#,
    ];

    #[test]
    fn ollama_chat_lines_one_per_write() {
        let mut s = NdjsonScanner::new(10);
        for (i, line) in OLLAMA_CHAT.iter().enumerate() {
            s.feed(format!("{line}\n").as_bytes(), 100 * (i as u64 + 1));
        }
        let st = s.into_stats();
        assert_eq!(st.events, 4);
        assert_eq!(st.content_events, 3);
        assert_eq!(st.first_event_ns, Some(100));
        assert_eq!(
            (st.first_content_ns, st.last_content_ns),
            (Some(100), Some(300))
        );
        assert_eq!(st.inter_token_ns, vec![100, 100]);
        assert_eq!(
            (st.prompt_tokens, st.completion_tokens),
            (Some(26), Some(3))
        );
        assert!(st.ended);
    }

    #[test]
    fn split_anywhere_and_blank_lines() {
        let wire: String = OLLAMA_CHAT.iter().map(|l| format!("{l}\n\n")).collect();
        for split in (0..wire.len()).step_by(7) {
            let mut s = NdjsonScanner::new(10);
            s.feed(&wire.as_bytes()[..split], 1);
            s.feed(&wire.as_bytes()[split..], 2);
            let st = s.into_stats();
            assert_eq!((st.events, st.content_events), (4, 3), "split {split}");
            assert_eq!(st.completion_tokens, Some(3), "split {split}");
        }
    }

    #[test]
    fn generate_lines_cut_by_the_capture() {
        let mut s = NdjsonScanner::new(10);
        s.feed(
            b"{\"model\":\"m\",\"response\":\"The\",\"done\":false}\n",
            10,
        );
        // The final object's long `context` goes past the capture; its end is unseen.
        s.feed(
            b"{\"model\":\"m\",\"response\":\"\",\"done\":true,\"context\":[1,2,3",
            20,
        );
        s.skip(4000, 20);
        let st = s.into_stats();
        // The cut line never saw its newline: it is not counted as an event.
        assert_eq!((st.events, st.content_events), (1, 1));

        let mut s = NdjsonScanner::new(10);
        s.feed(b"{\"response\":\"a\"}\n{\"response\":\"b", 10);
        s.skip(100, 10);
        s.feed(b"{\"response\":\"c\"}\n", 30);
        let st = s.into_stats();
        assert_eq!((st.events, st.content_events), (3, 3));
        assert_eq!(st.inter_token_ns, vec![0, 20]);
    }
}
