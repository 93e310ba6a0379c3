//! A real hyper HTTP/1.1 server for the HTTP end-to-end tests, with ground truth measured by the
//! server itself at the socket.
//!
//!   http-server [--port P] [--workers N] [--log FILE] [--seed S] [--fifo]
//!
//! Binds 127.0.0.1:P (0: any free port) and prints `listening on PORT` once it accepts. Routes:
//!
//!   /  or  /delay?ms=A-B&bytes=N   200 after a uniform random delay in [A, B] ms (seeded PRNG,
//!                                  µs resolution; `ms=A` is a fixed delay), N body bytes (128)
//!   /status/N                      status N with a small body
//!   /reset                         a 200 head with `Content-Length: 100000`, 1000 body bytes,
//!                                  then the connection is aborted with a TCP RST (SO_LINGER 0)
//!   /sse?events=N&delay_ms=D&usage=1&prompt_tokens=P&role=1
//!                                  `text/event-stream`, chunked: with role=1 first a role-only
//!                                  chunk (`"delta":{"role":"assistant","content":""}`, no token)
//!                                  at handler start, as LLM servers send; then N events
//!                                  `data: {"choices":[{"delta":{"content":"tok<i>"}}]}`, event i
//!                                  due at handler start + (i+1)·D ms (so the first one after D
//!                                  ms too, and timer rounding does not add up); with usage=1 one
//!                                  more data event carrying `usage` (prompt_tokens P, default
//!                                  17, completion_tokens N), sent right after the last token;
//!                                  then `data: [DONE]`
//!
//! Ground truth (`--log FILE`, one JSON line per request, written with one write(2) each, so
//! nothing is lost when the server is killed after the line was due): every accepted socket is
//! wrapped in a stream that takes a CLOCK_MONOTONIC timestamp after each read that returned data
//! and each write that wrote data. A request starts at the first read that returned data after
//! the previous response on the connection (its first byte read) and ends at the last write
//! before the next request's first read or the connection's close (its last byte written); its
//! line is written then, or on SIGTERM/SIGINT for connections still open. Fields:
//!
//!   conn, method, path, status, outcome ("ok", "incomplete": the response was not all written,
//!   "reset": /reset), start_ns / end_ns (CLOCK_MONOTONIC), latency_us (first byte read → last
//!   byte written, i.e. the return of the write call that completed the response),
//!   last_write_call_us (how long that write call took: the latency measured to its start
//!   instead is this much shorter), bytes_in / bytes_out (at the socket, head and chunk framing
//!   included) and for /sse: events (data events written, the role and usage events included,
//!   `[DONE]` not), token_events (N), first_event_us (first request byte read → the write that
//!   carried the first data event), ttft_us (→ the write that carried the first token event),
//!   ttft_handler_us (handler start → that write), gaps_us (between the writes that carried
//!   consecutive token events; N − 1 values).
//!
//! These are user-space stamps, right after the call returns; an eBPF profiler stamps at the
//! syscall's exit. When a write wakes the client and the client preempts the server on its
//! return to user space, the server's stamp comes late: against bpftrace (syscall exits) on a
//! 2-vCPU VM, 8 connections without keep-alive, latency here − kernel was +33 µs median, +248 µs
//! p90, +559 µs p99. `--fifo` runs the server's threads in SCHED_FIFO (priority 1; needs root),
//! which the woken (CFS) threads cannot preempt: then +0 µs median, +3 µs p99 (c=1 and c=8, with
//! and without keep-alive; start and end stamps each within 6 µs at p99).
//!
//! Request bodies are not supported for ground truth (reads after the handler started and
//! before the response started are counted as the same request), nor is pipelining.

use std::{
    collections::HashMap,
    convert::Infallible,
    fs::File,
    io::{self, Write as _},
    os::fd::{AsRawFd as _, RawFd},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use hyper::{
    Request, Response, StatusCode,
    header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
};

struct Args {
    port: u16,
    workers: usize,
    log: Option<String>,
    seed: u64,
    fifo: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        workers: 2,
        log: None,
        seed: 1,
        fifo: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("http-server: {flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => args.port = value().parse().expect("--port"),
            "--workers" => args.workers = value().parse().expect("--workers"),
            "--log" => args.log = Some(value()),
            "--seed" => args.seed = value().parse().expect("--seed"),
            "--fifo" => args.fifo = true,
            _ => panic!("http-server: unknown option {flag}"),
        }
    }
    args
}

mod body;
mod timed;

use body::{AnyBody, Sse};
use timed::TimedStream;

/// CLOCK_MONOTONIC in ns (the clock `bpf_ktime_get_ns` reads).
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Server {
    log: Option<Mutex<File>>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    rng: AtomicU64,
    next_conn: AtomicU64,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get().expect("server initialised")
}

