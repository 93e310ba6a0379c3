//! The server's response bodies: whole, the SSE stream of `/sse`, and `/reset`'s partial body
//! followed by an abort. Each tells the connection's ground truth what it wrote.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::Conn;

/// Response bodies: whole, an SSE stream, or a partial body followed by a reset.
pub(super) enum AnyBody {
    Full(Option<Bytes>),
    Sse(Box<Sse>),
    Reset {
        conn: Arc<Conn>,
        sent: bool,
        sleep: Pin<Box<Sleep>>,
    },
}

pub(super) struct Sse {
    conn: Arc<Conn>,
    events: u64,
    start: tokio::time::Instant,
    delay: Duration,
    usage: bool,
    prompt_tokens: u64,
    sent: u64,
    phase: SsePhase,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// The role-only first chunk of an OpenAI-style chat stream: a data event without a token.
const ROLE_CHUNK: &[u8] =
    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";

#[derive(PartialEq)]
enum SsePhase {
    Role,
    Tokens,
    Usage,
    Done,
    End,
}

impl Sse {
    /// `events` token events `delay` apart from now, then usage (with `usage`) and `[DONE]`;
    /// with `role` a role-only chunk first.
    pub(super) fn new(
        conn: Arc<Conn>,
        events: u64,
        delay: Duration,
        usage: bool,
        prompt_tokens: u64,
        role: bool,
    ) -> Self {
        Self {
            conn,
            events,
            start: tokio::time::Instant::now(),
            delay,
            usage,
            prompt_tokens,
            sent: 0,
            phase: if role {
                SsePhase::Role
            } else {
                SsePhase::Tokens
            },
            sleep: None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            match self.phase {
                SsePhase::Role => {
                    self.phase = SsePhase::Tokens;
                    self.conn.with_pending(|ex| {
                        ex.unstamped += 1;
                        ex.events_before_tokens = 1;
                    });
                    return Poll::Ready(Some(Bytes::from_static(ROLE_CHUNK)));
                }
                SsePhase::Tokens if self.sent < self.events => {
                    // Event i is due at start + (i + 1) × delay: the timer's rounding does not
                    // add up, so gaps average exactly `delay`.
                    let due = self.start + self.delay * (self.sent as u32 + 1);
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    std::task::ready!(sleep.as_mut().poll(cx));
                    self.sleep = None;
                    let i = self.sent;
                    self.sent += 1;
                    self.conn.with_pending(|ex| ex.unstamped += 1);
                    return Poll::Ready(Some(Bytes::from(format!(
                        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"tok{i}\"}}}}]}}\n\n"
                    ))));
                }
                SsePhase::Tokens => {
                    self.phase = if self.usage {
                        SsePhase::Usage
                    } else {
                        SsePhase::Done
                    };
                }
                SsePhase::Usage => {
                    self.phase = SsePhase::Done;
                    self.conn.with_pending(|ex| ex.unstamped += 1);
                    let (p, n) = (self.prompt_tokens, self.events);
                    return Poll::Ready(Some(Bytes::from(format!(
                        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\
                         \"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
                        p + n
                    ))));
                }
                SsePhase::Done => {
                    self.phase = SsePhase::End;
                    self.conn.with_pending(|ex| ex.body_done = true);
                    return Poll::Ready(Some(Bytes::from_static(b"data: [DONE]\n\n")));
                }
                SsePhase::End => return Poll::Ready(None),
            }
        }
    }
}

impl Body for AnyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            AnyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            AnyBody::Sse(sse) => sse.poll(cx).map(|d| d.map(|d| Ok(Frame::data(d)))),
            AnyBody::Reset { conn, sent, sleep } => {
                if !*sent {
                    *sent = true;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'r'; 1000])))));
                }
                // Pending while hyper writes the head and the partial body, then abort.
                std::task::ready!(sleep.as_mut().poll(cx));
                conn.arm_reset();
                Poll::Ready(Some(Err(io::Error::other("reset by /reset"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnyBody::Full(data) => data.is_none(),
            AnyBody::Sse(sse) => sse.phase == SsePhase::End,
            AnyBody::Reset { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AnyBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            _ => SizeHint::default(),
        }
    }
}
