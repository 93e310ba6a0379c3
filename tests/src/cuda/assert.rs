//! Assertions on what a session counted: calls and errors per API, launch totals, copies,
//! memory, syncs, names, streams, libraries.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

use super::{
    kernels::{Naming, assert_kernels, driver_kernel_launches},
    report::{array, count, num, parse_hex, truth_calls},
    run::CudaRun,
    scenario::*,
};

/// The harness itself: what the stub libraries counted and the calls the workload timed equal
/// the scenario's constants here.
pub fn assert_truth_matches_scenario(truth: &Value, seen: Seen) {
    let expected = expected_calls(seen);
    assert_eq!(
        truth_calls(truth),
        expected,
        "calls the stub libraries counted (left) vs the scenario's constants (right)"
    );
    for (api, n) in &expected {
        if api.starts_with("cuda") || api.starts_with("cuModule") || api.starts_with("cuLibrary") {
            continue;
        }
        let timed = truth["host_us"][api]["calls"].as_u64().unwrap_or(0);
        assert_eq!(timed, *n, "{api}: calls the workload timed vs the scenario");
    }
}

/// Per-API call and error counts are exactly the scenario's; no other API is listed with calls.
pub fn assert_api_counts(cuda: &Value, seen: Seen) {
    let apis = array(&cuda["apis"], "cuda.apis");
    assert!(
        !apis.is_empty(),
        "cuda.apis is empty: the profiler saw no CUDA call at all; cuda.libraries: {}",
        cuda["libraries"]
    );
    // (calls, errors) per API: every API reported with calls, and every API expected.
    let mut reported: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for a in apis {
        let name = a["api"].as_str().expect("api name").to_owned();
        let calls = count(&a["calls"], &format!("apis[{name}].calls"));
        let errs = count(&a["errors"], &format!("apis[{name}].errors"));
        println!("api {name}: calls {calls} errors {errs}");
        if calls > 0 {
            reported.insert(name, (calls, errs));
        }
    }
    let errors = expected_errors(seen);
    let expected: BTreeMap<String, (u64, u64)> = expected_calls(seen)
        .into_iter()
        .map(|(api, n)| (api.to_owned(), (n, errors.get(api).copied().unwrap_or(0))))
        .collect();
    let diff: Vec<String> = expected
        .keys()
        .chain(reported.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|api| reported.get(*api) != expected.get(*api))
        .map(|api| {
            format!(
                "{api}: profiler {:?}, expected {:?}",
                reported.get(api),
                expected.get(api)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "per-API (calls, errors) differ (None: not listed):\n  {}",
        diff.join("\n  ")
    );
}

/// `cuda.launches`: totals, graph and runtime launches.
pub fn assert_launch_totals(cuda: &Value, unnamed: u64) {
    let l = &cuda["launches"];
    println!(
        "launches: total {} per_s {} graph {} runtime {} runtime_without_driver {} unnamed {} \
         other {}",
        l["total"],
        l["per_s"],
        l["graph_launches"],
        l["runtime_launches"],
        l["runtime_launches_without_driver"],
        l["unnamed"],
        l["other"]
    );
    let expect = |field: &str, want: u64| {
        let got = count(&l[field], &format!("launches.{field}"));
        assert_eq!(
            got, want,
            "launches.{field}: profiler {got}, expected {want}"
        );
    };
    expect("total", total_launches());
    expect("graph_launches", N_GRAPH);
    expect("runtime_launches", N_SCALE + N_GELU);
    expect("runtime_launches_without_driver", 0);
    expect("unnamed", unnamed);
    assert!(
        num(&l["per_s"], "launches.per_s") > 0.0,
        "launches.per_s: {}",
        l["per_s"]
    );
}

/// `cuda.copies`: calls and bytes per direction, exactly.
pub fn assert_copies(cuda: &Value) {
    let expected = expected_copies();
    let mut reported = BTreeMap::new();
    for c in array(&cuda["copies"], "cuda.copies") {
        let dir = c["direction"].as_str().expect("direction").to_owned();
        let calls = count(&c["calls"], &format!("copies[{dir}].calls"));
        let bytes = count(&c["bytes"], &format!("copies[{dir}].bytes"));
        println!(
            "copies {dir}: calls {calls} bytes {bytes} bytes/s {}",
            c["bytes_per_s"]
        );
        if calls > 0 {
            reported.insert(dir, (calls, bytes));
        }
    }
    let expected: BTreeMap<String, (u64, u64)> = expected
        .into_iter()
        .map(|(d, v)| (d.to_owned(), v))
        .collect();
    assert_eq!(
        reported, expected,
        "copies per direction (calls, bytes): profiler (left) vs expected (right)"
    );
}

/// `cuda.memory`, exactly.
pub fn assert_memory(cuda: &Value, seen: Seen) {
    let m = &cuda["memory"];
    println!("memory: {m}");
    let field = |f: &str| count(&m[f], &format!("memory.{f}"));
    let got = Memory {
        allocations: field("allocations"),
        allocated_bytes: field("allocated_bytes"),
        frees: field("frees"),
        freed_bytes: field("freed_bytes"),
        frees_unknown: field("frees_unknown"),
        live_bytes: field("live_bytes"),
        peak_live_bytes: field("peak_live_bytes"),
    };
    assert_eq!(
        got,
        expected_memory(seen),
        "memory: profiler (left) vs expected (right)"
    );
}

/// `cuda.sync`: calls exactly; one thread (the workload's) made them all.
pub fn assert_sync_counts(run: &CudaRun) {
    let s = &run.cuda()["sync"];
    println!("sync: {s}");
    let want = N_SYNC_S1 + N_SYNC_S2 + N_CTX_SYNC + N_EVENT_SYNC;
    assert_eq!(count(&s["calls"], "sync.calls"), want, "sync.calls");
    let threads = array(&s["threads"], "sync.threads");
    assert_eq!(threads.len(), 1, "sync.threads: {threads:?}");
    let t = &threads[0];
    assert_eq!(count(&t["pid"], "sync.threads[0].pid"), run.pid());
    assert_eq!(count(&t["tid"], "sync.threads[0].tid"), run.tid());
    assert_eq!(count(&t["calls"], "sync.threads[0].calls"), want);
    assert_eq!(t["comm"], run.comm().as_str(), "sync.threads[0].comm");
}

/// `cuda.names`: the name events seen: successful `cuModuleGetFunction`s (the failed lookup
/// names nothing), the runtime's `cuLibraryGetKernel`s, one name cut. None after a late attach.
pub fn assert_names(cuda: &Value, seen: Seen) {
    let n = &cuda["names"];
    println!("names: {n}");
    let want = match seen {
        Seen::Everything => (
            N_MODULE_LOOKUPS - N_MODULE_LOOKUP_ERRORS,
            N_LIBRARY_LOOKUPS,
            1,
        ),
        Seen::AfterReady => (0, 0, 0),
    };
    let got = (
        count(&n["functions"], "names.functions"),
        count(&n["kernels"], "names.kernels"),
        count(&n["truncated"], "names.truncated"),
    );
    assert_eq!(
        got, want,
        "names (functions, kernels, truncated): profiler (left) vs expected (right)"
    );
}

/// `cuda.streams`: launches and syncs per stream of the workload.
pub fn assert_streams(run: &CudaRun) {
    let cuda = run.cuda();
    let streams = array(&cuda["streams"], "cuda.streams");
    for s in streams {
        println!(
            "stream {} (pid {}): launches {} syncs {} gpu_busy_estimate_ms {}",
            s["stream"], s["pid"], s["launches"], s["syncs"], s["gpu_busy_estimate_ms"]
        );
    }
    for (key, launches, syncs) in STREAMS {
        let handle = run.handle("streams", key);
        let s = streams
            .iter()
            .find(|s| {
                s["pid"].as_u64() == Some(run.pid())
                    && s["stream"].as_str().and_then(parse_hex) == Some(handle)
            })
            .unwrap_or_else(|| panic!("stream {key} ({handle:#x}) not in the report"));
        assert_eq!(
            count(&s["launches"], "launches"),
            *launches,
            "stream {key} launches"
        );
        assert_eq!(count(&s["syncs"], "syncs"), *syncs, "stream {key} syncs");
    }
    assert_eq!(cuda["gpu_busy_is_estimate"], true);
}

/// `cuda.libraries`: the stub driver and runtime, at `lib_dir` as the process maps them.
pub fn assert_libraries(run: &CudaRun, lib_dir: &Path) {
    assert_libraries_are(
        run,
        &[
            (&lib_dir.join("libcuda.so.1"), "driver"),
            (&lib_dir.join("libcudart.so.12"), "runtime"),
        ],
    );
}

/// `cuda.libraries` of the workload's process: exactly `expected` (path as the process maps
/// it, kind), each with probes and no error.
pub fn assert_libraries_are(run: &CudaRun, expected: &[(&Path, &str)]) {
    let libs = array(&run.cuda()["libraries"], "cuda.libraries");
    let ours: Vec<&Value> = libs
        .iter()
        .filter(|l| l["pid"].as_u64() == Some(run.pid()))
        .collect();
    for (path, kind) in expected {
        let file = path.display();
        let l = ours
            .iter()
            .find(|l| l["path"].as_str() == path.to_str())
            .unwrap_or_else(|| panic!("{file} not in cuda.libraries: {libs:?}"));
        assert_eq!(l["kind"], *kind, "kind of {file}");
        assert!(l["error"].is_null(), "{file}: {}", l["error"]);
        assert!(count(&l["probes"], "probes") > 0, "{file}: no probes");
    }
    assert_eq!(
        ours.len(),
        expected.len(),
        "libraries of the workload: exactly {expected:?}: {ours:?}"
    );
}

/// No event lost, no call left open, no malformed record.
pub fn assert_no_loss(cuda: &Value) {
    assert_eq!(count(&cuda["events_lost"], "events_lost"), 0, "events_lost");
    assert_eq!(
        count(&cuda["malformed_records"], "malformed_records"),
        0,
        "malformed_records"
    );
    assert_eq!(
        count(&cuda["calls_unfinished"], "calls_unfinished"),
        0,
        "calls_unfinished"
    );
}

/// Everything countable in a session over the main scenario.
pub fn assert_scenario_counts(run: &CudaRun, seen: Seen, naming: Naming, top: usize) {
    let cuda = run.cuda();
    assert_truth_matches_scenario(&run.truth, seen);
    assert_no_loss(cuda);
    assert_api_counts(cuda, seen);
    let unnamed = match naming {
        Naming::Named => 0,
        Naming::DriverUnresolved => driver_kernel_launches(),
    };
    assert_launch_totals(cuda, unnamed);
    assert_kernels(run, naming, top);
    assert_copies(cuda);
    assert_memory(cuda, seen);
    assert_sync_counts(run);
    assert_streams(run);
    assert_names(cuda, seen);
}
