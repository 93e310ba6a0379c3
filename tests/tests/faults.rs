//! Faults a node-wide profiler meets: the target killed mid-request and mid-stream, a burst the
//! ring buffer cannot hold, a watched process that execs another program, the profiler itself
//! killed with SIGKILL.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use profiler_tests::{
    Profiler, http::*, privileged, programs_held_by, read_report, still_loaded_after, temp_path,
};
use serde_json::Value;

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

fn errors(server: &Value, kind: &str) -> u64 {
    server["errors"][kind]
        .as_u64()
        .unwrap_or_else(|| panic!("errors.{kind}: {server}"))
}

/// The server is SIGKILLed while one request waits for its response and one stream is half
/// written: both are errors of their kind (closed before / mid response), none stays in
/// flight, and the session ends with the target.
#[test]
fn target_killed_mid_request_and_mid_stream() {
    if !privileged("target_killed_mid_request_and_mid_stream") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let pid = hyper.pid();
    let stream = hyper.url("/sse?events=100&delay_ms=20");
    let slow = hyper.url("/delay?ms=5000");
    let (run, ()) = profile(pid, &[], true, || {
        let curl_stream = Command::new("curl")
            .args(["-sS", "--no-buffer", &stream])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl");
        let curl_slow = Command::new("curl")
            .args(["-sS", &slow])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl");
        std::thread::sleep(Duration::from_millis(600));
        kill(pid, libc::SIGKILL);
        for mut c in [curl_stream, curl_slow] {
            let _ = c.wait();
        }
    });
    let s = run.server();
    println!("profiler: {}", describe(s));
    assert_eq!(count(&s["requests"], "requests"), 2);
    assert_eq!(errors(s, "closed_mid_response"), 1, "the stream");
    assert_eq!(errors(s, "closed_before_response"), 1, "the slow request");
    assert_eq!(count(&s["in_flight"], "in_flight"), 0);
    let outcomes: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes.len(), 2, "{:?}", run.events);
    assert!(outcomes.contains(&"closed-mid-response"), "{outcomes:?}");
    assert!(outcomes.contains(&"closed-before-response"), "{outcomes:?}");
    assert_eq!(
        run.report["end_reason"], "target-exited",
        "the session ended with the target"
    );
}

/// The agent is stopped (SIGSTOP) while a load of large responses fills the 8 MiB ring
/// buffer: the drops are counted in the report, the live view and `/metrics`, and once the
/// agent runs again the requests on a new connection are counted exactly.
#[test]
fn ring_buffer_overflow_is_counted_and_analysis_recovers() {
    if !privileged("ring_buffer_overflow_is_counted_and_analysis_recovers") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let out = temp_path(&format!("overflow-{}.json", free_port()));
    let listen = format!("127.0.0.1:{}", free_port());
    let pid = hyper.pid().to_string();
    let mut profiler = Profiler::start(&[
        "attach",
        "--pid",
        &pid,
        "--capture-bytes",
        "4096",
        "--listen",
        &listen,
        "--format",
        "json",
        "--output",
        out.to_str().expect("utf-8"),
    ]);
    profiler.wait_attached();
    let agent = profiler.child.id();
    kill(agent, libc::SIGSTOP);
    // ≈ 4.7 KB per response event at this capture: a few thousand responses overflow 8 MiB.
    let wrk = Command::new("wrk")
        .args(["-t1", "-c4", "-d3s", &hyper.url("/delay?ms=0&bytes=16000")])
        .output()
        .expect("wrk");
    println!("wrk: {}", String::from_utf8_lossy(&wrk.stdout));
    kill(agent, libc::SIGCONT);
    // Two live-view intervals, so the drops reach the live line.
    std::thread::sleep(Duration::from_millis(2500));
    let url = hyper.url("/status/201");
    let urls: Vec<&str> = std::iter::repeat_n(url.as_str(), 20).collect();
    let got = curl(&urls);
    assert_eq!(got.code, 0, "curl: {}", got.stderr);
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = curl(&["-sf", &format!("http://{listen}/metrics")]);
    profiler.signal(libc::SIGINT);
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler: {status:?} {stderr:?}");
    let report = read_report(&out);
    let _ = std::fs::remove_file(&out);

    let lost = report["http"]["events_lost"].as_u64().expect("events_lost");
    println!("events lost: {lost}");
    assert!(lost > 0, "the stopped agent's ring buffer overflowed");
    let live: Vec<&String> = stderr.iter().filter(|l| l.contains(" LOST=")).collect();
    println!("live view: {live:?}");
    assert!(
        !live.is_empty(),
        "the live view shows the drops: {stderr:?}"
    );
    let lost_series = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("profiler_events_lost_total") && l.contains("probe=\"sock\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        lost_series > 0.0,
        "/metrics shows the drops:\n{}",
        metrics.body
    );
    let server = &report["http"]["server"];
    assert_eq!(
        server["by_status"]["201"],
        20,
        "after the overflow every request is counted: {}",
        describe(server)
    );
}

/// A watched shell execs a server after the profiler attached: same pid, another program; its
/// requests are counted.
#[test]
fn a_watched_process_that_execs_a_server_is_still_profiled() {
    if !privileged("a_watched_process_that_execs_a_server_is_still_profiled") {
        return;
    }
    let port = free_port();
    let dir = TempDir::new(&format!("exec-{port}"));
    std::fs::write(dir.path().join("hello.txt"), "hello").expect("write");
    let script = format!(
        "read go; exec python3 -m http.server --bind 127.0.0.1 --directory {} {port}",
        dir.path().display()
    );
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh");
    let pid = shell.id();
    let mut stdin = shell.stdin.take().expect("stdin");
    let (run, got) = profile(pid, &[], false, || {
        use std::io::Write as _;
        writeln!(stdin, "go").expect("go");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "server not listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = format!("http://127.0.0.1:{port}/hello.txt");
        (0..10).map(|_| curl(&[&url]).code).collect::<Vec<_>>()
    });
    let _ = shell.kill();
    let _ = shell.wait();
    assert!(got.iter().all(|&c| c == 0), "curl: {got:?}");
    let s = run.server();
    println!("profiler: {}", describe(s));
    assert_eq!(count(&s["requests"], "requests"), 10);
    assert_eq!(s["by_status"]["200"], 10);
}

/// The daemon killed with SIGKILL (no chance to detach): the kernel drops every program it
/// held with its last file descriptor, and `profiler check` is clean after.
#[test]
fn sigkilled_daemon_leaves_nothing_loaded() {
    if !privileged("sigkilled_daemon_leaves_nothing_loaded") {
        return;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let mut daemon = Profiler::start(&[
        "daemon",
        "--listen",
        &listen,
        "--match",
        "comm=^nothing-matches$",
    ]);
    daemon.wait_attached();
    let programs = programs_held_by(daemon.child.id());
    assert!(!programs.is_empty(), "the daemon holds its programs");
    let scrape = curl(&["-sf", &format!("http://{listen}/metrics")]);
    assert_eq!(scrape.code, 0, "the daemon serves: {}", scrape.stderr);
    kill(daemon.child.id(), libc::SIGKILL);
    let _ = daemon.child.wait();
    let left = still_loaded_after(&programs, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "programs still loaded 5 s after SIGKILL: {left:?}"
    );
    let check = Command::new(profiler_tests::profiler_bin())
        .arg("check")
        .output()
        .expect("profiler check");
    assert!(
        check.status.success(),
        "check after SIGKILL: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}
