//! The workloads' console → results → matrix cells and failures, on made-up consoles.

use serde_json::{Value, json};

use super::workloads::{Outcome, WorkloadRun, evaluate, signed_percent};

/// Calls per symbol as cuda-workload's ground truth has them (the scenario's).
fn truth() -> Value {
    json!({
        "mode": "main", "pid": 15, "waited_for_probes_ms": 812,
        "stub_calls": {
            "cuInit": 2, "cuLaunchKernel": 553, "cuLaunchKernel_ptsz": 20,
            "cuLaunchKernelEx": 50, "cuLaunchCooperativeKernel": 1, "cuModuleGetFunction": 6,
            "cuMemcpyHtoD_v2": 10, "cudaLaunchKernel": 50, "cudaLaunchKernelExC": 10
        }
    })
}

fn kernels() -> Value {
    json!([
        {"name": "vector_add(float*, float const*, int)", "launches": 320},
        {"name": "relu_kernel", "launches": 200},
        {"name": "scale_values(float*, float)", "launches": 50},
        {"name": "reduce_rowwise(float const*, float*, int)", "launches": 40},
        {"name": "gelu_fwd(float const*, float*, int)", "launches": 10},
        {"name": "very_long_kernel_name_0123456789012", "launches": 3},
        {"name": "kernel::grid_sync(int*, int)", "launches": 1}
    ])
}

/// A report where everything matches: httpd (12) served through two forked children.
fn report() -> Value {
    json!({
        "duration_s": 6.2,
        "probes": [
            {"program": "sched_switch_raw", "attached": true},
            {"program": "sys_enter_accept", "attached": true}
        ],
        "processes": [
            {"pid": 12, "ppid": 1, "role": "target", "sched": {"oncpu_s": 0.01}},
            {"pid": 14, "ppid": 1, "role": "target", "sched": {"oncpu_s": 4.02}},
            {"pid": 40, "ppid": 12, "role": "child", "sched": {"oncpu_s": 0.001}},
            {"pid": 41, "ppid": 0, "role": "child", "sched": {"oncpu_s": 0.001}}
        ],
        "http": {
            "server": {"by_process": [
                {"pid": 40, "requests": 30}, {"pid": 41, "requests": 20},
                {"pid": 13, "requests": 50}
            ]},
            "endpoints": [
                {"role": "server", "endpoint": "127.0.0.1:8081", "requests": 50},
                {"role": "server", "endpoint": "127.0.0.1:8082", "requests": 50}
            ]
        },
        "cuda": {
            "libraries": [{"path": "/cuda/lib/libcuda.so.1", "probes": 81}],
            "apis": [
                {"api": "cuLaunchKernel", "calls": 573}, {"api": "cuLaunchKernelEx", "calls": 50},
                {"api": "cuLaunchCooperativeKernel", "calls": 1},
                {"api": "cuModuleGetFunction", "calls": 6}, {"api": "cuMemcpyHtoD", "calls": 10},
                {"api": "cudaLaunchKernel", "calls": 50}, {"api": "cudaLaunchKernelExC", "calls": 10},
                {"api": "cuMemFree", "calls": 0}
            ],
            "launches": {"kernels": kernels()}
        }
    })
}

fn console(report: &Value, truth: &Value) -> String {
    format!(
        "=== release 6.12.0\n=== check-exit 0\n\
         === workloads httpd=12 http-server=13 burner=14 cuda=15\n\
         === wget fork-per-connection 50\n=== wget one-process 50\n=== burner-ticks 10 410\n\
         === profiler-stderr-begin\nprofiler: attached to pid 12 (httpd)\n\
         === profiler-stderr-end\n=== http-server-log 50\n=== cuda-truth {truth}\n\
         === report-begin\n{report:#}\n\n=== report-end\n"
    )
}

fn outcome(report: &Value, truth: &Value, lacks: &[&str]) -> Outcome {
    evaluate(&WorkloadRun::parse(&console(report, truth)), lacks)
}

#[test]
fn a_console_is_parsed_into_the_workloads_results() {
    let run = WorkloadRun::parse(&console(&report(), &truth()));
    let pids = run.pids.unwrap();
    assert_eq!(
        (pids.httpd, pids.http_server, pids.burner, pids.cuda),
        (12, 13, 14, 15)
    );
    assert_eq!(run.wget_fork, Some(50));
    assert_eq!(run.wget_one_process, Some(50));
    assert_eq!(run.server_log, Some(50));
    assert_eq!(run.burner_ticks, Some((10, 410)));
    assert_eq!(run.cuda_truth.unwrap()["pid"], 15);
    assert_eq!(run.report.unwrap()["duration_s"], 6.2);
    assert!(run.profiler_stderr.contains("attached to pid 12"));
    assert!(run.problems.is_empty());
}

