//! What one session was asked to do, in each capability's own terms (the CLI builds it; no
//! clap here). Pure.

use std::{path::PathBuf, time::Duration};

use crate::{
    cuda,
    derive::hardware,
    http,
    sinks::{cuda_trace, prometheus::feed, report::Format, timeline},
};

#[derive(Debug, Clone)]
pub struct Config {
    /// Stop after this long; `None`: until a signal or the targets exit.
    pub duration: Option<Duration>,
    /// How often the live view (and the exporter's totals) refresh.
    pub interval: Duration,
    pub format: Format,
    /// The report's file; `None`: stdout.
    pub output: Option<PathBuf>,
    /// No live view.
    pub quiet: bool,
    /// HTTP capture; `None` with `--no-http`.
    pub http: Option<http::capture::Config>,
    /// `--events FILE`: one JSON line per finished request (needs `http`).
    pub events: Option<PathBuf>,
    /// `--cuda-trace FILE` (only with the CUDA capture on).
    pub cuda_trace: Option<cuda_trace::Config>,
    /// CUDA capture; `None` with `--no-cuda`.
    pub cuda: Option<cuda::capture::Config>,
    pub hardware: hardware::Config,
    /// `--trace FILE`.
    pub timeline: Option<timeline::Config>,
    pub metrics: feed::Config,
}

impl Config {
    /// Checks that the options make sense together; the message is shown as a usage error.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(duration) = self.duration
            && self.interval > duration
        {
            return Err(format!(
                "--interval {} is longer than --duration {}: no live summary would be shown",
                humantime::format_duration(self.interval),
                humantime::format_duration(duration)
            ));
        }
        if self.interval < Duration::from_millis(50) {
            return Err("--interval must be at least 50ms".into());
        }
        Ok(())
    }
}
