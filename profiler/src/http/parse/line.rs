//! HTTP/1.x start lines: the request line, read byte by byte, and the status line (no I/O).
//!
//! The request line is recognised from its first bytes, so that a connection is told HTTP or
//! not before a head is complete.
//!
//! `httparse` does not decide these: a request line must be classified while incomplete
//! (`NeedMore` with the method once `METHOD ` is seen, `Invalid` at the first byte that rules
//! HTTP out), with a stricter method grammar (upper case, `-`, `_`) and any `HTTP/1.x` version;
//! and a status line must be read from heads the capture cut short. Complete heads that
//! `httparse` accepts get the same summary from the scan in `head` as from `httparse`.

use std::borrow::Cow;

use memchr::memchr;

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

    /// The method as reported: the token, or `OTHER` when it was too long. The common methods
    /// are static strings: a request's record allocates nothing for its method.
    pub fn to_report_string(&self) -> Cow<'static, str> {
        const COMMON: [&str; 9] = [
            "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
        ];
        if self.len == 0 {
            return Cow::Borrowed("OTHER");
        }
        match COMMON.iter().find(|m| m.as_bytes() == self.as_bytes()) {
            Some(m) => Cow::Borrowed(m),
            None => Cow::Owned(String::from_utf8_lossy(self.as_bytes()).into_owned()),
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
// Not httparse: it takes `get` (Invalid here: not HTTP), skips blank lines, wants HTTP/1.0|1.1.
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
// Not httparse: it wants HTTP/1.0|1.1, no control bytes in the reason, and keeps a code sans LF.
pub fn parse_status_line(p: &[u8]) -> Option<u16> {
    let line = &p[..memchr(b'\n', p)?];
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

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
