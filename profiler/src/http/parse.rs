//! Incremental HTTP/1.1 framing: request/status line recognition, head accumulation across
//! segments, header summary, and body framing (Content-Length, chunked with extensions and
//! trailers, close-delimited), with bytes beyond the capture ("unseen") consuming lengths.
//!
//! Everything here is lenient (LF alone ends a line, unknown headers are ignored) and never
//! panics: numbers saturate, lines and heads are bounded by the caller's limit.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each zero byte of `v` (and possibly in bytes above a zero byte, so only the
/// lowest set bit is exact).
#[inline]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

#[inline]
fn word(s: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Index of the first `a` in `hay` (eight bytes at a time).
#[inline]
pub fn find_byte(hay: &[u8], a: u8) -> Option<usize> {
    let pa = LO * u64::from(a);
    let mut i = 0;
    while i + 8 <= hay.len() {
        let m = zero_bytes(word(hay, i) ^ pa);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == a).map(|p| i + p)
}

/// Index of the first `a` or `b` in `hay` (eight bytes at a time).
#[inline]
pub fn find_byte2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let (pa, pb) = (LO * u64::from(a), LO * u64::from(b));
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = word(hay, i);
        let m = zero_bytes(w ^ pa) | zero_bytes(w ^ pb);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..]
        .iter()
        .position(|&c| c == a || c == b)
        .map(|p| i + p)
}

/// Longest method token accepted on a request line (longer ones are not HTTP).
const MAX_METHOD_TOKEN: usize = 64;
/// Methods longer than this are reported as `OTHER`.
pub const MAX_METHOD_LEN: usize = 16;

/// A request method, stored inline (no allocation per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Method {
    buf: [u8; MAX_METHOD_LEN],
    /// 0: unknown / longer than `MAX_METHOD_LEN` (reported as `OTHER`).
    len: u8,
}

impl Method {
    pub fn new(token: &[u8]) -> Self {
        let mut m = Method::default();
        if !token.is_empty() && token.len() <= MAX_METHOD_LEN {
            m.buf[..token.len()].copy_from_slice(token);
            m.len = token.len() as u8;
        }
        m
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn is(&self, name: &[u8]) -> bool {
        self.as_bytes() == name
    }

    /// The method as reported: the token, or `OTHER` when it was too long.
    pub fn to_report_string(&self) -> String {
        if self.len == 0 {
            "OTHER".to_string()
        } else {
            String::from_utf8_lossy(self.as_bytes()).into_owned()
        }
    }
}

/// Result of looking at the start of a would-be request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineClass {
    /// A full `METHOD target HTTP/1.x` line; `line_end` is the index after its LF.
    Request { method: Method, line_end: usize },
    /// Consistent so far; `method_done` once `METHOD ` (token and space) was seen.
    NeedMore { method: Option<Method> },
    /// Not an HTTP/1.x request line.
    Invalid,
}

fn is_method_byte(b: u8, first: bool) -> bool {
    b.is_ascii_uppercase() || (!first && (b == b'-' || b == b'_'))
}

