//! Command-line interface: what the user can ask for, and how `--help` explains it.

use std::{path::PathBuf, time::Duration};

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    cuda,
    derive::hardware,
    http,
    session::{
        self, Target,
        discovery::{Discovery, DiscoverySpec},
    },
    sinks::{cuda_trace, prometheus::feed, report, timeline},
};

#[derive(Debug, Parser)]
#[command(
    name = "profiler",
    version,
    about = "Zero-instrumentation eBPF profiler for ML inference services",
    long_about = "Zero-instrumentation eBPF profiler for ML inference services.\n\n\
        Attaches eBPF programs (scheduler and socket-syscall tracepoints, uprobes on the CUDA \
        libraries it maps) to a running service without changing or restarting it, shows a live summary while \
        attached and prints a report when it detaches.\n\n\
        From the service's own socket reads and writes it infers HTTP/1.1 requests (latency, \
        status, errors, bytes) and, for streamed `text/event-stream` responses, time to first \
        token, inter-token latency and token counts. From its CUDA driver calls it reports \
        kernel launches by kernel name, time blocked in syncs, copies and device memory.\n\n\
        Needs root (or CAP_BPF + CAP_PERFMON), kernel BTF and tracefs; `profiler check` tells \
        what this machine supports.",
    after_help = "Examples:\n  \
        sudo profiler attach --pid 4242                   # until Ctrl-C\n  \
        sudo profiler attach --pid 4242 --duration 30s --format json --output report.json\n  \
        sudo profiler attach --pid 4242 --sla-p99 250ms --sla-ttft 500ms --events req.jsonl\n  \
        sudo profiler attach --pid 4242 --cuda-launch-latency --cuda-trace calls.jsonl\n  \
        sudo profiler run -- python serve.py --port 8000  # profile from the first instruction\n  \
        sudo profiler check                               # what works on this machine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to running processes (all their threads and any children they start).
    Attach(AttachArgs),
    /// Start a command and profile it from its first instruction.
    #[command(
        after_help = "The command starts only after every probe is attached, so nothing it does \
                      is missed. The report is printed when the command exits (or on Ctrl-C, \
                      SIGTERM or --duration, which also stop the command)."
    )]
    Run(RunArgs),
    /// Report, one line per capability, what this machine supports and what a missing one costs.
    Check,
    /// Run system-wide: profile every inference process on the node, now and later, and serve
    /// Prometheus metrics (the DaemonSet mode; see deploy/).
    #[command(
        after_help = "A process is profiled when it maps libcuda/libcudart, when its comm matches \
                      a --match regex, or when it listens on a --port; its children are followed. \
                      Exited processes are forgotten and their series stop. Every series carries \
                      pid, comm, container_id, pod_uid, pod and namespace labels, and `node` from \
                      the NODE_NAME environment variable.\n\nExamples:\n  \
                      sudo profiler daemon                                  # CUDA processes, :9464\n  \
                      sudo profiler daemon --match 'comm=^(vllm|python)' --port 8000\n  \
                      sudo profiler daemon --listen 127.0.0.1:9464 --no-cuda-discovery --port 8080"
    )]
    Daemon(DaemonArgs),
    /// List the Prometheus metrics the profiler exports (name, type, labels, meaning).
    Metrics(MetricsListArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address to serve /metrics and /healthz on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9464",
          value_parser = crate::sinks::prometheus::parse_listen)]
    pub listen: std::net::SocketAddr,
    /// Also profile processes whose comm matches REGEX (`comm=REGEX`; repeatable).
    #[arg(long = "match", value_name = "comm=REGEX", value_parser = crate::session::discovery::parse_match)]
    pub matches: Vec<regex::Regex>,
    /// Also profile processes listening on this TCP port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Do not pick processes because they map libcuda/libcudart (only --match and --port).
    #[arg(long)]
    pub no_cuda_discovery: bool,
    /// How often /proc is scanned for new processes.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub scan_interval: Duration,
    /// How often the exported figures are refreshed.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this long (default: until SIGTERM or Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Kernel names with their own series per process; later ones count as kernel="other".
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub metrics_max_kernels: usize,
    /// Processes with their own series; later ones are summed under pid="other".
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub metrics_max_processes: usize,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cuda: CudaArgs,
    #[command(flatten)]
    pub hardware: HardwareArgs,
}

