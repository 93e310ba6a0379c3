//! CUDA driver/runtime metrics without a GPU: the profiler's uprobes on a stand-in
//! `libcuda.so.1` and `libcudart.so.12` (built by the tests, real symbols and C signatures),
//! under `cuda-workload`, which calls them a known number of times (tests/src/cuda/scenario.rs
//! holds the scenario), and `cuda-workload-static`, the same program with the runtime linked
//! in. Counts, bytes and kernel names are asserted exactly; host times within 10% of
//! what the workload measured around its own calls (the same preemptions and probe costs the
//! profiler sees) and, for medians, of the time the stub spins in each call.

use std::time::{SystemTime, UNIX_EPOCH};

use profiler_tests::{cuda::*, privileged, record_skip, temp_path};
use serde_json::Value;

/// Host time inside the stub's calls for the timing tests: launches, syncs, blocking copies.
/// Long enough that the probes' own cost (≈ 5 µs per uprobe + uretprobe pair on an idle VM,
/// 20 µs when it is loaded) stays well inside the 10% the medians are compared with.
const DURATIONS: Durations = Durations {
    launch_us: 500,
    sync_us: 2000,
    copy_us: 1000,
};

/// Kernels listed by name by default (`--cuda-top`): more than the scenario has.
const DEFAULT_TOP: usize = 15;

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The harness itself, without the profiler (nor root): the stubs export every symbol the
/// profiler probes; the workload's calls, as the stub libraries count them, equal the
/// scenario's constants (run from the start, and from the signal on with `--wait-for-signal`);
/// the stub spins for the times asked; `bench` makes exactly the calls asked; the static
/// variant makes the same calls through the runtime linked into itself.
#[test]
fn harness_stub_counts_are_exact() {
    let Some(stub) = stub_cuda("harness_stub_counts_are_exact") else {
        return;
    };
    let missing = missing_symbols(&stub.driver, PROBED_DRIVER_SYMBOLS);
    assert!(missing.is_empty(), "stub libcuda lacks {missing:?}");
    let missing = missing_symbols(&stub.runtime, PROBED_RUNTIME_SYMBOLS);
    assert!(missing.is_empty(), "stub libcudart lacks {missing:?}");

    let d = Durations {
        launch_us: 50,
        sync_us: 500,
        copy_us: 100,
    }
    .args();
    let truth = run_alone(stub, &refs(&d));
    println!("ground truth: {truth}");
    assert_truth_matches_scenario(&truth, Seen::Everything);
    for (api, nominal) in [
        ("cuLaunchKernel", 50.0),
        ("cuStreamSynchronize", 500.0),
        ("cuMemcpyHtoD", 100.0),
    ] {
        let p50 = truth["host_us"][api]["p50_us"].as_f64().expect("p50");
        assert!(
            (nominal..nominal * 1.1).contains(&p50),
            "{api}: the stub spun {p50} µs at p50, asked {nominal} µs"
        );
    }
    // Handles are distinct: kernels, streams.
    for group in ["functions", "streams"] {
        let mut handles: Vec<&str> = truth[group]
            .as_object()
            .expect(group)
            .values()
            .map(|v| v.as_str().expect("handle"))
            .collect();
        let n = handles.len();
        handles.sort();
        handles.dedup();
        assert_eq!(
            handles.len(),
            n,
            "{group} handles collide: {}",
            truth[group]
        );
    }

    let truth_path = temp_path("cuda-harness-truth.json");
    let mut waiting = WaitingWorkload::start(stub, &truth_path, &[]);
    waiting.go_and_wait();
    let text = std::fs::read_to_string(&truth_path).expect("truth");
    let _ = std::fs::remove_file(&truth_path);
    let truth: Value = serde_json::from_str(text.trim()).expect("truth JSON");
    assert_eq!(truth["waited_for_signal"], true);
    assert_truth_matches_scenario(&truth, Seen::AfterReady);

    let truth = run_alone_exe(stub, &stub.workload_static, &[]);
    println!("static runtime: ground truth: {truth}");
    assert_eq!(
        truth["runtime"],
        stub.workload_static.to_str().expect("utf-8"),
        "the static workload's runtime is the executable itself"
    );
    assert_truth_matches_scenario(&truth, Seen::Everything);

    for mode in ["bench", "bench-runtime"] {
        let truth = run_alone(stub, &[mode, "1000"]);
        println!(
            "{mode}: {} ns per call without probes",
            truth["ns_per_call"]
        );
        assert_eq!(truth["calls"], 1000);
        assert_eq!(truth["stub_calls"]["cuLaunchKernel"], 1000);
        if mode == "bench-runtime" {
            assert_eq!(truth["stub_calls"]["cudaLaunchKernel"], 1000);
        }
    }
}

