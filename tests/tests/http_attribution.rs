//! Which socket, endpoint and direction each HTTP request is attributed to, against real
//! servers under wrk and curl: sockets resolved through the fd table (kernels before 6.2), two
//! servers of different shapes in one session, and outbound calls as client requests.
//! Latency tolerance and ground truth as in `http.rs`.

use profiler_tests::{http::*, privileged};
use serde_json::Value;

/// Kernels without `sock:sock_recv_length` (before 6.2) resolve each syscall's fd to its socket
/// in the kernel: forced here, the counts, latencies and endpoints must be the same, the
/// connection opened before attach included.
#[test]
fn fd_table_classification_counts_exactly() {
    if !privileged("fd_table_classification_counts_exactly") {
        return;
    }
    let hyper = HyperServer::start(&["--workers", "2"]);
    let url = hyper.url("/delay?ms=1-3");
    // A connection opened before the profiler attaches: recognised at its first read, its
    // addresses read from the socket.
    let early = std::net::TcpStream::connect(hyper.addr()).expect("early connection");
    let (run, (keep, close)) = profile_env(
        hyper.pid(),
        &[],
        &[("PROFILER_SOCKETS_FROM_FD_TABLE", "1")],
        false,
        || {
            use std::io::{Read as _, Write as _};
            let mut early = early;
            early
                .write_all(b"GET /delay?ms=1-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("request on the early connection");
            let mut body = Vec::new();
            early.read_to_end(&mut body).expect("response");
            (wrk(&url, 4, 25, true), wrk(&url, 2, 10, false))
        },
    );
    let (ip, port) = hyper.addr();
    let truth = hyper.stop();
    assert_eq!(
        run.report["http"]["socket_classification"], "fd-lookup",
        "mode in the report"
    );
    let requests = keep.requests + close.requests + 1;
    assert_eq!(truth.len() as u64, requests, "ground-truth lines");
    let s = run.server();
    println!("fd-lookup mode: {}", describe(s));
    assert_counts(s, requests, "200");
    no_errors(s);
    assert_endpoints(&run.report, &[("server", format!("{ip}:{port}"), requests)]);
    let lat = truth_values(&truth, "latency_us");
    assert_close(
        "latency p50 vs server (fd-lookup mode)",
        dist(s, "latency", "p50_us"),
        percentile(&lat, 50.0),
        LATENCY_TOLERANCE,
        LATENCY_TOLERANCE_US,
    );
}

/// Two servers in one session, 50 requests each: a fork-per-connection server (BusyBox httpd:
/// the child serves the socket its parent accepted) and a one-process server (hyper). Every
/// request counted under its own server's endpoint, none under a client's port, with sockets
/// recognised inside the syscall (the default here) and by fd lookup (kernels before 6.2).
#[test]
fn two_servers_each_request_under_its_endpoint() {
    const TEST: &str = "two_servers_each_request_under_its_endpoint";
    if !privileged(TEST) {
        return;
    }
    for env in [&[][..], &[("PROFILER_SOCKETS_FROM_FD_TABLE", "1")][..]] {
        let dir = TempDir::new(TEST);
        let httpd = BusyboxHttpd::start(&dir.with_files("www", STATIC_FILES));
        let hyper = HyperServer::start(&[]);
        let hyper_pid = hyper.pid().to_string();
        let (run, (forked, single)) =
            profile_env(httpd.pid(), &["--pid", &hyper_pid], env, false, || {
                (
                    wrk(&httpd.url("/small.txt"), 2, 25, false),
                    wrk(&hyper.url("/delay?ms=1-1"), 2, 25, false),
                )
            });
        let mode = &run.report["http"]["socket_classification"];
        println!("{mode}: {}", describe(run.server()));
        assert_eq!((forked.requests, single.requests), (50, 50), "{mode}: load");
        assert_eq!(httpd.logged_responses(), 50, "{mode}: httpd's own log");
        assert_counts(run.server(), 100, "200");
        let (ip, port) = hyper.addr();
        assert_endpoints(
            &run.report,
            &[
                ("server", format!("127.0.0.1:{}", httpd.port), 50),
                ("server", format!("{ip}:{port}"), 50),
            ],
        );
    }
}

/// The report's endpoints are exactly `expected`: (role, `ip:port`, requests).
fn assert_endpoints(report: &Value, expected: &[(&str, String, u64)]) {
    let endpoints = report["http"]["endpoints"].as_array().expect("endpoints");
    let mut seen: Vec<(String, String, u64)> = endpoints
        .iter()
        .map(|e| {
            (
                e["role"].as_str().unwrap_or("?").to_owned(),
                e["endpoint"].as_str().unwrap_or("?").to_owned(),
                e["requests"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    seen.sort();
    let mut want: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(r, e, n)| ((*r).to_owned(), e.clone(), *n))
        .collect();
    want.sort();
    assert_eq!(seen, want, "endpoints (role, endpoint, requests)");
}

/// Outbound calls: a process that connects and sends requests is the client; its requests are
/// reported under `http.client` with the status the server answered.
#[test]
fn outbound_calls_are_client_requests() {
    if !privileged("outbound_calls_are_client_requests") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let out = profiler_tests::temp_path("client-role.json");
    let ok = hyper.url("/delay?ms=2-2");
    let fail = hyper.url("/status/503");
    let mut profiler = profiler_tests::Profiler::start(&[
        "run",
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        &ok,
        "-o",
        "/dev/null",
        &ok,
        "-o",
        "/dev/null",
        &fail,
    ]);
    profiler.wait_attached();
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "{stderr:?}");
    let report = profiler_tests::read_report(&out);
    let _ = std::fs::remove_file(&out);
    let c = &report["http"]["client"];
    println!("client side: {}", describe(c));
    assert!(report["http"]["server"].is_null(), "curl serves nothing");
    assert_eq!(count(&c["requests"], "client requests"), 3);
    assert_eq!(count(&c["by_status"]["200"], "client 200s"), 2);
    assert_eq!(count(&c["by_status"]["503"], "client 503s"), 1);
    assert_eq!(count(&c["errors"]["status_5xx"], "client 5xx"), 1);
    // Each call takes at least the server's 2 ms delay.
    assert!(dist(c, "latency", "p50_us") >= 2000.0, "client latency p50");
    let endpoints = report["http"]["endpoints"].as_array().expect("endpoints");
    let port = hyper.port();
    assert!(
        endpoints
            .iter()
            .any(|e| e["role"] == "client" && e["endpoint"] == format!("127.0.0.1:{port}")),
        "the called endpoint is named: {endpoints:?}"
    );
    hyper.stop();
}