impl Server {
    /// splitmix64: uniform u64s from a seeded shared state.
    fn random(&self) -> u64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .rng
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write_line(&self, line: &Value) {
        if let Some(log) = &self.log {
            let mut text = line.to_string();
            text.push('\n');
            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
            // One write(2) per line: a line is either all there or not at all.
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// One request/response exchange on a connection, as seen at its socket.
struct Exchange {
    conn: u64,
    method: String,
    path: String,
    status: u16,
    start_ns: u64,
    handler_ns: u64,
    last_write_ns: Option<u64>,
    /// How long the last write call took (its syscall, mostly).
    last_write_call_ns: u64,
    bytes_in: u64,
    bytes_out: u64,
    sse: bool,
    token_events: u64,
    /// Data events written before the first token event (the role chunk).
    events_before_tokens: usize,
    /// Data events the body yielded that no write has carried yet.
    unstamped: usize,
    event_ns: Vec<u64>,
    body_done: bool,
    reset: bool,
}

impl Exchange {
    fn finish(self) {
        let end_ns = self.last_write_ns.unwrap_or(self.start_ns);
        let us = |ns: u64| ns as f64 / 1000.0;
        let outcome = if self.reset {
            "reset"
        } else if self.body_done && self.last_write_ns.is_some() {
            "ok"
        } else {
            "incomplete"
        };
        let mut line = json!({
            "conn": self.conn,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "outcome": outcome,
            "start_ns": self.start_ns,
            "end_ns": end_ns,
            "latency_us": us(end_ns.saturating_sub(self.start_ns)),
            "last_write_call_us": us(self.last_write_call_ns),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        });
        if self.sse {
            let skip = self.events_before_tokens.min(self.event_ns.len());
            let tokens = &self.event_ns[skip..];
            let tokens = &tokens[..tokens.len().min(self.token_events as usize)];
            let first_event = self.event_ns.first().copied();
            let first = tokens.first().copied();
            line["events"] = json!(self.event_ns.len());
            line["token_events"] = json!(self.token_events);
            line["first_event_us"] =
                json!(first_event.map(|t| us(t.saturating_sub(self.start_ns))));
            line["ttft_us"] = json!(first.map(|t| us(t.saturating_sub(self.start_ns))));
            line["ttft_handler_us"] = json!(first.map(|t| us(t.saturating_sub(self.handler_ns))));
            line["gaps_us"] = json!(
                tokens
                    .windows(2)
                    .map(|w| us(w[1] - w[0]))
                    .collect::<Vec<_>>()
            );
        }
        server().write_line(&line);
    }
}

#[derive(Default)]
struct ConnState {
    /// First read of a request the handler has not started yet: (time, bytes so far).
    next: Option<(u64, u64)>,
    pending: Option<Exchange>,
    reset: bool,
    closed: bool,
}

struct Conn {
    id: u64,
    fd: RawFd,
    state: Mutex<ConnState>,
}

impl Conn {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_read(&self, n: usize) {
        let t = now_ns();
        let mut s = self.lock();
        // Data after the response started belongs to the next request (no pipelining): the
        // previous response is complete.
        if s.pending.as_ref().is_some_and(|ex| ex.bytes_out > 0)
            && let Some(ex) = s.pending.take()
        {
            ex.finish();
        }
        if let Some(ex) = &mut s.pending {
            ex.bytes_in += n as u64;
            return;
        }
        match &mut s.next {
            Some((_, bytes)) => *bytes += n as u64,
            None => s.next = Some((t, n as u64)),
        }
    }

    fn on_write(&self, n: usize, called_ns: u64) {
        let t = now_ns();
        let mut s = self.lock();
        if let Some(ex) = &mut s.pending {
            ex.last_write_ns = Some(t);
            ex.last_write_call_ns = t.saturating_sub(called_ns);
            ex.bytes_out += n as u64;
            for _ in 0..ex.unstamped {
                ex.event_ns.push(t);
            }
            ex.unstamped = 0;
        }
    }

    /// The handler starts on a request: it becomes the pending exchange.
    fn begin(&self, method: &str, path: &str) {
        let t = now_ns();
        let mut s = self.lock();
        if let Some(ex) = s.pending.take() {
            ex.finish();
        }
        let (start_ns, bytes_in) = s.next.take().unwrap_or((t, 0));
        s.pending = Some(Exchange {
            conn: self.id,
            method: method.to_owned(),
            path: path.to_owned(),
            status: 0,
            start_ns,
            handler_ns: t,
            last_write_ns: None,
            last_write_call_ns: 0,
            bytes_in,
            bytes_out: 0,
            sse: false,
            token_events: 0,
            events_before_tokens: 0,
            unstamped: 0,
            event_ns: Vec::new(),
            body_done: false,
            reset: false,
        });
    }

    fn with_pending(&self, f: impl FnOnce(&mut Exchange)) {
        if let Some(ex) = &mut self.lock().pending {
            f(ex);
        }
    }

    /// Sets SO_LINGER 0 so that closing the socket sends a RST, and stops shutdown (FIN).
    fn arm_reset(&self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: fd is this connection's socket, open while the connection's stream exists
        // (the body that calls this is owned by that connection); linger is a valid option value.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        let mut s = self.lock();
        s.reset = true;
        if let Some(ex) = &mut s.pending {
            ex.reset = true;
        }
    }

    /// The connection closed (or the server is stopping): its last exchange is complete.
    fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        if let Some(ex) = s.pending.take() {
            ex.finish();
        }
    }
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn query_num(q: &str, key: &str, default: u64) -> u64 {
    query(q, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body_of(n: u64) -> Bytes {
    let mut v = vec![b'x'; n as usize];
    if let Some(last) = v.last_mut() {
        *last = b'\n';
    }
    Bytes::from(v)
}

async fn handle(req: Request<hyper::body::Incoming>, conn: Arc<Conn>) -> Response<AnyBody> {
    let path = req.uri().path().to_owned();
    let q = req.uri().query().unwrap_or("").to_owned();
    conn.begin(req.method().as_str(), &path);
    let mut resp = match path.as_str() {
        "/" | "/delay" => {
            if let Some(ms) = query(&q, "ms") {
                let (a, b) = ms.split_once('-').unwrap_or((ms, ms));
                let a: u64 = a.parse().unwrap_or(0) * 1000;
                let b: u64 = b.parse::<u64>().unwrap_or(0).max(a / 1000) * 1000;
                let us = a + server().random() % (b - a + 1);
                tokio::time::sleep(Duration::from_micros(us)).await;
            }
            Response::new(AnyBody::Full(Some(body_of(query_num(&q, "bytes", 128)))))
        }
        "/reset" => {
            let mut r = Response::new(AnyBody::Reset {
                conn: conn.clone(),
                sent: false,
                sleep: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
            });
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("100000"));
            r
        }
        "/sse" => {
            let events = query_num(&q, "events", 10);
            conn.with_pending(|ex| {
                ex.sse = true;
                ex.token_events = events;
            });
            let mut r = Response::new(AnyBody::Sse(Box::new(Sse::new(
                conn.clone(),
                events,
                Duration::from_millis(query_num(&q, "delay_ms", 10)),
                query(&q, "usage") == Some("1"),
                query_num(&q, "prompt_tokens", 17),
                query(&q, "role") == Some("1"),
            ))));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r
        }
        p => match p
            .strip_prefix("/status/")
            .and_then(|n| n.parse::<u16>().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
        {
            Some(code) => {
                let body = if code.as_u16() == 204 || code.as_u16() == 304 {
                    None
                } else {
                    Some(Bytes::from(format!("status {}\n", code.as_u16())))
                };
                let mut r = Response::new(AnyBody::Full(body));
                *r.status_mut() = code;
                r
            }
            None => {
                let mut r = Response::new(AnyBody::Full(Some(Bytes::from_static(b"not found\n"))));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        },
    };
    let status = resp.status().as_u16();
    let whole = matches!(resp.body(), AnyBody::Full(_));
    conn.with_pending(|ex| {
        ex.status = status;
        ex.body_done = whole;
    });
    if !resp.headers().contains_key(CONTENT_TYPE) {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp
}

fn serve_connection(stream: TcpStream) {
    let srv = server();
    let id = srv.next_conn.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn {
        id,
        fd: stream.as_raw_fd(),
        state: Mutex::new(ConnState::default()),
    });
    srv.conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, conn.clone());
    let io = TokioIo::new(TimedStream {
        inner: stream,
        conn: conn.clone(),
    });
    tokio::spawn(async move {
        let svc = service_fn(move |req| {
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handle(req, conn).await) }
        });
        let _ = http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .serve_connection(io, svc)
            .await;
    });
}

async fn run(args: Args) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let port = listener.local_addr()?.port();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {port}")?;
        out.flush()?;
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve_connection(stream),
                Err(e) => eprintln!("http-server: accept: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Stopping: write the lines of exchanges still open (their responses are complete unless
    // a request is in flight, which the line's outcome then shows).
    let conns: Vec<Arc<Conn>> = server()
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for conn in conns {
        conn.close();
    }
    Ok(())
}

/// Puts the calling thread in SCHED_FIFO (priority 1), so that the threads its writes wake do
/// not preempt it between a syscall's return and the timestamp after it.
fn set_fifo() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: param is a valid sched_param; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        eprintln!(
            "http-server: --fifo: sched_setscheduler: {}",
            io::Error::last_os_error()
        );
    }
}

fn main() {
    let args = parse_args();
    let log = args.log.as_ref().map(|path| {
        Mutex::new(File::create(path).unwrap_or_else(|e| panic!("http-server: --log {path}: {e}")))
    });
    let _ = SERVER.set(Server {
        log,
        conns: Mutex::new(HashMap::new()),
        rng: AtomicU64::new(args.seed),
        next_conn: AtomicU64::new(1),
    });
    let fifo = args.fifo;
    if fifo {
        set_fifo();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .on_thread_start(move || {
            if fifo {
                set_fifo();
            }
        })
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("http-server: {e}");
        std::process::exit(1);
    }
    // Exit without waiting for connection tasks (they would log again on drop: their exchanges
    // are already written and taken).
    std::process::exit(0);
}
