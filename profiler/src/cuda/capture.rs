//! The CUDA side of a session: attach to the CUDA libraries of the watched processes (again
//! whenever one maps a new one), drain the ring buffers into the analyzer, report.

use std::{fs::File, time::Instant};

use anyhow::Result;

use crate::{
    cli::CudaArgs,
    cuda::{
        analyzer::{CudaAnalyzer, CudaInterval},
        attach::{CudaAttacher, ProbeMode},
        report::CudaSection,
        stubs::StubSymbolizer,
        trace::CudaTrace,
    },
    probes::Probes,
    usage,
};

pub struct CudaCapture {
    attacher: CudaAttacher,
    analyzer: CudaAnalyzer,
    stubs: StubSymbolizer,
    /// When the watched processes' maps were last scanned for new CUDA libraries.
    pub last_scan: Instant,
}

impl CudaCapture {
    /// Opens the trace file (a usage error when it cannot be written) and attaches to the CUDA
    /// libraries the processes already map.
    pub fn start(
        probes: &mut Probes,
        pids: impl IntoIterator<Item = u32>,
        args: &CudaArgs,
        mono_to_unix_ns: i128,
    ) -> Result<Self> {
        let trace = match &args.cuda_trace {
            Some(path) => {
                let file = File::create(path).map_err(|e| {
                    usage!("cannot write the CUDA trace to {}: {e}", path.display())
                })?;
                Some(
                    CudaTrace::new(Box::new(file), args.cuda_trace_limit, mono_to_unix_ns)
                        .with_path(path.display().to_string()),
                )
            }
            None => None,
        };
        let mode = if args.cuda_empty_probes {
            ProbeMode::Empty
        } else if args.cuda_launch_latency {
            ProbeMode::LaunchLatency
        } else {
            ProbeMode::Default
        };
        let mut capture = Self {
            attacher: CudaAttacher::new(mode),
            analyzer: CudaAnalyzer::new(args.cuda_top, trace),
            stubs: StubSymbolizer::default(),
            last_scan: Instant::now(),
        };
        capture.attacher.scan(probes, pids);
        Ok(capture)
    }

    /// Forgets an exited process (the daemon): its libraries are no longer listed, and a new
    /// process reusing the pid is attached afresh.
    pub fn forget_process(&mut self, pid: u32) {
        self.attacher.forget_process(pid);
    }

    /// Attaches to CUDA libraries mapped since the last scan (late `dlopen`, new children).
    pub fn rescan(&mut self, probes: &mut Probes, pids: impl IntoIterator<Item = u32>) {
        self.last_scan = Instant::now();
        let before = self.attacher.libraries.len();
        if self.attacher.scan(probes, pids) > 0 {
            for lib in &self.attacher.libraries[before..] {
                announce_library(lib);
            }
        }
    }

    pub fn libraries(&self) -> &[crate::cuda::attach::AttachedLibrary] {
        &self.attacher.libraries
    }

    pub fn drain(&mut self, probes: &mut Probes) {
        let Self {
            analyzer, stubs, ..
        } = self;
        probes.drain_cuda(|is_name, record| {
            if is_name {
                analyzer.on_name(record);
            } else {
                analyzer.on_event(record, stubs);
            }
        });
    }

    pub fn observe(&mut self, observer: Box<dyn crate::observe::CudaObserver>) {
        self.analyzer.observe(observer);
    }

    pub fn take_interval(&mut self) -> CudaInterval {
        self.analyzer.take_interval()
    }

    pub fn finish(
        &mut self,
        probes: &mut Probes,
        duration_s: f64,
        comm_of: &dyn Fn(u32, u32) -> Option<String>,
    ) -> CudaSection {
        self.drain(probes);
        self.analyzer.flush_pending(&mut self.stubs);
        CudaSection {
            libraries: self.attacher.libraries.clone(),
            launch_latency: match self.attacher.probe_mode() {
                ProbeMode::LaunchLatency => "timed",
                _ => "entry-only",
            },
            events_lost: probes.cuda_events_lost(),
            calls_unfinished: probes.cuda_calls_unfinished(),
            analysis: self.analyzer.report(duration_s, comm_of),
        }
    }
}

/// One line on stderr per library attached after the start.
pub fn announce_library(lib: &crate::cuda::attach::AttachedLibrary) {
    match &lib.error {
        None => eprintln!(
            "profiler: CUDA: {} probes on {} (pid {})",
            lib.probes, lib.path, lib.pid
        ),
        Some(e) => eprintln!(
            "profiler: warning: CUDA: {} probes on {} (pid {}): {e}",
            lib.probes, lib.path, lib.pid
        ),
    }
}
