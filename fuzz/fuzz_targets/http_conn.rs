//! Feeds arbitrary segment/close sequences to one HTTP connection analyzer with small limits.
//! It must never panic, and must keep its state within the limits.
//!
//! Input format, repeated: one op byte, then
//! - op % 8 < 3: a read, op % 8 < 6: a write: one length byte `n` (data bytes that follow, at
//!   most what is left), one byte `u` of unseen bytes (`u` < 200: u, else a huge count),
//!   then the `n` data bytes;
//! - op % 8 == 6: a close (kind from the next byte);
//! - op % 8 == 7: a segment with no captured bytes (sendfile) of the next byte's length.
//!   The timestamp advances by op / 8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use profiler::http::{CloseKind, Connection, Direction, Limits, Outcome, RequestRecord, Segment};

fuzz_target!(|input: &[u8]| {
    let limits = Limits {
        max_head_bytes: 64,
        max_pending: 3,
        max_gaps_per_stream: 4,
    };
    let mut conn = Connection::new(limits);
    let mut out = Vec::new();
    let mut ts = 0u64;
    let mut rest = input;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        ts += u64::from(op / 8);
        let take = |rest: &mut &[u8]| -> u8 {
            let (b, t) = rest.split_first().map_or((0, &[][..]), |(b, t)| (*b, t));
            *rest = t;
            b
        };
        match op % 8 {
            k @ 0..=5 => {
                let n = take(&mut rest);
                let u = take(&mut rest);
                let n = usize::from(n).min(rest.len());
                let unseen = if u < 200 {
                    u64::from(u)
                } else {
                    u64::MAX >> (u - 200)
                };
                let (data, tail) = rest.split_at(n);
                rest = tail;
                let seg = Segment {
                    ts_ns: ts,
                    dir: if k < 3 {
                        Direction::Read
                    } else {
                        Direction::Write
                    },
                    len: (data.len() as u64).saturating_add(unseen),
                    data,
                };
                conn.on_segment(&seg, &mut out);
            }
            6 => {
                let how = match take(&mut rest) % 3 {
                    0 => CloseKind::Closed,
                    1 => CloseKind::PeerEof,
                    _ => CloseKind::Reset,
                };
                conn.on_close(ts, how, &mut out);
                assert_eq!(conn.in_flight(), 0);
            }
            _ => {
                let len = u64::from(take(&mut rest));
                let dir = if len % 2 == 0 {
                    Direction::Read
                } else {
                    Direction::Write
                };
                let seg = Segment {
                    ts_ns: ts,
                    dir,
                    len,
                    data: &[],
                };
                conn.on_segment(&seg, &mut out);
            }
        }
        assert!(conn.in_flight() <= limits.max_pending);
        for rec in &out {
            check_record(rec);
            if let Some(s) = &rec.stream {
                assert!(s.inter_token_ns.len() <= limits.max_gaps_per_stream);
            }
        }
        out.clear();
    }
});

/// What holds for every record when timestamps do not go backwards.
fn check_record(rec: &RequestRecord) {
    assert!(rec.method.len() <= 16, "{rec:?}");
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
        assert!(s.first_event_ns.is_some() == (s.events > 0), "{rec:?}");
        assert!(s.content_events <= s.events, "{rec:?}");
        assert!(
            s.first_content_ns.is_some() == (s.content_events > 0),
            "{rec:?}"
        );
        assert!(
            s.inter_token_ns.len() as u64 <= s.content_events.saturating_sub(1),
            "{rec:?}"
        );
    }
}