impl DaemonArgs {
    /// What discovery looks for, and the session options the daemon runs with.
    pub fn split(self) -> Result<(DiscoverySpec, Duration, session::Config), String> {
        if self.no_cuda_discovery && self.matches.is_empty() && self.ports.is_empty() {
            return Err(
                "--no-cuda-discovery leaves nothing to discover: add --match or --port".into(),
            );
        }
        let spec = DiscoverySpec {
            cuda: !self.no_cuda_discovery,
            comm: self.matches,
            ports: self.ports,
        };
        let opts = OutputArgs {
            duration: self.duration,
            interval: self.interval,
            format: Format::Text,
            output: None,
            quiet: true,
            timeline: TimelineArgs {
                trace: None,
                trace_limit: 1,
            },
            http: self.http,
            cuda: self.cuda,
            hardware: self.hardware,
            metrics: MetricsArgs {
                listen: Some(self.listen),
                metrics_max_kernels: self.metrics_max_kernels,
                metrics_max_processes: self.metrics_max_processes,
            },
        };
        Ok((spec, self.scan_interval, opts.config()))
    }
}

#[derive(Debug, Args)]
pub struct MetricsListArgs {
    /// Print only the series names PromQL can query, one per line (histograms as NAME_bucket,
    /// NAME_sum, NAME_count).
    #[arg(long)]
    pub names: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Process to profile; repeat for several. Threads and children started later are followed.
    #[arg(long = "pid", value_name = "PID", required = true)]
    pub pids: Vec<i32>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// The command to start, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Stop after this long (e.g. 500ms, 30s, 5m). Default: until Ctrl-C, SIGTERM or the
    /// target exits.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How often the live summary on stderr refreshes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Final report format (text: a table for people; json: the schema in docs/report-schema.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the final report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not print the live summary (the one-line "attached" notice and warnings still go to
    /// stderr).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub timeline: TimelineArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub cuda: CudaArgs,
    #[command(flatten)]
    pub hardware: HardwareArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Prometheus export while attached.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Prometheus (/metrics while attached)")]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (and /healthz) while attached. A bare
    /// port listens on loopback only (9464 = 127.0.0.1:9464); give HOST:PORT (0.0.0.0:9464)
    /// to be scraped from elsewhere. Off by default.
    #[arg(long, value_name = "ADDR", value_parser = crate::sinks::prometheus::parse_listen)]
    pub listen: Option<std::net::SocketAddr>,
    /// Kernel names with their own series per process; later ones count as kernel="other".
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub metrics_max_kernels: usize,
    /// Processes with their own series; later ones are summed under pid="other".
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub metrics_max_processes: usize,
}

impl MetricsArgs {
    fn caps(&self) -> crate::sinks::prometheus::state::Caps {
        crate::sinks::prometheus::state::Caps {
            processes: self.metrics_max_processes.max(1),
            kernels: self.metrics_max_kernels,
        }
    }
}

/// CPU counters, GPU telemetry and energy.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Hardware and energy (perf counters, NVML, RAPL)")]
pub struct HardwareArgs {
    /// Do not open perf counters on the watched processes.
    #[arg(long)]
    pub no_counters: bool,
    /// Do not sample the GPUs through NVML.
    #[arg(long)]
    pub no_gpu: bool,
    /// Grid carbon intensity in gCO2/kWh, for a carbon estimate of the energy measured
    /// (e.g. 400 for a typical mixed grid).
    #[arg(long, value_name = "G_PER_KWH", value_parser = parse_positive_f64)]
    pub carbon_intensity: Option<f64>,
}

fn parse_positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e} (a number, e.g. 400)"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err("must be a positive number".into());
    }
    Ok(v)
}

