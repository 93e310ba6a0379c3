//! Installs what building and testing need, idempotently: a second run only checks.

use std::{process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::shell::{self, is_root, root, run_logged};

/// Where the tools' own output goes (apt, rustup, cargo install); shown only when a step fails.
fn setup_log() -> std::path::PathBuf {
    let target = root().join("target");
    let _ = std::fs::create_dir_all(&target);
    target.join("xtask-setup.log")
}

/// Debian packages the build and tests need besides LLVM (`{llvm}` is the LLVM major).
const PACKAGES: &[&str] = &[
    "llvm-{llvm}-dev",
    "libpolly-{llvm}-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "bpftool",
    "util-linux",
    // End-to-end HTTP tests and benchmarks: real third-party servers and load generators.
    "nginx",
    "wrk",
    "curl",
    // The CUDA stand-in libraries and workloads (tests/cuda) are C; the Python test server and
    // the GPU-check logic tests need python3.
    "gcc",
    "python3",
    // The kernel matrix (xtask vm): Debian kernels booted under QEMU with a busybox initramfs.
    "qemu-system-x86",
    "busybox-static",
    "cpio",
];

pub fn run() -> Result<()> {
    let start = Instant::now();
    let llvm = nightly_llvm_major()?;
    ensure_rust_src()?;
    ensure_packages(llvm)?;
    ensure_prometheus()?;
    ensure_bpf_linker(llvm)?;
    println!(
        "xtask setup: ready (nightly LLVM {llvm}, bpf-linker, bpftool, promtool) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// LLVM major of the nightly toolchain that builds the eBPF crate; bpf-linker must match it.
fn nightly_llvm_major() -> Result<u32> {
    let out = shell::output(Command::new("rustc").args(["+nightly", "-vV"])).context(
        "the nightly toolchain is needed for the eBPF crate: rustup toolchain install nightly",
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next()?.trim().parse().ok())
        .context("cannot read the LLVM version from `rustc +nightly -vV`")
}

fn ensure_rust_src() -> Result<()> {
    let installed = shell::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    println!(
        "xtask setup: adding rust-src to the nightly toolchain (log: {})",
        setup_log().display()
    );
    run_logged(
        Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
        &setup_log(),
    )
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn ensure_packages(llvm: u32) -> Result<()> {
    let wanted: Vec<String> = PACKAGES
        .iter()
        .map(|p| p.replace("{llvm}", &llvm.to_string()))
        .collect();
    let missing: Vec<&String> = wanted.iter().filter(|p| !package_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing packages {missing:?}; install them with: sudo apt-get install -y {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "xtask setup: installing {} Debian package(s): {} (log: {})",
        missing.len(),
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        setup_log().display()
    );
    run_logged(
        Command::new("apt-get").args(["update", "-qq"]),
        &setup_log(),
    )?;
    run_logged(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &setup_log(),
    )
}

/// Debian's `prometheus` package: `promtool` checks and unit-tests the shipped alert rules
/// (tests/tests/deploy.rs) and `prometheus` is a real server for scrape tests, which start it
/// themselves with their own `--web.listen-address` and `--storage.tsdb.path`. Skipped when
/// both are on PATH. The package's service must not start (it would hold port 9090): a
/// `policy-rc.d` that forbids starting services is put in place for the install (Debian
/// container images already have one), and a service that started anyway is stopped and
/// disabled.
fn ensure_prometheus() -> Result<()> {
    if on_path("promtool") && on_path("prometheus") {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "promtool is missing; install Debian's prometheus package with: \
             sudo apt-get install -y --no-install-recommends prometheus"
        );
    }
    println!(
        "xtask setup: installing prometheus (promtool, for the alert-rule tests; log: {})",
        setup_log().display()
    );
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let our_policy = !policy.exists();
    if our_policy {
        std::fs::write(
            policy,
            "#!/bin/sh\n# xtask setup: no service starts during the install\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .context("making /usr/sbin/policy-rc.d executable")?;
    }
    let installed = run_logged(
        Command::new("apt-get").args(["update", "-qq"]),
        &setup_log(),
    )
    .and_then(|()| {
        run_logged(
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-qq",
                    "--no-install-recommends",
                    "prometheus",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            &setup_log(),
        )
    });
    if our_policy {
        std::fs::remove_file(policy).context("removing /usr/sbin/policy-rc.d")?;
    }
    installed?;
    // Where systemd runs and enabled the unit anyway, stop it and keep it from starting at
    // boot; without systemd (containers) these fail harmlessly.
    for args in [["stop", "prometheus"], ["disable", "prometheus"]] {
        let _ = Command::new("systemctl")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    if !on_path("promtool") {
        bail!("the prometheus package is installed but promtool is not on PATH");
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The LLVM major bpf-linker was built against, from the libLLVM it links.
fn bpf_linker_llvm() -> Option<u32> {
    let path = shell::output(Command::new("sh").args(["-c", "command -v bpf-linker"])).ok()?;
    let ldd = shell::output(Command::new("ldd").arg(path.trim())).ok()?;
    ldd.lines()
        .find_map(|l| l.trim().strip_prefix("libLLVM.so."))
        .or_else(|| ldd.lines().find_map(|l| l.trim().strip_prefix("libLLVM-")))
        .and_then(|v| v.split(['.', ' ']).next()?.parse().ok())
}

fn ensure_bpf_linker(llvm: u32) -> Result<()> {
    match bpf_linker_llvm() {
        Some(found) if found == llvm => return Ok(()),
        Some(found) => println!(
            "xtask setup: bpf-linker is built against LLVM {found}, nightly uses {llvm}: rebuilding"
        ),
        None => println!(
            "xtask setup: installing bpf-linker for LLVM {llvm} (about 2 minutes; log: {})",
            setup_log().display()
        ),
    }
    run_logged(
        Command::new("cargo")
            .args([
                "install",
                "--locked",
                "--force",
                "bpf-linker",
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{llvm}")])
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm}")),
        &setup_log(),
    )?;
    match bpf_linker_llvm() {
        Some(found) if found == llvm => Ok(()),
        other => bail!("bpf-linker installed but links LLVM {other:?}, expected {llvm}"),
    }
}
