//! On-CPU slices from the context-switch stream (`sched_switch_trace`): pairs each watched
//! thread's switch-in with its next switch-out, clipped to the session window.
//!
//! A thread's records arrive in order (it cannot be switched in elsewhere before its switch-out
//! finished), but records can be lost (ring buffer full, a program run the kernel skipped). A
//! pairing that does not add up is dropped and counted rather than guessed:
//! - a switch-out of a thread seen before, without an open slice: its switch-in was lost;
//! - a switch-in of a thread whose slice is still open, or a switch-out on another CPU than
//!   the switch-in: a switch-out was lost.
//!
//! The first record of a thread being a switch-out means it was on a CPU when the window
//! opened: its slice starts at the window start. Threads still on a CPU at the end are closed
//! at the window end, and threads that never switched at all but were on a CPU throughout (a
//! CPU burner alone on its CPU) get one slice over the whole window from [`SwitchPairer::finish`].

use profiler_common::SwitchEvent;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use super::{Shared, event::TraceEvent};

/// `prev_state` of a preempted task (`TASK_REPORT_MAX`): still runnable.
const TASK_REPORT_MAX: i64 = 0x100;

/// How a slice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceEnd {
    /// Switched out while runnable (preempted or yielded).
    Preempted,
    /// Switched out to wait (sleep, I/O, lock, exit).
    Blocked,
    /// Still on the CPU when the session ended.
    SessionEnd,
}

impl SliceEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SliceEnd::Preempted => "preempted",
            SliceEnd::Blocked => "blocked",
            SliceEnd::SessionEnd => "session-end",
        }
    }

    fn from_prev_state(state: i64) -> Self {
        if state == 0 || state & TASK_REPORT_MAX != 0 {
            SliceEnd::Preempted
        } else {
            SliceEnd::Blocked
        }
    }
}

/// One interval a thread spent on a CPU, within the session window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub tgid: u32,
    pub tid: u32,
    /// `None` for a thread that never switched during the window and whose CPU is unknown.
    pub cpu: Option<u32>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub end: SliceEnd,
    /// It began before the window and was cut at the window start.
    pub clipped_start: bool,
}

/// `Open::since_ns` of a slice that began before the window (when is unknown).
const BEFORE_WINDOW: u64 = 0;

#[derive(Debug, Clone, Copy)]
struct Open {
    tgid: u32,
    cpu: Option<u32>,
    since_ns: u64,
}

/// Decodes one `SWITCH_EVENTS` record; `None` when it is short.
pub fn decode_switch(record: &[u8]) -> Option<SwitchEvent> {
    if record.len() < size_of::<SwitchEvent>() {
        return None;
    }
    // SAFETY: the slice holds at least size_of::<SwitchEvent>() bytes (checked above);
    // SwitchEvent is #[repr(C)] plain integers, valid for any bit pattern; read_unaligned copes
    // with the ring buffer's alignment.
    Some(unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<SwitchEvent>()) })
}

#[derive(Debug)]
pub struct SwitchPairer {
    window_start_ns: u64,
    window_end_ns: u64,
    open: FxHashMap<u32, Open>,
    seen: FxHashSet<u32>,
    unpaired: u64,
    records: u64,
}

impl SwitchPairer {
    /// `window_start_ns`: when the switch program was attached (CLOCK_MONOTONIC).
    pub fn new(window_start_ns: u64) -> Self {
        Self {
            window_start_ns,
            window_end_ns: u64::MAX,
            open: FxHashMap::default(),
            seen: FxHashSet::default(),
            unpaired: 0,
            records: 0,
        }
    }

    /// Ends the window: later switch-ins are ignored, slices are cut here.
    pub fn close_window(&mut self, end_ns: u64) {
        self.window_end_ns = end_ns.max(self.window_start_ns);
    }

    /// One context switch; `out` receives the slice it completes, if any.
    pub fn on_switch(&mut self, ev: &SwitchEvent, out: &mut impl FnMut(Slice)) {
        self.records += 1;
        if ev.prev_tgid != 0 && ev.prev_tid != 0 {
            self.switch_out(ev, out);
        }
        if ev.next_tgid != 0 && ev.next_tid != 0 {
            self.switch_in(ev);
        }
    }

