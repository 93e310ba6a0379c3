//! HTTP benchmark: nginx on loopback saturated by wrk, in interleaved rounds of six setups —
//! nothing attached; bpftrace counting on the syscall hook set (the old floor); bpftrace
//! counting on the socket-layer hook set (the new floor); the profiler (default path); the
//! profiler forced onto the syscall path; the profiler with `--no-http` — each as a ratio of
//! the median throughput to "nothing" and as the median of each round's ratio to that round's
//! "nothing" (steadier when the machine's speed drifts), with the profiler's own CPU time per
//! request, and the whole machine's busy CPU time per request (nginx, wrk, every hook, the
//! agent): the cost in CPU rather than throughput, which the VM's drift moves far less. Then
//! what the hooks cost processes the profiler does not watch: file I/O (`dd`) and loopback TCP.

use std::{
    io::{BufRead as _, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    bench_load::{Bpftrace, CONNECTIONS, Nginx, WrkResult, placement, wrk},
    shell::root,
};

const REPEATS: usize = 5;
const SECONDS: &str = "5";

pub struct HttpBench {
    pub json: Value,
    pub summary: String,
}

/// The syscall tracepoints the profiler's syscall path uses, and the two busiest scheduler
/// ones: what a tool hooking syscalls pays at the least.
const SYSCALL_FLOOR: &str = "tracepoint:syscalls:sys_enter_read,tracepoint:syscalls:sys_exit_read,\
tracepoint:syscalls:sys_enter_recvfrom,tracepoint:syscalls:sys_exit_recvfrom,\
tracepoint:syscalls:sys_enter_readv,tracepoint:syscalls:sys_exit_readv,\
tracepoint:syscalls:sys_enter_recvmsg,tracepoint:syscalls:sys_exit_recvmsg,\
tracepoint:syscalls:sys_enter_write,tracepoint:syscalls:sys_exit_write,\
tracepoint:syscalls:sys_enter_sendto,tracepoint:syscalls:sys_exit_sendto,\
tracepoint:syscalls:sys_enter_writev,tracepoint:syscalls:sys_exit_writev,\
tracepoint:syscalls:sys_enter_sendmsg,tracepoint:syscalls:sys_exit_sendmsg,\
tracepoint:syscalls:sys_enter_sendfile64,tracepoint:syscalls:sys_exit_sendfile64,\
tracepoint:syscalls:sys_enter_accept4,tracepoint:syscalls:sys_exit_accept4,\
tracepoint:syscalls:sys_enter_close,tracepoint:sock:sock_recv_length,tracepoint:sock:sock_send_length,\
tracepoint:sched:sched_switch,tracepoint:sched:sched_wakeup { @n = count(); }";

/// The socket-layer hook set and the same two scheduler tracepoints.
const SOCKET_FLOOR: &str = "tracepoint:sock:sock_recv_length,tracepoint:sock:sock_send_length,\
tracepoint:sock:inet_sock_set_state,tracepoint:sched:sched_switch,tracepoint:sched:sched_wakeup \
{ @n = count(); }";

/// One setup of a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Nothing,
    BpftraceSyscalls,
    BpftraceSocketLayer,
    Profiler,
    ProfilerSyscallPath,
    ProfilerNoHttp,
}

const SETUPS: [Setup; 6] = [
    Setup::Nothing,
    Setup::BpftraceSyscalls,
    Setup::BpftraceSocketLayer,
    Setup::Profiler,
    Setup::ProfilerSyscallPath,
    Setup::ProfilerNoHttp,
];

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Nothing => "nothing attached",
            Setup::BpftraceSyscalls => "bpftrace count, syscall hook set",
            Setup::BpftraceSocketLayer => "bpftrace count, socket-layer hook set",
            Setup::Profiler => "profiler (default)",
            Setup::ProfilerSyscallPath => "profiler, syscall path forced",
            Setup::ProfilerNoHttp => "profiler --no-http",
        }
    }
}

/// What one run of a setup gave.
#[derive(Default)]
struct Sample {
    requests_per_s: f64,
    /// The machine's busy CPU time during the run per request wrk completed (µs).
    cpu_us_per_request: f64,
    /// Profiler setups: its CPU time per request it counted (ns), requests counted vs wrk's,
    /// scheduler runs the kernel skipped.
    agent_ns_per_request: Option<f64>,
    counted: Option<(u64, u64)>,
    missed_runs: Option<u64>,
}

