//! `cargo xtask bench cuda`: what the CUDA probes add to a `cuLaunchKernel` call, measured in
//! one run on the stand-in `libcuda.so.1` (tests/cuda/): a tight loop of launches timed by the
//! workload itself with no probe, with an empty uprobe on the same symbols
//! (`--cuda-empty-probes`), with the profiler's probes (entry only, the default) and with
//! `--cuda-launch-latency` (entry + return probes). Alternating, median of several runs.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::shell::{self, root};

const CALLS: &str = "50000";
const REPEATS: usize = 5;

/// The profiler options of each measured variant (`None`: no profiler attached).
const VARIANTS: &[(&str, Option<&[&str]>)] = &[
    ("no_probe", None),
    ("empty_uprobe", Some(&["--cuda-empty-probes"])),
    ("profiler_entry", Some(&[])),
    ("profiler_launch_latency", Some(&["--cuda-launch-latency"])),
];

/// Builds the stand-in libraries and the workload with `cc` into `out`.
pub fn build_workload(out: &Path) -> Result<PathBuf> {
    let src = root().join("tests/cuda");
    let lib = out.join("lib");
    for (source, soname) in [
        ("stub_cuda.c", "libcuda.so.1"),
        ("stub_cudart.c", "libcudart.so.12"),
    ] {
        build_stub_library(source, soname, &lib)?;
    }
    let exe = out.join("cuda-workload");
    shell::run(Command::new("cc").args([
        "-O2".as_ref(),
        "-g".as_ref(),
        "-rdynamic".as_ref(),
        "-o".as_ref(),
        exe.as_os_str(),
        src.join("cuda_workload.c").as_os_str(),
        "-ldl".as_ref(),
    ]))?;
    Ok(exe)
}

/// Builds the stand-in library tests/cuda/`source` with `cc` as `lib_dir`/`soname`.
pub fn build_stub_library(source: &str, soname: &str, lib_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(lib_dir)?;
    let lib = lib_dir.join(soname);
    // A frame pointer makes `push %rbp` the first instruction, which the kernel emulates (like
    // the real libcuda's entry points); `sub $8,%rsp` would be single-stepped, which costs a
    // second trap and dwarfs what the programs do.
    shell::run(Command::new("cc").args([
        "-O2".as_ref(),
        "-fno-omit-frame-pointer".as_ref(),
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        format!("-Wl,-soname,{soname}").as_ref(),
        "-o".as_ref(),
        lib.as_os_str(),
        root().join("tests/cuda").join(source).as_os_str(),
        "-ldl".as_ref(),
    ]))?;
    Ok(lib)
}

pub fn run(profiler: &Path, out: &Path) -> Result<Value> {
    let workload = build_workload(&out.join("cuda"))?;
    let lib_dir = out.join("cuda/lib");
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut agent_cpu_ns_per_call = Vec::new();
    for _ in 0..REPEATS {
        for (i, (name, opts)) in VARIANTS.iter().enumerate() {
            let run = measure(profiler, &workload, &lib_dir, *opts)
                .with_context(|| format!("variant {name}"))?;
            ns[i].push(run.ns_per_call);
            if *name == "profiler_entry" {
                agent_cpu_ns_per_call.push(run.agent_cpu_s * 1e9 / CALLS.parse::<f64>()?);
            }
        }
    }
    let medians: Vec<f64> = ns.iter_mut().map(|v| median(v)).collect();
    let (none, empty, entry, latency) = (medians[0], medians[1], medians[2], medians[3]);
    let added_empty = empty - none;
    let added_entry = entry - none;
    let result = json!({
        "benchmark": "cuda-launch",
        "calls": CALLS.parse::<u64>()?,
        "repeats": REPEATS,
        "ns_per_call": {
            "no_probe": none,
            "empty_uprobe": empty,
            "profiler_entry": entry,
            "profiler_launch_latency": latency,
        },
        "ns_added_per_call": {
            "empty_uprobe": added_empty,
            "profiler_entry": added_entry,
            "profiler_launch_latency": latency - none,
        },
        "profiler_vs_empty_uprobe": added_entry / added_empty,
        "target_profiler_vs_empty_uprobe": 1.3,
        "agent_cpu_ns_per_call": median(&mut agent_cpu_ns_per_call),
    });
    println!(
        "cuda probes: cuLaunchKernel {none:.0} ns alone; +{added_empty:.0} ns empty uprobe, \
         +{added_entry:.0} ns profiler (entry, {:.2}× the empty uprobe; target ≤ 1.3×), \
         +{:.0} ns with --cuda-launch-latency",
        added_entry / added_empty,
        latency - none
    );
    Ok(result)
}

struct Measured {
    ns_per_call: f64,
    agent_cpu_s: f64,
}

fn measure(
    profiler: &Path,
    workload: &Path,
    lib_dir: &Path,
    opts: Option<&[&str]>,
) -> Result<Measured> {
    let mut child = Command::new(workload)
        .args(["--lib-dir".as_ref(), lib_dir.as_os_str()])
        .args(["--wait-for-signal", "bench", CALLS])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cuda-workload")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    wait_for_line(&mut stdout, "ready")?;
    let profiler_run = match opts {
        Some(opts) => Some(attach(profiler, child.id(), opts)?),
        None => None,
    };
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let mut truth = String::new();
    stdout.read_line(&mut truth)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("cuda-workload failed: {status}");
    }
    let truth: Value = serde_json::from_str(truth.trim()).context("workload ground truth")?;
    let ns_per_call = truth["ns_per_call"].as_f64().context("ns_per_call")?;
    let agent_cpu_s = match profiler_run {
        Some(p) => {
            let out = p.wait_with_output()?;
            let report: Value = serde_json::from_slice(&out.stdout).context("profiler report")?;
            let launches = report["cuda"]["launches"]["total"].as_u64().unwrap_or(0);
            if opts != Some(&["--cuda-empty-probes"][..]) && launches < CALLS.parse::<u64>()? {
                bail!("the profiler saw {launches} launches of {CALLS}");
            }
            report["health"]["agent"]["cpu_s"].as_f64().unwrap_or(0.0)
        }
        None => 0.0,
    };
    Ok(Measured {
        ns_per_call,
        agent_cpu_s,
    })
}

/// Starts the profiler on `pid` and returns once every probe is attached.
fn attach(profiler: &Path, pid: u32, opts: &[&str]) -> Result<Child> {
    let mut p = Command::new(profiler)
        .args(["attach", "--pid", &pid.to_string(), "--format", "json"])
        .args(["--no-http", "--quiet"])
        .args(opts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(p.stderr.take().context("stderr")?);
    let mut line = String::new();
    while !line.starts_with("profiler: attached") {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("profiler exited before attaching");
        }
    }
    // Keep draining stderr so the profiler never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Ok(p)
}

fn wait_for_line(stdout: &mut BufReader<ChildStdout>, want: &str) -> Result<()> {
    let mut line = String::new();
    while line.trim() != want {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            bail!("cuda-workload exited before printing {want:?}");
        }
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
