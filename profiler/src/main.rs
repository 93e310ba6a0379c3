use std::process::ExitCode;

use clap::{Parser as _, error::ErrorKind};
use profiler::{cli::Cli, error::UsageError};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let result = profiler::cli::execute(cli.command);
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
