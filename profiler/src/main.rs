use std::process::ExitCode;

use clap::{Parser as _, error::ErrorKind};
use profiler::{
    check,
    cli::{Cli, Command},
    error::UsageError,
    session::{self, Target},
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let result = match cli.command {
        Command::Attach(a) => {
            session::run(Target::Pids(a.pids), a.output.config()).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(r) => {
            session::run(Target::Command(r.command), r.output.config()).map(|()| ExitCode::SUCCESS)
        }
        Command::Daemon(d) => match d.split() {
            Ok((spec, scan_interval, config)) => session::run(
                Target::Discover(profiler::session::discovery::Discovery::new(
                    spec,
                    scan_interval,
                )),
                config,
            )
            .map(|()| ExitCode::SUCCESS),
            Err(m) => Err(profiler::usage!("{m}")),
        },
        Command::Check => Ok(run_check()),
        Command::Metrics(m) => {
            print!(
                "{}",
                profiler::sinks::prometheus::catalogue::listing(m.names)
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| {
        let message = format!("{e:#}").replace('\n', " ");
        eprintln!("profiler: error: {message}");
        if e.downcast_ref::<UsageError>().is_some() {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        }
    })
}

fn run_check() -> ExitCode {
    let (lines, required_ok) = check::run_checks();
    for line in &lines {
        println!("{line}");
    }
    if required_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Help and version go to stdout with status 0; usage errors are one line with status 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = e.to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("profiler: error: {first} (see `profiler --help`)");
            ExitCode::from(2)
        }
    }
}
