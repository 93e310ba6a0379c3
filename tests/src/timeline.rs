//! Reading and checking `--trace` files (Chrome/Perfetto trace-event JSON, JSON Object Format).

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde_json::Value;

use crate::{Profiler, Workload, temp_path};

/// Parses a trace file and checks its shape: `traceEvents` (an array), `displayTimeUnit`,
/// `otherData`; every event has `ph`, `pid` and `tid`; every non-metadata event a numeric `ts`;
/// complete slices a `dur` ≥ 0; async begins and ends pair up by (`cat`, `id`).
pub fn read_trace(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no trace at {}: {e}", path.display()));
    let trace: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "the trace is not valid JSON ({e}); it ends with {:?}",
            tail(&text)
        )
    });
    assert_eq!(trace["displayTimeUnit"], "ms");
    assert!(trace["otherData"].is_object(), "no otherData");
    let events = trace["traceEvents"].as_array().expect("traceEvents array");
    let mut open: HashMap<(String, u64), i64> = HashMap::new();
    for e in events {
        let ph = e["ph"]
            .as_str()
            .unwrap_or_else(|| panic!("event without ph: {e}"));
        assert!(
            e["pid"].is_u64() && e["tid"].is_u64(),
            "event without pid/tid: {e}"
        );
        if ph == "M" {
            continue;
        }
        assert!(e["ts"].is_number(), "event without ts: {e}");
        assert!(
            e["name"].is_string() && e["cat"].is_string(),
            "unnamed event: {e}"
        );
        match ph {
            "X" => assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "bad dur: {e}"),
            "b" | "e" => {
                let key = (cat(e).to_owned(), e["id"].as_u64().expect("async id"));
                *open.entry(key).or_default() += if ph == "b" { 1 } else { -1 };
            }
            "i" => assert_eq!(e["s"], "t", "instant scope: {e}"),
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    let unbalanced: Vec<_> = open.iter().filter(|(_, n)| **n != 0).collect();
    assert!(
        unbalanced.is_empty(),
        "async begins without ends: {unbalanced:?}"
    );
    trace
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(200);
    text.get(start..).unwrap_or(text)
}

fn cat(e: &Value) -> &str {
    e["cat"].as_str().unwrap_or("")
}

pub fn events(trace: &Value) -> &[Value] {
    trace["traceEvents"].as_array().expect("traceEvents")
}

/// Non-metadata events.
pub fn timed_events(trace: &Value) -> Vec<&Value> {
    events(trace).iter().filter(|e| e["ph"] != "M").collect()
}

/// Events of category `cat` and phase `ph`.
pub fn of_kind<'a>(trace: &'a Value, category: &str, ph: &str) -> Vec<&'a Value> {
    events(trace)
        .iter()
        .filter(|e| cat(e) == category && e["ph"] == ph)
        .collect()
}

/// On-CPU slices of thread `tid`, sorted by start: (start µs, duration µs, cpu).
pub fn oncpu_slices(trace: &Value, tid: u64) -> Vec<(f64, f64, Option<u64>)> {
    let mut s: Vec<_> = of_kind(trace, "sched", "X")
        .into_iter()
        .filter(|e| e["tid"].as_u64() == Some(tid))
        .map(|e| {
            (
                e["ts"].as_f64().unwrap(),
                e["dur"].as_f64().unwrap(),
                e["args"]["cpu"].as_u64(),
            )
        })
        .collect();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    s
}

/// Asserts that a thread's on-CPU slices never overlap (a thread runs on one CPU at a time).
pub fn assert_no_overlap(slices: &[(f64, f64, Option<u64>)], what: &str) {
    for w in slices.windows(2) {
        // Timestamps are µs with ns precision; allow rounding of the last digit.
        assert!(
            w[1].0 + 0.002 >= w[0].0 + w[0].1,
            "{what}: slices overlap: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// `thread_name` (or `process_name` with `process`) metadata: (pid, tid) → name.
pub fn names(trace: &Value, process: bool) -> BTreeMap<(u64, u64), String> {
    let kind = if process {
        "process_name"
    } else {
        "thread_name"
    };
    events(trace)
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == kind)
        .map(|e| {
            (
                (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()),
                e["args"]["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Attaches `profiler attach --pid PID --no-http --format json --output … --trace …  EXTRA` to
/// a `sched-workload` started with `args`, lets it run once attached, and returns its ground
/// truth, the report, the trace and the profiler's stderr. The session ends when the workload
/// exits, unless `extra` ends it first (`--duration`).
pub fn trace_workload(args: &[&str], extra: &[&str]) -> (Value, Value, Value, Vec<String>) {
    let mut workload = Workload::start(args);
    let tag = format!("timeline-{}-{}", args.join("-"), extra.len());
    let (out, trace_path) = (
        temp_path(&format!("{tag}.json")),
        temp_path(&format!("{tag}.trace.json")),
    );
    let pid = workload.pid().to_string();
    let mut cmd = vec![
        "attach",
        "--pid",
        &pid,
        "--no-http",
        "--interval",
        "200ms",
        "--format",
        "json",
        "--output",
        out.to_str().expect("utf-8"),
        "--trace",
        trace_path.to_str().expect("utf-8"),
    ];
    cmd.extend(extra);
    let mut profiler = Profiler::start(&cmd);
    profiler.wait_attached();
    workload.go();
    let (status, _, stderr) = profiler.wait();
    let truth = workload.finish();
    assert!(status.success(), "profiler failed: {stderr:?}");
    let report = crate::read_report(&out);
    let trace = read_trace(&trace_path);
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(trace_path);
    (truth, report, trace, stderr)
}
