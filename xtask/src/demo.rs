//! `cargo xtask demo`: build, start the demo workload, profile it for 10 s, print the report.
//! With `cc` the workload also runs CUDA driver calls on the stand-in `libcuda.so.1`
//! (tests/cuda/stub_cuda.c), so the report has a CUDA section without a GPU.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};

use crate::{
    bench_cuda, setup,
    shell::{self, cargo, is_root, root},
};

pub fn run() -> Result<()> {
    setup::run()?;
    shell::run(cargo().args(["build", "--release", "-p", "profiler", "--bins"]))?;
    let bin = root().join("target/release");
    let mut workload = Command::new(bin.join("demo-workload"));
    workload.args(["--seconds", "15"]);
    if let Some(driver) = stand_in_driver()? {
        // Host time the stand-in spends per call, read once when the workload loads it.
        workload
            .arg("--cuda-driver")
            .arg(driver)
            .env("STUB_CUDA_LAUNCH_US", "5")
            .env("STUB_CUDA_SYNC_US", "2000")
            .env("STUB_CUDA_COPY_US", "20");
    }
    let mut workload = workload
        .stdout(Stdio::piped())
        .spawn()
        .context("starting demo-workload")?;
    let mut banner = String::new();
    BufReader::new(workload.stdout.take().context("workload stdout")?).read_line(&mut banner)?;
    print!("{banner}");
    let pid = workload.id().to_string();
    let profiler = bin.join("profiler");
    let args = ["attach", "--pid", &pid, "--duration", "10s"];
    let mut cmd = if is_root() {
        let mut c = Command::new(&profiler);
        c.args(args);
        c
    } else {
        println!("xtask demo: not root, running the profiler with sudo");
        let mut c = Command::new("sudo");
        c.arg(&profiler).args(args);
        c
    };
    println!("$ profiler {}", args.join(" "));
    let result = shell::run(&mut cmd);
    let _ = workload.kill();
    let _ = workload.wait();
    result
}

/// Builds the stand-in `libcuda.so.1` into target/demo/; `None` (with a note) without `cc`.
fn stand_in_driver() -> Result<Option<PathBuf>> {
    let cc = Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if cc.is_err() {
        println!("xtask demo: no cc to build the stand-in libcuda.so.1, so no CUDA section");
        return Ok(None);
    }
    let lib_dir = root().join("target/demo");
    bench_cuda::build_stub_library("stub_cuda.c", "libcuda.so.1", &lib_dir).map(Some)
}
