//! HTTP/1.1 server metrics against real servers (nginx, Python's `http.server`, our hyper
//! server) under a real load generator (wrk): exact request counts, latency percentiles against
//! what the server (hyper: at its sockets) or the client (wrk) measured, and errors. Which
//! endpoint and direction each request is attributed to: `http_attribution.rs`.
//!
//! Latency tolerance: max(5%, 200 µs). Ground truth for latency:
//! - hyper server: its own per-request log, measured at the socket with the profiler's
//!   definition (first request byte read → last response byte written; within a few µs of the
//!   syscall exits); p50 and p99 compared.
//! - nginx: only the client's view is precise enough (nginx logs ms). wrk's latency (request
//!   written → response read) contains the server's for every request plus two wake-ups and the
//!   client's own syscalls, ≈ 100 µs more at p50 on a 2-vCPU VM; its tail also holds the client's
//!   own preemptions (p99 gap measured 170–640 µs over 5 runs of 1000 requests, with the server
//!   side traced by bpftrace; p90 gap 120–140 µs on an idle machine, 420 µs while other builds
//!   ran). So p50 is compared both ways, p90 and p99 only one way (a server-side percentile
//!   cannot exceed the client's).

use std::time::Duration;

use profiler_tests::{http::*, privileged};

/// The harness itself: wrk makes exactly connections × requests-per-connection requests, as
/// the servers' own logs count them (nginx's access log, Python's request log, the hyper
/// server's ground truth), with and without keep-alive. Needs no profiler (nor root).
#[test]
fn harness_wrk_counts_are_exact() {
    if !http_tools_present("harness_wrk_counts_are_exact") {
        return;
    }
    let nginx = Nginx::start(STATIC_FILES, true);
    for (c, n, keepalive, path) in [
        (1, 200, true, "/small.txt"),
        (4, 50, true, "/big.bin"),
        (16, 10, true, "/small.txt"),
        (4, 25, false, "/small.txt"),
        (4, 25, false, "/big.bin"),
        (2, 20, true, "/fail"),
    ] {
        let before = nginx.access_log_lines();
        let r = wrk(&nginx.url(path), c, n, keepalive);
        // nginx logs a request when it ends, which wrk may see first.
        std::thread::sleep(Duration::from_millis(100));
        let logged = nginx.access_log_lines() - before;
        println!("nginx access log: {logged} requests");
        assert_eq!(r.requests, u64::from(c * n));
        assert_eq!(logged as u64, r.requests);
        assert_eq!(r.errors, 0);
        let failed = if path == "/fail" { r.requests } else { 0 };
        assert_eq!(r.status_non2xx, failed);
    }
    drop(nginx);

    let dir = TempDir::new("harness-python");
    let python = PythonServer::start(&dir.with_files("www", STATIC_FILES));
    let r = wrk(&python.url("/small.txt"), 4, 25, false);
    std::thread::sleep(Duration::from_millis(100));
    println!("python request log: {} requests", python.logged_requests());
    assert_eq!(r.requests, 100);
    assert_eq!(python.logged_requests(), 100);
    drop(python);

    for keepalive in [true, false] {
        let hyper = HyperServer::start(&[]);
        let r = wrk(&hyper.url("/delay?ms=0-1"), 4, 30, keepalive);
        let truth = hyper.stop();
        let lat = truth_values(&truth, "latency_us");
        println!(
            "hyper ground truth: {} requests, server latency p50 {:.1} µs p99 {:.1} µs",
            truth.len(),
            percentile(&lat, 50.0),
            percentile(&lat, 99.0)
        );
        assert_eq!(r.requests, 120);
        assert_eq!(truth.len(), 120);
        assert!(
            truth
                .iter()
                .all(|l| l["outcome"] == "ok" && l["status"] == 200)
        );
    }
}

/// nginx, keep-alive, one connection, 1000 requests for a 100-byte file: the exact count, by
/// status, by method and by process (all in the worker, which the profiler follows from the
/// master), and latency against the client's (see the module docs).
#[test]
fn nginx_keepalive_c1_count_and_latency() {
    if !privileged("nginx_keepalive_c1_count_and_latency") {
        return;
    }
    let nginx = Nginx::start(STATIC_FILES, false);
    // The p50 comparison is against the client's clock, which a host hiccup (this is a VM
    // sharing its cores with wrk and the profiler) inflates more than the server's: one
    // disturbed run is repeated; counts and upper bounds are checked on every run. (A fresh-clone
    // CI run on 2026-11-23 saw the client's p50 at 357 and 323 µs in two runs back to back, the
    // server's at 67 µs both times, while the same test alone gave client 117–151 µs: hence
    // three runs.)
    for attempt in 1..=3 {
        if nginx_c1_run(&nginx) {
            return;
        }
        println!("attempt {attempt}: p50 disagreed with the client's");
    }
    panic!("latency p50 disagreed with the client's in three runs");
}

