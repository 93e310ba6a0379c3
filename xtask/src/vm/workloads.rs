//! The workloads inside each VM (init.sh, `workloads`): what the console says about them, and
//! the assertions on the profiler's report against their ground truth.

use serde_json::Value;

use super::cuda;

/// Requests sent to each server.
pub const REQUESTS: u64 = 50;
/// The fork-per-connection server (busybox httpd) and the one-process server (http-server).
pub const FORK_ENDPOINT: &str = "127.0.0.1:8081";
pub const ONE_PROCESS_ENDPOINT: &str = "127.0.0.1:8082";
/// The burner's on-CPU time may differ from /proc's by this much (relative).
pub const ONCPU_TOLERANCE: f64 = 0.05;
/// /proc's clock ticks per second (USER_HZ: 100 on x86).
const USER_HZ: f64 = 100.0;

/// The workloads' pids in the VM.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pids {
    pub httpd: u64,
    pub http_server: u64,
    pub burner: u64,
    pub cuda: u64,
}

/// One kernel's workload run, as the console shows it.
#[derive(Debug, Default)]
pub struct WorkloadRun {
    pub pids: Option<Pids>,
    /// Requests that busybox wget completed, per server.
    pub wget_fork: Option<u64>,
    pub wget_one_process: Option<u64>,
    /// Lines of http-server's own log: requests it served.
    pub server_log: Option<u64>,
    /// The burner's utime + stime (ticks) when it was resumed and when it was stopped.
    pub burner_ticks: Option<(u64, u64)>,
    /// The CUDA workload's ground-truth line.
    pub cuda_truth: Option<Value>,
    /// The profiler's JSON report.
    pub report: Option<Value>,
    /// What the profiler printed on stderr.
    pub profiler_stderr: String,
    /// `=== ` lines that say something went wrong in the VM (and the CUDA workload's stderr).
    pub problems: Vec<String>,
}

/// Console lines that only say what went wrong in the VM.
const PROBLEM_MARKERS: &[&str] = &[
    "=== http-server did not start",
    "=== profiler did not attach",
    "=== profiler did not stop",
    "=== cuda-workload: ",
    "=== wget: ",
];

impl WorkloadRun {
    pub fn parse(console: &str) -> Self {
        let mut run = Self {
            report: between(console, "=== report-begin\n", "=== report-end")
                .and_then(|r| serde_json::from_str(r.trim()).ok()),
            profiler_stderr: between(
                console,
                "=== profiler-stderr-begin\n",
                "=== profiler-stderr-end",
            )
            .unwrap_or("")
            .to_string(),
            ..Self::default()
        };
        for line in console.lines() {
            if let Some(rest) = line.strip_prefix("=== workloads ") {
                run.pids = parse_pids(rest);
            } else if let Some(n) = line.strip_prefix("=== wget fork-per-connection ") {
                run.wget_fork = n.trim().parse().ok();
            } else if let Some(n) = line.strip_prefix("=== wget one-process ") {
                run.wget_one_process = n.trim().parse().ok();
            } else if let Some(n) = line.strip_prefix("=== http-server-log ") {
                run.server_log = n.trim().parse().ok();
            } else if let Some(t) = line.strip_prefix("=== burner-ticks ") {
                let mut it = t.split_whitespace().filter_map(|v| v.parse().ok());
                run.burner_ticks = it.next().zip(it.next());
            } else if let Some(j) = line.strip_prefix("=== cuda-truth ") {
                run.cuda_truth = serde_json::from_str(j.trim()).ok();
            } else if PROBLEM_MARKERS.iter().any(|m| line.starts_with(m)) {
                run.problems
                    .push(line.trim_start_matches("=== ").to_string());
            }
        }
        run
    }
}

fn between<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(begin)?;
    Some(rest.split_once(end)?.0)
}

/// `httpd=12 http-server=13 burner=14 cuda=15`.
fn parse_pids(s: &str) -> Option<Pids> {
    let mut pids = Pids::default();
    for word in s.split_whitespace() {
        let (name, pid) = word.split_once('=')?;
        let pid = pid.parse().ok()?;
        match name {
            "httpd" => pids.httpd = pid,
            "http-server" => pids.http_server = pid,
            "burner" => pids.burner = pid,
            "cuda" => pids.cuda = pid,
            _ => {}
        }
    }
    Some(pids)
}