/// (a) `run` with `--cuda-launch-latency`: every count exact (calls and errors per API,
/// launches per kernel with demangled names and the last launch's configuration, copies per
/// direction, memory, syncs, streams), the libraries found, and host times within 10%.
#[test]
fn run_counts_names_and_latency() {
    if !privileged("run_counts_names_and_latency") {
        return;
    }
    let Some(stub) = stub_cuda("run_counts_names_and_latency") else {
        return;
    };
    let run = run_profiled(
        stub,
        &["--cuda-launch-latency"],
        &[],
        &refs(&DURATIONS.args()),
    );
    assert_libraries(&run, &stub.lib_dir);
    assert_scenario_counts(&run, Seen::Everything, Naming::Named, DEFAULT_TOP);
    assert_timing(&run, true, DURATIONS);
}

/// (a') The same on the path of kernels before 5.15 (no attach cookies: the entry program looks
/// the probe up by its address, which the profiler files per process), forced here: every count
/// exact.
#[test]
fn run_counts_with_probes_told_apart_by_address() {
    const TEST: &str = "run_counts_with_probes_told_apart_by_address";
    if !privileged(TEST) {
        return;
    }
    let Some(stub) = stub_cuda(TEST) else {
        return;
    };
    let run = run_profiled_env(
        stub,
        &stub.workload,
        &["--cuda-launch-latency"],
        &[],
        &refs(&DURATIONS.args()),
        &[("PROFILER_CUDA_COOKIES_BY_ADDRESS", "1")],
    );
    assert_libraries(&run, &stub.lib_dir);
    assert_scenario_counts(&run, Seen::Everything, Naming::Named, DEFAULT_TOP);
}

/// (b) The same without `--cuda-launch-latency`: the same counts; launches, graph launches and
/// async copies untimed ("entry-only"); syncs, blocking copies and allocations still timed.
#[test]
fn run_entry_only_launches_by_default() {
    if !privileged("run_entry_only_launches_by_default") {
        return;
    }
    let Some(stub) = stub_cuda("run_entry_only_launches_by_default") else {
        return;
    };
    let run = run_profiled(stub, &[], &[], &refs(&DURATIONS.args()));
    assert_libraries(&run, &stub.lib_dir);
    assert_scenario_counts(&run, Seen::Everything, Naming::Named, DEFAULT_TOP);
    assert_timing(&run, false, DURATIONS);
}

/// (c) Late loading: the workload dlopen()s the libraries 1.5 s after the profiler started it
/// (long after the profiler's first scans of its maps), then waits until the profiler has
/// noticed the new mappings and put its uprobes on them (`--wait-for-probes`; the test fails
/// when that takes over `PROBE_WAIT_MS`); every count is exact. With `--cuda-top 3`, the other kernels are
/// summed under `other`.
#[test]
fn run_library_loaded_after_start() {
    if !privileged("run_library_loaded_after_start") {
        return;
    }
    let Some(stub) = stub_cuda("run_library_loaded_after_start") else {
        return;
    };
    let run = run_profiled(
        stub,
        &["--cuda-top", "3"],
        &[],
        &["--start-delay-ms", "1500"],
    );
    assert_libraries(&run, &stub.lib_dir);
    assert_scenario_counts(&run, Seen::Everything, Naming::Named, 3);
}

/// (d) `attach --pid` to a workload that loaded the libraries, looked its kernels up and made
/// one runtime launch per host stub before the profiler came: every launch after is counted;
/// runtime launches are named from the host stub's symbol in the executable; driver kernels
/// whose lookup was missed are `unresolved@<CUfunction>` and counted in `unnamed`; the free of
/// memory allocated before attach is a free of unknown memory.
#[test]
fn attach_after_names_were_looked_up() {
    if !privileged("attach_after_names_were_looked_up") {
        return;
    }
    let Some(stub) = stub_cuda("attach_after_names_were_looked_up") else {
        return;
    };
    let run = attach_profiled(stub, &[], &[]);
    assert_libraries(&run, &stub.lib_dir);
    assert_scenario_counts(
        &run,
        Seen::AfterReady,
        Naming::DriverUnresolved,
        DEFAULT_TOP,
    );
}

