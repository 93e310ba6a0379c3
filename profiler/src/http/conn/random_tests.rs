//! Connection unit tests on random traffic: limits kept, never a panic (no I/O).
//!
//! Also a rough per-segment timing (ignored by default).

use super::test_support::*;
use super::*;

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Pieces of traffic and whether they flow in the request direction.
const CORPUS: &[(bool, &str)] = &[
    (true, GET),
    (false, OK),
    (
        true,
        "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ),
    (true, "POST /y HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
    (true, "hello"),
    (
        false,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n",
    ),
    (false, "e\r\ndata: {\"a\":1}\n\n\r\n"),
    (
        false,
        "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
    ),
    (false, "HTTP/1.1 100 Continue\r\n\r\n"),
    (false, "HTTP/1.0 200 OK\r\n\r\nbody"),
    (
        false,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n",
    ),
    (false, "{\"usage\":{\"input_tokens\":7}}"),
    (true, "HEAD / HTTP/1.1\r\n\r\n"),
    (false, "HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    (false, "0\r\n\r\n"),
    (false, "Content-Length: 18446744073709551615\r\n"),
    (false, "ffffffffffffffffffff\r\n"),
    (false, "\r\n"),
];

fn check_invariants(t: &T, limits: &Limits) {
    assert!(t.c.pending.len() <= limits.max_pending.max(1));
    for rec in &t.out {
        assert!(rec.method.len() <= MAX_METHOD_LEN_FOR_TESTS);
        assert!(rec.start_ns <= rec.request_done_ns, "{rec:?}");
        assert!(rec.request_done_ns <= rec.end_ns, "{rec:?}");
        if let Some(h) = rec.headers_ns {
            assert!(rec.start_ns <= h && h <= rec.end_ns, "{rec:?}");
        }
        match rec.outcome {
            Outcome::Complete => assert!(rec.status.is_some() || rec.framing_lost, "{rec:?}"),
            Outcome::ClosedBeforeResponse => assert!(rec.status.is_none(), "{rec:?}"),
            Outcome::ClosedMidResponse => assert!(rec.status.is_some(), "{rec:?}"),
            Outcome::Reset => {}
        }
        if let Some(s) = &rec.stream {
            assert!(s.inter_token_ns.len() <= limits.max_gaps_per_stream);
            assert_eq!(s.first_event_ns.is_some(), s.events > 0, "{rec:?}");
        }
    }
}

const MAX_METHOD_LEN_FOR_TESTS: usize = super::super::parse::MAX_METHOD_LEN;

#[test]
fn random_segments_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let limits = Limits {
        max_head_bytes: 256,
        max_pending: 4,
        max_gaps_per_stream: 8,
    };
    let mut t = T::with(limits);
    let mut buf = Vec::new();
    let mut ts = 0u64;
    let mut records = 0;
    let mut client = false;
    let mut fresh = true;
    let pad = format!("X-Pad: {}\r\n", "a".repeat(300));
    for i in 0..20_000 {
        ts += rng.below(1000);
        buf.clear();
        let mut request_side = rng.below(2) == 0;
        // A new connection mostly starts with a request.
        let kind = if fresh && rng.below(8) != 0 {
            10
        } else {
            rng.below(10)
        };
        fresh = false;
        match kind {
            10 => {
                request_side = true;
                buf.extend_from_slice(CORPUS[rng.below(4) as usize * 2 % 4].1.as_bytes());
            }
            // A header line longer than `max_head_bytes`.
            1 => buf.extend_from_slice(pad.as_bytes()),
            // Random bytes.
            0 => {
                for _ in 0..rng.below(64) {
                    buf.push(rng.next() as u8);
                }
            }
            // Valid traffic, possibly mutated and cut.
            _ => {
                for k in 0..1 + rng.below(3) {
                    let (req, text) = CORPUS[rng.below(CORPUS.len() as u64) as usize];
                    if k == 0 {
                        request_side = req;
                    }
                    buf.extend_from_slice(text.as_bytes());
                }
                if rng.below(4) == 0 && !buf.is_empty() {
                    let at = rng.below(buf.len() as u64) as usize;
                    buf[at] = rng.next() as u8;
                }
                if rng.below(4) == 0 {
                    let keep = rng.below(buf.len() as u64 + 1) as usize;
                    buf.truncate(keep);
                }
            }
        }
        let extra = match rng.below(6) {
            0 => rng.next() >> rng.below(64),
            1 => rng.below(100),
            _ => 0,
        };
        let len = (buf.len() as u64).saturating_add(extra);
        // Mostly the natural direction for a server (or, on some connections, a client).
        if rng.below(10) == 0 {
            request_side = !request_side;
        }
        let dir = if request_side == client {
            Direction::Write
        } else {
            Direction::Read
        };
        if rng.below(50) == 0 {
            let how =
                [CloseKind::Closed, CloseKind::PeerEof, CloseKind::Reset][rng.below(3) as usize];
            t.close(ts, how);
            client = rng.below(4) == 0;
            fresh = true;
        } else {
            t.seg(ts, dir, &buf, len);
        }
        check_invariants(&t, &limits);
        if i % 100 == 0 {
            records += t.out.len();
            t.out.clear();
        }
    }
    // The traffic mix must reach deep into the analyzer, not only its not-HTTP exit.
    eprintln!("{records} records, {:?}", t.c.drops);
    assert!(records > 1000, "{records}");
}

/// Rough cost per segment of a small keep-alive exchange (run with `--ignored --nocapture`
/// in release mode).
#[test]
#[ignore]
fn time_per_segment() {
    let mut c = Connection::new(Limits::default());
    let mut out = Vec::with_capacity(16);
    let n = 1_000_000u64;
    let start = std::time::Instant::now();
    for i in 0..n {
        let r = Segment {
            ts_ns: i * 10,
            dir: Direction::Read,
            len: GET.len() as u64,
            data: GET.as_bytes(),
        };
        let w = Segment {
            ts_ns: i * 10 + 5,
            dir: Direction::Write,
            len: OK.len() as u64,
            data: OK.as_bytes(),
        };
        c.on_segment(&r, &mut out);
        c.on_segment(&w, &mut out);
        out.clear();
    }
    let per = start.elapsed().as_nanos() as f64 / (2 * n) as f64;
    println!("{per:.0} ns per segment (GET + 200 with 2-byte body, keep-alive)");
    // A stream: one ~230-byte chunked event per write.
    let ev = chunk(&format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token\"}},\"finish_reason\":null}}],\"usage\":null,\"model\":\"{}\"}}\n\n",
        "m".repeat(60)
    ));
    c.on_segment(
        &Segment {
            ts_ns: 0,
            dir: Direction::Read,
            len: GET.len() as u64,
            data: GET.as_bytes(),
        },
        &mut out,
    );
    c.on_segment(
        &Segment {
            ts_ns: 1,
            dir: Direction::Write,
            len: SSE_HEAD.len() as u64,
            data: SSE_HEAD.as_bytes(),
        },
        &mut out,
    );
    let start = std::time::Instant::now();
    for i in 0..n {
        let w = Segment {
            ts_ns: 2 + i,
            dir: Direction::Write,
            len: ev.len() as u64,
            data: ev.as_bytes(),
        };
        c.on_segment(&w, &mut out);
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{per:.0} ns per segment ({}-byte SSE event writes)",
        ev.len()
    );
    assert_eq!(c.in_flight(), 1);
}