/// One kernel's row of the matrix, and what failed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Probes attached / in the table.
    pub probes: String,
    pub fork: String,
    pub one_process: String,
    pub oncpu: String,
    pub cuda: String,
    pub failures: Vec<String>,
}

/// Asserts the report against the ground truth. `missing_ok`: probes this kernel is known to
/// lack (their fallbacks run), by program name.
pub fn evaluate(run: &WorkloadRun, missing_ok: &[&str]) -> Outcome {
    let mut out = Outcome::default();
    let (Some(report), Some(pids)) = (&run.report, run.pids) else {
        let why = if run.problems.is_empty() {
            "no report from profiler attach".to_string()
        } else {
            run.problems.join("; ")
        };
        out.failures.push(format!(
            "workloads: {why}; profiler stderr: {}",
            run.profiler_stderr.trim()
        ));
        for cell in [
            &mut out.probes,
            &mut out.fork,
            &mut out.one_process,
            &mut out.oncpu,
            &mut out.cuda,
        ] {
            *cell = "no report".into();
        }
        return out;
    };
    out.probes = probes(report, missing_ok, &mut out.failures);
    out.fork = fork_server(run, report, pids, &mut out.failures);
    out.one_process = one_process_server(run, report, pids, &mut out.failures);
    out.oncpu = oncpu(run, report, pids, &mut out.failures);
    let stray = stray_endpoints(report);
    if !stray.is_empty() {
        out.failures.push(format!(
            "server endpoints that are neither server's: {}",
            stray.join(", ")
        ));
    }
    out.cuda = cuda::evaluate(run.cuda_truth.as_ref(), report, &mut out.failures);
    out
}

/// `attached/total`; a probe not attached fails unless this kernel is known to lack it.
fn probes(report: &Value, missing_ok: &[&str], failures: &mut Vec<String>) -> String {
    let probes = report["probes"].as_array().map_or(&[][..], |p| p);
    let attached = probes.iter().filter(|p| p["attached"] == true).count();
    for p in probes.iter().filter(|p| p["attached"] != true) {
        let program = p["program"].as_str().unwrap_or("?");
        if !missing_ok.contains(&program) {
            failures.push(format!(
                "probe {program} ({}) not attached: {}",
                p["attach_point"].as_str().unwrap_or("?"),
                p["error"].as_str().unwrap_or("no error given")
            ));
        }
    }
    format!("{attached}/{}", probes.len())
}

/// Requests the report's `http.server.by_process` gives the processes in `pids`.
fn server_requests(report: &Value, pids: &[u64]) -> u64 {
    report["http"]["server"]["by_process"]
        .as_array()
        .map_or(0, |procs| {
            procs
                .iter()
                .filter(|p| p["pid"].as_u64().is_some_and(|pid| pids.contains(&pid)))
                .filter_map(|p| p["requests"].as_u64())
                .sum()
        })
}

/// Server requests per endpoint name.
fn endpoint_requests(report: &Value, endpoint: &str) -> u64 {
    report["http"]["endpoints"].as_array().map_or(0, |e| {
        e.iter()
            .filter(|e| e["role"] == "server" && e["endpoint"] == endpoint)
            .filter_map(|e| e["requests"].as_u64())
            .sum()
    })
}

/// The server endpoints that are neither server's, with their requests.
fn stray_endpoints(report: &Value) -> Vec<String> {
    report["http"]["endpoints"]
        .as_array()
        .map_or(Vec::new(), |e| {
            e.iter()
                .filter(|e| e["role"] == "server")
                .filter(|e| e["endpoint"] != FORK_ENDPOINT && e["endpoint"] != ONE_PROCESS_ENDPOINT)
                .map(|e| {
                    format!(
                        "{} {}",
                        e["endpoint"].as_str().unwrap_or("?"),
                        e["requests"]
                    )
                })
                .collect()
        })
}

