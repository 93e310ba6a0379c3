//! `--trace FILE`: the timeline (Chrome/Perfetto trace-event JSON) against ground truth the
//! workloads know: on-CPU time from the threads' own /proc schedstat, requests completed by the
//! load generator, CUDA calls made by the stand-in workload, thread names. Every session ending
//! used here (target exit, SIGINT, --duration) must leave a valid file.

use std::collections::BTreeMap;

use profiler_tests::{
    cuda::{ALWAYS_TIMED_APIS, KERNELS, SYNC_APIS, Seen, expected_calls, run_profiled, stub_cuda},
    http::{HyperServer, curl, http_tools_present, profile, wrk},
    online_cpus, privileged, rel_diff, temp_path,
    timeline::{
        assert_no_overlap, names, of_kind, oncpu_slices, read_trace, timed_events, trace_workload,
    },
};
use serde_json::Value;

fn truth_thread<'a>(truth: &'a Value, name: &str) -> &'a Value {
    truth["threads"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {truth}"))
}

/// A CPU burner and a sleeper for 2 s: the burner's on-CPU slices add up to its run time from
/// /proc/thread-self/schedstat within 10%; the sleeper's ~200 short runs are each a slice; no
/// thread's slices overlap; metadata names the process and both threads.
#[test]
fn oncpu_slices_match_schedstat_and_threads_are_named() {
    if !privileged("oncpu_slices_match_schedstat_and_threads_are_named") {
        return;
    }
    let (truth, report, trace, _) = trace_workload(&["burn-sleep", "--seconds", "2"], &[]);
    println!("otherData: {}", trace["otherData"]);
    let pid = truth["pid"].as_u64().unwrap();
    let cpus = online_cpus() as u64;
    for name in ["burner", "sleeper"] {
        let t = truth_thread(&truth, name);
        let tid = t["tid"].as_u64().unwrap();
        let slices = oncpu_slices(&trace, tid);
        let sum_s: f64 = slices.iter().map(|s| s.1).sum::<f64>() / 1e6;
        let run_s = t["schedstat_run_ns"].as_f64().unwrap() / 1e9;
        println!(
            "{name}: {} on-CPU slices, sum {sum_s:.4} s; schedstat run {run_s:.4} s, /proc cpu \
             {} s",
            slices.len(),
            t["cpu_s"]
        );
        assert_no_overlap(&slices, name);
        assert!(
            slices.iter().all(|s| s.2.is_some_and(|c| c < cpus)),
            "{name}: a slice without a valid CPU"
        );
        if name == "burner" {
            assert!(
                rel_diff(sum_s, run_s) <= 0.10,
                "burner on-CPU slices {sum_s} s vs schedstat {run_s} s (report: {})",
                report["health"]
            );
        } else {
            // 200 sleeps of 10 ms: each wake-up runs once, briefly.
            assert!(
                (150..=400).contains(&slices.len()),
                "sleeper: {} slices",
                slices.len()
            );
            // Never more than it ran (schedstat also counts the switches' own kernel time).
            assert!(
                sum_s > 0.0 && sum_s <= run_s * 1.1 + 0.001,
                "sleeper on-CPU {sum_s} s vs schedstat {run_s} s"
            );
        }
        assert_eq!(
            names(&trace, false).get(&(pid, tid)).map(String::as_str),
            Some(name),
            "thread_name of {name}"
        );
    }
    assert_eq!(
        names(&trace, true).get(&(pid, pid)).map(String::as_str),
        Some("sched-workload")
    );
    let other = &trace["otherData"];
    assert_eq!(other["truncated"], false);
    assert_eq!(other["switch_probe_attached"], true);
    assert_eq!(other["oncpu_records_lost"], 0);
}

