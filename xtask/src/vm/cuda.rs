//! The CUDA stand-in's counts (tests/cuda/cuda_workload.c under `--wait-for-probes`): per API
//! from the calls the stub libraries counted (its ground-truth line), per kernel from the
//! scenario's constants (tests/src/cuda/scenario.rs; the truth has no per-kernel counts).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Every API family the report may list (tests/src/cuda/apis.rs, `REPORTED_APIS`).
const REPORTED_APIS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
    "cuGraphLaunch",
    "cuMemcpyHtoD",
    "cuMemcpyDtoH",
    "cuMemcpyDtoD",
    "cuMemcpyHtoDAsync",
    "cuMemcpyDtoHAsync",
    "cuMemcpyDtoDAsync",
    "cuMemcpy",
    "cuMemcpyAsync",
    "cuMemcpyPeer",
    "cuMemcpyPeerAsync",
    "cuMemcpy2D",
    "cuMemcpy2DAsync",
    "cuMemAlloc",
    "cuMemAllocPitch",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemFree",
    "cuMemFreeAsync",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
];

/// Launches per kernel, by the name the report gives it (tests/src/cuda/scenario.rs,
/// `KERNELS`); the long name is matched by its prefix (the profiler cuts it).
const KERNEL_LAUNCHES: &[(&str, u64)] = &[
    ("vector_add(float*, float const*, int)", 20 + 300),
    ("relu_kernel", 200),
    ("scale_values(float*, float)", 50),
    ("reduce_rowwise(float const*, float*, int)", 40),
    ("gelu_fwd(float const*, float*, int)", 10),
    ("very_long_kernel_name_", 3),
    ("kernel::grid_sync(int*, int)", 1),
];

/// The API family (report name) of an exported symbol: without `_ptsz`/`_ptds` and `_v2`
/// (tests/src/cuda/apis.rs, `api_family`).
fn api_family(symbol: &str) -> Option<&'static str> {
    let base = symbol
        .trim_end_matches("_ptsz")
        .trim_end_matches("_ptds")
        .trim_end_matches("_v2");
    let base = match base {
        "cuMemcpy2DUnaligned" => "cuMemcpy2D",
        "cuMemAllocFromPoolAsync" => "cuMemAllocAsync",
        other => other,
    };
    REPORTED_APIS.iter().copied().find(|a| *a == base)
}

/// Calls per API family in the workload's ground truth.
fn truth_calls(truth: &Value) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for (symbol, n) in truth["stub_calls"].as_object().into_iter().flatten() {
        if let Some(family) = api_family(symbol) {
            *calls.entry(family.to_string()).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    calls
}

/// Calls per API family in the report (APIs listed with calls).
fn reported_calls(cuda: &Value) -> BTreeMap<String, u64> {
    cuda["apis"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["api"].as_str()?.to_string(), a["calls"].as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Launches per kernel in the report, by the expected kernel names.
fn reported_launches(cuda: &Value) -> BTreeMap<&'static str, u64> {
    let kernels = cuda["launches"]["kernels"]
        .as_array()
        .map_or(&[][..], |k| k);
    KERNEL_LAUNCHES
        .iter()
        .map(|(name, _)| {
            let n = kernels
                .iter()
                .filter(|k| {
                    let got = k["name"].as_str().unwrap_or("");
                    got == *name || (name.ends_with('_') && got.starts_with(name))
                })
                .filter_map(|k| k["launches"].as_u64())
                .sum();
            (*name, n)
        })
        .collect()
}

/// `exact`, or how many APIs and kernels match; every difference goes into `failures`.
pub fn evaluate(truth: Option<&Value>, report: &Value, failures: &mut Vec<String>) -> String {
    let Some(truth) = truth else {
        failures.push("CUDA: no ground truth from cuda-workload (harness)".into());
        return "no truth".into();
    };
    if truth["waited_for_probes_ms"].as_i64() == Some(-1) {
        failures
            .push("CUDA: cuda-workload gave up waiting for the profiler's uprobes (30 s)".into());
    }
    let cuda = &report["cuda"];
    library_errors(cuda, failures);
    let want_calls = truth_calls(truth);
    let got_calls = reported_calls(cuda);
    let apis: BTreeSet<&String> = want_calls.keys().chain(got_calls.keys()).collect();
    let api_diffs: Vec<String> = apis
        .into_iter()
        .filter(|api| want_calls.get(*api) != got_calls.get(*api))
        .map(|api| {
            let n = |m: &BTreeMap<String, u64>| m.get(api).copied().unwrap_or(0);
            format!("{api} {} of {}", n(&got_calls), n(&want_calls))
        })
        .collect();
    let launches = reported_launches(cuda);
    let kernel_diffs: Vec<String> = KERNEL_LAUNCHES
        .iter()
        .filter(|(name, n)| launches.get(name) != Some(n))
        .map(|(name, n)| format!("{name} {} of {n}", launches[name]))
        .collect();
    if got_calls.is_empty() && launches.values().all(|n| *n == 0) {
        // One line rather than every API at 0.
        failures.push(format!(
            "CUDA: no call counted (truth: {} APIs, {} kernels)",
            want_calls.len(),
            KERNEL_LAUNCHES.len()
        ));
    } else {
        for (what, diffs) in [
            ("calls per API", &api_diffs),
            ("launches per kernel", &kernel_diffs),
        ] {
            if !diffs.is_empty() {
                failures.push(format!(
                    "CUDA: {what} differ (profiler of truth): {}",
                    diffs.join(", ")
                ));
            }
        }
    }
    if api_diffs.is_empty() && kernel_diffs.is_empty() {
        return "exact".into();
    }
    format!(
        "{}/{} APIs, {}/{} kernels",
        want_calls.len().saturating_sub(api_diffs.len()),
        want_calls.len(),
        KERNEL_LAUNCHES.len() - kernel_diffs.len(),
        KERNEL_LAUNCHES.len()
    )
}

/// A library whose probes did not all attach: the first probe's reason (the others' are
/// alike, and long).
fn library_errors(cuda: &Value, failures: &mut Vec<String>) {
    for lib in cuda["libraries"].as_array().into_iter().flatten() {
        if let Some(error) = lib["error"].as_str() {
            let first = error.split("; ").next().unwrap_or(error);
            failures.push(format!(
                "CUDA: {} probes on {}: {}",
                lib["probes"],
                lib["path"].as_str().unwrap_or("?"),
                without_log_path(first)
            ));
        }
    }
}

/// `… (full verifier log in /tmp/…)` without the log's path (a file inside the VM).
pub fn without_log_path(text: &str) -> String {
    match text.split_once(" (full verifier log in ") {
        Some((head, tail)) => {
            let rest = tail.split_once(')').map_or("", |(_, r)| r);
            format!("{head}{rest}")
        }
        None => text.to_string(),
    }
}
