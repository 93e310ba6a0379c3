//! Harness for the HTTP end-to-end tests: real servers (nginx, Python's `http.server`, our hyper
//! `http-server`), a real load generator (wrk) driven so that every connection makes an exact
//! number of requests, curl for single exchanges and SSE streams, and a helper that profiles a
//! server while a load runs. Everything started here is stopped on Drop.
//!
//! Needs `nginx`, `wrk`, `curl` and `python3` (Debian packages nginx, wrk, curl, python3).

use std::{
    io::{BufRead as _, BufReader},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Profiler, profiler_bin, read_report, temp_path};

/// Static files the servers serve: a small one and one far bigger than the profiler's default
/// 512-byte capture.
pub const STATIC_FILES: &[(&str, usize)] = &[("small.txt", 100), ("big.bin", 64 * 1024)];

/// A tool from PATH, or from /usr/sbin or /usr/bin (nginx lives in /usr/sbin).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("{name} not found: install it (apt-get install -y nginx wrk curl python3)")
    })
}

/// Whether the HTTP tools are installed. When they are not, prints why and records the skip
/// like [`crate::privileged`] does (for tests that need no root, only the tools).
pub fn http_tools_present(test: &str) -> bool {
    let missing: Vec<&str> = ["nginx", "wrk", "curl", "python3"]
        .into_iter()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    crate::record_skip(test, &format!("{} not installed", missing.join(", ")));
    false
}

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Waits until 127.0.0.1:`port` accepts connections; panics if `child` exits or after 10 s.
fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory removed (with its contents) on Drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = temp_path(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `files` (name, size in bytes; readable by anyone) under `sub` and returns its path.
    pub fn with_files(&self, sub: &str, files: &[(&str, usize)]) -> PathBuf {
        let dir = self.0.join(sub);
        std::fs::create_dir_all(&dir).expect("create dir");
        for (name, size) in files {
            let mut data: Vec<u8> = (0..*size).map(|i| b'a' + (i % 26) as u8).collect();
            if let Some(last) = data.last_mut() {
                *last = b'\n';
            }
            std::fs::write(dir.join(name), data).expect("write static file");
        }
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn signal_pid(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

fn alive(pid: u32) -> bool {
    // /proc/PID exists until the process is reaped; a zombie counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Pids whose parent is `ppid` (from /proc/*/stat).
pub fn children_of(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let parent = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(ppid) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

mod servers;
pub use servers::*;

/// Parses a JSON-lines file (missing file: no lines).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// What wrk measured (latencies from writing a request to reading its whole response, client
/// side, in µs; exact values — wrk keeps a per-µs histogram).
#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    /// Completed requests (responses read), any status.
    pub requests: u64,
    /// Socket errors: connect + read + write + timeout.
    pub errors: u64,
    /// Responses with status ≥ 400 (wrk's "Non-2xx or 3xx responses").
    pub status_non2xx: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// wrk script: each thread has one connection and stops after exactly `args[1]` responses, so
/// nothing else is in flight; `done` prints one parseable line.
const WRK_SCRIPT: &str = r#"
local limit, count = 0, 0
function init(args)
  limit = tonumber(args[1])
end
function response(status, headers, body)
  count = count + 1
  if count == limit then
    io.stdout:write("wrk-thread-done\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.stdout:write(string.format(
    "wrk-result requests=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%d p90=%d p99=%d max=%d mean=%.1f\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
  io.stdout:flush()
end
"#;

/// Runs wrk against `url` with `connections` connections (one thread each) making exactly
/// `per_connection` requests each (so `connections × per_connection` in all, unless a request
/// fails); without `keepalive`, every request has `Connection: close` and wrk reconnects for the
/// next one (and, after its last one, opens one more connection on which it sends nothing).
pub fn wrk(url: &str, connections: u32, per_connection: u32, keepalive: bool) -> WrkResult {
    let script = temp_path(&format!("wrk-{connections}-{per_connection}.lua"));
    std::fs::write(&script, WRK_SCRIPT).expect("write wrk script");
    let c = connections.to_string();
    let mut cmd = Command::new(tool("wrk"));
    cmd.args(["-t", &c, "-c", &c, "-d", "60s", "--timeout", "10s", "-s"])
        .arg(&script);
    if !keepalive {
        cmd.args(["-H", "Connection: close"]);
    }
    let mut child = cmd
        .arg(url)
        .arg("--")
        .arg(per_connection.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk");
    let stdout = child.stdout.take().expect("wrk stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // wrk's main thread sleeps for -d whatever its threads do; once every thread stopped,
    // SIGINT ends the sleep and wrk prints its summary.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    let mut done = 0;
    while done < connections && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            if line == "wrk-thread-done" {
                done += 1;
            }
            lines.push(line);
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    signal_pid(child.id(), libc::SIGINT);
    let out = child.wait_with_output().expect("wait wrk");
    lines.extend(rx.iter());
    let _ = std::fs::remove_file(&script);
    let result = lines
        .iter()
        .find_map(|l| l.strip_prefix("wrk-result "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no result ({:?}): stdout {lines:?}, stderr {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let field = |name: &str| -> f64 {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("wrk result has no {name}: {result}"))
    };
    let r = WrkResult {
        requests: field("requests") as u64,
        errors: (field("connect") + field("read") + field("write") + field("timeout")) as u64,
        status_non2xx: field("status") as u64,
        p50_us: field("p50"),
        p90_us: field("p90"),
        p99_us: field("p99"),
        max_us: field("max"),
        mean_us: field("mean"),
    };
    println!(
        "wrk {url} c={connections} n={per_connection} keepalive={keepalive}: {} requests, \
         {} errors, {} status>=400, client latency p50 {} µs p90 {} µs p99 {} µs max {} µs",
        r.requests, r.errors, r.status_non2xx, r.p50_us, r.p90_us, r.p99_us, r.max_us
    );
    assert_eq!(
        done, connections,
        "not every wrk connection finished its requests: {lines:?}"
    );
    r
}

/// What curl got.
#[derive(Debug)]
pub struct CurlResult {
    /// curl's exit status (0: success; 56: receive failure, e.g. connection reset).
    pub code: i32,
    pub body: String,
    pub stderr: String,
}

impl CurlResult {
    /// SSE data events in the body, `[DONE]` not counted.
    pub fn sse_events(&self) -> usize {
        self.body
            .lines()
            .filter(|l| l.starts_with("data:") && l.trim() != "data: [DONE]")
            .count()
    }
}

/// Runs `curl -sS --no-buffer ARGS` (several URLs reuse one keep-alive connection, one after
/// the other).
pub fn curl(args: &[&str]) -> CurlResult {
    let out = Command::new(tool("curl"))
        .args(["-sS", "--no-buffer", "--max-time", "30"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    CurlResult {
        code: out.status.code().unwrap_or(-1),
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A profiler session and what it wrote.
pub struct Profiled {
    pub report: Value,
    /// `--events` lines (empty unless asked for).
    pub events: Vec<Value>,
    pub stderr: Vec<String>,
}

impl Profiled {
    /// `report.http.server`; panics (showing `report.http`) when the report has none.
    pub fn server(&self) -> &Value {
        let s = &self.report["http"]["server"];
        assert!(
            s.is_object(),
            "report has no http.server section; http = {}",
            self.report["http"]
        );
        s
    }
}

/// Attaches the profiler to `pid` (`attach --pid PID --format json --output … EXTRA`, plus
/// `--events FILE` with `events`; not `--quiet`, which also silences the `profiler: attached`
/// line that [`Profiler::wait_attached`] waits for), runs `load` once attached, lets in-flight
/// events settle (300 ms), ends the session with SIGINT and returns the report with `load`'s
/// result.
pub fn profile<R>(
    pid: u32,
    extra: &[&str],
    events: bool,
    load: impl FnOnce() -> R,
) -> (Profiled, R) {
    profile_env(pid, extra, &[], events, load)
}

/// [`profile`] with extra environment variables for the profiler.
pub fn profile_env<R>(
    pid: u32,
    extra: &[&str],
    env: &[(&str, &str)],
    events: bool,
    load: impl FnOnce() -> R,
) -> (Profiled, R) {
    let tag = format!("http-{pid}-{}", free_port());
    let out = temp_path(&format!("{tag}.json"));
    let events_path = temp_path(&format!("{tag}.events.jsonl"));
    let pid = pid.to_string();
    let mut args = vec![
        "attach",
        "--pid",
        &pid,
        "--format",
        "json",
        "--output",
        out.to_str().expect("utf-8 temp path"),
    ];
    if events {
        args.extend(["--events", events_path.to_str().expect("utf-8 temp path")]);
    }
    args.extend(extra);
    let mut cmd = std::process::Command::new(profiler_bin());
    cmd.args(&args).envs(env.iter().copied());
    let mut session = Session {
        profiler: Some(Profiler::start_with(&mut cmd)),
        files: vec![out.clone(), events_path.clone()],
    };
    let profiler = session.profiler.as_mut().expect("profiler");
    profiler.wait_attached();
    let result = load();
    // Let the last responses' syscalls and the connections' closes reach the profiler.
    std::thread::sleep(Duration::from_millis(300));
    let profiler = session.profiler.take().expect("profiler");
    profiler.signal(libc::SIGINT);
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler failed: {status:?}: {stderr:?}");
    let report = read_report(&out);
    let events = if events {
        read_jsonl(&events_path)
    } else {
        Vec::new()
    };
    drop(session);
    if report["http"]["events_lost"].as_u64().unwrap_or(0) > 0 {
        println!(
            "profiler lost {} HTTP events",
            report["http"]["events_lost"]
        );
    }
    (
        Profiled {
            report,
            events,
            stderr,
        },
        result,
    )
}

/// A profiler session that a failing test leaves: the profiler is stopped (SIGINT, then SIGKILL
/// after 10 s) and its files removed.
struct Session {
    profiler: Option<Profiler>,
    files: Vec<PathBuf>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut p) = self.profiler.take() {
            p.signal(libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(p.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The `p`-th percentile (0–100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    assert!(!values.is_empty(), "percentile of nothing");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A number from a report field (u64 or f64), panicking with the field's name.
pub fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// A count from a report field, panicking with the field's name.
pub fn count(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a count: {v}"))
}

/// Prints `measured` vs `truth` and asserts |measured − truth| ≤ max(rel × truth, abs_us).
pub fn assert_close(what: &str, measured_us: f64, truth_us: f64, rel: f64, abs_us: f64) {
    let diff = measured_us - truth_us;
    let allowed = (rel * truth_us).max(abs_us);
    println!(
        "{what}: profiler {measured_us:.1} µs, truth {truth_us:.1} µs, diff {diff:+.1} µs \
         (allowed ±{allowed:.1} µs)"
    );
    assert!(
        diff.abs() <= allowed,
        "{what}: profiler {measured_us:.1} µs vs truth {truth_us:.1} µs: off by {diff:+.1} µs, \
         more than {allowed:.1} µs"
    );
}

/// Ground-truth values of `field` (µs) from the hyper server's lines.
pub fn truth_values(lines: &[Value], field: &str) -> Vec<f64> {
    lines.iter().filter_map(|l| l[field].as_f64()).collect()
}

/// A one-line summary of a `report.http.server` section, for the test log.
pub fn describe(server: &Value) -> String {
    let d = |v: &Value| {
        format!(
            "n={} p50={} p90={} p99={} max={}",
            v["count"], v["p50_us"], v["p90_us"], v["p99_us"], v["max_us"]
        )
    };
    format!(
        "requests={} errors={} by_status={} by_process={} bytes_in={} bytes_out={} latency[{}]",
        server["requests"],
        server["errors"],
        server["by_status"],
        server["by_process"],
        server["bytes_in"],
        server["bytes_out"],
        d(&server["latency"])
    )
}

/// `by_status[status]` (0 when absent).
pub fn by_status(server: &Value, status: &str) -> u64 {
    server["by_status"][status].as_u64().unwrap_or(0)
}

/// Latency tolerance of the HTTP suites: max(5%, 200 µs) of the ground truth (tests/tests/http.rs
/// says why).
pub const LATENCY_TOLERANCE: f64 = 0.05;
pub const LATENCY_TOLERANCE_US: f64 = 200.0;

/// Requests, errors and statuses the profiler reports equal what the load generator counted.
pub fn assert_counts(server: &Value, requests: u64, status: &str) {
    println!("profiler: {}", describe(server));
    let reported = count(&server["requests"], "requests");
    println!("requests: profiler {reported}, load generator {requests}");
    assert_eq!(reported, requests, "request count");
    assert_eq!(by_status(server, status), requests, "by_status[{status}]");
    assert_eq!(
        count(&server["by_method"]["GET"], "by_method.GET"),
        requests,
        "by_method.GET"
    );
}

/// The section reports no error.
pub fn no_errors(server: &Value) {
    assert_eq!(
        count(&server["errors"]["total"], "errors.total"),
        0,
        "errors: {}",
        server["errors"]
    );
}

/// Percentile `p` (e.g. `p50_us`) of distribution `name` (e.g. `latency`) in a report section.
pub fn dist(server: &Value, name: &str, p: &str) -> f64 {
    num(&server[name][p], &format!("{name}.{p}"))
}