pub fn run(profiler: &Path) -> Result<HttpBench> {
    let dir = root().join("target/bench/nginx");
    let nginx = Nginx::start(&dir)?;
    let url = format!("http://127.0.0.1:{}/small.txt", nginx.port);
    // Warm up (page cache, nginx worker, wrk) before measuring.
    wrk(&url, "1")?;
    let mut samples: Vec<Vec<Sample>> = SETUPS.iter().map(|_| Vec::new()).collect();
    for round in 0..REPEATS {
        for (i, setup) in SETUPS.iter().enumerate() {
            let sample = measure(*setup, profiler, nginx.pid(), &url)?;
            println!(
                "http bench round {}/{REPEATS}: {:<38} {:>9.0} req/s",
                round + 1,
                setup.name(),
                sample.requests_per_s
            );
            samples[i].push(sample);
        }
    }
    let base = median(
        &mut samples[0]
            .iter()
            .map(|s| s.requests_per_s)
            .collect::<Vec<_>>(),
    );
    let mut rows = Vec::new();
    let mut summary = format!(
        "http (nginx 1 worker, wrk -t1 -c{CONNECTIONS}; {}; medians):",
        placement()
    );
    let nothing: Vec<f64> = samples[0].iter().map(|s| s.requests_per_s).collect();
    let nothing_cpu = median(
        &mut samples[0]
            .iter()
            .map(|s| s.cpu_us_per_request)
            .collect::<Vec<_>>(),
    );
    for (setup, runs) in SETUPS.iter().zip(&samples) {
        let rps = median(&mut runs.iter().map(|s| s.requests_per_s).collect::<Vec<_>>());
        // Each round against that round's "nothing": the VM's speed drifts (2× within a day
        // seen), a round's 30 s much less.
        let mut per_round: Vec<f64> = runs
            .iter()
            .zip(&nothing)
            .map(|(s, n)| s.requests_per_s / n)
            .collect();
        let round_ratio = median(&mut per_round);
        let (lo, hi) = (per_round[0], per_round[per_round.len() - 1]);
        let agent: Vec<f64> = runs.iter().filter_map(|s| s.agent_ns_per_request).collect();
        let agent = (!agent.is_empty()).then(|| median(&mut agent.clone()));
        let cpu = median(
            &mut runs
                .iter()
                .map(|s| s.cpu_us_per_request)
                .collect::<Vec<_>>(),
        );
        rows.push(serde_json::json!({
            "setup": setup.name(),
            "requests_per_s": rps,
            "ratio_to_nothing": rps / base,
            "ratio_per_round_median": round_ratio,
            "ratio_per_round_range": [lo, hi],
            "agent_cpu_ns_per_request": agent,
            "machine_cpu_us_per_request": cpu,
            "machine_cpu_us_per_request_over_nothing": cpu - nothing_cpu,
            "requests_counted_vs_wrk": runs.iter().filter_map(|s| s.counted).collect::<Vec<_>>(),
            "missed_scheduler_runs": runs.iter().filter_map(|s| s.missed_runs).collect::<Vec<_>>(),
        }));
        summary.push_str(&format!(
            "\n  {:<38} {rps:>9.0} req/s  ratio {:.3}  per round {round_ratio:.3} \
             ({lo:.3}–{hi:.3})  CPU {cpu:.2} µs/request ({:+.2}){}",
            setup.name(),
            rps / base,
            cpu - nothing_cpu,
            agent.map_or(String::new(), |a| format!(
                "  agent {:.2} µs/request",
                a / 1e3
            ))
        ));
    }
    let program_costs = program_costs(profiler, nginx.pid(), &url)?;
    let tax = node_tax(profiler, nginx.pid())?;
    let [dd_alone, dd_default, dd_syscalls] = tax.dd_s;
    let [pair_alone, pair_default, pair_syscalls] = tax.socket_pair_ns;
    summary.push_str(&format!(
        "\n  an unwatched process's 3 M one-byte read+write syscalls (dd): {dd_alone:.2} s alone, \
         {dd_default:.2} s with the profiler (default), {dd_syscalls:.2} s on the syscall path\
         \n  an unwatched process's loopback TCP write+read pair: {pair_alone:.0} ns alone, \
         {:+.0} ns with the profiler (default), {:+.0} ns on the syscall path",
        pair_default - pair_alone,
        pair_syscalls - pair_alone
    ));
    let json = serde_json::json!({
        "benchmark": "http-nginx-wrk",
        "bpf_stats": program_costs,
        "unwatched_dd_3m_syscalls_s": {
            "nothing": dd_alone,
            "profiler_default": dd_default,
            "profiler_syscall_path": dd_syscalls,
        },
        "unwatched_tcp_write_read_pair_ns": {
            "nothing": pair_alone,
            "profiler_default": pair_default,
            "profiler_syscall_path": pair_syscalls,
        },
        "server": "nginx 1 worker, 100-byte static file, keep-alive",
        "load": format!("wrk -t1 -c{CONNECTIONS} -d{SECONDS}s"),
        "placement": placement(),
        "rounds": REPEATS,
        "setups": rows,
    });
    Ok(HttpBench { json, summary })
}

