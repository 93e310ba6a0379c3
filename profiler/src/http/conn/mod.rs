//! One HTTP/1.x connection's state machine: segments in, `RequestRecord`s out (no I/O).
//!
//! The first captured bytes decide the role: a request line read → `Role::Server`, written →
//! `Role::Client`; anything else (TLS, the HTTP/2 preface, binary) makes the connection
//! not-HTTP, and its traffic is then ignored. After that, the "request direction" (reads for a
//! server, writes for a client) is parsed as a sequence of requests and the other direction as
//! their responses, matched first in, first out (pipelining).
//!
//! Heuristics where the bytes do not tell (see also `sse` for event streams):
//! - A request exchange exists from its first byte; it is reported only once its request line
//!   (or, if the capture cut it, its `METHOD ` token) was seen.
//! - Bytes beyond the capture consume a Content-Length or the current chunk's data; up to 2 of
//!   them right after a chunk's data are taken as its CRLF (a write usually ends a chunk).
//! - Framing lost (a head or chunk-size line beyond the captured bytes, a head over
//!   `max_head_bytes`, an unparsable chunked body or response head): the exchange is marked
//!   `framing_lost`; a request then absorbs its direction's bytes until response bytes appear,
//!   and a response absorbs its direction's bytes until the next request begins (at the first
//!   request-direction segment that starts a new request), ending at its last byte's segment,
//!   or at close (`Outcome::Complete`; `Outcome::Reset` on a reset). A close-delimited response
//!   interrupted by a new request ends the same way. A response head cut by the capture still
//!   gives its status, its time (`headers_ns`: the segment that cut it) and its content type;
//!   the body's captured bytes are then scanned raw for events and usage.
//! - Bytes that cannot begin a request on an established connection (or a request whose first
//!   bytes were not captured) are skipped until the next request-direction segment after
//!   response bytes (counted in `ConnDrops::desync`); response bytes with no request pending are
//!   ignored (counted too).
//! - Pipelined requests beyond `max_pending` are parsed (to keep the framing) but not recorded;
//!   their responses are skipped in order.
//! - After a `101 Switching Protocols` (or a 2xx to `CONNECT`) the connection is no longer
//!   analysed; `is_http()` stays true (it did carry HTTP/1.x).

use std::collections::VecDeque;

use super::parse::{Body, HeadAcc, LineClass, Method, Piece, classify_request_line};
use super::record::{Outcome, RequestRecord, Role};
use super::stream::StreamScanner;
use super::usage::UsageScanner;

mod request;
mod response;

/// Direction of a segment from the watched process's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The process received these bytes (read/recv).
    Read,
    /// The process sent these bytes (write/send/sendfile).
    Write,
}

/// One successful socket syscall's transfer.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// CLOCK_MONOTONIC ns when the syscall returned.
    pub ts_ns: u64,
    pub dir: Direction,
    /// Bytes the syscall transferred (> 0).
    pub len: u64,
    /// The leading captured bytes of those `len` (`data.len() <= len`; empty for sendfile).
    pub data: &'a [u8],
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// The process called close() on the fd.
    Closed,
    /// A read returned 0: the peer closed its side.
    PeerEof,
    /// A syscall failed with ECONNRESET or EPIPE.
    Reset,
}

/// Bounds on per-connection state; every time one is hit a drop counter goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of an incomplete head (or chunk-size line) buffered across segments.
    pub max_head_bytes: usize,
    /// Requests read (pipelined) but not yet answered.
    pub max_pending: usize,
    /// Inter-event gaps kept per stream.
    pub max_gaps_per_stream: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_pending: 64,
            max_gaps_per_stream: 100_000,
        }
    }
}

/// Counters of what a connection could not analyse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnDrops {
    /// A head exceeded `max_head_bytes`.
    pub head_overflow: u64,
    /// Pipelined requests beyond `max_pending`.
    pub pending_overflow: u64,
    /// Bytes that did not parse as HTTP/1.x (the connection then ignores its traffic).
    pub not_http: u64,
    /// Times an established HTTP connection's bytes could not be framed (a request direction
    /// segment that cannot start a request, response bytes with no request pending); the
    /// analyzer skipped ahead to resynchronize.
    pub desync: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// No captured byte yet.
    #[default]
    Detect,
    Http,
    /// Ruled out: traffic is ignored.
    NotHttp,
    /// Left HTTP (101 / CONNECT): traffic is ignored.
    Switched,
}

/// Request-direction parser state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Req {
    /// Between requests.
    #[default]
    Idle,
    /// Collecting a head (`HeadAcc` holds what did not fit one segment).
    Head,
    Body(Body),
    /// The current request's framing is lost: absorb until response bytes were seen.
    Lost,
    /// Not a request: skip until response bytes were seen.
    Skip,
}

/// Response-direction parser state (for the response target: see `Connection::target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Resp {
    /// Expecting a head (the first, or the next after a 1xx).
    #[default]
    Idle,
    Head,
    Body(Body),
    /// Framing lost: absorb until the next request begins or the close.
    Lost,
}

