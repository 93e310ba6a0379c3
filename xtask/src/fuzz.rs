//! `cargo xtask fuzz [SECONDS]`: runs the HTTP analyzer's fuzz target (`fuzz/`, cargo-fuzz,
//! nightly) for a while, from the committed seeds (`fuzz/seeds/`) with an HTTP dictionary;
//! fails when the fuzzer finds a crash (its input is then under `fuzz/artifacts/http_conn/`).

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::shell::{self, root};

/// The fuzz target exercised.
const TARGET: &str = "http_conn";

/// A nightly `cargo` command run in `fuzz/`, without the variables of the outer (stable) cargo
/// that would pin the toolchain.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root().join("fuzz"))
        .args(["run", "nightly", "cargo"])
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        // The analyzer needs no eBPF object: skip building it (minutes) under the sanitizers.
        .env("AYA_BUILD_SKIP", "1");
    cmd
}

/// Installs cargo-fuzz unless `cargo fuzz --version` already works (quick when it does).
fn ensure_cargo_fuzz() -> Result<()> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("xtask fuzz: installing cargo-fuzz");
    shell::run(
        shell::cargo()
            .args(["install", "cargo-fuzz", "--locked"])
            .env_remove("RUSTUP_TOOLCHAIN"),
    )
    .context("installing cargo-fuzz")
}

/// Fuzzes the HTTP connection analyzer for `seconds`; an error when a crash was found.
pub fn run(seconds: u64) -> Result<()> {
    ensure_cargo_fuzz()?;
    let fuzz = root().join("fuzz");
    // New inputs go to the first corpus folder (ignored by git); the seeds are committed.
    let corpus = fuzz.join("corpus").join(TARGET);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    shell::run(
        nightly_cargo()
            .args(["fuzz", "run", TARGET])
            .arg(&corpus)
            .arg(fuzz.join("seeds").join(TARGET))
            .arg("--")
            .arg(format!("-dict={}", fuzz.join(format!("{TARGET}.dict")).display()))
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1"),
    )
    .with_context(|| {
        format!("the fuzz target failed to build, or the fuzzer found a crash: see the output above and fuzz/artifacts/{TARGET}/ (reproduce with `cd fuzz && cargo +nightly fuzz run {TARGET} <file>`)")
    })
}