/// One wrk run under `setup`.
fn measure(setup: Setup, profiler: &Path, pid: u32, url: &str) -> Result<Sample> {
    match setup {
        Setup::Nothing | Setup::BpftraceSyscalls | Setup::BpftraceSocketLayer => {
            // Held (attached) until the wrk run is over.
            let _tracer = match setup {
                Setup::BpftraceSyscalls => Some(Bpftrace::start(SYSCALL_FLOOR)?),
                Setup::BpftraceSocketLayer => Some(Bpftrace::start(SOCKET_FLOOR)?),
                _ => None,
            };
            let wrk = wrk(url, SECONDS)?;
            Ok(Sample {
                requests_per_s: wrk.requests_per_s,
                cpu_us_per_request: wrk.cpu_us_per_request(),
                ..Sample::default()
            })
        }
        Setup::Profiler | Setup::ProfilerSyscallPath | Setup::ProfilerNoHttp => {
            let run = profiled(profiler, pid, url, setup)?;
            let http = setup != Setup::ProfilerNoHttp;
            Ok(Sample {
                requests_per_s: run.wrk.requests_per_s,
                cpu_us_per_request: run.wrk.cpu_us_per_request(),
                agent_ns_per_request: http
                    .then(|| run.agent_cpu_s * 1e9 / run.requests_seen.max(1) as f64),
                counted: http.then_some((run.requests_seen, run.wrk.requests)),
                missed_runs: Some(run.missed_runs),
            })
        }
    }
}

struct ProfiledRun {
    wrk: WrkResult,
    requests_seen: u64,
    agent_cpu_s: f64,
    missed_runs: u64,
    /// With `stats`: (program, runs, ns in it) of each program the profiler held.
    programs: Vec<(String, u64, u64)>,
}

fn profiled(profiler: &Path, pid: u32, url: &str, setup: Setup) -> Result<ProfiledRun> {
    profiled_with(profiler, pid, url, setup, false)
}

/// One extra run per profiler setup with `kernel.bpf_stats_enabled` on (which adds its own
/// timing cost, so these runs are not among the throughput rounds): per program, runs and ns
/// per request.
fn program_costs(profiler: &Path, pid: u32, url: &str) -> Result<Value> {
    let sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    std::fs::write(sysctl, "1").context("enabling kernel.bpf_stats_enabled")?;
    let mut out = serde_json::Map::new();
    for setup in [Setup::Profiler, Setup::ProfilerSyscallPath] {
        let run = profiled_with(profiler, pid, url, setup, true);
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::write(sysctl, "0");
                return Err(e);
            }
        };
        let requests = run.wrk.requests.max(1) as f64;
        let rows: Vec<Value> = run
            .programs
            .iter()
            .filter(|(_, runs, _)| *runs > 0)
            .map(|(name, runs, ns)| {
                serde_json::json!({
                    "program": name,
                    "runs": runs,
                    "avg_ns": *ns as f64 / *runs as f64,
                    "ns_per_request": *ns as f64 / requests,
                })
            })
            .collect();
        println!("http bench bpf_stats, {}:", setup.name());
        for r in &rows {
            println!(
                "  {:<24} {:>9} runs {:>7.0} ns avg {:>7.0} ns/request",
                r["program"].as_str().unwrap_or("?"),
                r["runs"],
                r["avg_ns"].as_f64().unwrap_or(0.0),
                r["ns_per_request"].as_f64().unwrap_or(0.0)
            );
        }
        out.insert(setup.name().into(), Value::Array(rows));
    }
    std::fs::write(sysctl, "0").context("disabling kernel.bpf_stats_enabled")?;
    Ok(Value::Object(out))
}

/// What the capture costs processes it does not watch, with nothing attached, with the
/// profiler watching `pid` on its default path, and on the syscall path (medians of 3 runs of
/// `dd`, 9 of the socket loop).
struct NodeTax {
    /// `dd` doing 3 M one-byte reads and writes of files (not sockets), seconds.
    dd_s: [f64; 3],
    /// This process writing 16 bytes to a loopback TCP connection and reading them back, ns
    /// per write+read pair (socket I/O: what the socket layer's hooks see).
    socket_pair_ns: [f64; 3],
}

