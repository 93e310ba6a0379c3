//! The Python environment of the LLM end-to-end test (tests/tests/llm.rs): llama-cpp-python's
//! OpenAI-compatible server (FastAPI, uvicorn, sse-starlette around llama.cpp), the official
//! openai SDK as the client, and gguf to write the test's random-weight model. Installed from
//! PyPI into `target/llm-venv`, pinned; idempotent (a stamp holds the pins). The first install
//! builds llama.cpp from source (≈ 6 min on 2 cores); pip keeps the built wheel in its cache, so
//! a new venv on the same machine takes seconds.

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, Result};

use crate::shell::{root, run_logged};

/// What the test needs, pinned.
const PINS: &[&str] = &[
    "llama-cpp-python[server]==0.3.36",
    "openai==3.63.0",
    "gguf==0.19.0",
];

fn venv() -> PathBuf {
    root().join("target/llm-venv")
}

/// The venv's interpreter (what the test runs the server and the client with).
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

pub fn ensure() -> Result<()> {
    let stamp = venv().join("pins.txt");
    let want = PINS.join("\n");
    if python().exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let log = root().join("target/llm-venv-install.log");
    println!(
        "xtask setup: installing the LLM test environment ({}) into target/llm-venv; log: {}",
        PINS.join(", "),
        log.display()
    );
    let start = Instant::now();
    let _ = std::fs::remove_file(&log);
    run_logged(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(venv()),
        &log,
    )?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    run_logged(
        Command::new(venv().join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--no-input"])
            .args(PINS)
            .env("CMAKE_BUILD_PARALLEL_LEVEL", cores.to_string()),
        &log,
    )?;
    std::fs::write(&stamp, want).with_context(|| format!("writing {}", stamp.display()))?;
    println!(
        "xtask setup: LLM test environment ready in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