/// CUDA driver/runtime calls, through uprobes on the libcuda/libcudart the target maps.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "CUDA (uprobes on libcuda / libcudart)")]
pub struct CudaArgs {
    /// Do not probe CUDA libraries.
    #[arg(long)]
    pub no_cuda: bool,
    /// Also time kernel launches, graph launches and async copies with return probes (host
    /// time inside each call). Costs ≈ 1 µs more per launch on an H100 host, so it is off by
    /// default; syncs, blocking copies and allocations are always timed.
    #[arg(long)]
    pub cuda_launch_latency: bool,
    /// Write one JSON line per CUDA call (launch, copy, sync, allocation) to FILE: timestamps,
    /// thread, kernel name, grid/block, stream, bytes, host time. Bounded by --cuda-trace-limit.
    #[arg(long, value_name = "FILE")]
    pub cuda_trace: Option<PathBuf>,
    /// Stop writing --cuda-trace after this many calls (the report says when it did).
    #[arg(long, value_name = "CALLS", default_value_t = 100_000)]
    pub cuda_trace_limit: u64,
    /// Kernels listed by name in the report; the rest are summed as `other`.
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub cuda_top: usize,
    /// Benchmarks only: attach empty programs in place of the CUDA probes.
    #[arg(long, hide = true)]
    pub cuda_empty_probes: bool,
}

/// A timeline of the session for ui.perfetto.dev / chrome://tracing (docs/timeline.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Timeline (Perfetto / Chrome trace-event JSON)")]
pub struct TimelineArgs {
    /// Write a timeline to FILE (trace-event JSON; open it in ui.perfetto.dev or
    /// chrome://tracing): per thread its on-CPU slices and CUDA calls, per process its HTTP
    /// requests. Adds a context-switch probe for the session (measured ≈ 0.2 µs per context
    /// switch on the machine, ≈ 0.3 µs for a watched thread's; docs/timeline.md).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Stop adding events to --trace after this many; the file stays valid and stderr says
    /// how many were left out.
    #[arg(long, value_name = "EVENTS", default_value_t = 1_000_000, requires = "trace",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub trace_limit: u64,
}

