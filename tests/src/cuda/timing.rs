//! Assertions on host times: per API (against what the workload measured and the stub's
//! nominal times) and the sync wait.

use super::{
    apis::{ALWAYS_TIMED_APIS, LAUNCH_LATENCY_APIS, SYNC_APIS, nominal_us},
    report::{api, api_calls, count, num},
    run::{CudaRun, Durations},
};
use crate::http::assert_close;

/// The relative tolerance of host times.
pub const TIME_TOLERANCE: f64 = 0.10;

/// Host-time fields of `api`: timed (where the stub busy-waits: between that wait and what the
/// workload measured around its calls, and p50 within 10% of the wait when there are ≥ 5
/// calls), or untimed (`timed: false`, fields null).
pub fn assert_api_timing(run: &CudaRun, name: &str, timed: bool, d: Durations) {
    let cuda = run.cuda();
    let a = api(cuda, name).unwrap_or_else(|| panic!("{name} not in cuda.apis"));
    println!(
        "{name}: timed {} total_ms {} mean {} p50 {} p90 {} p99 {} max {} µs; workload measured \
         {}",
        a["timed"],
        a["total_ms"],
        a["mean_us"],
        a["p50_us"],
        a["p90_us"],
        a["p99_us"],
        a["max_us"],
        run.truth["host_us"][name]
    );
    assert_eq!(a["timed"], timed, "{name}.timed");
    let fields = [
        "total_ms", "mean_us", "p50_us", "p90_us", "p99_us", "max_us",
    ];
    if !timed {
        for f in fields {
            assert!(
                a[f].is_null(),
                "{name}.{f} should be null untimed: {}",
                a[f]
            );
        }
        return;
    }
    for f in fields {
        num(&a[f], &format!("{name}.{f}"));
    }
    let (p50, p90, p99, max) = (
        num(&a["p50_us"], "p50"),
        num(&a["p90_us"], "p90"),
        num(&a["p99_us"], "p99"),
        num(&a["max_us"], "max"),
    );
    assert!(
        p50 <= p90 * 1.01 && p90 <= p99 * 1.01 && p99 <= max * 1.01,
        "{name}: percentiles out of order: {a}"
    );
    let Some(nominal) = nominal_us(name, d) else {
        return;
    };
    let calls = count(&a["calls"], "calls");
    let truth = &run.truth["host_us"][name];
    let t = |f: &str| num(&truth[f], &format!("truth host_us.{name}.{f}"));
    let nominal = nominal as f64;
    // Every call's probe window holds the stub's busy-wait and lies inside the workload's
    // clock reads around the call; order statistics keep that per-call order (the workload's
    // p50 and the histogram's use the same rank, ⌈n/2⌉).
    assert_bracketed(
        &format!("{name} mean"),
        num(&a["mean_us"], "mean"),
        nominal,
        t("mean_us"),
    );
    assert_bracketed(&format!("{name} p50"), p50, nominal, t("p50_us"));
    assert_bracketed(&format!("{name} max"), max, nominal, t("max_us"));
    assert_bracketed(
        &format!("{name} total"),
        num(&a["total_ms"], "total_ms") * 1000.0,
        nominal * calls as f64,
        t("total_us"),
    );
    if calls >= 5 {
        assert_close(
            &format!("{name} p50 vs the stub's {nominal} µs"),
            p50,
            nominal,
            TIME_TOLERANCE,
            0.0,
        );
    }
}

/// Asserts `inner ≤ measured ≤ outer` (µs): `inner` is the time the stub spent busy-waiting,
/// `outer` what the workload measured around the same calls, so a host time the profiler
/// takes between its entry and return probes lies between them whatever preempted the
/// workload outside the probes. The slack covers the histogram's bucket width (3 significant
/// digits: ≤ 0.1%) and the report's rounding to ns.
pub fn assert_bracketed(what: &str, measured_us: f64, inner_us: f64, outer_us: f64) {
    let slack = |v: f64| v * 0.002 + 0.002;
    println!(
        "{what}: stub busy {inner_us:.1} ≤ profiler {measured_us:.1} ≤ workload measured \
         {outer_us:.1} µs"
    );
    assert!(
        measured_us >= inner_us - slack(inner_us) && measured_us <= outer_us + slack(outer_us),
        "{what}: profiler {measured_us:.1} µs is outside [{inner_us:.1}, {outer_us:.1}] µs \
         (the stub's busy-wait, the workload's own measurement around the calls)"
    );
}

/// `cuda.sync.wait_ms` (and the one thread's): between the stub's busy-waits in the sync calls
/// and what the workload measured around them.
pub fn assert_sync_wait(run: &CudaRun, d: Durations) {
    let s = &run.cuda()["sync"];
    let host = |api: &str, f: &str| num(&run.truth["host_us"][api][f], api);
    let outer_us: f64 = SYNC_APIS.iter().map(|a| host(a, "total_us")).sum();
    let calls: f64 = SYNC_APIS.iter().map(|a| host(a, "calls")).sum();
    let inner_us = calls * nominal_us("cuStreamSynchronize", d).unwrap_or(0) as f64;
    assert_bracketed(
        "sync.wait_ms (as µs)",
        num(&s["wait_ms"], "sync.wait_ms") * 1000.0,
        inner_us,
        outer_us,
    );
    assert_bracketed(
        "sync.threads[0].wait_ms (as µs)",
        num(&s["threads"][0]["wait_ms"], "sync.threads[0].wait_ms") * 1000.0,
        inner_us,
        outer_us,
    );
}

/// Every API's timing fields, with launches timed or not.
pub fn assert_timing(run: &CudaRun, launch_latency: bool, d: Durations) {
    let cuda = run.cuda();
    let mode = if launch_latency {
        "timed"
    } else {
        "entry-only"
    };
    assert_eq!(cuda["launch_latency"], mode, "cuda.launch_latency");
    for name in LAUNCH_LATENCY_APIS {
        assert_api_timing(run, name, launch_latency, d);
    }
    for name in ALWAYS_TIMED_APIS {
        if api_calls(cuda, name) > 0 {
            assert_api_timing(run, name, true, d);
        }
    }
    assert_sync_wait(run, d);
}
