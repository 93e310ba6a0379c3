//! The response direction of a connection: framing each response to its request (no I/O).
//!
//! A response belongs to the oldest pending request; its head gives the status, timing and
//! content type; its body is framed and fed to the event-stream and usage scanners.

use super::{Connection, Resp, State};
use crate::http::parse::{
    Body, ContentKind, Framing, HeadInfo, HeadPush, Lost, Piece, ResponseKind, parse_response_head,
    response_kind,
};
use crate::http::record::RequestRecord;
use crate::http::stream::StreamScanner;
use crate::http::usage::UsageScanner;

impl Connection {
    fn response_lost(&mut self) {
        if let Some(ex) = self.target() {
            ex.framing_lost = true;
        }
        self.resp = Resp::Lost;
    }

    /// A final or interim head (`None`: not a status line) of the target's response.
    fn response_head(
        &mut self,
        head: Option<(u16, HeadInfo)>,
        ts_ns: u64,
        out: &mut Vec<RequestRecord>,
    ) {
        let max_gaps = self.limits.max_gaps_per_stream;
        let Some((status, info)) = head else {
            self.drops.desync += 1;
            self.response_lost();
            return;
        };
        let Some(ex) = self.target() else {
            return;
        };
        match response_kind(status, &info, &ex.method) {
            ResponseKind::Interim => self.resp = Resp::Idle,
            ResponseKind::Switch => {
                ex.status = Some(status);
                ex.headers_ns = Some(ts_ns);
                self.finish_response(ts_ns, out);
                // Whatever else was read is not HTTP any more.
                self.pending.clear();
                self.state = State::Switched;
            }
            ResponseKind::Final(framing) => {
                ex.status = Some(status);
                ex.headers_ns = Some(ts_ns);
                ex.stream = StreamScanner::for_content(info.content, max_gaps);
                if info.content == ContentKind::Json {
                    ex.json = Some(UsageScanner::default());
                }
                match framing {
                    Framing::Empty => self.finish_response(ts_ns, out),
                    Framing::Length(n) => self.resp = Resp::Body(Body::Length(n)),
                    Framing::Chunked => self.resp = Resp::Body(Body::chunked()),
                    Framing::Close => self.resp = Resp::Body(Body::Close),
                    Framing::Unknown => self.response_lost(),
                }
            }
        }
    }

    /// A response head cut short (by the capture or `max_head_bytes`): keep what its seen part
    /// says (a final status, the content type), then lose the framing. The segment's unseen
    /// bytes are taken as the rest of the head (not shown to the body scanners).
    fn response_head_cut(&mut self, parsed: Option<(u16, HeadInfo)>, unseen: &mut u64, ts_ns: u64) {
        let max_gaps = self.limits.max_gaps_per_stream;
        if let Some(ex) = self.target() {
            ex.add_response(*unseen, ts_ns);
        }
        *unseen = 0;
        if let Some(ex) = self.target()
            && let Some((status, info)) = parsed
            && status >= 200
        {
            ex.status = Some(status);
            ex.headers_ns = Some(ts_ns);
            ex.stream = StreamScanner::for_content(info.content, max_gaps);
            if info.content == ContentKind::Json {
                ex.json = Some(UsageScanner::default());
            }
        }
        self.response_lost();
    }