/// Classifies `p` as the beginning of an HTTP/1.x request line.
pub fn classify_request_line(p: &[u8]) -> LineClass {
    let mut i = 0;
    while i < p.len() && is_method_byte(p[i], i == 0) {
        i += 1;
        if i > MAX_METHOD_TOKEN {
            return LineClass::Invalid;
        }
    }
    if i == p.len() {
        return LineClass::NeedMore { method: None };
    }
    if i == 0 || p[i] != b' ' {
        return LineClass::Invalid;
    }
    let method = Method::new(&p[..i]);
    let mut j = i + 1;
    let target_start = j;
    while j < p.len() && p[j] > b' ' && p[j] != 0x7f {
        j += 1;
    }
    if j == p.len() {
        return LineClass::NeedMore {
            method: Some(method),
        };
    }
    if j == target_start || p[j] != b' ' {
        return LineClass::Invalid;
    }
    j += 1;
    const VERSION: &[u8] = b"HTTP/1.";
    for (k, &want) in VERSION.iter().enumerate() {
        match p.get(j + k) {
            None => {
                return LineClass::NeedMore {
                    method: Some(method),
                };
            }
            Some(&b) if b != want => return LineClass::Invalid,
            Some(_) => {}
        }
    }
    j += VERSION.len();
    match p.get(j) {
        None => {
            return LineClass::NeedMore {
                method: Some(method),
            };
        }
        Some(b) if !b.is_ascii_digit() => return LineClass::Invalid,
        Some(_) => {}
    }
    j += 1;
    match p.get(j) {
        None => LineClass::NeedMore {
            method: Some(method),
        },
        Some(b'\n') => LineClass::Request {
            method,
            line_end: j + 1,
        },
        Some(b'\r') => match p.get(j + 1) {
            None => LineClass::NeedMore {
                method: Some(method),
            },
            Some(b'\n') => LineClass::Request {
                method,
                line_end: j + 2,
            },
            Some(_) => LineClass::Invalid,
        },
        Some(_) => LineClass::Invalid,
    }
}

/// Parses a status line `HTTP/1.x NNN[ reason]` at the start of `p` (up to its LF, which must be
/// present); returns the status code.
pub fn parse_status_line(p: &[u8]) -> Option<u16> {
    let line = &p[..find_byte(p, b'\n')?];
    if line.len() < 12 || !line.starts_with(b"HTTP/1.") || !line[7].is_ascii_digit() {
        return None;
    }
    if line[8] != b' ' {
        return None;
    }
    let d = &line[9..12];
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if let Some(&b) = line.get(12)
        && b != b' '
        && b != b'\r'
    {
        return None;
    }
    Some(
        d.iter()
            .fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0')),
    )
}

/// Parses a response head (complete, or cut short: only its complete lines are used): the
/// status and the header summary; `None` when it does not start with a full status line.
pub fn parse_response_head(head: &[u8]) -> Option<(u16, HeadInfo)> {
    let status = parse_status_line(head)?;
    let line_end = find_byte(head, b'\n')? + 1;
    Some((status, parse_headers(head, line_end)))
}

/// Index just after the blank line ending a head (`\n\n` or `\n\r\n`), searching from `from`
/// (the terminator may begin before `from`; callers pass a few bytes of overlap).
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let nl = i + find_byte(&buf[i..], b'\n')?;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Media type of a body, as far as the analyzer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentKind {
    #[default]
    Other,
    /// `text/event-stream`.
    EventStream,
    /// `application/json` or any `…json` media type.
    Json,
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
    if media.eq_ignore_ascii_case(b"text/event-stream") {
        ContentKind::EventStream
    } else if media.len() >= 4 && media[media.len() - 4..].eq_ignore_ascii_case(b"json") {
        ContentKind::Json
    } else {
        ContentKind::Other
    }
}

/// Summarizes the header fields of `head` after its first line (which ends at `first_line_end`).
/// Only complete (LF-terminated) lines are looked at, so a head cut short by the capture yields
/// what its seen part says.
pub fn parse_headers(head: &[u8], first_line_end: usize) -> HeadInfo {
    let mut info = HeadInfo::default();
    let mut rest = head.get(first_line_end..).unwrap_or(&[]);
    while let Some(nl) = find_byte(rest, b'\n') {
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        let value = trim(&line[colon + 1..]);
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // "5, 5" (repeated by some intermediaries) is accepted when all values agree.
                for part in value.split(|&b| b == b',') {
                    match parse_length(trim(part)) {
                        Some(n) if info.content_length.is_none_or(|old| old == n) => {
                            info.content_length = Some(n);
                        }
                        _ => info.content_length_invalid = true,
                    }
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                info.te_present = true;
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
                info.chunked = trim(last).eq_ignore_ascii_case(b"chunked");
            }
            12 if name.eq_ignore_ascii_case(b"content-type") => {
                info.content = content_kind(value);
            }
            _ => {}
        }
    }
    info
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: the message ends with its head.
    Empty,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
    /// Cannot be framed (bad Content-Length, unknown transfer coding on a request).
    Unknown,
}

