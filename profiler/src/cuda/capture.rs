//! The CUDA capability's session side: attach to the CUDA libraries of the watched processes
//! (again whenever one maps a new one), drain the ring buffers into the analyzer, report.
//! Privileged I/O through `Probes`.

use std::{
    os::fd::BorrowedFd,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    bpf::Capability,
    bpf::probes::Probes,
    cuda::{
        analyzer::{CudaAnalyzer, CudaInterval},
        attach::{CudaAttacher, ProbeMode},
        probes::{
            CookiesByAddress, CudaMaps, cookies_by_address, cuda_calls_unfinished, cuda_events_lost,
        },
        report::CudaSection,
        stubs::StubSymbolizer,
    },
};

pub struct CudaCapture {
    maps: CudaMaps,
    attacher: CudaAttacher,
    analyzer: CudaAnalyzer,
    stubs: StubSymbolizer,
    /// When the watched processes' maps were last scanned for new CUDA libraries.
    last_scan: Instant,
}

/// How often the watched processes' maps are scanned for CUDA libraries loaded since: calls a
/// process makes between mapping a CUDA library and the next scan are not seen.
const CUDA_SCAN: Duration = Duration::from_millis(250);

/// What the user asked of the CUDA capture.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Time launches with return probes too (`--cuda-launch-latency`).
    pub launch_latency: bool,
    /// Kernels listed by name in the report.
    pub top: usize,
    /// Attach programs that do nothing (benchmarks: the cost of the uprobe alone).
    pub empty_probes: bool,
}

impl CudaCapture {
    /// Attaches to the CUDA libraries the processes already map.
    pub fn start(
        probes: &mut Probes,
        pids: impl IntoIterator<Item = u32>,
        config: &Config,
    ) -> Result<Self> {
        let mode = if config.empty_probes {
            ProbeMode::Empty
        } else if config.launch_latency {
            ProbeMode::LaunchLatency
        } else {
            ProbeMode::Default
        };
        let by_address = if cookies_by_address() {
            Some(CookiesByAddress::take(probes)?)
        } else {
            None
        };
        let mut capture = Self {
            maps: CudaMaps::take(probes)?,
            attacher: CudaAttacher::new(mode, by_address),
            analyzer: {
                let mut a = CudaAnalyzer::new(config.top);
                a.wait_for_window();
                a
            },
            stubs: StubSymbolizer::default(),
            last_scan: Instant::now(),
        };
        capture.attacher.scan(probes, pids);
        Ok(capture)
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

    pub fn observe(&mut self, observer: Box<dyn crate::cuda::observer::CudaObserver>) {
        self.analyzer.observe(observer);
    }

    /// The figures of the interval that just ended (for the live view), after a last drain.
    pub fn take_interval(&mut self, probes: &mut Probes) -> CudaInterval {
        self.drain(probes);
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
            events_lost: cuda_events_lost(probes),
            calls_unfinished: cuda_calls_unfinished(probes),
            analysis: self.analyzer.report(duration_s, comm_of),
        }
    }
}

impl Capability for CudaCapture {
    fn drain(&mut self, _probes: &mut Probes) {
        let Self {
            maps,
            analyzer,
            stubs,
            ..
        } = self;
        maps.drain(|is_name, record| {
            if is_name {
                analyzer.on_name(record);
            } else {
                analyzer.on_event(record, stubs);
            }
        });
    }

    fn wake_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.maps.wake_fds().to_vec()
    }

    fn open_window(&mut self, probes: &mut Probes) {
        self.drain(probes);
        self.analyzer.open_window();
    }

    fn poll(&mut self, probes: &mut Probes, watched: &[u32]) {
        if self.last_scan.elapsed() >= CUDA_SCAN {
            self.rescan(probes, watched.iter().copied());
        }
    }

    /// Its libraries are no longer listed, and a new process reusing the pid is attached
    /// afresh.
    fn forget_process(&mut self, _probes: &mut Probes, pid: u32) {
        self.attacher.forget_process(pid);
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