/// The hyper server under wrk (2 connections × 100 keep-alive requests) then 3 streamed
/// responses: one request slice per completed request, named "GET 200", with its status and
/// bytes; each stream has a nested time-to-first-token slice whose TTFT matches the server's
/// within max(10%, 1 ms). The session ends with SIGINT.
#[test]
fn request_slices_match_the_load_generator() {
    if !privileged("request_slices_match_the_load_generator")
        || !http_tools_present("request_slices_match_the_load_generator")
    {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let pid = u64::from(hyper.pid());
    let trace_path = temp_path("timeline-http.trace.json");
    let sse = hyper.url("/sse?events=5&delay_ms=20");
    let url = hyper.url("/");
    let extra = ["--no-cuda", "--trace", trace_path.to_str().unwrap()];
    let (run, (client, streams)) = profile(hyper.pid(), &extra, false, || {
        let client = wrk(&url, 2, 100, true);
        let streams = curl(&[&sse, &sse, &sse]);
        (client, streams)
    });
    let truth = hyper.stop();
    let trace = read_trace(&trace_path);
    let _ = std::fs::remove_file(&trace_path);
    assert_eq!(streams.code, 0, "curl: {}", streams.stderr);
    println!("otherData: {}", trace["otherData"]);

    let begins = of_kind(&trace, "http", "b");
    let requests: Vec<&Value> = begins
        .iter()
        .copied()
        .filter(|e| e["args"]["method"].is_string())
        .collect();
    println!(
        "request slices {}, wrk {} + streams 3; report server requests {}",
        requests.len(),
        client.requests,
        run.server()["requests"]
    );
    assert_eq!(requests.len() as u64, client.requests + 3);
    assert!(requests.iter().all(|e| e["pid"].as_u64() == Some(pid)));
    let plain: Vec<_> = requests.iter().filter(|e| e["name"] == "GET 200").collect();
    assert_eq!(
        plain.len() as u64,
        client.requests + 3,
        "every request is GET 200"
    );
    assert!(
        requests
            .iter()
            .all(|e| e["args"]["status"] == 200 && e["args"]["role"] == "server")
    );
    assert_eq!(
        of_kind(&trace, "http", "e").len(),
        begins.len(),
        "every slice ends"
    );

    let mut ttft: Vec<f64> = requests
        .iter()
        .filter_map(|e| e["args"]["ttft_ms"].as_f64())
        .collect();
    let mut truth_ttft: Vec<f64> = truth
        .iter()
        .filter_map(|l| l["ttft_us"].as_f64())
        .map(|us| us / 1e3)
        .collect();
    ttft.sort_by(f64::total_cmp);
    truth_ttft.sort_by(f64::total_cmp);
    println!("ttft ms: timeline {ttft:?}, server {truth_ttft:?}");
    let nested = begins
        .iter()
        .filter(|e| e["name"] == "until first token")
        .count();
    assert_eq!((ttft.len(), nested, truth_ttft.len()), (3, 3, 3));
    for (got, want) in ttft.iter().zip(&truth_ttft) {
        assert!(
            (got - want).abs() <= (0.1 * want).max(1.0),
            "ttft {got} ms vs server {want} ms"
        );
    }
    assert_eq!(
        names(&trace, true).get(&(pid, pid)).map(String::as_str),
        Some("http-server")
    );
}

/// `profiler run` over the stand-in CUDA workload: one event per CUDA call, as many per API as
/// the scenario makes (tests/src/cuda/scenario.rs); timed calls (syncs, copies, allocations,
/// lookups) are slices, entry-only launches instants; syncs are "cuda_sync"; launches name
/// their kernels; the calls' track is named after the thread. The session ends when the
/// workload exits.
#[test]
fn cuda_events_match_the_stand_in_scenario() {
    let test = "cuda_events_match_the_stand_in_scenario";
    if !privileged(test) {
        return;
    }
    let Some(stub) = stub_cuda(test) else {
        return;
    };
    let trace_path = temp_path("timeline-cuda.trace.json");
    let run = run_profiled(stub, &["--trace", trace_path.to_str().unwrap()], &[], &[]);
    let trace = read_trace(&trace_path);
    let _ = std::fs::remove_file(&trace_path);
    println!("otherData: {}", trace["otherData"]);

    let calls: Vec<&Value> = timed_events(&trace)
        .into_iter()
        .filter(|e| e["cat"] == "cuda" || e["cat"] == "cuda_sync")
        .collect();
    let mut per_api: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &calls {
        *per_api.entry(e["name"].as_str().unwrap()).or_default() += 1;
    }
    let expected = expected_calls(Seen::Everything);
    println!("timeline calls per API: {per_api:?}");
    assert_eq!(per_api, expected);

    for e in &calls {
        let name = e["name"].as_str().unwrap();
        let sync = SYNC_APIS.contains(&name);
        assert_eq!(e["cat"] == "cuda_sync", sync, "category of {e}");
        // Without --cuda-launch-latency only these have a return probe.
        let want = if ALWAYS_TIMED_APIS.contains(&name) {
            "X"
        } else {
            "i"
        };
        assert_eq!(e["ph"], want, "phase of {e}");
        assert_eq!(e["pid"].as_u64(), Some(run.pid()));
    }

    for k in KERNELS {
        let launches = calls
            .iter()
            .filter(|e| e["name"].as_str().unwrap().starts_with("cuLaunch"))
            .filter(|e| {
                let got = e["args"]["kernel"].as_str().unwrap_or("");
                if k.truncated {
                    got.starts_with(k.name)
                } else {
                    got == k.name
                }
            })
            .count() as u64;
        assert_eq!(launches, k.launches, "launches of {}", k.name);
    }

    let tid = run.tid();
    let cuda_tid = tid | (1 << 30);
    assert!(calls.iter().all(|e| e["tid"].as_u64() == Some(cuda_tid)));
    let track = names(&trace, false);
    let label = track
        .get(&(run.pid(), cuda_tid))
        .cloned()
        .unwrap_or_default();
    assert_eq!(label, format!("{} [{tid}] CUDA calls", run.comm()));
}

/// `--trace-limit 50` and a session ended by `--duration`: the file is valid JSON with exactly
/// 50 events besides the names, says it was truncated and by how much, and stderr says so too.
/// Bad `--trace` options are one-line usage errors.
#[test]
fn the_limit_and_a_duration_end_leave_a_valid_file() {
    if !privileged("the_limit_and_a_duration_end_leave_a_valid_file") {
        return;
    }
    let (truth, report, trace, stderr) = trace_workload(
        &["burn-sleep", "--seconds", "2"],
        &["--trace-limit", "50", "--duration", "1s"],
    );
    assert_eq!(report["end_reason"], "duration");
    let other = &trace["otherData"];
    println!("otherData: {other}");
    assert_eq!(timed_events(&trace).len(), 50);
    assert_eq!(other["events_written"], 50);
    assert_eq!(other["truncated"], true);
    assert!(other["events_dropped"].as_u64().unwrap() > 0);
    let sleeper = truth_thread(&truth, "sleeper")["tid"].as_u64().unwrap();
    let pid = truth["pid"].as_u64().unwrap();
    assert_eq!(
        names(&trace, false)
            .get(&(pid, sleeper))
            .map(String::as_str),
        Some("sleeper"),
        "names are written past the limit"
    );
    assert!(
        stderr.iter().any(|l| l.contains("--trace-limit 50")),
        "no truncation note: {stderr:?}"
    );

    // Bad input: one `profiler: error:` line, status 2.
    let pid = std::process::id().to_string();
    for (args, says) in [
        (vec!["--trace-limit", "5"], "required"),
        (
            vec!["--trace", "/nonexistent/dir/t.json"],
            "cannot write the timeline",
        ),
    ] {
        let mut cmd = vec!["attach", "--pid", &pid, "--duration", "1s"];
        cmd.extend(&args);
        let (status, _, stderr) = profiler_tests::Profiler::start(&cmd).wait();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr:?}");
        let errors: Vec<_> = stderr.iter().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr:?}");
        assert!(errors[0].contains(says), "{args:?}: {stderr:?}");
    }
}