fn node_tax(profiler: &Path, pid: u32) -> Result<NodeTax> {
    let dd = || -> Result<f64> {
        let start = std::time::Instant::now();
        let status = Command::new("dd")
            .args(["if=/dev/zero", "of=/dev/null", "bs=1", "count=3000000"])
            .stderr(Stdio::null())
            .status()
            .context("running dd")?;
        anyhow::ensure!(status.success(), "dd failed");
        Ok(start.elapsed().as_secs_f64())
    };
    let mut tax = NodeTax {
        dd_s: [0.0; 3],
        socket_pair_ns: [0.0; 3],
    };
    for (i, setup) in [
        None,
        Some(Setup::Profiler),
        Some(Setup::ProfilerSyscallPath),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut times, mut pairs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let attached = match setup {
                Some(s) => Some(attach_quiet(profiler, pid, s)?),
                None => None,
            };
            times.push(dd()?);
            // Three per attach: one loop's time moves by ±15% between runs on this VM.
            for _ in 0..3 {
                pairs.push(socket_pair_ns()?);
            }
            if let Some(mut child) = attached {
                interrupt(&child);
                let _ = child.wait();
            }
        }
        tax.dd_s[i] = median(&mut times);
        tax.socket_pair_ns[i] = median(&mut pairs);
    }
    Ok(tax)
}

/// ns per 16-byte write and read back over a loopback TCP connection of this (unwatched)
/// process, over 300 k pairs.
fn socket_pair_ns() -> Result<f64> {
    use std::io::{Read as _, Write as _};
    const PAIRS: u32 = 300_000;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
    client.set_nodelay(true)?;
    let (mut server, _) = listener.accept()?;
    let mut buf = [0u8; 16];
    let start = std::time::Instant::now();
    for _ in 0..PAIRS {
        client.write_all(&buf)?;
        server.read_exact(&mut buf)?;
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(PAIRS))
}

/// `profiler attach --pid PID` with what profiler `setup` adds (its path or `--no-http`).
fn attach_command(profiler: &Path, pid: u32, setup: Setup) -> Command {
    let mut cmd = Command::new(profiler);
    cmd.args(["attach", "--pid", &pid.to_string()]);
    match setup {
        Setup::ProfilerSyscallPath => {
            cmd.env("PROFILER_SOCKETS_SYSCALL_PATH", "1");
        }
        Setup::ProfilerNoHttp => {
            cmd.arg("--no-http");
        }
        _ => {}
    }
    cmd
}

/// The profiler attached to `pid` in `setup`, once it says so (its report discarded).
fn attach_quiet(profiler: &Path, pid: u32, setup: Setup) -> Result<Child> {
    let mut child = attach_command(profiler, pid, setup)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_attached(&mut child)?;
    Ok(child)
}

/// Ends the profiler's session (SIGINT: it detaches and writes its report).
fn interrupt(child: &Child) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// Waits for the profiler's `attached` line, then keeps draining its stderr (the live view) so
/// it never blocks on it.
fn wait_attached(child: &mut Child) -> Result<()> {
    let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
    let mut line = String::new();
    while !line.starts_with("profiler: attached") {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("profiler exited before attaching");
        }
    }
    std::thread::spawn(move || for _ in stderr.lines() {});
    Ok(())
}

/// (name, run_cnt, run_time_ns) of every eBPF program process `pid` holds.
fn programs_of(pid: u32) -> Vec<(String, u64, u64)> {
    let ids: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    let Ok(out) = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
    else {
        return Vec::new();
    };
    let all: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_owned(),
                p["run_cnt"].as_u64().unwrap_or(0),
                p["run_time_ns"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn profiled_with(
    profiler: &Path,
    pid: u32,
    url: &str,
    setup: Setup,
    stats: bool,
) -> Result<ProfiledRun> {
    let mut child = attach_command(profiler, pid, setup)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_attached(&mut child)?;
    let before = if stats {
        programs_of(child.id())
    } else {
        Vec::new()
    };
    let wrk = wrk(url, SECONDS)?;
    let programs = if stats {
        // Over the wrk run only: what the programs ran during attach is subtracted.
        programs_of(child.id())
            .into_iter()
            .map(|(name, runs, ns)| {
                let (r0, n0) = before
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map_or((0, 0), |(_, r, n)| (*r, *n));
                (name, runs.saturating_sub(r0), ns.saturating_sub(n0))
            })
            .collect()
    } else {
        Vec::new()
    };
    interrupt(&child);
    let out = child.wait_with_output()?;
    let report: Value = serde_json::from_slice(&out.stdout).context("profiler report")?;
    Ok(ProfiledRun {
        wrk,
        requests_seen: report["http"]["server"]["requests"].as_u64().unwrap_or(0),
        agent_cpu_s: report["health"]["agent"]["cpu_s"].as_f64().unwrap_or(0.0),
        missed_runs: missed_runs(&report),
        programs,
    })
}

/// Scheduler program runs the kernel skipped (the report's `health.missed_runs`).
fn missed_runs(report: &Value) -> u64 {
    report["health"]["missed_runs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(program, _)| program.starts_with("sched") || program.starts_with("task"))
        .filter_map(|(_, runs)| runs.as_u64())
        .sum()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
