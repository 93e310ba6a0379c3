//! `cargo xtask test`: everything CI checks, in order, with one closing summary line.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    llm_env, setup,
    shell::{self, cargo, root},
};

/// Bounded fuzzing of the HTTP analyzer in every test run (longer runs: `cargo xtask fuzz N`).
const FUZZ_SECONDS: u64 = 30;

/// Minutes of `cargo xtask soak --check` in every test run (longer runs: `cargo xtask soak 30`,
/// figures in docs/benchmarks.md).
const SOAK_MINUTES: f64 = 2.0;

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

pub fn run() -> Result<()> {
    setup::run()?;
    llm_env::ensure()?;
    step("format", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step(
        "clippy",
        cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]),
    )?;
    step(
        "clippy (eBPF crate, nightly, bpf target)",
        &mut ebpf_clippy(),
    )?;
    println!("\n== layers (imports of profiler/src: no cycles, nothing points up)");
    crate::layers::run(false)?;
    step("build", cargo().args(["build", "--bins"]))?;

    let mut tally = Tally::default();
    println!("\n== unit tests");
    let unit_ok = cargo_test(
        cargo().args([
            "test",
            "-p",
            "profiler",
            "-p",
            "profiler-common",
            "-p",
            "xtask",
        ]),
        &mut tally,
    )?;

    println!("\n== GPU-check comparison logic (tests/gpu, Python, no GPU needed)");
    let gpu_logic_ok = python_unittests("tests/gpu", &mut tally)?;

    println!("\n== fuzzing the HTTP/SSE analyzer ({FUZZ_SECONDS} s)");
    let fuzz_ok = crate::fuzz::run(FUZZ_SECONDS)
        .inspect_err(|e| println!("fuzz: {e:#}"))
        .is_ok();
    if fuzz_ok {
        tally.passed += 1;
    } else {
        tally.failed += 1;
    }

    println!("\n== kernel matrix (QEMU: profiler check and workloads on Debian's 5.10, 6.1, 6.12)");
    let vm_ok = crate::vm::run(&crate::vm::Options::default())
        .inspect_err(|e| println!("vm: {e:#}"))
        .is_ok();
    if vm_ok {
        tally.passed += 1;
    } else {
        tally.failed += 1;
    }

    println!("\n== end-to-end tests (real eBPF; need root)");
    let skip_log = root().join("target/e2e-skips.txt");
    let _ = std::fs::remove_file(&skip_log);
    let e2e_ok = cargo_test(
        cargo()
            .args([
                "test",
                "-p",
                "profiler-tests",
                "--",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("PROFILER_BIN", root().join("target/debug/profiler"))
            .env("PROFILER_SKIP_LOG", &skip_log)
            .env("PROFILER_LLM_PYTHON", llm_env::python()),
        &mut tally,
    )?;
    // The HTTP, SSE, LLM and fault suites once more on the syscall path (the default above is the socket
    // layer on kernels that have it): both paths stay exact.
    println!("\n== HTTP, SSE, LLM and fault end-to-end tests again, syscall path forced");
    let syscall_path_ok = cargo_test(
        cargo()
            .args([
                "test",
                "-p",
                "profiler-tests",
                "--test",
                "http",
                "--test",
                "http_attribution",
                "--test",
                "sse",
                "--test",
                "llm",
                "--test",
                "faults",
                "--",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("PROFILER_BIN", root().join("target/debug/profiler"))
            .env("PROFILER_SKIP_LOG", &skip_log)
            .env("PROFILER_SOCKETS_SYSCALL_PATH", "1")
            .env("PROFILER_LLM_PYTHON", llm_env::python()),
        &mut tally,
    )?;
    // Requires root like the end-to-end tests (the daemon loads eBPF programs).
    if shell::is_root() {
        println!(
            "\n== soak (the daemon for 2 minutes under churn; counts exact, RSS and fds bounded)"
        );
        let soak_ok = crate::soak::run(SOAK_MINUTES, true)
            .inspect_err(|e| println!("soak: {e:#}"))
            .is_ok();
        if soak_ok {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
    }
    let skipped = std::fs::read_to_string(&skip_log)
        .map(|s| s.lines().count() as u64)
        .unwrap_or(0);
    if skipped > 0 {
        println!("\nskipped end-to-end tests (counted as skipped, not passed):");
        print!("{}", std::fs::read_to_string(&skip_log).unwrap_or_default());
    }
    // A skipped test returns early and so shows as passed in cargo's count: move it.
    let passed = tally.passed.saturating_sub(skipped);
    println!(
        "\nxtask test: {passed} passed, {} failed, {} skipped",
        tally.failed,
        skipped + tally.ignored
    );
    if !unit_ok || !gpu_logic_ok || !e2e_ok || !syscall_path_ok || tally.failed > 0 {
        bail!("tests failed");
    }
    Ok(())
}

/// Runs the `test_*.py` unittest files in `dir`; counts their tests into `tally`.
fn python_unittests(dir: &str, tally: &mut Tally) -> Result<bool> {
    let out = Command::new("python3")
        .current_dir(root())
        .args(["-m", "unittest", "discover", "-s", dir, "-p", "test_*.py"])
        .output()
        .context("running python3 -m unittest (install python3: cargo xtask setup)")?;
    // unittest reports on stderr: "Ran 19 tests in 0.7s" then "OK" or "FAILED (failures=1)".
    let report = String::from_utf8_lossy(&out.stderr);
    print!("{report}");
    let ran: u64 = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    if out.status.success() && ran > 0 {
        tally.passed += ran;
        Ok(true)
    } else {
        tally.failed += ran.max(1);
        Ok(false)
    }
}

/// Clippy over the eBPF crate, built the way aya-build builds it (nightly, bpfel, build-std).
fn ebpf_clippy() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root())
        .args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "-p",
            "profiler-ebpf",
            "--bins",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--target-dir", "target/ebpf-clippy", "--", "-D", "warnings"])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
        )
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    cmd
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    println!("\n== {name}");
    shell::run(cmd).with_context(|| format!("{name} step failed"))
}

/// Runs a `cargo test` command, echoing its output and adding up its result lines.
fn cargo_test(cmd: &mut Command, tally: &mut Tally) -> Result<bool> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |what: &str| {
                rest.split([';', '.'])
                    .find_map(|part| part.trim().strip_suffix(what)?.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            tally.passed += count(" passed");
            tally.failed += count(" failed");
            tally.ignored += count(" ignored");
        }
    }
    Ok(child.wait()?.success())
}
