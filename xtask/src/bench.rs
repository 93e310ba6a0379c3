//! `cargo xtask bench`: what the profiler costs the processes it watches, measured in one run.
//!
//! Scheduler probes: a two-thread pipe ping-pong (every round is two blocking reads, so two
//! voluntary context switches and two wakeups) timed without and with the profiler attached,
//! alternating, median of several runs. The difference per round divided by the context
//! switches per round (counted by the profiler itself) is the cost per context switch.
//!
//! HTTP: see `bench_http` (nginx under wrk, throughput with and without the profiler).
//! CUDA: see `bench_cuda` (ns added per `cuLaunchKernel` on the stand-in library).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    setup,
    shell::{self, cargo, is_root, root},
};

const ROUNDS: &str = "200000";
const REPEATS: usize = 5;

/// `which`: `None` runs every benchmark, `Some("sched" | "http" | "cuda")` one.
pub fn run(which: Option<&str>) -> Result<()> {
    if !is_root() {
        bail!("bench loads eBPF programs: run it as root");
    }
    if let Some(w) = which
        && !["sched", "http", "cuda"].contains(&w)
    {
        bail!("unknown benchmark {w:?}: sched, http or cuda");
    }
    setup::run()?;
    shell::run(cargo().args([
        "build",
        "--release",
        "--bins",
        "-p",
        "profiler",
        "-p",
        "profiler-tests",
    ]))?;
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    let wanted = |name: &str| which.is_none_or(|w| w == name);
    if wanted("sched") {
        sched(&out)?;
    }
    if wanted("cuda") {
        let cuda = crate::bench_cuda::run(&bin("profiler"), &out)?;
        println!("{}", serde_json::to_string_pretty(&cuda)?);
        std::fs::write(out.join("cuda.json"), serde_json::to_string_pretty(&cuda)?)?;
    }
    if wanted("http") {
        analyzer()?;
        let http = crate::bench_http::run(&bin("profiler"))?;
        println!("{}", serde_json::to_string_pretty(&http.json)?);
        std::fs::write(
            out.join("http.json"),
            serde_json::to_string_pretty(&http.json)?,
        )?;
        println!("{}", http.summary);
    }
    Ok(())
}

/// The HTTP analyzer's cost per segment (a timing test kept out of `cargo xtask test`).
fn analyzer() -> Result<()> {
    let out = shell::output(cargo().args([
        "test",
        "--release",
        "-p",
        "profiler",
        "--lib",
        "time_per_segment",
        "--",
        "--ignored",
        "--nocapture",
    ]))?;
    for line in out.lines().filter(|l| l.contains("ns per segment")) {
        println!("http analyzer: {line}");
    }
    Ok(())
}

fn sched(out: &std::path::Path) -> Result<()> {
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut switches_per_round = Vec::new();
    let mut agent_cpu_per_switch_ns = Vec::new();
    let mut agent_rss = Vec::new();
    for _ in 0..REPEATS {
        without.push(pingpong_alone()?);
        let run = pingpong_profiled()?;
        with.push(run.ns_per_round);
        switches_per_round.push(run.switches_per_round);
        agent_cpu_per_switch_ns.push(run.agent_cpu_s * 1e9 / run.switches);
        agent_rss.push(run.agent_rss_bytes as f64);
    }
    let (base, probed) = (median(&mut without), median(&mut with));
    let per_round = median(&mut switches_per_round);
    let added = (probed - base) / per_round;
    let result = serde_json::json!({
        "benchmark": "sched-pingpong",
        "rounds": ROUNDS.parse::<u64>()?,
        "repeats": REPEATS,
        "ns_per_round_without": base,
        "ns_per_round_with": probed,
        "context_switches_per_round": per_round,
        "ns_added_per_context_switch": added,
        "agent_cpu_ns_per_context_switch": median(&mut agent_cpu_per_switch_ns),
        "agent_max_rss_bytes": median(&mut agent_rss),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    std::fs::write(
        out.join("sched.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    println!(
        "sched probes: {base:.0} ns/round alone, {probed:.0} ns/round profiled, \
         {per_round:.2} switches/round => {added:.0} ns added per context switch"
    );
    Ok(())
}

fn bin(name: &str) -> std::path::PathBuf {
    root().join("target/release").join(name)
}

fn parse_rounds(stdout: &str) -> Result<f64> {
    let v: Value = serde_json::from_str(stdout.trim()).context("pingpong output")?;
    v["ns_per_round"].as_f64().context("ns_per_round")
}

fn pingpong_alone() -> Result<f64> {
    let out = shell::output(Command::new(bin("sched-workload")).args([
        "pingpong",
        "--no-wait",
        "--rounds",
        ROUNDS,
    ]))?;
    parse_rounds(&out)
}

struct ProfiledRun {
    ns_per_round: f64,
    switches: f64,
    switches_per_round: f64,
    agent_cpu_s: f64,
    agent_rss_bytes: u64,
}

fn pingpong_profiled() -> Result<ProfiledRun> {
    let mut workload = Command::new(bin("sched-workload"))
        .args(["pingpong", "--rounds", ROUNDS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = workload.id().to_string();
    let mut profiler = Command::new(bin("profiler"))
        .args([
            "attach",
            "--pid",
            &pid,
            "--format",
            "json",
            "--interval",
            "1s",
            // Socket probes would add the pipe reads' syscall cost: measure the scheduler alone.
            "--no-http",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(profiler.stderr.take().context("stderr")?);
    let mut line = String::new();
    while !line.starts_with("profiler: attached") {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("profiler exited before attaching");
        }
    }
    workload.stdin.take().context("stdin")?.write_all(b"go\n")?;
    let out = workload.wait_with_output()?;
    let ns_per_round = parse_rounds(&String::from_utf8_lossy(&out.stdout))?;
    let report = profiler.wait_with_output()?;
    let report: Value = serde_json::from_slice(&report.stdout).context("profiler report")?;
    let sched = &report["processes"][0]["sched"];
    let switches = (sched["voluntary_switches"].as_u64().unwrap_or(0)
        + sched["involuntary_switches"].as_u64().unwrap_or(0)) as f64;
    let rounds: f64 = ROUNDS.parse()?;
    Ok(ProfiledRun {
        ns_per_round,
        switches,
        switches_per_round: switches / rounds,
        agent_cpu_s: report["health"]["agent"]["cpu_s"].as_f64().unwrap_or(0.0),
        agent_rss_bytes: report["health"]["agent"]["max_rss_bytes"]
            .as_u64()
            .unwrap_or(0),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
