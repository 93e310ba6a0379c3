//! `cargo xtask demo`: build, start the demo workload, profile it for 10 s, print the report.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};

use crate::{
    setup,
    shell::{self, cargo, is_root, root},
};

pub fn run() -> Result<()> {
    setup::run()?;
    shell::run(cargo().args(["build", "--release", "-p", "profiler", "--bins"]))?;
    let bin = root().join("target/release");
    let mut workload = Command::new(bin.join("demo-workload"))
        .args(["--seconds", "15"])
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
