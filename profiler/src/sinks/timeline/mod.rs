//! `--trace FILE`: a timeline of the session in the Chrome/Perfetto trace-event format (JSON
//! Object Format, timestamps in µs of CLOCK_MONOTONIC), for ui.perfetto.dev or chrome://tracing.
//!
//! - per watched thread, on-CPU slices from a `sched_switch` raw-tracepoint program (`sched_slices`);
//! - per process, finished HTTP exchanges as async slices (`requests`);
//! - per thread, CUDA calls on a sibling track (`cuda`);
//! - names of processes and threads as metadata (`tracks`).
//!
//! The session side lives here: [`Timeline::start`] opens the file, attaches the switch program
//! (only then: a session without `--trace` pays nothing) and registers observers with the socket
//! and CUDA analyzers; [`Timeline::drain`] runs on the session's drain tick; [`Timeline::finish`]
//! closes the file. Events are streamed to the file as they come, up to `--trace-limit`.

pub mod cuda;
pub mod event;
pub mod requests;
pub mod sched_slices;
pub mod tracks;
pub mod writer;

#[cfg(test)]
mod testing;

use std::{cell::RefCell, fs::File, os::fd::BorrowedFd, path::PathBuf, rc::Rc};

use anyhow::Result;
use serde::Serialize;

use crate::{
    bpf::Capability,
    bpf::probes::Probes,
    cuda::capture::CudaCapture,
    host::procfs,
    http::capture::HttpCapture,
    sched::model::monotonic_ns,
    sched::probes::{OnCpuMaps, SCHED_TRACE_PROBES, oncpu_events_lost},
    usage,
};
use sched_slices::{OnCpuSlicer, decode_oncpu, write_slice};
use tracks::Tracks;
use writer::TraceWriter;

/// What the writers of every event kind share (through `Rc<RefCell<…>>`: the session is one
/// thread, and the analyzers' observers write while they are drained).
pub struct Shared {
    pub writer: TraceWriter,
    pub tracks: Tracks,
    next_request_id: u64,
    /// Written so far, per kind.
    pub slices: u64,
    pub requests: u64,
    pub cuda_calls: u64,
}

impl Shared {
    pub fn new(writer: TraceWriter) -> Self {
        Self {
            writer,
            tracks: Tracks::default(),
            next_request_id: 0,
            slices: 0,
            requests: 0,
            cuda_calls: 0,
        }
    }

    /// A fresh async-slice id (unique in the file).
    pub fn next_request_id(&mut self) -> u64 {
        self.next_request_id += 1;
        self.next_request_id
    }
}

/// The file's `otherData`: how it was made and what was left out.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineSummary {
    pub generator: String,
    /// Timestamps are µs of this clock; add `monotonic_to_unix_ns` (ns) for wall-clock time.
    pub clock: &'static str,
    pub monotonic_to_unix_ns: i64,
    pub window_start_us: f64,
    pub window_end_us: f64,
    /// Events written (metadata not counted) and left out because of `--trace-limit`.
    pub events_written: u64,
    pub events_dropped: u64,
    pub limit: u64,
    pub truncated: bool,
    pub on_cpu_slices: u64,
    pub requests: u64,
    pub cuda_calls: u64,
    /// Whether `sched_switch_trace` was attached (no on-CPU slices otherwise).
    pub switch_probe_attached: bool,
    /// On-CPU intervals the program recorded.
    pub oncpu_records: u64,
    /// Intervals the kernel dropped (ring buffer full): those on-CPU slices are missing.
    pub oncpu_records_lost: u64,
    pub processes: usize,
    pub threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_error: Option<String>,
}

/// What the user asked of the timeline (`--trace FILE`, `--trace-limit`).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// Events written at most; later ones are counted as left out.
    pub limit: u64,
}

pub struct Timeline {
    shared: Rc<RefCell<Shared>>,
    slicer: OnCpuSlicer,
    maps: OnCpuMaps,
    path: PathBuf,
    switch_attached: bool,
    window_start_ns: u64,
    mono_to_unix_ns: i128,
    malformed: u64,
}

impl Timeline {
    /// Creates the file (a usage error when it cannot), attaches the switch program and hooks
    /// into the captures that are on.
    pub fn start(
        probes: &mut Probes,
        config: &Config,
        http: Option<&mut HttpCapture>,
        cuda: Option<&mut CudaCapture>,
        mono_to_unix_ns: i128,
    ) -> Result<Self> {
        let path = &config.path;
        let file = File::create(path)
            .map_err(|e| usage!("cannot write the timeline to {}: {e}", path.display()))?;
        let writer = TraceWriter::new(Box::new(file), config.limit);
        let shared = Rc::new(RefCell::new(Shared::new(writer)));
        let maps = OnCpuMaps::take(probes)?;
        probes.attach(SCHED_TRACE_PROBES)?;
        let switch_attached = probes
            .status
            .iter()
            .any(|s| s.program == SCHED_TRACE_PROBES[0].program && s.attached);
        // After the attach: an interval that began before it (its CPU had not switched since)
        // starts at the window start.
        let window_start_ns = monotonic_ns();
        if let Some(http) = http {
            http.observe(Box::new(requests::RequestTrack::new(shared.clone())));
        }
        if let Some(capture) = cuda {
            capture.observe(Box::new(cuda::CudaTrack::new(shared.clone())));
        }
        Ok(Self {
            shared,
            slicer: OnCpuSlicer::new(window_start_ns),
            path: path.clone(),
            switch_attached,
            maps,
            window_start_ns,
            mono_to_unix_ns,
            malformed: 0,
        })
    }

