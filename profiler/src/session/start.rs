//! Starting the captures a session asked for, in order: HTTP (with the `--events` log), CUDA
//! (with the `--cuda-trace` file), the exporter's observers, the timeline, the hardware
//! samplers; and the output files, opened before anything is attached so a bad path fails
//! fast. Privileged I/O through `Probes`.

use std::{fs::File, io::Write};

use anyhow::Result;
use profiler_common::NetConfig;

use crate::{
    bpf::{Capability, Probes},
    cuda::capture::CudaCapture,
    derive::hardware::HardwareCapture,
    http::capture::HttpCapture,
    sched::{model::monotonic_ns, tracker::Tracker},
    session::{Config, unix_now_ns},
    sinks::{
        cuda_trace::{self, CudaTrace, CudaTraceHandle},
        event_log::EventLog,
        prometheus::Exporter,
        timeline::Timeline,
    },
    usage,
};

/// The captures that are on, each behind the `Capability` trait for the loop.
pub(crate) struct Captures {
    pub http: Option<HttpCapture>,
    pub cuda: Option<CudaCapture>,
    /// The `--cuda-trace` sink, finished after the CUDA capture.
    pub cuda_trace: Option<CudaTraceHandle>,
    pub timeline: Option<Timeline>,
    pub hardware: HardwareCapture,
}

/// Starts every capture `config` asks for on the processes `tracker` knows, with the sinks
/// that observe them.
pub(crate) fn captures(
    probes: &mut Probes,
    tracker: &Tracker,
    net: &NetConfig,
    config: &Config,
    event_log: Option<Box<dyn Write>>,
    exporter: Option<&Exporter>,
) -> Result<Captures> {
    let mono_to_unix_ns = unix_now_ns() - i128::from(monotonic_ns());
    let pids: Vec<u32> = tracker.procs.keys().copied().collect();
    let mut http = match &config.http {
        Some(c) => Some(HttpCapture::start(probes, net, c)?),
        None => None,
    };
    if let (Some(h), Some(writer)) = (http.as_mut(), event_log) {
        h.observe(Box::new(EventLog::new(writer, mono_to_unix_ns)));
    }
    let mut cuda_trace = None;
    let mut cuda = match &config.cuda {
        Some(c) => {
            let trace = open_cuda_trace(config.cuda_trace.as_ref(), mono_to_unix_ns)?;
            let mut capture = CudaCapture::start(probes, pids.clone(), c)?;
            if let Some(trace) = trace {
                let (observer, handle) = trace.into_observer();
                capture.observe(observer);
                cuda_trace = Some(handle);
            }
            Some(capture)
        }
        None => None,
    };
    if let Some(m) = exporter {
        m.sync_processes(tracker);
        if let Some(h) = http.as_mut() {
            h.observe(m.request_observer());
        }
        if let Some(c) = cuda.as_mut() {
            c.observe(m.cuda_observer());
        }
    }
    let timeline = match &config.timeline {
        Some(t) => Some(Timeline::start(
            probes,
            t,
            http.as_mut(),
            cuda.as_mut(),
            mono_to_unix_ns,
        )?),
        None => None,
    };
    let hardware = HardwareCapture::start(&pids, &config.hardware);
    Ok(Captures {
        http,
        cuda,
        cuda_trace,
        timeline,
        hardware,
    })
}

/// The `--cuda-trace` file, created before anything is attached to CUDA (a usage error when it
/// cannot be written).
fn open_cuda_trace(
    config: Option<&cuda_trace::Config>,
    mono_to_unix_ns: i128,
) -> Result<Option<CudaTrace>> {
    let Some(c) = config else {
        return Ok(None);
    };
    let file = File::create(&c.path)
        .map_err(|e| usage!("cannot write the CUDA trace to {}: {e}", c.path.display()))?;
    Ok(Some(
        CudaTrace::new(Box::new(file), c.limit, mono_to_unix_ns)
            .with_path(c.path.display().to_string()),
    ))
}

pub(crate) fn open_event_log(config: &Config) -> Result<Option<Box<dyn Write>>> {
    let Some(path) = config.events.as_deref() else {
        return Ok(None);
    };
    if config.http.is_none() {
        return Err(usage!("--events needs HTTP capture: drop --no-http"));
    }
    let file = File::create(path)
        .map_err(|e| usage!("cannot write request events to {}: {e}", path.display()))?;
    Ok(Some(Box::new(std::io::BufWriter::new(file))))
}

impl Captures {
    /// Every capture that is on, for the loop's ticks.
    pub(crate) fn all(&mut self) -> Vec<&mut dyn Capability> {
        let mut all: Vec<&mut dyn Capability> = vec![&mut self.hardware];
        if let Some(t) = self.timeline.as_mut() {
            all.push(t);
        }
        if let Some(h) = self.http.as_mut() {
            all.push(h);
        }
        if let Some(c) = self.cuda.as_mut() {
            all.push(c);
        }
        all
    }
}