/// The cell and the failures for one server: `counted/50`, and where the endpoint did not get
/// every request, how many it got.
fn server_cell(
    what: &str,
    counted: u64,
    sent: Option<u64>,
    report: &Value,
    endpoint: &str,
    failures: &mut Vec<String>,
) -> String {
    if sent != Some(REQUESTS) {
        failures.push(format!(
            "{what}: busybox wget completed {sent:?} of {REQUESTS} requests (harness)"
        ));
    }
    if counted != REQUESTS {
        failures.push(format!(
            "{what}: the profiler counted {counted} of {REQUESTS} requests"
        ));
    }
    let at_endpoint = endpoint_requests(report, endpoint);
    let mut cell = format!("{counted}/{REQUESTS}");
    if at_endpoint != REQUESTS {
        failures.push(format!(
            "{what}: endpoint {endpoint} has {at_endpoint} of {REQUESTS} requests"
        ));
        cell.push_str(&format!(", {at_endpoint} at :{}", port_of(endpoint)));
    }
    cell
}

fn port_of(endpoint: &str) -> &str {
    endpoint.rsplit(':').next().unwrap_or(endpoint)
}

/// busybox httpd: its requests are served by the children it forks per connection (the only
/// processes of the session that fork: the report lists them with role `child`).
fn fork_server(
    run: &WorkloadRun,
    report: &Value,
    pids: Pids,
    failures: &mut Vec<String>,
) -> String {
    let others = [pids.http_server, pids.burner, pids.cuda];
    let mut family = vec![pids.httpd];
    for p in report["processes"].as_array().map_or(&[][..], |p| p) {
        let ppid = p["ppid"].as_u64().unwrap_or(0);
        if p["role"] == "child" && !others.contains(&ppid) {
            family.extend(p["pid"].as_u64());
        }
    }
    let counted = server_requests(report, &family);
    let what = "fork-per-connection server (busybox httpd)";
    server_cell(
        what,
        counted,
        run.wget_fork,
        report,
        FORK_ENDPOINT,
        failures,
    )
}

fn one_process_server(
    run: &WorkloadRun,
    report: &Value,
    pids: Pids,
    failures: &mut Vec<String>,
) -> String {
    let counted = server_requests(report, &[pids.http_server]);
    let what = "one-process server (http-server)";
    if run.server_log != Some(REQUESTS) {
        failures.push(format!(
            "{what}: its own log has {:?} of {REQUESTS} requests (harness)",
            run.server_log
        ));
    }
    let sent = run.wget_one_process;
    server_cell(what, counted, sent, report, ONE_PROCESS_ENDPOINT, failures)
}

/// The burner's on-CPU time in the report vs its /proc CPU time over the window (init.sh: it
/// runs only between the two readings, both inside the profiler's window).
fn oncpu(run: &WorkloadRun, report: &Value, pids: Pids, failures: &mut Vec<String>) -> String {
    let Some((t0, t1)) = run.burner_ticks else {
        failures.push("burner: no /proc readings (harness)".into());
        return "no /proc".into();
    };
    let proc_s = t1.saturating_sub(t0) as f64 / USER_HZ;
    let profiler_s = report["processes"].as_array().and_then(|ps| {
        ps.iter()
            .find(|p| p["pid"].as_u64() == Some(pids.burner))
            .and_then(|p| p["sched"]["oncpu_s"].as_f64())
    });
    let Some(profiler_s) = profiler_s else {
        failures.push(format!("burner: pid {} not in the report", pids.burner));
        return "not reported".into();
    };
    if proc_s <= 0.0 {
        failures.push("burner: no CPU time in /proc (harness)".into());
        return "no /proc".into();
    }
    let rel = (profiler_s - proc_s) / proc_s;
    if rel.abs() > ONCPU_TOLERANCE {
        failures.push(format!(
            "burner: on-CPU {profiler_s:.3} s vs /proc {proc_s:.2} s ({}), over {:.0}%",
            signed_percent(rel),
            ONCPU_TOLERANCE * 100.0
        ));
    }
    signed_percent(rel)
}

/// `+1.2%`, `−0.4%` (a minus sign, as the README's tables have it).
pub fn signed_percent(rel: f64) -> String {
    let pct = format!("{:.1}%", rel.abs() * 100.0);
    if pct == "0.0%" {
        pct
    } else if rel < 0.0 {
        format!("\u{2212}{pct}")
    } else {
        format!("+{pct}")
    }
}