#[test]
fn exact_counts_give_a_clean_row() {
    let o = outcome(&report(), &truth(), &[]);
    assert_eq!(o.failures, Vec::<String>::new());
    assert_eq!(
        (
            o.probes.as_str(),
            o.fork.as_str(),
            o.one_process.as_str(),
            o.oncpu.as_str(),
            o.cuda.as_str()
        ),
        ("2/2", "50/50", "50/50", "+0.5%", "exact")
    );
}

#[test]
fn every_shortfall_is_a_failure_and_shows_in_its_cell() {
    let mut r = report();
    r["probes"][0]["attached"] = json!(false);
    r["probes"][0]["error"] = json!("the kernel rejected sched_switch_raw");
    // fd-table mode: httpd's children unseen, the one-process server's endpoint unknown.
    r["http"]["server"]["by_process"] = json!([{"pid": 13, "requests": 50}]);
    r["http"]["endpoints"] = json!([{"role": "server", "endpoint": "unknown", "requests": 50}]);
    r["processes"][1]["sched"]["oncpu_s"] = json!(3.7);
    r["cuda"]["apis"][0]["calls"] = json!(572);
    r["cuda"]["launches"]["kernels"][1]["launches"] = json!(199);
    let o = outcome(&r, &truth(), &[]);
    assert_eq!(o.probes, "1/2");
    assert_eq!(o.fork, "0/50, 0 at :8081");
    assert_eq!(o.one_process, "50/50, 0 at :8082");
    assert_eq!(o.oncpu, "\u{2212}7.5%");
    assert_eq!(o.cuda, "6/7 APIs, 6/7 kernels");
    let all = o.failures.join("\n");
    for expected in [
        "probe sched_switch_raw",
        "counted 0 of 50",
        "endpoint 127.0.0.1:8082 has 0 of 50",
        "neither server's: unknown 50",
        "on-CPU 3.700 s vs /proc 4.00 s",
        "cuLaunchKernel 572 of 573",
        "relu_kernel 199 of 200",
    ] {
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
    // A probe the kernel is known to lack is not a failure; its absence still shows.
    let o = outcome(&r, &truth(), &["sched_switch_raw"]);
    assert_eq!(o.probes, "1/2");
    assert!(!o.failures.iter().any(|f| f.contains("probe ")));
}

#[test]
fn cuda_programs_rejected_is_one_line_not_every_api() {
    let mut r = report();
    r["cuda"] = json!({
        "libraries": [{"path": "/cuda/lib/libcuda.so.1", "probes": 0,
            "error": "cuLaunchKernel (cuda_enter): the kernel rejected cuda_enter: invalid func \
                      unknown#174 (full verifier log in /tmp/v.log); cuLaunchKernel_ptsz: …"}],
        "apis": [], "launches": {"kernels": []}
    });
    let mut t = truth();
    t["waited_for_probes_ms"] = json!(-1);
    let o = outcome(&r, &t, &[]);
    assert_eq!(o.cuda, "0/7 APIs, 0/7 kernels");
    assert_eq!(
        o.failures,
        [
            "CUDA: cuda-workload gave up waiting for the profiler's uprobes (30 s)",
            "CUDA: 0 probes on /cuda/lib/libcuda.so.1: cuLaunchKernel (cuda_enter): the kernel \
             rejected cuda_enter: invalid func unknown#174",
            "CUDA: no call counted (truth: 7 APIs, 7 kernels)",
        ]
    );
}

#[test]
fn no_report_fails_every_cell_with_the_reason() {
    let text = "=== release 5.10\n=== workloads httpd=1 http-server=2 burner=3 cuda=4\n\
                === profiler did not attach\n=== profiler-stderr-begin\nprofiler: error: boom\n\
                === profiler-stderr-end\n=== report-begin\n\n=== report-end\n";
    let o = evaluate(&WorkloadRun::parse(text), &[]);
    assert_eq!(o.fork, "no report");
    assert_eq!(o.cuda, "no report");
    assert_eq!(
        o.failures,
        ["workloads: profiler did not attach; profiler stderr: profiler: error: boom"]
    );
}

#[test]
fn percentages_carry_a_sign() {
    assert_eq!(signed_percent(-0.0104), "\u{2212}1.0%");
    assert_eq!(signed_percent(0.031), "+3.1%");
    assert_eq!(signed_percent(0.0001), "0.0%");
}
