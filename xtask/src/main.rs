//! `cargo xtask <command>`: the project's automation. Every command installs what it needs first.

mod bench;
mod bench_cuda;
mod bench_http;
mod bench_load;
mod demo;
mod fuzz;
mod layers;
mod llm_env;
mod setup;
mod shell;
mod soak;
mod test;
mod vm;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup   install what building and testing need (apt packages, nightly rust-src, bpf-linker
          built against the nightly's LLVM, bpftool, prometheus/promtool, the LLM test's Python
          environment in target/llm-venv); quick when everything is present
  demo    build, start the built-in demo workload, attach the profiler for 10 s, print the report
  test    fmt check, clippy -D warnings, the layer check, unit tests, privileged end-to-end
          tests (as root)
  vm [KERNEL...] [--write-readme]
          the kernel matrix: boot Debian's 5.10, 6.1 and 6.12 cloud kernels under QEMU (software
          emulation) with the profiler in a busybox initramfs, run `profiler check` in each, then
          HTTP servers, a CPU burner and the CUDA stand-in under `profiler attach`, assert the
          counts against ground truth and print the tables (KERNEL: only these, e.g. `6.12`;
          --write-readme: the matrix into README.md; kernel packages cached in target/vm; the
          machine's apt setup is untouched)
  layers  check the imports of profiler/src: no cycles, nothing pointing up the layer order,
          no capability importing another (docs/DEVELOPMENT.md, Layout)
  fuzz [SECONDS]  fuzz the HTTP/SSE analyzer (cargo-fuzz, nightly; default 60 s)
  soak MINUTES [--check]  the daemon for MINUTES on a churning mix (servers started and killed
          every minute under keep-alive, new-connection and SSE clients, short-lived CUDA and
          thread-churning processes); a table of its RSS, fds, CPU and events lost; --check
          fails on a request count /metrics lacks, RSS growth ≥ 5% after the first minute, fd
          growth or lost events
  bench [sched|http|cuda]  overhead benchmarks: ns added per context switch; nginx throughput with
          and without the profiler, agent CPU per request and RSS; ns added per cuLaunchKernel
          by the CUDA probes vs an empty uprobe and no probe (stand-in libcuda)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run().and_then(|()| llm_env::ensure()),
        Some("demo") => demo::run(),
        Some("test") => test::run(),
        Some("vm") => vm::Options::parse(&args[1..]).and_then(|options| {
            setup::run()?;
            shell::run(shell::cargo().args(["build", "--bins"]))?;
            vm::run(&options)
        }),
        Some("layers") => layers::run(args.get(1).map(String::as_str) == Some("--edges")),
        Some("bench") => bench::run(args.get(1).map(String::as_str)),
        Some("soak") => match args.get(1).map(|m| m.parse::<f64>()) {
            Some(Ok(minutes)) if minutes > 0.0 => setup::run().and_then(|()| {
                soak::run(minutes, args.get(2).map(String::as_str) == Some("--check"))
            }),
            _ => {
                eprintln!("xtask: soak takes a number of minutes\n\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        Some("fuzz") => match args.get(1).map(|s| s.parse::<u64>()) {
            None => fuzz::run(60),
            Some(Ok(seconds)) => fuzz::run(seconds),
            Some(Err(_)) => {
                eprintln!("xtask: fuzz takes a number of seconds\n\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("xtask: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