    /// Feeds one response-direction segment: `seen` captured bytes, then `unseen` more.
    pub(super) fn feed_response(
        &mut self,
        ts_ns: u64,
        mut seen: &[u8],
        mut unseen: u64,
        out: &mut Vec<RequestRecord>,
    ) {
        self.resp_since_req = true;
        while !seen.is_empty() || unseen > 0 {
            if self.state != State::Http {
                return;
            }
            if self.target().is_none() {
                // Nothing was asked (or it was not HTTP): ignore.
                self.drops.desync += 1;
                self.resp = Resp::Idle;
                self.resp_acc.clear();
                return;
            }
            match self.resp {
                Resp::Idle => {
                    let n = seen
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    if n > 0 {
                        if let Some(ex) = self.target() {
                            ex.add_response(n as u64, ts_ns);
                        }
                        seen = &seen[n..];
                        continue;
                    }
                    if seen.is_empty() {
                        // The head is beyond the capture (e.g. sendfile).
                        self.response_lost();
                        continue;
                    }
                    self.resp = Resp::Head;
                }
                Resp::Head => self.response_head_bytes(ts_ns, &mut seen, &mut unseen, out),
                Resp::Body(body) => self.response_body(body, ts_ns, &mut seen, &mut unseen, out),
                Resp::Lost => {
                    if let Some(ex) = self.target() {
                        ex.add_response(seen.len() as u64 + unseen, ts_ns);
                        // Best effort: scan the raw bytes (chunk framing lines are harmless
                        // to the event and usage scanners).
                        if !seen.is_empty() {
                            ex.body_piece(Piece::Seen(seen), ts_ns);
                        }
                        if unseen > 0 {
                            ex.body_piece(Piece::Unseen(unseen), ts_ns);
                        }
                    }
                    seen = &[];
                    unseen = 0;
                }
            }
        }
    }

    /// Head bytes of the target's response.
    fn response_head_bytes(
        &mut self,
        ts_ns: u64,
        seen: &mut &[u8],
        unseen: &mut u64,
        out: &mut Vec<RequestRecord>,
    ) {
        let max_head = self.limits.max_head_bytes;
        let Self {
            resp_acc,
            pending,
            ghost,
            ghosts_due,
            ..
        } = self;
        let ex = if *ghosts_due > 0 {
            Some(ghost)
        } else {
            pending.front_mut()
        };
        match resp_acc.push(seen, max_head) {
            HeadPush::Complete { head, consumed } => {
                if let Some(ex) = ex {
                    ex.add_response(consumed as u64, ts_ns);
                }
                let parsed = parse_response_head(head);
                *seen = &seen[consumed..];
                self.resp_acc.clear();
                self.response_head(parsed, ts_ns, out);
            }
            HeadPush::Partial { so_far } => {
                if let Some(ex) = ex {
                    ex.add_response(seen.len() as u64, ts_ns);
                }
                *seen = &[];
                // Not even the start of a status line: no use waiting for the rest.
                let bad = !so_far.iter().zip(b"HTTP/1.").all(|(a, b)| a == b);
                let cut = (!bad && *unseen > 0).then(|| parse_response_head(so_far));
                if bad {
                    self.resp_acc.clear();
                    self.response_head(None, ts_ns, out);
                } else if let Some(parsed) = cut {
                    self.resp_acc.clear();
                    self.response_head_cut(parsed, unseen, ts_ns);
                }
            }
            HeadPush::Overflow { consumed, so_far } => {
                if let Some(ex) = ex {
                    ex.add_response(consumed as u64, ts_ns);
                }
                let parsed = parse_response_head(so_far);
                *seen = &seen[consumed..];
                self.drops.head_overflow += 1;
                self.resp_acc.clear();
                self.response_head_cut(parsed, unseen, ts_ns);
            }
        }
    }

    /// Body bytes of the target's response.
    fn response_body(
        &mut self,
        mut body: Body,
        ts_ns: u64,
        seen: &mut &[u8],
        unseen: &mut u64,
        out: &mut Vec<RequestRecord>,
    ) {
        let max_head = self.limits.max_head_bytes;
        let Self {
            pending,
            ghost,
            ghosts_due,
            ..
        } = self;
        let mut ex = if *ghosts_due > 0 {
            Some(ghost)
        } else {
            pending.front_mut()
        };
        let fed = body.feed(seen, *unseen, max_head, &mut |p| {
            if let Some(ex) = ex.as_mut() {
                ex.body_piece(p, ts_ns);
            }
        });
        if let Some(ex) = ex {
            ex.add_response(fed.seen as u64 + fed.unseen, ts_ns);
        }
        self.resp = Resp::Body(body);
        *seen = &seen[fed.seen..];
        *unseen -= fed.unseen;
        if fed.done {
            self.finish_response(ts_ns, out);
        } else if let Some(why) = fed.lost {
            if why == Lost::Overflow {
                self.drops.head_overflow += 1;
            }
            self.response_lost();
        }
    }
}