    /// Writes the queued on-CPU intervals as slices (call on the drain tick).
    fn drain_slices(&mut self) {
        let Self {
            shared,
            slicer,
            malformed,
            maps,
            ..
        } = self;
        let mut shared = shared.borrow_mut();
        maps.drain(|record| match decode_oncpu(record) {
            Some(ev) => {
                if let Some(slice) = slicer.on_record(&ev) {
                    write_slice(&mut shared, &slice);
                }
            }
            None => *malformed += 1,
        });
    }

    /// Ends the window now, writes the last slices and the names, closes the file and says on
    /// stderr what it holds (and, always, what was left out). Call after the socket and CUDA
    /// captures finished (their last records reach the file through the observers).
    /// `name_of(pid, tid)`: a thread's name as the session knows it.
    pub fn finish(
        mut self,
        probes: &mut Probes,
        name_of: &dyn Fn(u32, u32) -> Option<String>,
        quiet: bool,
    ) -> TimelineSummary {
        let end_ns = monotonic_ns();
        self.slicer.close_window(end_ns);
        self.drain_slices();
        let on_cpu_now: Vec<(u32, u32, u32)> = probes
            .threads()
            .into_iter()
            .filter(|(_, s)| s.on_cpu_since_ns != 0)
            .filter_map(|(tid, s)| Some((s.tgid, tid, procfs::thread_cpu(s.tgid, tid)?)))
            .collect();
        let last_switch = self.maps.last_switch_ns();
        let mut shared = self.shared.borrow_mut();
        let shared = &mut *shared;
        for slice in self.slicer.finish(on_cpu_now, &last_switch) {
            write_slice(shared, &slice);
        }
        let name = |pid: u32, tid: u32| name_of(pid, tid).or_else(|| procfs::thread_comm(pid, tid));
        shared.tracks.write_names(&mut shared.writer, &name);
        let mut summary = TimelineSummary {
            generator: format!("profiler {}", env!("CARGO_PKG_VERSION")),
            clock: "CLOCK_MONOTONIC",
            monotonic_to_unix_ns: i64::try_from(self.mono_to_unix_ns).unwrap_or(0),
            window_start_us: event::micros(self.window_start_ns),
            window_end_us: event::micros(end_ns),
            events_written: shared.writer.written(),
            events_dropped: shared.writer.dropped(),
            limit: shared.writer.limit(),
            truncated: shared.writer.dropped() > 0,
            on_cpu_slices: shared.slices,
            requests: shared.requests,
            cuda_calls: shared.cuda_calls,
            switch_probe_attached: self.switch_attached,
            oncpu_records: self.slicer.records() + self.malformed,
            oncpu_records_lost: oncpu_events_lost(probes),
            processes: shared.tracks.process_count(),
            threads: shared.tracks.thread_count(),
            write_error: None,
        };
        summary.write_error = shared.writer.close(&summary).err();
        announce(&summary, &self.path, quiet);
        summary
    }
}

/// The stderr lines about the file: where it is (unless `quiet`), and always what is missing.
fn announce(s: &TimelineSummary, path: &std::path::Path, quiet: bool) {
    let path = path.display();
    if let Some(e) = &s.write_error {
        eprintln!("profiler: warning: the timeline {path} is incomplete: {e}");
    }
    if s.truncated {
        eprintln!(
            "profiler: warning: the timeline reached --trace-limit {}: {} later events were \
             left out (raise --trace-limit for the whole session)",
            s.limit, s.events_dropped
        );
    }
    if s.oncpu_records_lost > 0 {
        eprintln!(
            "profiler: warning: the timeline misses {} on-CPU slices (ring buffer full)",
            s.oncpu_records_lost
        );
    }
    if !quiet {
        eprintln!(
            "profiler: timeline written to {path}: {} events ({} on-CPU slices, {} requests, {} \
             CUDA calls); open it in ui.perfetto.dev",
            s.events_written, s.on_cpu_slices, s.requests, s.cuda_calls
        );
    }
}

impl Capability for Timeline {
    fn drain(&mut self, _probes: &mut Probes) {
        self.drain_slices();
    }

    fn wake_fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.maps.wake_fd()]
    }
}