/// Which exchange the request side is filling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Cur {
    #[default]
    None,
    /// The exchange with this sequence number (the back of `pending` while it exists).
    Ex(u64),
    /// A request beyond `max_pending` (not recorded).
    Ghost,
}

/// One request and its response, while in progress.
#[derive(Debug, Default)]
struct Exchange {
    seq: u64,
    method: Method,
    /// The request line (or, cut by the capture, its method token) was seen.
    line_ok: bool,
    start_ns: u64,
    req_last_ns: u64,
    request_done_ns: Option<u64>,
    request_bytes: u64,
    response_bytes: u64,
    resp_last_ns: u64,
    status: Option<u16>,
    headers_ns: Option<u64>,
    stream: Option<Box<StreamScanner>>,
    json: Option<UsageScanner>,
    framing_lost: bool,
    /// Requests dropped (beyond `max_pending`) right after this one: their responses follow
    /// this one's and are skipped.
    ghosts_after: u32,
}

impl Exchange {
    fn add_response(&mut self, n: u64, ts_ns: u64) {
        self.response_bytes = self.response_bytes.saturating_add(n);
        self.resp_last_ns = ts_ns;
    }

    /// Feeds response body content to the stream / JSON scanners.
    fn body_piece(&mut self, p: Piece<'_>, ts_ns: u64) {
        match p {
            Piece::Seen(s) => {
                if let Some(stream) = self.stream.as_mut() {
                    stream.feed(s, ts_ns);
                }
                if let Some(j) = self.json.as_mut() {
                    j.feed(s);
                }
            }
            Piece::Unseen(n) => {
                if let Some(stream) = self.stream.as_mut() {
                    stream.skip(n, ts_ns);
                }
                if let Some(j) = self.json.as_mut() {
                    j.gap();
                }
            }
        }
    }
}

/// Segments without a request line tolerated on a new connection before ruling HTTP out.
const MAX_DETECT_SKIPS: u32 = 1024;

/// Bytes that are plainly not HTTP/1.x, however long one waits: TLS records (type 0x14-0x17,
/// version 3.x), the HTTP/2 preface, an SSH banner, binary framing (control bytes up front).
/// Mid-body text (JSON, SSE) is not ruled out: it is what joining a keep-alive connection looks
/// like.
fn is_other_protocol(first: &[u8]) -> bool {
    matches!(first, [0x14..=0x17, 0x03, ..])
        || first.starts_with(b"PRI * HTTP/2")
        || first.starts_with(b"SSH-")
        || first
            .iter()
            .take(8)
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
}

