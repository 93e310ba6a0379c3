//! The request direction of a connection: framing its requests one after another (no I/O).
//!
//! Requests may be pipelined; each is an `Exchange` from its first byte. Bytes that cannot start
//! a request are skipped until the next response.

use std::ops::ControlFlow;

use memchr::memchr;

use super::{Connection, Cur, Exchange, Req, Resp};
use crate::http::parse::{
    Body, Framing, HeadPush, LineClass, Lost, Method, classify_request_line, parse_request_head,
    request_framing,
};
use crate::http::record::RequestRecord;

impl Connection {
    /// The exchange the request side fills, if it is still pending.
    fn cur_mut(&mut self) -> Option<&mut Exchange> {
        match self.cur {
            Cur::Ex(seq) => self.pending.back_mut().filter(|e| e.seq == seq),
            _ => None,
        }
    }

    fn add_request(&mut self, n: u64, ts_ns: u64) {
        if let Some(ex) = self.cur_mut() {
            ex.request_bytes = ex.request_bytes.saturating_add(n);
            ex.req_last_ns = ts_ns;
        }
    }

    fn request_done(&mut self, ts_ns: u64) {
        if let Some(ex) = self.cur_mut() {
            ex.request_done_ns = Some(ts_ns);
        }
        self.req = Req::Idle;
        self.cur = Cur::None;
    }

    fn request_lost(&mut self) {
        if let Some(ex) = self.cur_mut() {
            ex.framing_lost = true;
        }
        self.req = Req::Lost;
    }

    fn set_method(&mut self, method: Method) {
        self.probation = false;
        if let Some(ex) = self.cur_mut() {
            ex.method = method;
            ex.line_ok = true;
        }
    }

    fn begin_request(&mut self, ts_ns: u64) {
        if self.pending.len() >= self.limits.max_pending.max(1) {
            self.drops.pending_overflow += 1;
            if let Some(back) = self.pending.back_mut() {
                back.ghosts_after = back.ghosts_after.saturating_add(1);
            }
            self.cur = Cur::Ghost;
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push_back(Exchange {
                seq,
                start_ns: ts_ns,
                req_last_ns: ts_ns,
                ..Exchange::default()
            });
            self.cur = Cur::Ex(seq);
        }
        self.req = Req::Head;
    }

    /// The request being collected is not a request. Breaks when that ruled out the whole
    /// connection.
    fn request_garbage(&mut self) -> ControlFlow<()> {
        self.req_acc.clear();
        match self.cur {
            Cur::Ex(seq) => {
                if self.pending.back().is_some_and(|e| e.seq == seq) {
                    self.pending.pop_back();
                    if self.pending.is_empty() && self.ghosts_due == 0 {
                        self.resp = Resp::Idle;
                        self.resp_acc.clear();
                    }
                }
            }
            Cur::Ghost => {
                if let Some(back) = self.pending.back_mut() {
                    back.ghosts_after = back.ghosts_after.saturating_sub(1);
                }
            }
            Cur::None => {}
        }
        self.cur = Cur::None;
        if self.probation {
            self.not_http();
            return ControlFlow::Break(());
        }
        self.drops.desync += 1;
        self.req = Req::Skip;
        ControlFlow::Continue(())
    }

    /// Feeds one request-direction segment: `seen` captured bytes, then `unseen` more.
    pub(super) fn feed_request(
        &mut self,
        ts_ns: u64,
        mut seen: &[u8],
        mut unseen: u64,
        out: &mut Vec<RequestRecord>,
    ) {
        if self.resp_since_req && matches!(self.req, Req::Lost | Req::Skip) {
            // Response bytes came since: this segment starts a new request.
            self.req = Req::Idle;
            self.cur = Cur::None;
        }
        if self.req == Req::Idle && matches!(self.resp, Resp::Lost | Resp::Body(Body::Close)) {
            // A response whose end is unknown ends where the next request begins.
            let close_delimited = self.resp != Resp::Lost;
            if let Some(ex) = self.target() {
                ex.framing_lost |= close_delimited;
                let end = ex.resp_last_ns;
                self.finish_response(end, out);
            }
        }
        self.resp_since_req = false;
        let max_head = self.limits.max_head_bytes;
        while !seen.is_empty() || unseen > 0 {
            match self.req {
                Req::Idle => {
                    let n = seen
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    seen = &seen[n..];
                    if n > 0 {
                        continue;
                    }
                    if seen.is_empty() {
                        // A request starting in bytes we did not capture cannot be framed.
                        self.drops.desync += 1;
                        self.req = Req::Skip;
                        continue;
                    }
                    self.begin_request(ts_ns);
                }
                Req::Head => {
                    if self.request_head(ts_ns, &mut seen, &mut unseen).is_break() {
                        return;
                    }
                }
                Req::Body(mut body) => {
                    let fed = body.feed(seen, unseen, max_head, &mut |_| {});
                    self.req = Req::Body(body);
                    self.add_request(fed.seen as u64 + fed.unseen, ts_ns);
                    seen = &seen[fed.seen..];
                    unseen -= fed.unseen;
                    if fed.done {
                        self.request_done(ts_ns);
                    } else if let Some(why) = fed.lost {
                        if why == Lost::Overflow {
                            self.drops.head_overflow += 1;
                        }
                        self.request_lost();
                    }
                }
                Req::Lost => {
                    self.add_request(seen.len() as u64 + unseen, ts_ns);
                    seen = &[];
                    unseen = 0;
                }
                Req::Skip => {
                    seen = &[];
                    unseen = 0;
                }
            }
        }
    }