    /// Closes what is still open at the window end. `on_cpu_now`: (tgid, tid) of watched
    /// threads on a CPU now by the scheduler accounting; those that never switched during the
    /// window ran through all of it, on the CPU `cpu_of(tgid, tid)` tells if it can.
    pub fn finish(
        &mut self,
        on_cpu_now: impl IntoIterator<Item = (u32, u32)>,
        cpu_of: impl Fn(u32, u32) -> Option<u32>,
        out: &mut impl FnMut(Slice),
    ) {
        let end = self.window_end_ns;
        let mut open: Vec<(u32, Open)> = self.open.drain().collect();
        open.sort_unstable_by_key(|(tid, _)| *tid);
        for (tid, o) in open {
            self.emit(tid, o, end, SliceEnd::SessionEnd, out);
        }
        for (tgid, tid) in on_cpu_now {
            if self.seen.insert(tid) {
                let o = Open {
                    tgid,
                    cpu: cpu_of(tgid, tid),
                    since_ns: BEFORE_WINDOW,
                };
                self.emit(tid, o, end, SliceEnd::SessionEnd, out);
            }
        }
    }

    /// Pairings dropped because records were missing.
    pub fn unpaired(&self) -> u64 {
        self.unpaired
    }

    /// Records seen.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn switch_out(&mut self, ev: &SwitchEvent, out: &mut impl FnMut(Slice)) {
        let tid = ev.prev_tid;
        let first = self.seen.insert(tid);
        let end = SliceEnd::from_prev_state(ev.prev_state);
        match self.open.remove(&tid) {
            Some(o) if o.cpu == Some(ev.cpu) => self.emit(tid, o, ev.ts_ns, end, out),
            Some(_) => self.unpaired += 1,
            None if first => {
                let o = Open {
                    tgid: ev.prev_tgid,
                    cpu: Some(ev.cpu),
                    since_ns: BEFORE_WINDOW,
                };
                self.emit(tid, o, ev.ts_ns, end, out);
            }
            None => self.unpaired += 1,
        }
    }

    fn switch_in(&mut self, ev: &SwitchEvent) {
        let tid = ev.next_tid;
        self.seen.insert(tid);
        if ev.ts_ns >= self.window_end_ns {
            return;
        }
        let o = Open {
            tgid: ev.next_tgid,
            cpu: Some(ev.cpu),
            since_ns: ev.ts_ns,
        };
        if self.open.insert(tid, o).is_some() {
            self.unpaired += 1;
        }
    }

    fn emit(&self, tid: u32, o: Open, end_ns: u64, end: SliceEnd, out: &mut impl FnMut(Slice)) {
        let start_ns = o.since_ns.max(self.window_start_ns);
        let (end_ns, end) = if end_ns > self.window_end_ns {
            (self.window_end_ns, SliceEnd::SessionEnd)
        } else {
            (end_ns, end)
        };
        if end_ns <= start_ns {
            return;
        }
        out(Slice {
            tgid: o.tgid,
            tid,
            cpu: o.cpu,
            start_ns,
            end_ns,
            end,
            clipped_start: o.since_ns < self.window_start_ns,
        });
    }
}

pub const CATEGORY: &str = "sched";
pub const SLICE_NAME: &str = "on-cpu";

/// `args` of an on-CPU slice.
#[derive(Debug, Serialize)]
pub struct SliceArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// How it ended: "preempted", "blocked" or "session-end".
    pub end: &'static str,
    /// It began before the session and was cut at its start.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clipped: bool,
}

