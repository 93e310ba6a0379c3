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
    let log = root().join("target/xtask-demo-build.log");
    println!(
        "xtask demo: building the profiler and the demo workload (release; log: {})",
        log.display()
    );
    let _ = std::fs::remove_file(&log);
    shell::run_logged(
        cargo().args(["build", "--release", "-p", "profiler", "--bins"]),
        &log,
    )?;
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
    let listen = "127.0.0.1:19464";
    let trace = root().join("target/demo/trace.json");
    std::fs::create_dir_all(root().join("target/demo")).context("creating target/demo")?;
    let trace_arg = trace.to_string_lossy().into_owned();
    let args = [
        "attach",
        "--pid",
        &pid,
        "--duration",
        "10s",
        "--listen",
        listen,
        "--trace",
        &trace_arg,
    ];
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
    // Halfway through, show what Prometheus would scrape.
    let scraper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(8));
        scrape_excerpt(listen)
    });
    let result = shell::run(&mut cmd);
    if let Ok(Some(excerpt)) = scraper.join() {
        println!("\n$ curl http://{listen}/metrics   # excerpt, scraped 8 s in\n{excerpt}");
    }
    if trace.exists() {
        println!(
            "timeline written to {} (open it in https://ui.perfetto.dev)",
            trace.display()
        );
    }
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

/// A few lines of the profiler's /metrics (plain HTTP/1.0 GET, no client library needed).
fn scrape_excerpt(addr: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: demo\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let wanted = [
        "http_server_request_duration_seconds_count",
        "gen_ai_server_time_to_first_token_seconds_count",
        "profiler_cuda_kernel_launches_total",
        "profiler_sched_oncpu_seconds_total",
    ];
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| wanted.iter().any(|w| l.starts_with(w)))
        .take(8)
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}