/// One run of `nginx_keepalive_c1_count_and_latency`; returns whether p50 agreed.
fn nginx_c1_run(nginx: &Nginx) -> bool {
    let workers = nginx.worker_pids();
    let (run, w) = profile(nginx.pid(), &[], false, || {
        wrk(&nginx.url("/small.txt"), 1, 1000, true)
    });
    let s = run.server();
    assert_eq!(w.requests, 1000);
    assert_eq!(w.errors, 0);
    assert_counts(s, w.requests, "200");
    no_errors(s);

    let in_worker: u64 = s["by_process"]
        .as_array()
        .expect("by_process")
        .iter()
        .filter(|p| workers.contains(&(p["pid"].as_u64().unwrap_or(0) as u32)))
        .map(|p| p["requests"].as_u64().unwrap_or(0))
        .sum();
    println!("requests in nginx worker {workers:?}: {in_worker}");
    assert_eq!(in_worker, w.requests, "requests attributed to the worker");

    // Every request's server-side interval lies within its client-side one: upper bounds.
    for (p, client) in [
        ("p50_us", w.p50_us),
        ("p90_us", w.p90_us),
        ("p99_us", w.p99_us),
    ] {
        let server_side = dist(s, "latency", p);
        println!("latency {p}: profiler {server_side} µs, client {client} µs (must not exceed it)");
        assert!(
            server_side <= client * (1.0 + LATENCY_TOLERANCE),
            "server-side {p} {server_side} µs above the client's {client} µs"
        );
    }
    let (profiler_p50, client_p50) = (dist(s, "latency", "p50_us"), w.p50_us);
    let diff = (profiler_p50 - client_p50).abs();
    let allowed = (LATENCY_TOLERANCE * client_p50).max(LATENCY_TOLERANCE_US);
    println!(
        "latency p50 vs client: profiler {profiler_p50:.1} µs, client {client_p50:.1} µs, diff \
         {diff:.1} µs (allowed ±{allowed:.1} µs)"
    );
    diff <= allowed
}

/// nginx, keep-alive, 4 connections × 100 requests for 64 KiB (sent with sendfile, far beyond
/// the capture size), then 16 × 25 for 100 bytes: exact counts, and every body byte counted.
#[test]
fn nginx_keepalive_c4_c16_counts() {
    if !privileged("nginx_keepalive_c4_c16_counts") {
        return;
    }
    let nginx = Nginx::start(STATIC_FILES, false);
    let (run, (big, small)) = profile(nginx.pid(), &[], false, || {
        (
            wrk(&nginx.url("/big.bin"), 4, 100, true),
            wrk(&nginx.url("/small.txt"), 16, 25, true),
        )
    });
    let s = run.server();
    assert_eq!((big.requests, small.requests), (400, 400));
    assert_counts(s, big.requests + small.requests, "200");
    no_errors(s);
    let bytes_out = count(&s["bytes_out"], "bytes_out");
    let bodies = big.requests * 64 * 1024 + small.requests * 100;
    println!("bytes_out: profiler {bytes_out}, response bodies alone {bodies}");
    assert!(
        bytes_out >= bodies,
        "bytes_out {bytes_out} < bodies {bodies}"
    );
}

/// nginx without keep-alive (`Connection: close`, a connection per request; wrk also opens one
/// idle connection per thread at the end, which is no request): 4 connections × 50 for 100
/// bytes, then × 50 for 64 KiB.
#[test]
fn nginx_no_keepalive_c4_counts() {
    if !privileged("nginx_no_keepalive_c4_counts") {
        return;
    }
    let nginx = Nginx::start(STATIC_FILES, false);
    let (run, (small, big)) = profile(nginx.pid(), &[], false, || {
        (
            wrk(&nginx.url("/small.txt"), 4, 50, false),
            wrk(&nginx.url("/big.bin"), 4, 50, false),
        )
    });
    let s = run.server();
    assert_eq!((small.requests, big.requests), (200, 200));
    assert_counts(s, small.requests + big.requests, "200");
    no_errors(s);
}

