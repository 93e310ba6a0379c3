//! On-CPU slices from `sched_switch_trace`'s records: each record is a whole interval a watched
//! thread spent on a CPU (from the CPU's previous switch to the one that took the CPU from it),
//! so nothing needs pairing and a lost record loses only its own interval.
//!
//! Slices are clipped to the session window: an interval that began before the program was
//! attached (the CPU had not switched since: `start_ns` 0) starts at the window start, one that
//! ends after the window end is cut there. Threads still on a CPU at the end get a slice from
//! that CPU's last switch to the end ([`OnCpuSlicer::finish`]).

use profiler_common::OnCpuEvent;
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::{Shared, event::TraceEvent};

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
}

/// One interval a thread spent on a CPU, within the session window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub tgid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub end: SliceEnd,
    /// It began before the window and was cut at the window start.
    pub clipped_start: bool,
}

/// Decodes one `ONCPU_EVENTS` record; `None` when it is short.
pub fn decode_oncpu(record: &[u8]) -> Option<OnCpuEvent> {
    crate::util::pod::read_record(record)
}

#[derive(Debug)]
pub struct OnCpuSlicer {
    window_start_ns: u64,
    window_end_ns: u64,
    /// Per thread, the end of its last slice (guards the end-of-session slices).
    last_end: FxHashMap<u32, u64>,
    records: u64,
}

impl OnCpuSlicer {
    /// `window_start_ns`: when the program was attached (CLOCK_MONOTONIC).
    pub fn new(window_start_ns: u64) -> Self {
        Self {
            window_start_ns,
            window_end_ns: u64::MAX,
            last_end: FxHashMap::default(),
            records: 0,
        }
    }

    /// Ends the window: later intervals are cut here.
    pub fn close_window(&mut self, end_ns: u64) {
        self.window_end_ns = end_ns.max(self.window_start_ns);
    }

    /// The slice of one record, if any of it falls in the window.
    pub fn on_record(&mut self, ev: &OnCpuEvent) -> Option<Slice> {
        self.records += 1;
        let end = if ev.preempted != 0 {
            SliceEnd::Preempted
        } else {
            SliceEnd::Blocked
        };
        let slice = self.clip(ev.tgid, ev.tid, ev.cpu, ev.start_ns, ev.end_ns, end)?;
        let last = self.last_end.entry(ev.tid).or_default();
        *last = (*last).max(slice.end_ns);
        Some(slice)
    }

    /// Slices of the threads still on a CPU at the window end. `on_cpu_now`: (tgid, tid, cpu)
    /// of watched threads that are on a CPU by the scheduler accounting; `last_switch_ns`: per
    /// CPU, when it last switched (0 = not since attach: the thread ran all along). A thread
    /// whose last slice ended after that CPU's last switch is not on it: skipped.
    pub fn finish(
        &mut self,
        on_cpu_now: impl IntoIterator<Item = (u32, u32, u32)>,
        last_switch_ns: &[u64],
    ) -> Vec<Slice> {
        let end = self.window_end_ns;
        let mut slices = Vec::new();
        for (tgid, tid, cpu) in on_cpu_now {
            let Some(&since) = last_switch_ns.get(cpu as usize) else {
                continue;
            };
            if self.last_end.get(&tid).is_some_and(|&e| e > since) {
                continue;
            }
            if let Some(s) = self.clip(tgid, tid, cpu, since, end, SliceEnd::SessionEnd) {
                self.last_end.insert(tid, s.end_ns);
                slices.push(s);
            }
        }
        slices
    }

    /// Records seen.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn clip(
        &self,
        tgid: u32,
        tid: u32,
        cpu: u32,
        start_ns: u64,
        end_ns: u64,
        end: SliceEnd,
    ) -> Option<Slice> {
        let start = start_ns.max(self.window_start_ns);
        let (end_ns, end) = if end_ns > self.window_end_ns {
            (self.window_end_ns, SliceEnd::SessionEnd)
        } else {
            (end_ns, end)
        };
        (end_ns > start).then_some(Slice {
            tgid,
            tid,
            cpu,
            start_ns: start,
            end_ns,
            end,
            clipped_start: start_ns < self.window_start_ns,
        })
    }
}

pub const CATEGORY: &str = "sched";
pub const SLICE_NAME: &str = "on-cpu";

/// `args` of an on-CPU slice.
#[derive(Debug, Serialize)]
pub struct SliceArgs {
    pub cpu: u32,
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
    use crate::sinks::timeline::{testing::MemorySink, writer::TraceWriter};

    const PID: u32 = 100;