/// Body framing of a request (RFC 9112 §6.3).
pub fn request_framing(h: &HeadInfo) -> Framing {
    if h.te_present {
        if h.chunked {
            Framing::Chunked
        } else {
            Framing::Unknown
        }
    } else if h.content_length_invalid {
        Framing::Unknown
    } else {
        match h.content_length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    }
}

/// What a response head means for the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// 1xx other than 101: another head follows.
    Interim,
    /// 101, or 2xx to CONNECT: the connection leaves HTTP after this head.
    Switch,
    Final(Framing),
}

/// Body framing of a response to a request with the given method (RFC 9112 §6.3).
pub fn response_kind(status: u16, h: &HeadInfo, method: &Method) -> ResponseKind {
    if status == 101 || (method.is(b"CONNECT") && (200..300).contains(&status)) {
        return ResponseKind::Switch;
    }
    if (100..200).contains(&status) {
        return ResponseKind::Interim;
    }
    if method.is(b"HEAD") || status == 204 || status == 304 {
        return ResponseKind::Final(Framing::Empty);
    }
    let framing = if h.te_present {
        if h.chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if h.content_length_invalid {
        Framing::Unknown
    } else {
        match h.content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    ResponseKind::Final(framing)
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

/// State of a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: `size` so far, `digits` read, `ext` past the hex digits.
    Size {
        size: u64,
        digits: u32,
        ext: bool,
        line: usize,
    },
    Data(u64),
    /// After chunk data: expecting CRLF (`cr` once the CR was seen).
    DataEnd {
        cr: bool,
    },
    /// In the trailer section: `line` bytes into the current line, `total` bytes in all.
    Trailer {
        line: usize,
        total: usize,
    },
}

const CHUNK_SIZE_START: Chunk = Chunk::Size {
    size: 0,
    digits: 0,
    ext: false,
    line: 0,
};

/// A body being consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Length(u64),
    Chunked(ChunkState),
    Close,
}

/// Opaque chunked-decoder state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkState(Chunk);

impl Body {
    pub fn chunked() -> Self {
        Body::Chunked(ChunkState(CHUNK_SIZE_START))
    }
}

/// Why a body's framing was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Chunk framing bytes were not captured.
    Unseen,
    /// Chunk framing bytes did not parse.
    Invalid,
    /// A chunk-size or trailer line exceeded the limit.
    Overflow,
}

/// Result of one `Body::feed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of `seen` taken.
    pub seen: usize,
    /// Bytes of the unseen part taken (only once `seen` is all taken).
    pub unseen: u64,
    /// The body ended.
    pub done: bool,
    /// Framing was lost at this point (nothing after `seen`/`unseen` was taken).
    pub lost: Option<Lost>,
}

/// Body content handed to a sink: captured bytes, or a count of bytes not captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Seen(&'a [u8]),
    Unseen(u64),
}