/// nginx answering 500 (`location = /fail { return 500; }`): every response an error with
/// its status.
#[test]
fn nginx_500s_are_errors() {
    if !privileged("nginx_500s_are_errors") {
        return;
    }
    let nginx = Nginx::start(STATIC_FILES, false);
    let (run, w) = profile(nginx.pid(), &[], false, || {
        wrk(&nginx.url("/fail"), 2, 50, true)
    });
    let s = run.server();
    assert_eq!((w.requests, w.status_non2xx), (100, 100));
    assert_counts(s, w.requests, "500");
    let errors = &s["errors"];
    assert_eq!(count(&errors["status_5xx"], "errors.status_5xx"), 100);
    assert_eq!(count(&errors["total"], "errors.total"), 100);
    assert_eq!(count(&errors["status_4xx"], "errors.status_4xx"), 0);
}

/// Python's `http.server` (HTTP/1.0, a connection and a thread per request): 4 connections ×
/// 25, as wrk and the server's own request log count them.
#[test]
fn python_http_server_no_keepalive_c4_count() {
    if !privileged("python_http_server_no_keepalive_c4_count") {
        return;
    }
    let dir = TempDir::new("python");
    let python = PythonServer::start(&dir.with_files("www", STATIC_FILES));
    let (run, w) = profile(python.pid(), &[], false, || {
        wrk(&python.url("/small.txt"), 4, 25, false)
    });
    println!("python request log: {} requests", python.logged_requests());
    assert_eq!(w.requests, 100);
    assert_eq!(python.logged_requests(), 100);
    let s = run.server();
    assert_counts(s, w.requests, "200");
    no_errors(s);
}

/// The hyper server with 1–5 ms random delays, at 1 then 8 connections: exact counts, p50 and
/// p99 against the server's own socket-level measurements of the same requests, and the
/// `--events` file (a line per request, latencies adding up to the server's within 1%).
///
/// The server runs with `--fifo`: without it, its user-space timestamps lag the syscall exits
/// when the client it wakes preempts it (p99 +559 µs at c=8 on a 2-vCPU VM); with it they agree
/// within a few µs (see src/bin/http_server/main.rs).
fn hyper_delay(keepalive: bool) {
    let hyper = HyperServer::start(&["--workers", "2"]);
    let url = hyper.url("/delay?ms=1-5");
    let (run, (one, eight)) = profile(hyper.pid(), &["--sla-p99", "4ms"], true, || {
        (wrk(&url, 1, 100, keepalive), wrk(&url, 8, 40, keepalive))
    });
    let truth = hyper.stop();
    let requests = one.requests + eight.requests;
    assert_eq!(requests, 420);
    assert_eq!(truth.len() as u64, requests, "ground-truth lines");
    assert!(
        truth
            .iter()
            .all(|l| l["status"] == 200 && l["outcome"] == "ok")
    );
    let s = run.server();
    assert_counts(s, requests, "200");
    no_errors(s);

    let lat = truth_values(&truth, "latency_us");
    for p in ["50", "99"] {
        assert_close(
            &format!("latency p{p} vs server"),
            dist(s, "latency", &format!("p{p}_us")),
            percentile(&lat, p.parse().unwrap()),
            LATENCY_TOLERANCE,
            LATENCY_TOLERANCE_US,
        );
    }

    // --sla-p99 4ms: delays are 1-5 ms, so p99 is over and ~1/4 of the requests are.
    let sla = &s["sla"][0];
    println!("sla: {sla}");
    assert_eq!(sla["metric"], "latency_p99");
    let p99_ms = dist(s, "latency", "p99_us") / 1e3;
    assert_eq!(sla["violated"], p99_ms > 4.0, "violated vs p99 {p99_ms} ms");
    let over_truth = lat.iter().filter(|&&us| us > 4000.0).count() as f64;
    let over = num(&sla["requests_over"], "sla.requests_over");
    println!("requests over 4 ms: profiler {over}, server {over_truth}");
    assert!(
        (over - over_truth).abs() <= 2.0 + 0.01 * requests as f64,
        "requests over the SLA: profiler {over}, server {over_truth}"
    );

    println!("--events: {} lines", run.events.len());
    assert_eq!(run.events.len() as u64, requests, "--events lines");
    assert!(
        run.events.iter().all(|e| e["status"] == 200),
        "statuses in --events"
    );
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let write_calls = truth_values(&truth, "last_write_call_us");
    println!(
        "mean latency: server {:.1} µs; mean duration of the write completing a response {:.1} µs",
        sum(&lat) / lat.len() as f64,
        sum(&write_calls) / write_calls.len() as f64
    );
    let event_lat: Vec<f64> = run
        .events
        .iter()
        .map(|e| num(&e["latency_us"], "event latency_us"))
        .collect();
    println!(
        "mean --events latency {:.1} µs",
        sum(&event_lat) / event_lat.len() as f64
    );
    // Diagnostics: the single-connection requests come first and in order in both files.
    let diffs: Vec<f64> = event_lat
        .iter()
        .zip(&lat)
        .take(one.requests as usize)
        .map(|(p, t)| p - t)
        .collect();
    println!(
        "per request (first connection, in order), profiler − server: p10 {:+.1} µs, p50 {:+.1} \
         µs, p90 {:+.1} µs",
        percentile(&diffs, 10.0),
        percentile(&diffs, 50.0),
        percentile(&diffs, 90.0)
    );
    assert_close(
        "sum of --events latencies vs server",
        sum(&event_lat),
        sum(&lat),
        0.01,
        0.0,
    );
}