/// Requests inferred from the target's socket syscalls (HTTP/1.1, SSE streaming).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP requests (from socket syscalls)")]
pub struct HttpArgs {
    /// Do not trace socket syscalls (no request metrics; the lowest overhead).
    #[arg(long)]
    pub no_http: bool,
    /// Leading bytes of each socket read/write copied for HTTP parsing (0-4096). Besides them, a
    /// request or response head is copied whole up to 8 KiB, and the last 512 bytes of a longer
    /// read/write (where a JSON body's usage sits). Events longer than this are still counted,
    /// with less detail; 0 copies nothing (no HTTP analysis)
    #[arg(long, value_name = "BYTES", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub capture_bytes: u32,
    /// Write one JSON line per finished request to FILE: timestamps, method, status, latency,
    /// time to first token, tokens and bytes. Never payloads, prompts or paths.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Flag the session when request latency p99 exceeds this (e.g. 250ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub sla_p99: Option<Duration>,
    /// Flag the session when time-to-first-token p99 of streamed responses exceeds this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub sla_ttft: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

impl OutputArgs {
    /// The session these options ask for, in each capability's own terms.
    pub fn config(&self) -> session::Config {
        session::Config {
            duration: self.duration,
            interval: self.interval,
            format: match self.format {
                Format::Text => report::Format::Text,
                Format::Json => report::Format::Json,
            },
            output: self.output.clone(),
            quiet: self.quiet,
            http: (!self.http.no_http).then_some(http::capture::Config {
                capture_bytes: self.http.capture_bytes,
                sla: http::stats::SlaTargets {
                    p99: self.http.sla_p99,
                    ttft: self.http.sla_ttft,
                },
            }),
            events: self.http.events.clone(),
            cuda_trace: self.cuda.cuda_trace.clone().map(|path| cuda_trace::Config {
                path,
                limit: self.cuda.cuda_trace_limit,
            }),
            cuda: (!self.cuda.no_cuda).then_some(cuda::capture::Config {
                launch_latency: self.cuda.cuda_launch_latency,
                top: self.cuda.cuda_top,
                empty_probes: self.cuda.cuda_empty_probes,
            }),
            hardware: hardware::Config {
                counters: !self.hardware.no_counters,
                gpu: !self.hardware.no_gpu,
                carbon_intensity: self.hardware.carbon_intensity,
            },
            timeline: self.timeline.trace.clone().map(|path| timeline::Config {
                path,
                limit: self.timeline.trace_limit,
            }),
            metrics: feed::Config {
                listen: self.metrics.listen,
                caps: self.metrics.caps(),
            },
        }
    }
}

/// Runs `command`; the exit code for success, or the error `main` prints.
pub fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Attach(a) => {
            session::run(Target::Pids(a.pids), a.output.config()).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(r) => {
            session::run(Target::Command(r.command), r.output.config()).map(|()| ExitCode::SUCCESS)
        }
        Command::Daemon(d) => match d.split() {
            Ok((spec, scan_interval, config)) => session::run(
                Target::Discover(Discovery::new(spec, scan_interval)),
                config,
            )
            .map(|()| ExitCode::SUCCESS),
            Err(m) => Err(crate::usage!("{m}")),
        },
        Command::Check => Ok(run_check()),
        Command::Metrics(m) => {
            print!("{}", crate::sinks::prometheus::catalogue::listing(m.names));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_check() -> ExitCode {
    let (lines, required_ok) = crate::check::run_checks();
    for line in &lines {
        println!("{line}");
    }
    if required_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("profiler").chain(args.iter().copied()))
    }

    #[test]
    fn attach_takes_repeated_pids_and_durations() {
        let cli = parse(&[
            "attach",
            "--pid",
            "1",
            "--pid",
            "22",
            "--duration",
            "1500ms",
        ])
        .unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        assert_eq!(a.pids, vec![1, 22]);
        assert_eq!(a.output.duration, Some(Duration::from_millis(1500)));
        assert_eq!(a.output.interval, Duration::from_secs(1));
        assert_eq!(a.output.format, Format::Text);
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = parse(&["run", "--format", "json", "--", "sleep", "--help"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.command, vec!["sleep", "--help"]);
        assert_eq!(r.output.format, Format::Json);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["attach"]).is_err());
        assert!(parse(&["attach", "--pid", "x"]).is_err());
        assert!(parse(&["attach", "--pid", "1", "--duration", "0s"]).is_err());
        assert!(parse(&["attach", "--pid", "1", "--format", "xml"]).is_err());
        assert!(parse(&["run"]).is_err());
    }

    #[test]
    fn interval_longer_than_duration_conflicts() {
        let cli = parse(&[
            "attach",
            "--pid",
            "1",
            "--duration",
            "1s",
            "--interval",
            "2s",
        ])
        .unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        assert!(
            a.output
                .config()
                .validate()
                .unwrap_err()
                .contains("--interval")
        );
    }

    #[test]
    fn trace_is_off_by_default_with_a_million_event_limit() {
        let Command::Attach(a) = parse(&["attach", "--pid", "1"]).unwrap().command else {
            panic!("not attach")
        };
        assert_eq!(a.output.timeline.trace, None);
        assert_eq!(a.output.timeline.trace_limit, 1_000_000);
    }

    #[test]
    fn run_and_attach_take_trace_and_its_limit() {
        let cli = parse(&["run", "--trace", "t.json", "--trace-limit", "10", "--", "x"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.output.timeline.trace.as_deref(), Some("t.json".as_ref()));
        assert_eq!(r.output.timeline.trace_limit, 10);
        let cli = parse(&["attach", "--pid", "1", "--no-http", "--trace", "t.json"]).unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        assert!(a.output.timeline.trace.is_some() && a.output.http.no_http);
    }

    #[test]
    fn a_limit_needs_a_trace_and_must_be_positive() {
        assert!(parse(&["attach", "--pid", "1", "--trace-limit", "10"]).is_err());
        assert!(parse(&["attach", "--pid", "1", "--trace", "t", "--trace-limit", "0"]).is_err());
        assert!(parse(&["attach", "--pid", "1", "--trace", "t", "--trace-limit", "x"]).is_err());
    }
}
