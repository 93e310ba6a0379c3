//! One trace event of the Chrome/Perfetto trace-event format (JSON Object Format), as written to
//! `--trace`: what every kind of event shares, with its arguments typed by the caller.

use serde::Serialize;

/// Phases used here (the `ph` field).
pub mod phase {
    /// A complete slice: `ts` and `dur` (on-CPU slices, timed CUDA calls).
    pub const COMPLETE: &str = "X";
    /// An instant on the thread's track (entry-only CUDA calls).
    pub const INSTANT: &str = "i";
    /// Start and end of a nestable async slice, matched by `cat` and `id` (requests).
    pub const ASYNC_BEGIN: &str = "b";
    pub const ASYNC_END: &str = "e";
    /// Process and thread names.
    pub const METADATA: &str = "M";
}

/// Microseconds (the format's unit) from CLOCK_MONOTONIC nanoseconds, ns precision kept.
pub fn micros(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// One entry of `traceEvents`. Fields that are `None` are left out.
#[derive(Debug, Serialize)]
pub struct TraceEvent<'a, A: Serialize> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub cat: &'static str,
    pub ph: &'static str,
    /// µs; metadata events have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<f64>,
    /// µs, complete slices only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dur: Option<f64>,
    pub pid: u32,
    pub tid: u32,
    /// Async slices: begin and end share it (unique per session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Instants: the scope (`t` = thread).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s: Option<&'static str>,
    pub args: A,
}

impl<'a, A: Serialize> TraceEvent<'a, A> {
    /// A complete slice `[start_ns, end_ns]` on thread `tid` of `pid`.
    pub fn complete(
        name: &'a str,
        cat: &'static str,
        (pid, tid): (u32, u32),
        start_ns: u64,
        end_ns: u64,
        args: A,
    ) -> Self {
        Self {
            name,
            cat,
            ph: phase::COMPLETE,
            ts: Some(micros(start_ns)),
            dur: Some(micros(end_ns.saturating_sub(start_ns))),
            pid,
            tid,
            id: None,
            s: None,
            args,
        }
    }

    /// A thread-scoped instant at `ts_ns`.
    pub fn instant(
        name: &'a str,
        cat: &'static str,
        (pid, tid): (u32, u32),
        ts_ns: u64,
        args: A,
    ) -> Self {
        Self {
            name,
            cat,
            ph: phase::INSTANT,
            ts: Some(micros(ts_ns)),
            dur: None,
            pid,
            tid,
            id: None,
            s: Some("t"),
            args,
        }
    }

    /// One end (`phase::ASYNC_BEGIN` or `phase::ASYNC_END`) of async slice `id` of process `pid`.
    pub fn async_edge(
        ph: &'static str,
        name: &'a str,
        cat: &'static str,
        pid: u32,
        id: u64,
        ts_ns: u64,
        args: A,
    ) -> Self {
        Self {
            name,
            cat,
            ph,
            ts: Some(micros(ts_ns)),
            dur: None,
            pid,
            tid: pid,
            id: Some(id),
            s: None,
            args,
        }
    }
}

/// `args` of a metadata event: `{"name": …}` or `{"sort_index": …}`.
#[derive(Debug, Serialize)]
pub struct MetaArgs<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_index: Option<i64>,
}

/// A metadata event (`process_name`, `thread_name`, `thread_sort_index`, …).
pub fn metadata<'a>(
    kind: &'a str,
    (pid, tid): (u32, u32),
    args: MetaArgs<'a>,
) -> TraceEvent<'a, MetaArgs<'a>> {
    TraceEvent {
        name: kind,
        cat: "",
        ph: phase::METADATA,
        ts: None,
        dur: None,
        pid,
        tid,
        id: None,
        s: None,
        args,
    }
}

/// Arguments an event kind has none of.
#[derive(Debug, Serialize)]
pub struct NoArgs {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_keep_nanoseconds() {
        assert_eq!(micros(1_234_567_891_234), 1_234_567_891.234);
        assert_eq!(micros(0), 0.0);
    }

    #[test]
    fn complete_slice_has_ts_dur_and_no_async_fields() {
        let ev = TraceEvent::complete("on-cpu", "sched", (10, 11), 2_000, 5_500, NoArgs {});
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["ph"], "X");
        assert_eq!(v["ts"], 2.0);
        assert_eq!(v["dur"], 3.5);
        assert_eq!(v["pid"], 10);
        assert_eq!(v["tid"], 11);
        assert!(v.get("id").is_none() && v.get("s").is_none());
    }

    #[test]
    fn metadata_has_no_timestamp_or_category() {
        let ev = metadata(
            "thread_name",
            (1, 2),
            MetaArgs {
                name: Some("worker"),
                sort_index: None,
            },
        );
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["ph"], "M");
        assert_eq!(v["args"], serde_json::json!({"name": "worker"}));
        assert!(v.get("ts").is_none() && v.get("cat").is_none());
    }
}