#[test]
fn hyper_delay_keepalive_counts_and_latency() {
    if !privileged("hyper_delay_keepalive_counts_and_latency") {
        return;
    }
    hyper_delay(true);
}

#[test]
fn hyper_delay_no_keepalive_counts_and_latency() {
    if !privileged("hyper_delay_no_keepalive_counts_and_latency") {
        return;
    }
    hyper_delay(false);
}

/// The hyper server answering 500 ten times, then a response reset mid-body (a 200 head
/// announcing 100000 bytes, 1000 sent, then a TCP RST): all errors, with their statuses.
#[test]
fn hyper_500_and_reset_are_errors() {
    if !privileged("hyper_500_and_reset_are_errors") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let (run, (w, reset)) = profile(hyper.pid(), &[], false, || {
        (
            wrk(&hyper.url("/status/500"), 1, 10, true),
            curl(&["-o", "/dev/null", &hyper.url("/reset")]),
        )
    });
    let truth = hyper.stop();
    println!(
        "curl /reset: exit {} ({}); server: {:?}",
        reset.code,
        reset.stderr.trim(),
        truth.iter().map(|l| &l["outcome"]).collect::<Vec<_>>()
    );
    assert_eq!(w.status_non2xx, 10);
    assert_ne!(reset.code, 0, "curl should fail on the reset");
    assert_eq!(
        truth.iter().filter(|l| l["outcome"] == "reset").count(),
        1,
        "server reset once"
    );

    let s = run.server();
    println!("profiler: {}", describe(s));
    let errors = &s["errors"];
    assert_eq!(count(&errors["status_5xx"], "errors.status_5xx"), 10);
    assert_eq!(by_status(s, "500"), 10);
    assert!(
        count(&errors["total"], "errors.total") >= 11,
        "errors: {errors}"
    );
    let broken = count(&errors["closed_mid_response"], "errors.closed_mid_response")
        + count(&errors["reset"], "errors.reset");
    assert!(broken >= 1, "the reset is not an error: {errors}");
    assert!(
        by_status(s, "200") >= 1,
        "the reset exchange's 200 head: {}",
        s["by_status"]
    );
}

/// An `--events` file that cannot take writes (`/proc/version`): the report is still written,
/// with every request, and then the run fails with one line naming the file.
#[test]
fn unwritable_events_log_fails_the_run() {
    const TEST: &str = "unwritable_events_log_fails_the_run";
    if !privileged(TEST) {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let out = profiler_tests::temp_path("unwritable-events.json");
    let pid = hyper.pid().to_string();
    let mut profiler = profiler_tests::Profiler::start(&[
        "attach",
        "--pid",
        &pid,
        "--format",
        "json",
        "--output",
        out.to_str().expect("utf-8"),
        "--events",
        "/proc/version",
    ]);
    profiler.wait_attached();
    let load = wrk(&hyper.url("/delay?ms=1-1"), 1, 5, true);
    std::thread::sleep(Duration::from_millis(300));
    profiler.signal(libc::SIGINT);
    let (status, _, stderr) = profiler.wait();
    let report = profiler_tests::read_report(&out);
    let _ = std::fs::remove_file(&out);
    assert_eq!(status.code(), Some(1), "exit status; stderr {stderr:?}");
    let last = stderr.last().map(String::as_str).unwrap_or("");
    assert!(
        last.starts_with("profiler: error: ") && last.contains("/proc/version"),
        "the last stderr line names the log: {last:?}"
    );
    assert_eq!(
        count(&report["http"]["server"]["requests"], "requests"),
        load.requests
    );
    assert!(
        count(
            &report["http"]["analysis"]["event_log_errors"],
            "event_log_errors"
        ) > 0
    );
}