/// Writes `s` on its thread's track (one event) unless the limit is reached; returns whether
/// it was written.
pub fn write_slice(shared: &mut Shared, s: &Slice) -> bool {
    if !shared.writer.reserve(1) {
        return false;
    }
    shared.tracks.thread(s.tgid, s.tid);
    let args = SliceArgs {
        cpu: s.cpu,
        end: s.end.as_str(),
        clipped: s.clipped_start,
    };
    let ev = TraceEvent::complete(
        SLICE_NAME,
        CATEGORY,
        (s.tgid, s.tid),
        s.start_ns,
        s.end_ns,
        args,
    );
    shared.writer.write(&ev);
    shared.slices += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{testing::MemorySink, writer::TraceWriter};

    const PID: u32 = 100;
    const BLOCKED: i64 = 1; // TASK_INTERRUPTIBLE

    /// Thread `prev` (watched when `prev_w`) leaves CPU `cpu` for `next` at `ts`.
    fn sw(ts: u64, cpu: u32, prev: u32, state: i64, next: u32) -> SwitchEvent {
        SwitchEvent {
            ts_ns: ts,
            prev_state: state,
            cpu,
            prev_tid: prev,
            prev_tgid: if prev >= PID { PID } else { 0 },
            next_tid: next,
            next_tgid: if next >= PID { PID } else { 0 },
            _pad: 0,
        }
    }

    fn run(p: &mut SwitchPairer, events: &[SwitchEvent]) -> Vec<Slice> {
        let mut slices = Vec::new();
        for ev in events {
            p.on_switch(ev, &mut |s| slices.push(s));
        }
        slices
    }

    fn span(s: &Slice) -> (u32, u32, u64, u64) {
        (s.tid, s.cpu.unwrap_or(99), s.start_ns, s.end_ns)
    }

    #[test]
    fn pairs_switch_in_with_switch_out_per_thread() {
        // Tids < PID are unwatched (idle = 0, another process = 7).
        let mut p = SwitchPairer::new(1_000);
        let slices = run(
            &mut p,
            &[
                sw(1_100, 0, 0, 0, 101),
                sw(1_150, 1, 7, BLOCKED, 102),
                sw(1_300, 0, 101, 0, 7),
                sw(1_400, 1, 102, BLOCKED, 101),
                sw(1_900, 1, 101, BLOCKED, 0),
            ],
        );
        let spans: Vec<_> = slices.iter().map(span).collect();
        assert_eq!(
            spans,
            vec![
                (101, 0, 1_100, 1_300),
                (102, 1, 1_150, 1_400),
                (101, 1, 1_400, 1_900)
            ]
        );
        assert_eq!(slices[0].end, SliceEnd::Preempted);
        assert_eq!(slices[1].end, SliceEnd::Blocked);
        assert!(slices.iter().all(|s| s.tgid == PID && !s.clipped_start));
        assert_eq!(p.unpaired(), 0);
        assert_eq!(p.records(), 5);
    }

    #[test]
    fn a_thread_first_seen_leaving_a_cpu_ran_since_the_window_start() {
        let mut p = SwitchPairer::new(1_000);
        let slices = run(&mut p, &[sw(1_250, 1, 101, BLOCKED, 0)]);
        assert_eq!(slices.len(), 1);
        assert_eq!(span(&slices[0]), (101, 1, 1_000, 1_250));
        assert!(slices[0].clipped_start);
    }

    #[test]
    fn records_from_before_the_window_are_clipped() {
        let mut p = SwitchPairer::new(1_000);
        let slices = run(
            &mut p,
            &[
                // Entirely before the window: nothing.
                sw(900, 0, 0, 0, 101),
                sw(950, 0, 101, BLOCKED, 0),
                // Straddles the window start.
                sw(990, 0, 0, 0, 101),
                sw(1_100, 0, 101, BLOCKED, 0),
            ],
        );
        assert_eq!(
            slices.iter().map(span).collect::<Vec<_>>(),
            [(101, 0, 1_000, 1_100)]
        );
        assert!(slices[0].clipped_start);
    }

    #[test]
    fn open_slices_close_at_the_window_end() {
        let mut p = SwitchPairer::new(1_000);
        let mut slices = run(&mut p, &[sw(1_500, 0, 0, 0, 101)]);
        p.close_window(2_000);
        // A switch-out after the end is cut at the end; a switch-in after it opens nothing.
        slices.extend(run(
            &mut p,
            &[sw(2_100, 0, 101, 0, 102), sw(2_200, 1, 0, 0, 103)],
        ));
        p.finish([], |_, _| None, &mut |s| slices.push(s));
        assert_eq!(
            slices.iter().map(span).collect::<Vec<_>>(),
            [(101, 0, 1_500, 2_000)]
        );
        assert_eq!(slices[0].end, SliceEnd::SessionEnd);
    }

    #[test]
    fn finish_closes_running_threads_and_covers_threads_that_never_switched() {
        let mut p = SwitchPairer::new(1_000);
        let mut slices = run(&mut p, &[sw(1_200, 0, 0, 0, 101)]);
        p.close_window(3_000);
        // 101 is open; 105 never switched and is on CPU 1; 101 is also listed (no double).
        let cpu_of = |_, tid| (tid == 105).then_some(1);
        p.finish([(PID, 101), (PID, 105), (PID, 106)], cpu_of, &mut |s| {
            slices.push(s)
        });
        let spans: Vec<_> = slices.iter().map(span).collect();
        assert_eq!(
            spans,
            [
                (101, 0, 1_200, 3_000),
                (105, 1, 1_000, 3_000),
                (106, 99, 1_000, 3_000)
            ]
        );
        assert!(slices.iter().all(|s| s.end == SliceEnd::SessionEnd));
    }

    #[test]
    fn a_thread_seen_switching_is_not_given_a_whole_window_slice() {
        let mut p = SwitchPairer::new(1_000);
        let mut slices = run(
            &mut p,
            &[sw(1_200, 0, 0, 0, 101), sw(1_300, 0, 101, BLOCKED, 0)],
        );
        p.close_window(3_000);
        p.finish([(PID, 101)], |_, _| Some(0), &mut |s| slices.push(s));
        assert_eq!(
            slices.iter().map(span).collect::<Vec<_>>(),
            [(101, 0, 1_200, 1_300)]
        );
    }

    #[test]
    fn lost_records_drop_the_pairing_instead_of_guessing() {
        let mut p = SwitchPairer::new(1_000);
        let slices = run(
            &mut p,
            &[
                sw(1_100, 0, 0, 0, 101),
                sw(1_200, 0, 101, BLOCKED, 0),
                // Switch-in lost: this switch-out has nothing to close.
                sw(1_400, 1, 101, BLOCKED, 0),
                sw(1_500, 0, 0, 0, 101),
                // Switch-out lost: a second switch-in replaces the first.
                sw(1_700, 1, 0, 0, 101),
                sw(1_800, 1, 101, 0, 0),
                // A switch-out on another CPU than the switch-in.
                sw(1_900, 0, 0, 0, 101),
                sw(2_000, 1, 101, 0, 0),
            ],
        );
        assert_eq!(
            slices.iter().map(span).collect::<Vec<_>>(),
            [(101, 0, 1_100, 1_200), (101, 1, 1_700, 1_800)]
        );
        assert_eq!(p.unpaired(), 3);
    }

    #[test]
    fn one_record_can_end_one_slice_and_start_another() {
        let mut p = SwitchPairer::new(0);
        let slices = run(
            &mut p,
            &[
                sw(10, 0, 0, 0, 101),
                sw(20, 0, 101, 0, 102),
                sw(35, 0, 102, BLOCKED, 101),
            ],
        );
        assert_eq!(
            slices.iter().map(span).collect::<Vec<_>>(),
            [(101, 0, 10, 20), (102, 0, 20, 35)]
        );
    }

    #[test]
    fn decodes_records_and_rejects_short_ones() {
        let ev = sw(42, 1, 101, BLOCKED, 102);
        // SAFETY: SwitchEvent is #[repr(C)] plain data; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const SwitchEvent).cast::<u8>(),
                size_of::<SwitchEvent>(),
            )
        };
        assert_eq!(decode_switch(bytes), Some(ev));
        assert_eq!(decode_switch(&bytes[..8]), None);
    }

    #[test]
    fn a_slice_is_a_complete_event_on_its_thread_with_the_cpu() {
        let sink = MemorySink::default();
        let mut shared = Shared::new(TraceWriter::new(Box::new(sink.clone()), 1));
        let s = Slice {
            tgid: PID,
            tid: 101,
            cpu: Some(1),
            start_ns: 2_000,
            end_ns: 7_500,
            end: SliceEnd::Blocked,
            clipped_start: true,
        };
        assert!(write_slice(&mut shared, &s));
        assert!(!write_slice(&mut shared, &s), "over the limit of 1");
        shared.writer.close(&serde_json::json!({})).unwrap();
        let v = sink.json();
        let ev = v["traceEvents"].as_array().unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["ph"], "X");
        assert_eq!(ev[0]["cat"], "sched");
        assert_eq!(ev[0]["name"], "on-cpu");
        assert_eq!(
            (ev[0]["pid"].as_u64(), ev[0]["tid"].as_u64()),
            (Some(100), Some(101))
        );
        assert_eq!(
            (ev[0]["ts"].as_f64(), ev[0]["dur"].as_f64()),
            (Some(2.0), Some(5.5))
        );
        assert_eq!(
            ev[0]["args"],
            serde_json::json!({"cpu": 1, "end": "blocked", "clipped": true})
        );
    }
}
