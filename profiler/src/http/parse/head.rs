//! HTTP/1.x heads: collected across segments, their end found, their fields summarized (no I/O).
//!
//! The summary: Content-Length, Transfer-Encoding, Content-Type.
//!
//! Heads are scanned line by line, leniently: heads cut short by the capture (only their
//! complete lines count), header lines without a colon (skipped), white space around a field
//! name (trimmed), control bytes in values, obsolete line folding, `HTTP/1.x` versions other
//! than 1.0 and 1.1, any number of fields. For every head `httparse` accepts the scan gives the
//! summary `httparse`'s fields give (`head_tests`: `httparse` is the oracle there, on fixed and
//! random heads). `httparse` is not the production path: it validated every head in full for
//! the analyzer to keep three fields, a quarter of the agent's instructions per request on the
//! HTTP benchmark (docs/benchmarks.md, "Agent cost per request").

use memchr::{memchr, memchr_iter};

use super::line::{LineClass, Method, classify_request_line, parse_status_line};

/// Media type of a body, as far as the analyzer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentKind {
    #[default]
    Other,
    /// `text/event-stream`.
    EventStream,
    /// `application/json` or any other `…json` media type.
    Json,
    /// Newline-delimited JSON: `application/x-ndjson`, `application/ndjson`,
    /// `application/jsonl`, `application/x-jsonlines`.
    Ndjson,
}

/// What the analyzer needs from a head's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadInfo {
    pub content_length: Option<u64>,
    /// A Content-Length that did not parse (or conflicting values).
    pub content_length_invalid: bool,
    /// Transfer-Encoding present.
    pub te_present: bool,
    /// The last transfer coding is `chunked`.
    pub chunked: bool,
    pub content: ContentKind,
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Parses a decimal Content-Length (saturating at `u64::MAX`); `None` when not all digits.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn content_kind(v: &[u8]) -> ContentKind {
    let media = trim(v.split(|&b| b == b';').next().unwrap_or(v));
    const NDJSON: [&[u8]; 4] = [
        b"application/x-ndjson",
        b"application/ndjson",
        b"application/jsonl",
        b"application/x-jsonlines",
    ];
    if media.eq_ignore_ascii_case(b"text/event-stream") {
        ContentKind::EventStream
    } else if NDJSON.iter().any(|m| media.eq_ignore_ascii_case(m)) {
        ContentKind::Ndjson
    } else if media.len() >= 4 && media[media.len() - 4..].eq_ignore_ascii_case(b"json") {
        ContentKind::Json
    } else {
        ContentKind::Other
    }
}

impl HeadInfo {
    /// Takes one header field into account (`name` and `value` without surrounding white space).
    fn add(&mut self, name: &[u8], value: &[u8]) {
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // "5, 5" (repeated by some intermediaries) is accepted when all values agree.
                for part in value.split(|&b| b == b',') {
                    match parse_length(trim(part)) {
                        Some(n) if self.content_length.is_none_or(|old| old == n) => {
                            self.content_length = Some(n);
                        }
                        _ => self.content_length_invalid = true,
                    }
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.te_present = true;
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
                self.chunked = trim(last).eq_ignore_ascii_case(b"chunked");
            }
            12 if name.eq_ignore_ascii_case(b"content-type") => {
                self.content = content_kind(value);
            }
            _ => {}
        }
    }

    /// The summary of fields `httparse` parsed (names are tokens, values are trimmed): the
    /// oracle the scan is tested against.
    #[cfg(test)]
    pub(super) fn from_fields(fields: &[httparse::Header<'_>]) -> Self {
        let mut info = HeadInfo::default();
        for f in fields {
            info.add(f.name.as_bytes(), f.value);
        }
        info
    }

    /// The lenient scan: every complete (LF-terminated) line of `lines` that has a colon is a
    /// field, its name and value trimmed; other lines are skipped.
    fn scan_lines(lines: &[u8]) -> Self {
        let mut info = HeadInfo::default();
        let mut start = 0;
        for nl in memchr_iter(b'\n', lines) {
            let line = &lines[start..nl];
            start = nl + 1;
            // Only Content-*, Transfer-Encoding matter: other lines are passed over before their
            // colon is looked for (most of a head, at a fraction of the cost).
            let name_start = line.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r'));
            if !name_start.is_some_and(|i| matches!(line[i], b'c' | b'C' | b't' | b'T')) {
                continue;
            }
            // Field names are short: a plain loop beats a vector search there.
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                info.add(trim(&line[..colon]), trim(&line[colon + 1..]));
            }
        }
        info
    }
}