impl Body {
    /// Consumes body bytes from a segment (`seen` captured bytes then `unseen` more), handing
    /// de-chunked content to `sink`. `max_line` bounds chunk-size and trailer lines.
    pub fn feed(
        &mut self,
        seen: &[u8],
        unseen: u64,
        max_line: usize,
        sink: &mut impl FnMut(Piece<'_>),
    ) -> Fed {
        match self {
            Body::Close => {
                if !seen.is_empty() {
                    sink(Piece::Seen(seen));
                }
                if unseen > 0 {
                    sink(Piece::Unseen(unseen));
                }
                Fed {
                    seen: seen.len(),
                    unseen,
                    done: false,
                    lost: None,
                }
            }
            Body::Length(rem) => {
                let take = (*rem).min(seen.len() as u64) as usize;
                if take > 0 {
                    sink(Piece::Seen(&seen[..take]));
                }
                *rem -= take as u64;
                let mut u = 0;
                if take == seen.len() && *rem > 0 && unseen > 0 {
                    u = (*rem).min(unseen);
                    sink(Piece::Unseen(u));
                    *rem -= u;
                }
                Fed {
                    seen: take,
                    unseen: u,
                    done: *rem == 0,
                    lost: None,
                }
            }
            Body::Chunked(ChunkState(c)) => feed_chunked(c, seen, unseen, max_line, sink),
        }
    }
}

fn hex_val(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

fn feed_chunked(
    c: &mut Chunk,
    seen: &[u8],
    unseen: u64,
    max_line: usize,
    sink: &mut impl FnMut(Piece<'_>),
) -> Fed {
    let mut i = 0;
    let lost = |i, why| Fed {
        seen: i,
        unseen: 0,
        done: false,
        lost: Some(why),
    };
    loop {
        if i == seen.len() {
            if unseen == 0 {
                return Fed {
                    seen: i,
                    unseen: 0,
                    done: false,
                    lost: None,
                };
            }
            // Only chunk data may be unseen, and the CRLF closing a chunk: a write usually ends
            // with it, so at most 2 unseen bytes right after the data are taken to be it.
            // Anything more loses the framing (a chunk-size line was not captured).
            let mut taken = 0;
            if let Chunk::Data(rem) = c {
                let u = (*rem).min(unseen);
                sink(Piece::Unseen(u));
                *rem -= u;
                taken = u;
                if *rem > 0 {
                    return Fed {
                        seen: i,
                        unseen: taken,
                        done: false,
                        lost: None,
                    };
                }
                *c = Chunk::DataEnd { cr: false };
            }
            let left = unseen - taken;
            let crlf_left = match c {
                Chunk::DataEnd { cr: false } => 2,
                Chunk::DataEnd { cr: true } => 1,
                _ => 0,
            };
            if left == 0 || left <= crlf_left {
                if left == crlf_left {
                    *c = CHUNK_SIZE_START;
                } else if left > 0 {
                    *c = Chunk::DataEnd { cr: true };
                }
                return Fed {
                    seen: i,
                    unseen,
                    done: false,
                    lost: None,
                };
            }
            return Fed {
                seen: i,
                unseen: taken,
                done: false,
                lost: Some(Lost::Unseen),
            };
        }
        match c {
            Chunk::Size {
                size,
                digits,
                ext,
                line,
            } => {
                let b = seen[i];
                i += 1;
                *line += 1;
                if *line > max_line {
                    return lost(i, Lost::Overflow);
                }
                if b == b'\n' {
                    if *digits == 0 {
                        return lost(i, Lost::Invalid);
                    }
                    *c = if *size == 0 {
                        Chunk::Trailer { line: 0, total: 0 }
                    } else {
                        Chunk::Data(*size)
                    };
                } else if *ext || b == b'\r' {
                    // Extension bytes (and the CR) are skipped.
                } else if b == b';' || b == b' ' || b == b'\t' {
                    *ext = true;
                } else if let Some(v) = hex_val(b) {
                    *digits += 1;
                    match size.checked_mul(16) {
                        Some(s) => *size = s | v,
                        None => return lost(i, Lost::Invalid),
                    }
                } else {
                    return lost(i, Lost::Invalid);
                }
            }
            Chunk::Data(rem) => {
                let take = (*rem).min((seen.len() - i) as u64) as usize;
                sink(Piece::Seen(&seen[i..i + take]));
                i += take;
                *rem -= take as u64;
                if *rem == 0 {
                    *c = Chunk::DataEnd { cr: false };
                }
            }
            Chunk::DataEnd { cr } => {
                let b = seen[i];
                i += 1;
                match b {
                    b'\r' if !*cr => *cr = true,
                    b'\n' => *c = CHUNK_SIZE_START,
                    _ => return lost(i - 1, Lost::Invalid),
                }
            }
            Chunk::Trailer { line, total } => {
                let b = seen[i];
                i += 1;
                *total += 1;
                if *total > max_line {
                    return lost(i, Lost::Overflow);
                }
                if b == b'\n' {
                    if *line == 0 {
                        *c = CHUNK_SIZE_START;
                        return Fed {
                            seen: i,
                            unseen: 0,
                            done: true,
                            lost: None,
                        };
                    }
                    *line = 0;
                } else if b != b'\r' || *line > 0 {
                    *line += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &mut Body, seen: &[u8], unseen: u64) -> (Fed, Vec<u8>, u64) {
        let mut data = Vec::new();
        let mut hidden = 0;
        let fed = body.feed(seen, unseen, 64, &mut |p| match p {
            Piece::Seen(s) => data.extend_from_slice(s),
            Piece::Unseen(n) => hidden += n,
        });
        (fed, data, hidden)
    }

    #[test]
    fn byte_search() {
        let hay: Vec<u8> = (0..40u8).map(|i| b'a' + i % 20).collect();
        for (i, &c) in hay.iter().enumerate().take(20) {
            assert_eq!(find_byte(&hay, c), Some(i));
            assert_eq!(find_byte2(&hay, b'~', c), Some(i));
            assert_eq!(find_byte(&hay[i + 1..], c), Some(19));
        }
        assert_eq!(find_byte(&hay, b'~'), None);
        assert_eq!(
            find_byte2(b"\x80\x00\x01\xff\x7f..\n..", b'\n', b'\r'),
            Some(7)
        );
        assert_eq!(find_byte2(b"\x01\x00", 0, 1), Some(0));
        assert_eq!(find_byte(b"", 0), None);
    }

    #[test]
    fn request_lines() {
        let m = |s: &str| Method::new(s.as_bytes());
        assert_eq!(
            classify_request_line(b"GET / HTTP/1.1\r\n"),
            LineClass::Request {
                method: m("GET"),
                line_end: 16
            }
        );
        assert_eq!(
            classify_request_line(b"M-SEARCH * HTTP/1.0\nx"),
            LineClass::Request {
                method: m("M-SEARCH"),
                line_end: 20
            }
        );
        assert_eq!(
            classify_request_line(b"GE"),
            LineClass::NeedMore { method: None }
        );
        assert_eq!(
            classify_request_line(b"GET /x HTTP/1"),
            LineClass::NeedMore {
                method: Some(m("GET"))
            }
        );
        assert_eq!(
            classify_request_line(b"PRI * HTTP/2.0\r\n"),
            LineClass::Invalid
        );
        assert_eq!(classify_request_line(b"\x16\x03\x01"), LineClass::Invalid);
        assert_eq!(classify_request_line(b"get / HTTP/1.1"), LineClass::Invalid);
        assert_eq!(classify_request_line(b"GET  HTTP/1.1"), LineClass::Invalid);
        assert_eq!(
            Method::new(b"AVERYLONGMETHODNAME").to_report_string(),
            "OTHER"
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 404\r\n"), Some(404));
        assert_eq!(parse_status_line(b"HTTP/1.1 200\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/2 200\r\n"), None);
    }

    #[test]
    fn headers() {
        let h = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\ncontent-type: Text/Event-Stream; charset=utf-8\r\n\r\n";
        let info = parse_headers(h, 17);
        assert_eq!(info.content_length, Some(12));
        assert_eq!(info.content, ContentKind::EventStream);
        let h = b"X\r\nTransfer-Encoding: gzip, chunked\r\nContent-Type: application/json\r\n\r\n";
        let info = parse_headers(h, 3);
        assert!(info.chunked && info.te_present);
        assert_eq!(info.content, ContentKind::Json);
        let info = parse_headers(b"X\nContent-Length: 99999999999999999999999\n\n", 2);
        assert_eq!(info.content_length, Some(u64::MAX));
        let info = parse_headers(b"X\nContent-Length: 5, 6\n\n", 2);
        assert!(info.content_length_invalid);
        assert_eq!(request_framing(&info), Framing::Unknown);
    }

    #[test]
    fn head_acc() {
        let mut acc = HeadAcc::default();
        assert!(matches!(
            acc.push(b"GET / HTTP/1.1\r\n\r\nrest", 100),
            HeadPush::Complete { consumed: 18, .. }
        ));
        assert!(matches!(
            acc.push(b"GET / HTTP/1.1\r\n\r", 100),
            HeadPush::Partial { .. }
        ));
        match acc.push(b"\nNEXT", 100) {
            HeadPush::Complete { head, consumed } => {
                assert_eq!(head, b"GET / HTTP/1.1\r\n\r\n");
                assert_eq!(consumed, 1);
            }
            other => panic!("{other:?}"),
        }
        acc.clear();
        assert!(matches!(
            acc.push(b"GET / HTTP/1.1\r\nA: b\r\n", 20),
            HeadPush::Overflow { consumed: 22, .. }
        ));
    }

    #[test]
    fn chunked_split_everywhere() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        for split in 0..wire.len() {
            let mut body = Body::chunked();
            let (a, mut data, _) = collect(&mut body, &wire[..split], 0);
            assert!(!a.done && a.lost.is_none() && a.seen == split);
            let (b, more, _) = collect(&mut body, &wire[split..], 0);
            data.extend(more);
            assert!(b.done, "split {split}");
            assert_eq!(b.seen, wire.len() - split);
            assert_eq!(data, b"hello world");
        }
    }

    #[test]
    fn chunked_unseen() {
        // Unseen bytes inside a chunk's data are consumed.
        let mut body = Body::chunked();
        let (f, data, hidden) = collect(&mut body, b"a\r\nhel", 7);
        assert_eq!((f.seen, f.unseen, f.lost), (6, 7, None));
        assert_eq!((data.as_slice(), hidden), (&b"hel"[..], 7));
        // A size line in unseen bytes loses the framing.
        let (f, _, _) = collect(&mut body, b"\r\n", 5);
        assert_eq!(f.lost, Some(Lost::Unseen));
        let mut body = Body::chunked();
        let (f, _, _) = collect(&mut body, b"2\r\nab", 10);
        assert_eq!(f.lost, Some(Lost::Unseen));
        let mut body = Body::chunked();
        let (f, _, _) = collect(&mut body, b"4\r\nab", 5);
        assert_eq!((f.unseen, f.lost), (2, Some(Lost::Unseen)));
        // Up to 2 unseen bytes right after the data are the chunk's CRLF.
        for (seen, unseen) in [(&b"4\r\nab"[..], 4), (b"4\r\nabcd", 2), (b"4\r\nabcd\r", 1)] {
            let mut body = Body::chunked();
            let (f, _, _) = collect(&mut body, seen, unseen);
            assert_eq!((f.unseen, f.lost), (unseen, None));
            let (f, _, _) = collect(&mut body, b"0\r\n\r\n", 0);
            assert!(f.done);
        }
        let mut body = Body::chunked();
        collect(&mut body, b"4\r\nabc", 2);
        let (f, _, _) = collect(&mut body, b"\n0\r\n\r\n", 0);
        assert!(f.done);
        // Huge sizes do not overflow.
        let mut body = Body::chunked();
        let (f, _, _) = collect(&mut body, b"fffffffffffffffff\r\n", 0);
        assert_eq!(f.lost, Some(Lost::Invalid));
        let mut body = Body::chunked();
        let (f, _, _) = collect(&mut body, b"zz\r\n", 0);
        assert_eq!(f.lost, Some(Lost::Invalid));
    }

    #[test]
    fn length_body() {
        let mut body = Body::Length(10);
        let (f, _, hidden) = collect(&mut body, b"abc", 100);
        assert_eq!((f.seen, f.unseen, f.done, hidden), (3, 7, true, 7));
        let mut body = Body::Length(2);
        let (f, _, _) = collect(&mut body, b"abcd", 100);
        assert_eq!((f.seen, f.unseen, f.done), (2, 0, true));
    }
}