#[derive(Debug, Default)]
pub struct Connection {
    pub limits: Limits,
    pub drops: ConnDrops,
    state: State,
    role: Option<Role>,
    /// The role is tentative: the first request line has not been seen whole yet.
    probation: bool,
    /// Segments skipped while waiting for a request line (a connection joined mid-exchange).
    detect_skips: u32,
    /// Exchanges whose first request byte was seen, oldest first; the front is the response
    /// target unless ghost responses are due.
    pending: VecDeque<Exchange>,
    next_seq: u64,
    req: Req,
    cur: Cur,
    req_acc: HeadAcc,
    resp: Resp,
    resp_acc: HeadAcc,
    /// Responses to skip (to dropped requests) before the front exchange's.
    ghosts_due: u32,
    /// Scratch exchange for a skipped response.
    ghost: Exchange,
    /// Response-direction bytes were seen since the last request-direction segment.
    resp_since_req: bool,
}

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The role, once the first request line decided it.
    pub fn role(&self) -> Option<Role> {
        if self.state == State::NotHttp {
            None
        } else {
            self.role
        }
    }

    /// Feeds one segment; finished exchanges are appended to `out`.
    pub fn on_segment(&mut self, seg: &Segment<'_>, out: &mut Vec<RequestRecord>) {
        let seen = seg.data;
        let unseen = seg.len.saturating_sub(seen.len() as u64);
        if seen.is_empty() && unseen == 0 {
            return;
        }
        match self.state {
            State::NotHttp | State::Switched => return,
            State::Detect => {
                if seen.is_empty() {
                    // Nothing to judge by (sendfile, capture off): wait for bytes.
                    return;
                }
                if classify_request_line(seen) == LineClass::Invalid {
                    // Either another protocol, or a connection that was open before we attached
                    // and that we joined mid-exchange: skip to the next request line, unless the
                    // bytes are plainly another protocol or none comes for a long while.
                    if is_other_protocol(seen) || self.detect_skips >= MAX_DETECT_SKIPS {
                        self.not_http();
                    } else {
                        self.detect_skips += 1;
                        self.drops.desync += 1;
                    }
                    return;
                }
                self.state = State::Http;
                self.probation = true;
                self.role = Some(match seg.dir {
                    Direction::Read => Role::Server,
                    Direction::Write => Role::Client,
                });
            }
            State::Http => {}
        }
        let request_dir = match self.role {
            Some(Role::Client) => Direction::Write,
            _ => Direction::Read,
        };
        if seg.dir == request_dir {
            self.feed_request(seg.ts_ns, seen, unseen, out);
        } else if self.probation {
            // The other side spoke before a request line was complete.
            self.not_http();
        } else {
            self.feed_response(seg.ts_ns, seen, unseen, out);
        }
    }

    /// The connection ended at `ts_ns`; every unfinished exchange is appended to `out`. The
    /// connection is then as new (ready for a new connection on a reused fd).
    pub fn on_close(&mut self, ts_ns: u64, how: CloseKind, out: &mut Vec<RequestRecord>) {
        if self.state == State::Http {
            let reset = how == CloseKind::Reset;
            let fail = |closed: Outcome| if reset { Outcome::Reset } else { closed };
            let mut target = self.ghosts_due == 0;
            while let Some(ex) = self.pending.pop_front() {
                let resp = if target { self.resp } else { Resp::Idle };
                target = false;
                if !ex.line_ok {
                    continue;
                }
                let stream_ended = ex.stream.as_ref().is_some_and(|s| s.ended());
                let (outcome, end) = match resp {
                    Resp::Body(Body::Close) if !reset => (Outcome::Complete, ex.resp_last_ns),
                    // The client closed after the stream's end marker (`[DONE]`), before the
                    // server's last chunk: it had the whole stream.
                    Resp::Body(_) if stream_ended => (Outcome::Complete, ex.resp_last_ns),
                    // Lost framing implies response bytes were seen: the response ended by the
                    // close.
                    Resp::Lost if !reset => (Outcome::Complete, ex.resp_last_ns),
                    Resp::Body(_) | Resp::Lost => (fail(Outcome::ClosedMidResponse), ts_ns),
                    Resp::Idle | Resp::Head => (fail(Outcome::ClosedBeforeResponse), ts_ns),
                };
                out.push(self.record(ex, outcome, end));
            }
        }
        *self = Self::new(self.limits).with_drops(self.drops);
    }

    fn with_drops(mut self, drops: ConnDrops) -> Self {
        self.drops = drops;
        self
    }

    /// Requests started (first byte seen) whose response has not completed.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether the connection carries HTTP/1.x as far as seen (false once it was ruled out).
    pub fn is_http(&self) -> bool {
        self.state != State::NotHttp
    }

    fn not_http(&mut self) {
        let drops = self.drops;
        *self = Self::new(self.limits).with_drops(drops);
        self.drops.not_http += 1;
        self.state = State::NotHttp;
    }

    fn record(&self, ex: Exchange, outcome: Outcome, end_ns: u64) -> RequestRecord {
        RequestRecord {
            role: self.role.unwrap_or(Role::Server),
            method: ex.method.to_report_string(),
            status: ex.status,
            request_bytes: ex.request_bytes,
            response_bytes: ex.response_bytes,
            start_ns: ex.start_ns,
            // A response can end before its request does (an early error response, or an end
            // inferred after lost framing): the request is then counted done by the end.
            request_done_ns: ex.request_done_ns.unwrap_or(ex.req_last_ns).min(end_ns),
            headers_ns: ex.headers_ns,
            end_ns,
            outcome,
            stream: ex.stream.map(|s| s.into_stats()),
            usage_prompt_tokens: ex.json.as_ref().and_then(|j| j.prompt_tokens),
            usage_completion_tokens: ex.json.as_ref().and_then(|j| j.completion_tokens),
            framing_lost: ex.framing_lost,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Shared by both directions
    // ---------------------------------------------------------------------------------------

    /// The exchange the next response bytes belong to: a scratch one while responses to
    /// dropped requests are due, else the oldest pending one.
    fn target(&mut self) -> Option<&mut Exchange> {
        if self.ghosts_due > 0 {
            Some(&mut self.ghost)
        } else {
            self.pending.front_mut()
        }
    }

    /// The target's response ended at `end_ns` (complete by its framing, or inferred).
    fn finish_response(&mut self, end_ns: u64, out: &mut Vec<RequestRecord>) {
        self.resp = Resp::Idle;
        self.resp_acc.clear();
        let ghosts = if self.ghosts_due > 0 {
            self.ghosts_due -= 1;
            std::mem::take(&mut self.ghost).ghosts_after
        } else if let Some(mut ex) = self.pending.pop_front() {
            let ghosts = ex.ghosts_after;
            if ex.request_done_ns.is_none() {
                ex.request_done_ns = Some(ex.req_last_ns);
            }
            if self.cur == Cur::Ex(ex.seq) {
                // Answered before its request was complete: the rest of the request is
                // skipped with its framing but not counted.
                self.cur = Cur::None;
            }
            out.push(self.record(ex, Outcome::Complete, end_ns));
            ghosts
        } else {
            0
        };
        self.ghosts_due = self.ghosts_due.saturating_add(ghosts);
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod close_tests;
#[cfg(test)]
mod detect_tests;
#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod framing_tests;
#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod stream_tests;