/// Summarizes the header fields of `head` after its first line (which ends at `first_line_end`),
/// leniently. Only complete (LF-terminated) lines are looked at, so a head cut short by the
/// capture yields what its seen part says.
pub fn parse_headers(head: &[u8], first_line_end: usize) -> HeadInfo {
    HeadInfo::scan_lines(head.get(first_line_end..).unwrap_or(&[]))
}

/// Parses a complete request head (up to and including its blank line): the method and the
/// header summary; `None` when it does not start with a request line.
pub fn parse_request_head(head: &[u8]) -> Option<(Method, HeadInfo)> {
    let LineClass::Request { method, line_end } = classify_request_line(head) else {
        return None;
    };
    Some((method, parse_headers(head, line_end)))
}

/// Parses a response head (complete, or cut short: only its complete lines are used): the
/// status and the header summary; `None` when it does not start with a full status line.
pub fn parse_response_head(head: &[u8]) -> Option<(u16, HeadInfo)> {
    let status = parse_status_line(head)?;
    let line_end = memchr(b'\n', head)? + 1;
    Some((status, parse_headers(head, line_end)))
}

/// Index just after the blank line ending a head (`\n\n` or `\n\r\n`), searching from `from`
/// (the terminator may begin before `from`; callers pass a few bytes of overlap).
// Not httparse: heads it rejects must end (and be skipped) at their blank line all the same.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.min(buf.len());
    memchr_iter(b'\n', &buf[from..]).find_map(|p| {
        let nl = from + p;
        match buf.get(nl + 1) {
            Some(b'\n') => Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => Some(nl + 3),
            _ => None,
        }
    })
}

/// A head being collected across segments (only copied when it does not fit in one segment's
/// captured bytes).
#[derive(Debug, Default)]
pub struct HeadAcc {
    buf: Vec<u8>,
}

/// Result of `HeadAcc::push`.
#[derive(Debug)]
pub enum HeadPush<'a> {
    /// The head is complete: `head` is all of it, `consumed` the bytes taken from `seen`.
    Complete { head: &'a [u8], consumed: usize },
    /// All of `seen` was taken; `so_far` is the head collected until now.
    Partial { so_far: &'a [u8] },
    /// The head would exceed `max` bytes; `consumed` bytes of `seen` were taken; `so_far` is
    /// the head's beginning.
    Overflow { consumed: usize, so_far: &'a [u8] },
}

impl HeadAcc {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Releases the buffer's memory (after a connection ends).
    pub fn release(&mut self) {
        self.buf = Vec::new();
    }

    /// Adds the captured bytes `seen` of a segment to the head.
    pub fn push<'a>(&'a mut self, seen: &'a [u8], max: usize) -> HeadPush<'a> {
        if self.buf.is_empty() {
            // A head wholly inside one segment is parsed in place, whatever its size.
            if let Some(end) = find_head_end(seen, 0) {
                return HeadPush::Complete {
                    head: &seen[..end],
                    consumed: end,
                };
            }
            if seen.len() > max {
                return HeadPush::Overflow {
                    consumed: seen.len(),
                    so_far: seen,
                };
            }
            self.buf.extend_from_slice(seen);
            return HeadPush::Partial { so_far: &self.buf };
        }
        let old = self.buf.len();
        let room = max.saturating_sub(old);
        let take = seen.len().min(room);
        self.buf.extend_from_slice(&seen[..take]);
        if let Some(end) = find_head_end(&self.buf, old.saturating_sub(3)) {
            let consumed = end - old;
            return HeadPush::Complete {
                head: &self.buf[..end],
                consumed,
            };
        }
        if take < seen.len() {
            return HeadPush::Overflow {
                consumed: seen.len(),
                so_far: &self.buf,
            };
        }
        HeadPush::Partial { so_far: &self.buf }
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
