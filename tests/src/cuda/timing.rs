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

/// Host-time fields of `api`: timed (within 10% of what the workload measured around its
/// calls, and for p50 of the stub's nominal time where it sets one and there are ≥ 5 calls),
/// or untimed (`timed: false`, fields null).
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
    let truth = &run.truth["host_us"][name];
    let t = |f: &str| num(&truth[f], &format!("truth host_us.{name}.{f}"));
    assert_close(
        &format!("{name} mean vs the workload's"),
        num(&a["mean_us"], "mean"),
        t("mean_us"),
        TIME_TOLERANCE,
        0.0,
    );
    assert_close(
        &format!("{name} p50 vs the workload's"),
        p50,
        t("p50_us"),
        TIME_TOLERANCE,
        0.0,
    );
    assert_close(
        &format!("{name} total vs the workload's"),
        num(&a["total_ms"], "total_ms") * 1000.0,
        t("total_us"),
        TIME_TOLERANCE,
        0.0,
    );
    if count(&a["calls"], "calls") >= 5 {
        assert_close(
            &format!("{name} p50 vs the stub's {nominal} µs"),
            p50,
            nominal as f64,
            TIME_TOLERANCE,
            0.0,
        );
    }
}

/// `cuda.sync.wait_ms` (and the one thread's) within 10% of the sync time the workload
/// measured.
pub fn assert_sync_wait(run: &CudaRun) {
    let s = &run.cuda()["sync"];
    let truth_ms: f64 = SYNC_APIS
        .iter()
        .map(|a| num(&run.truth["host_us"][a]["total_us"], a) / 1000.0)
        .sum();
    assert_close(
        "sync.wait_ms (as µs) vs the workload's",
        num(&s["wait_ms"], "sync.wait_ms") * 1000.0,
        truth_ms * 1000.0,
        TIME_TOLERANCE,
        0.0,
    );
    assert_close(
        "sync.threads[0].wait_ms (as µs) vs the workload's",
        num(&s["threads"][0]["wait_ms"], "sync.threads[0].wait_ms") * 1000.0,
        truth_ms * 1000.0,
        TIME_TOLERANCE,
        0.0,
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
    assert_sync_wait(run);
}