const TRACE_FIELDS: &[&str] = &[
    "ts_unix_ns",
    "pid",
    "tid",
    "api",
    "kernel",
    "grid",
    "block",
    "shared_mem",
    "stream",
    "handle",
    "bytes",
    "direction",
    "host_ns",
    "result",
];

const LAUNCH_APIS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
];

/// Whether `name` is how a trace line may name one of the scenario's kernels (demangled or as
/// looked up).
fn known_kernel_name(name: &str) -> bool {
    KERNELS
        .iter()
        .any(|k| name == k.name || name == k.lookup || (k.truncated && name.starts_with(k.name)))
}

/// (e) `--cuda-trace` with `--cuda-trace-limit 100` (the scenario makes ~1000 calls): exactly
/// 100 lines, each a JSON object with every field, in time order, from the workload's thread;
/// launches carry kernel names and their configuration, copies their bytes and direction,
/// allocations their sizes; the report still counts every call.
#[test]
fn trace_is_bounded_and_complete() {
    if !privileged("trace_is_bounded_and_complete") {
        return;
    }
    let Some(stub) = stub_cuda("trace_is_bounded_and_complete") else {
        return;
    };
    const LIMIT: usize = 100;
    let d = Durations {
        launch_us: 100,
        ..Durations::default()
    };
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let run = run_profiled(
        stub,
        &[
            "--cuda-launch-latency",
            "--cuda-trace",
            "--cuda-trace-limit",
            &LIMIT.to_string(),
        ],
        &[],
        &refs(&d.args()),
    );
    let end_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    assert_api_counts(run.cuda(), Seen::Everything);
    let t = &run.cuda()["trace"];
    println!("report trace: {t}");
    assert_eq!(t["written"], LIMIT, "trace.written");
    assert_eq!(t["truncated"], true, "trace.truncated");
    assert!(t["error"].is_null(), "trace.error: {}", t["error"]);
    assert!(
        t["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(".trace.jsonl")),
        "trace.path should name the --cuda-trace file: {}",
        t["path"]
    );
    let trace = &run.trace;
    println!("trace: {} lines; first {:?}", trace.len(), trace.first());
    assert_eq!(trace.len(), LIMIT, "trace lines vs --cuda-trace-limit");

    let mut last_ts = 0;
    let mut launches = 0;
    let (mut htod, mut copies_2d, mut allocs) = (0, 0, Vec::new());
    for (i, line) in trace.iter().enumerate() {
        let obj = line
            .as_object()
            .unwrap_or_else(|| panic!("line {i} is not an object: {line}"));
        for f in TRACE_FIELDS {
            assert!(obj.contains_key(*f), "line {i} has no {f}: {line}");
        }
        let ts = count(&line["ts_unix_ns"], "ts_unix_ns");
        assert!(
            (start_ns..=end_ns).contains(&ts),
            "line {i}: ts_unix_ns {ts} outside the session [{start_ns}, {end_ns}]"
        );
        assert!(ts >= last_ts, "line {i}: ts_unix_ns goes back: {line}");
        last_ts = ts;
        assert_eq!(count(&line["pid"], "pid"), run.pid(), "line {i} pid");
        assert_eq!(count(&line["tid"], "tid"), run.tid(), "line {i} tid");
        let api = line["api"].as_str().expect("api");
        assert!(
            REPORTED_APIS.contains(&api) || api == "cuKernelGetFunction",
            "line {i}: api {api:?}"
        );
        let result = line["result"].as_i64();
        let failed_lookup = api == "cuModuleGetFunction" && result == Some(500);
        assert!(
            result.is_none_or(|r| r == 0) || failed_lookup,
            "line {i}: result {result:?}: {line}"
        );
        if LAUNCH_APIS.contains(&api) {
            launches += 1;
            let kernel = line["kernel"].as_str().unwrap_or("");
            assert!(known_kernel_name(kernel), "line {i}: kernel {kernel:?}");
            for f in ["grid", "block"] {
                assert_eq!(array(&line[f], f).len(), 3, "line {i}: {f}: {line}");
            }
            let host_ns = num(&line["host_ns"], "host_ns");
            assert!(
                host_ns >= 0.9 * d.launch_us as f64 * 1000.0,
                "line {i}: a launch that spins {} µs took {host_ns} ns",
                d.launch_us
            );
        }
        match api {
            "cuMemcpyHtoD" => {
                htod += 1;
                assert_eq!(line["bytes"], 4096, "line {i}: {line}");
                assert_eq!(line["direction"], "htod", "line {i}: {line}");
            }
            "cuMemcpy2D" => {
                copies_2d += 1;
                assert_eq!(line["bytes"], 640 * 3, "line {i}: {line}");
                assert_eq!(line["direction"], "htod", "line {i}: {line}");
            }
            "cuMemAlloc" => allocs.push(count(&line["bytes"], "bytes")),
            _ => {}
        }
    }
    // The scenario allocates, copies in, then launches: all of these come first.
    assert_eq!(htod, 10, "cuMemcpyHtoD lines");
    assert_eq!(copies_2d, 2, "cuMemcpy2D lines (host to device)");
    let want_allocs: Vec<u64> = (1..=ALLOC_CALLS).map(|i| i * ALLOC_UNIT).collect();
    assert_eq!(allocs, want_allocs, "cuMemAlloc line sizes");
    assert!(
        launches >= 40,
        "only {launches} launch lines in the first {LIMIT}"
    );
}

/// (f) The libraries are loaded from a path that exists only in the workload's mount
/// namespace (`unshare -m`, then a bind mount over an empty directory): the profiler reaches
/// them through /proc/<pid>/root, reports them by the path the process maps, and counts
/// everything.
#[test]
fn library_in_another_mount_namespace() {
    const TEST: &str = "library_in_another_mount_namespace";
    if !privileged(TEST) {
        return;
    }
    let Some(stub) = stub_cuda(TEST) else {
        return;
    };
    let Some(unshare) = profiler_tests::http::find_tool("unshare") else {
        record_skip(TEST, "unshare not installed (util-linux)");
        return;
    };
    // An empty directory on the host; inside the namespace the libraries are mounted on it.
    let mnt = temp_path("cuda-ns-lib");
    std::fs::create_dir_all(&mnt).expect("mount point");
    let mnt_s = mnt.to_str().expect("utf-8").to_owned();
    let run = run_profiled(
        stub,
        &[],
        &[
            unshare.to_str().expect("utf-8"),
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            r#"mount --bind "$1" "$2" && exec "$3" --lib-dir "$2" --truth "$4" --wait-for-probes "$5""#,
            "sh",
            "{lib_dir}",
            &mnt_s,
            "{workload}",
            "{truth}",
            "{probe_wait_ms}",
        ],
        &[],
    );
    let visible_on_host = mnt.join("libcuda.so.1").exists();
    let _ = std::fs::remove_dir(&mnt);
    assert!(
        !visible_on_host,
        "the bind mount leaked to the host: the test proves nothing"
    );
    assert_eq!(
        run.truth["driver"],
        mnt.join("libcuda.so.1").to_str().expect("utf-8"),
        "the workload loaded the driver from the namespace's path"
    );
    assert_libraries(&run, &mnt);
    assert_scenario_counts(&run, Seen::Everything, Naming::Named, DEFAULT_TOP);
}

/// (g) A runtime linked into the executable (`cuda-workload-static`: stub_cudart.c built in
/// and exported with `-rdynamic`, as nvcc links `libcudart_static.a`; only the driver is
/// loaded, by the runtime part as the real static runtime does): the profiler finds the
/// executable's own `cudaLaunchKernel*` (`runtime-static`, with probes) besides the driver,
/// de-duplicates runtime launches against the driver launches they make, and every count is
/// what the dynamic run gives.
#[test]
fn run_static_runtime_in_executable() {
    const TEST: &str = "run_static_runtime_in_executable";
    if !privileged(TEST) {
        return;
    }
    let Some(stub) = stub_cuda(TEST) else {
        return;
    };
    let run = run_profiled_exe(stub, &stub.workload_static, &[], &[], &[]);
    assert_eq!(
        run.truth["runtime"],
        stub.workload_static.to_str().expect("utf-8"),
        "the workload launched through the runtime linked into itself"
    );
    assert_libraries_are(
        &run,
        &[
            (&stub.driver, "driver"),
            (&stub.workload_static, "runtime-static"),
        ],
    );
    assert_scenario_counts(&run, Seen::Everything, Naming::Named, DEFAULT_TOP);
}