    fn rec(start: u64, end: u64, tid: u32, cpu: u32, preempted: bool) -> OnCpuEvent {
        OnCpuEvent {
            start_ns: start,
            end_ns: end,
            tgid: PID,
            tid,
            cpu,
            preempted: u32::from(preempted),
        }
    }

    fn span(s: &Slice) -> (u32, u32, u64, u64) {
        (s.tid, s.cpu, s.start_ns, s.end_ns)
    }

    #[test]
    fn a_record_is_a_whole_slice() {
        let mut p = OnCpuSlicer::new(1_000);
        let a = p.on_record(&rec(1_100, 1_300, 101, 0, true)).unwrap();
        let b = p.on_record(&rec(1_150, 1_400, 102, 1, false)).unwrap();
        assert_eq!(span(&a), (101, 0, 1_100, 1_300));
        assert_eq!(a.end, SliceEnd::Preempted);
        assert_eq!(span(&b), (102, 1, 1_150, 1_400));
        assert_eq!(b.end, SliceEnd::Blocked);
        assert!(!a.clipped_start && !b.clipped_start);
        assert_eq!(p.records(), 2);
    }

    #[test]
    fn intervals_from_before_the_window_start_at_it() {
        let mut p = OnCpuSlicer::new(1_000);
        // The CPU had not switched since attach: the thread ran since before.
        let a = p.on_record(&rec(0, 1_250, 101, 1, false)).unwrap();
        assert_eq!(span(&a), (101, 1, 1_000, 1_250));
        assert!(a.clipped_start);
        let b = p.on_record(&rec(990, 1_100, 102, 0, false)).unwrap();
        assert_eq!(span(&b), (102, 0, 1_000, 1_100));
        assert!(b.clipped_start);
        // Entirely before the window (a record from just before the attach completed).
        assert_eq!(p.on_record(&rec(900, 950, 103, 0, false)), None);
        assert_eq!(p.records(), 3);
    }

    #[test]
    fn intervals_past_the_window_end_are_cut() {
        let mut p = OnCpuSlicer::new(1_000);
        p.close_window(2_000);
        let a = p.on_record(&rec(1_500, 2_100, 101, 0, true)).unwrap();
        assert_eq!(span(&a), (101, 0, 1_500, 2_000));
        assert_eq!(a.end, SliceEnd::SessionEnd);
        assert_eq!(p.on_record(&rec(2_050, 2_100, 101, 0, true)), None);
    }

    #[test]
    fn threads_on_a_cpu_at_the_end_run_from_its_last_switch() {
        let mut p = OnCpuSlicer::new(1_000);
        p.on_record(&rec(1_100, 1_200, 101, 0, true)).unwrap();
        p.close_window(3_000);
        // 101 got CPU 0 again at 1_500; 105 runs on CPU 1, which never switched since attach;
        // 106's CPU index is unknown to the map.
        let end = p.finish([(PID, 101, 0), (PID, 105, 1), (PID, 106, 7)], &[1_500, 0]);
        let spans: Vec<_> = end.iter().map(span).collect();
        assert_eq!(spans, [(101, 0, 1_500, 3_000), (105, 1, 1_000, 3_000)]);
        assert!(end.iter().all(|s| s.end == SliceEnd::SessionEnd));
        assert!(!end[0].clipped_start && end[1].clipped_start);
    }

    #[test]
    fn a_thread_that_left_its_cpu_after_the_last_switch_is_not_running() {
        // The scheduler accounting says 101 is on CPU 0, but its last slice ended after CPU 0's
        // last switch as the map shows it (the two disagree): no slice is invented.
        let mut p = OnCpuSlicer::new(1_000);
        p.on_record(&rec(1_100, 1_900, 101, 0, false)).unwrap();
        p.close_window(3_000);
        assert_eq!(p.finish([(PID, 101, 0)], &[1_800]), vec![]);
    }

    #[test]
    fn decodes_records_and_rejects_short_ones() {
        let ev = rec(42, 84, 101, 1, true);
        // SAFETY: OnCpuEvent is #[repr(C)] plain data; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const OnCpuEvent).cast::<u8>(),
                size_of::<OnCpuEvent>(),
            )
        };
        assert_eq!(decode_oncpu(bytes), Some(ev));
        assert_eq!(decode_oncpu(&bytes[..8]), None);
    }

    #[test]
    fn a_slice_is_a_complete_event_on_its_thread_with_the_cpu() {
        let sink = MemorySink::default();
        let mut shared = Shared::new(TraceWriter::new(Box::new(sink.clone()), 1));
        let s = Slice {
            tgid: PID,
            tid: 101,
            cpu: 1,
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
