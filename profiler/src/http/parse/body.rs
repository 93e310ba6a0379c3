//! Consuming a message body: Content-Length, chunked or close-delimited (no I/O).
//!
//! Fed captured bytes and counts of bytes beyond the capture; chunk extensions and trailers are
//! skipped; the de-chunked content goes to a sink.

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

impl Fed {
    /// Stopped after `seen` bytes without losing the framing or ending the body.
    fn more(seen: usize, unseen: u64) -> Self {
        Fed {
            seen,
            unseen,
            done: false,
            lost: None,
        }
    }

    fn lost(seen: usize, why: Lost) -> Self {
        Fed {
            seen,
            unseen: 0,
            done: false,
            lost: Some(why),
        }
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
    loop {
        if i == seen.len() {
            return chunked_unseen(c, i, unseen, sink);
        }
        if let Some(fed) = chunked_step(c, seen, &mut i, max_line, sink) {
            return fed;
        }
    }
}

/// All `i` captured bytes were taken: takes what it can of the `unseen` ones.
fn chunked_unseen(c: &mut Chunk, i: usize, unseen: u64, sink: &mut impl FnMut(Piece<'_>)) -> Fed {
    if unseen == 0 {
        return Fed::more(i, 0);
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
            return Fed::more(i, taken);
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
        return Fed::more(i, unseen);
    }
    Fed {
        seen: i,
        unseen: taken,
        done: false,
        lost: Some(Lost::Unseen),
    }
}

/// Takes captured bytes from `seen[*i..]` (at least one) in the current state; `Some` when
/// the feed stops there (the body ended, or its framing was lost).
fn chunked_step(
    c: &mut Chunk,
    seen: &[u8],
    i: &mut usize,
    max_line: usize,
    sink: &mut impl FnMut(Piece<'_>),
) -> Option<Fed> {
    match c {
        Chunk::Size {
            size,
            digits,
            ext,
            line,
        } => {
            let b = seen[*i];
            *i += 1;
            *line += 1;
            if *line > max_line {
                return Some(Fed::lost(*i, Lost::Overflow));
            }
            if b == b'\n' {
                if *digits == 0 {
                    return Some(Fed::lost(*i, Lost::Invalid));
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
                    None => return Some(Fed::lost(*i, Lost::Invalid)),
                }
            } else {
                return Some(Fed::lost(*i, Lost::Invalid));
            }
        }
        Chunk::Data(rem) => {
            let take = (*rem).min((seen.len() - *i) as u64) as usize;
            sink(Piece::Seen(&seen[*i..*i + take]));
            *i += take;
            *rem -= take as u64;
            if *rem == 0 {
                *c = Chunk::DataEnd { cr: false };
            }
        }
        Chunk::DataEnd { cr } => {
            let b = seen[*i];
            *i += 1;
            match b {
                b'\r' if !*cr => *cr = true,
                b'\n' => *c = CHUNK_SIZE_START,
                _ => return Some(Fed::lost(*i - 1, Lost::Invalid)),
            }
        }
        Chunk::Trailer { line, total } => {
            let b = seen[*i];
            *i += 1;
            *total += 1;
            if *total > max_line {
                return Some(Fed::lost(*i, Lost::Overflow));
            }
            if b == b'\n' {
                if *line == 0 {
                    *c = CHUNK_SIZE_START;
                    return Some(Fed {
                        seen: *i,
                        unseen: 0,
                        done: true,
                        lost: None,
                    });
                }
                *line = 0;
            } else if b != b'\r' || *line > 0 {
                *line += 1;
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