    /// Head bytes of the current request. Breaks when the connection was ruled out.
    fn request_head(&mut self, ts_ns: u64, seen: &mut &[u8], unseen: &mut u64) -> ControlFlow<()> {
        let max_head = self.limits.max_head_bytes;
        match self.req_acc.push(seen, max_head) {
            HeadPush::Complete { head, consumed } => {
                let parsed = parse_request_head(head).map(|(m, info)| (m, request_framing(&info)));
                self.req_acc.clear();
                let Some((method, framing)) = parsed else {
                    return self.request_garbage();
                };
                self.head_taken(method, consumed, ts_ns, seen);
                match framing {
                    Framing::Empty => self.request_done(ts_ns),
                    Framing::Length(n) => self.req = Req::Body(Body::Length(n)),
                    Framing::Chunked => self.req = Req::Body(Body::chunked()),
                    Framing::Close | Framing::Unknown => self.request_lost(),
                }
            }
            HeadPush::Partial { so_far } => {
                // Re-checking the line on every piece of a long line would be
                // quadratic: check while the prefix before this piece is short (so
                // garbage is ruled out at once), then once a line end or the capture's
                // end is there.
                let line_ok = match self.cur {
                    Cur::Ex(seq) => self
                        .pending
                        .back()
                        .is_some_and(|e| e.seq == seq && e.line_ok),
                    _ => false,
                };
                let check = !line_ok
                    && (so_far.len().saturating_sub(seen.len()) <= 128
                        || *unseen > 0
                        || memchr(b'\n', seen).is_some());
                let class = if check {
                    classify_request_line(so_far)
                } else {
                    LineClass::NeedMore { method: None }
                };
                return self.request_head_partial(class, check, ts_ns, seen, unseen);
            }
            HeadPush::Overflow { consumed, so_far } => {
                let method = match classify_request_line(so_far) {
                    LineClass::Request { method, .. }
                    | LineClass::NeedMore {
                        method: Some(method),
                    } => Some(method),
                    _ => None,
                };
                self.drops.head_overflow += 1;
                self.req_acc.clear();
                let Some(method) = method else {
                    return self.request_garbage();
                };
                self.head_taken(method, consumed, ts_ns, seen);
                self.request_lost();
            }
        }
        ControlFlow::Continue(())
    }

    /// All of `seen` went into a head that is not complete yet; `class` is what its line looks
    /// like so far (not looked at unless `check`).
    fn request_head_partial(
        &mut self,
        class: LineClass,
        check: bool,
        ts_ns: u64,
        seen: &mut &[u8],
        unseen: &mut u64,
    ) -> ControlFlow<()> {
        let method = match class {
            LineClass::Request { method, .. } => Some(method),
            LineClass::NeedMore { method: Some(m) } if *unseen > 0 => Some(m),
            LineClass::NeedMore { .. } if *unseen == 0 || !check => None,
            _ => return self.request_garbage(),
        };
        if let Some(m) = method {
            self.set_method(m);
        }
        self.add_request(seen.len() as u64, ts_ns);
        *seen = &[];
        if *unseen > 0 {
            // The head goes on beyond the capture.
            self.req_acc.clear();
            self.request_lost();
        }
        ControlFlow::Continue(())
    }

    /// The request line (`method`) and `consumed` bytes of `seen` were taken as a head.
    fn head_taken(&mut self, method: Method, consumed: usize, ts_ns: u64, seen: &mut &[u8]) {
        self.set_method(method);
        self.add_request(consumed as u64, ts_ns);
        *seen = &seen[consumed..];
    }
}
