//! CUDA events → aggregates: per-API call counts and host times, kernel launches by name,
//! syncs per thread, copies per direction, allocations, and a per-stream GPU busy estimate.
//!
//! Pure: records in (`on_name`, `on_event`), `CudaAnalysis` out; sinks (the `--cuda-trace`
//! file, the exporter, the timeline) observe every decoded call. Records are decoded with a length check; anything short or with an
//! unknown API id is counted in `malformed_records`, never a panic.
//!
//! Runtime launches (`cudaLaunchKernel*`) are not launches: the driver launch the same thread
//! makes right after is. The runtime call is kept per thread as a pending host stub that names
//! that driver launch when the driver tables cannot; two runtime calls in a row mean no driver
//! launch was seen for the first (libcuda not probed), which is then counted on its own.

use profiler_common::{CudaEvent, copy_direction, cuda_api as api, cuda_flag};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::cuda::aggregates::{
    ApiAgg, KernelAgg, Memory, StreamAgg, ThreadSync, per_s, stream_rows, sync_summary,
};
use crate::cuda::names::{NameId, Names, decode_name_event, short_name};
pub use crate::cuda::names::{NoStubs, StubNames};
use crate::cuda::observer::CudaObserver;
pub use crate::cuda::report::CudaInterval;
use crate::cuda::report::{
    ApiStats, CopyStats, CudaAnalysis, DIRECTIONS, KernelStats, Launches, NameStats, OtherKernels,
};
use crate::cuda::symbols::{ApiClass, api_class, api_name};

#[derive(Debug, Default)]
struct Interval {
    counts: CudaInterval,
    kernels: FxHashMap<NameId, u64>,
}

pub struct CudaAnalyzer {
    top_kernels: usize,
    observers: Vec<Box<dyn CudaObserver>>,
    names: Names,
    /// Indexed by API id.
    apis: Vec<ApiAgg>,
    kernels: FxHashMap<NameId, KernelAgg>,
    launches: u64,
    graph_launches: u64,
    runtime_launches: u64,
    runtime_without_driver: u64,
    unnamed: u64,
    /// (tgid, tid) → the runtime launch waiting for its driver launch.
    pending: FxHashMap<(u32, u32), CudaEvent>,
    /// Processes that made at least one driver launch.
    driver_tgids: FxHashSet<u32>,
    streams: FxHashMap<(u32, u64), StreamAgg>,
    syncs: FxHashMap<(u32, u32), ThreadSync>,
    copies: [(u64, u64); DIRECTIONS.len()],
    memory: Memory,
    malformed: u64,
    interval: Interval,
    /// False until the session's window opens (see `open_window`).
    window_open: bool,
}

/// Decodes one `CUDA_EVENTS` record; `None` when it is short.
pub fn decode_event(record: &[u8]) -> Option<CudaEvent> {
    crate::util::pod::read_record(record)
}

impl CudaAnalyzer {
    pub fn new(top_kernels: usize) -> Self {
        Self {
            top_kernels,
            observers: Vec::new(),
            names: Names::default(),
            apis: (0..api::COUNT).map(|_| ApiAgg::default()).collect(),
            kernels: FxHashMap::default(),
            launches: 0,
            graph_launches: 0,
            runtime_launches: 0,
            runtime_without_driver: 0,
            unnamed: 0,
            pending: FxHashMap::default(),
            driver_tgids: FxHashSet::default(),
            streams: FxHashMap::default(),
            syncs: FxHashMap::default(),
            copies: [(0, 0); DIRECTIONS.len()],
            memory: Memory::default(),
            malformed: 0,
            interval: Interval::default(),
            window_open: true,
        }
    }

    /// Holds the observers back until `open_window` (a session attaches its probes one after
    /// the other and opens its window when all are in).
    pub fn wait_for_window(&mut self) {
        self.window_open = false;
    }

    /// The session's window opens: the counts of calls made before (during attach) are
    /// dropped; kernel names, live allocations and runtime launches awaiting their driver
    /// launch are kept.
    pub fn open_window(&mut self) {
        self.window_open = true;
        self.apis = (0..api::COUNT).map(|_| ApiAgg::default()).collect();
        self.kernels.clear();
        self.launches = 0;
        self.graph_launches = 0;
        self.runtime_launches = 0;
        self.runtime_without_driver = 0;
        self.unnamed = 0;
        self.streams.clear();
        self.syncs.clear();
        self.copies = [(0, 0); DIRECTIONS.len()];
        self.malformed = 0;
        self.interval = Interval::default();
    }

    /// Adds an observer that sees every decoded call from now on.
    pub fn observe(&mut self, observer: Box<dyn CudaObserver>) {
        self.observers.push(observer);
    }

    /// One `CUDA_NAMES` record (drained before the events, so names precede their launches).
    pub fn on_name(&mut self, record: &[u8]) {
        match decode_name_event(record) {
            Some(ev) if self.names.add(&ev) => {}
            _ => self.malformed += 1,
        }
    }

    /// One `CUDA_EVENTS` record.
    pub fn on_event(&mut self, record: &[u8], stubs: &mut dyn StubNames) {
        let Some(ev) = decode_event(record) else {
            self.malformed += 1;
            return;
        };
        // cuKernelGetFunction is resolved in the kernel and never reported on its own.
        if ev.api == 0 || ev.api >= api::COUNT || ev.api == api::KERNEL_GET_FUNCTION {
            self.malformed += 1;
            return;
        }
        let timed = ev.flags & cuda_flag::TIMED != 0;
        // A call that returned an error did nothing: counted per API, not applied.
        let failed = timed && ev.ret != 0;
        let host_ns = if timed { ev.duration_ns } else { 0 };
        self.apis[usize::from(ev.api)].record(&ev, timed, failed);
        let mut kernel = None;
        match api_class(ev.api) {
            ApiClass::Launch => kernel = self.on_launch(&ev, failed, stubs),
            ApiClass::Runtime => self.on_runtime_launch(ev, stubs),
            ApiClass::GraphLaunch if !failed => {
                self.graph_launches += 1;
                self.interval.counts.graph_launches += 1;
                self.stream_launch(&ev);
            }
            ApiClass::Copy if !failed => {
                let dir = match ev.direction {
                    d @ copy_direction::UNKNOWN..=copy_direction::PEER => usize::from(d),
                    _ => usize::from(copy_direction::UNKNOWN),
                };
                self.copies[dir].0 += 1;
                self.copies[dir].1 = self.copies[dir].1.saturating_add(ev.bytes);
                self.interval.counts.copy_bytes =
                    self.interval.counts.copy_bytes.saturating_add(ev.bytes);
            }
            ApiClass::Alloc if !failed => self.memory.alloc(&ev, timed),
            ApiClass::Free if !failed => self.memory.free(&ev),
            ApiClass::Sync => self.on_sync(&ev, host_ns, failed),
            _ => {}
        }
        if !self.window_open {
            return;
        }
        let kernel = kernel.map(|id| self.names.get(id).display.as_str());
        for o in &mut self.observers {
            o.on_cuda_call(&ev, kernel);
        }
    }

    fn on_launch(
        &mut self,
        ev: &CudaEvent,
        failed: bool,
        stubs: &mut dyn StubNames,
    ) -> Option<NameId> {
        self.driver_tgids.insert(ev.tgid);
        let stub = self.pending.remove(&(ev.tgid, ev.tid)).map(|rt| rt.handle);
        let (id, named) = self.names.resolve_launch(ev, stub, stubs);
        if !failed {
            self.count_launch(ev, id, named);
        }
        Some(id)
    }

    fn on_runtime_launch(&mut self, ev: CudaEvent, stubs: &mut dyn StubNames) {
        self.runtime_launches += 1;
        if let Some(prev) = self.pending.insert((ev.tgid, ev.tid), ev) {
            self.count_without_driver(&prev, stubs);
        }
    }

    /// A runtime launch no driver launch followed: counted as a launch named by its stub.
    fn count_without_driver(&mut self, rt: &CudaEvent, stubs: &mut dyn StubNames) {
        self.runtime_without_driver += 1;
        let (id, named) = match self.names.stub(rt.tgid, rt.handle, stubs) {
            Some(id) => (id, true),
            None => (self.names.intern_unresolved(rt.handle), false),
        };
        self.count_launch(rt, id, named);
    }

    fn count_launch(&mut self, ev: &CudaEvent, id: NameId, named: bool) {
        self.launches += 1;
        self.unnamed += u64::from(!named);
        self.kernels.entry(id).or_default().launch(ev);
        self.interval.counts.launches += 1;
        *self.interval.kernels.entry(id).or_default() += 1;
        self.stream_launch(ev);
    }

    fn stream_launch(&mut self, ev: &CudaEvent) {
        let s = self.streams.entry((ev.tgid, ev.stream)).or_default();
        s.launch(ev.ts_ns);
    }

    fn on_sync(&mut self, ev: &CudaEvent, host_ns: u64, failed: bool) {
        let t = self.syncs.entry((ev.tgid, ev.tid)).or_default();
        t.calls += 1;
        t.wait_ns = t.wait_ns.saturating_add(host_ns);
        self.interval.counts.sync_calls += 1;
        self.interval.counts.sync_wait_ns =
            self.interval.counts.sync_wait_ns.saturating_add(host_ns);
        if failed {
            return;
        }
        let end = ev.ts_ns.saturating_add(host_ns);
        if ev.api == api::STREAM_SYNC {
            self.streams
                .entry((ev.tgid, ev.stream))
                .or_default()
                .close(end);
            return;
        }
        // Context sync waits for every stream of the process; an event sync for the stream the
        // event was recorded on, which we do not know: treated the same.
        for (_, s) in self.streams.iter_mut().filter(|((p, _), _)| *p == ev.tgid) {
            s.close_if_pending(end);
        }
    }

    /// Counts the runtime launches still waiting for a driver launch in processes that never
    /// made one (libcuda not probed): with `NoStubs` they are named from the stub cache only.
    /// `report` calls it with `NoStubs`; call it before with a real resolver to name them all.
    /// A pending launch in a process with driver launches is dropped: its driver call comes
    /// after the session (or the runtime call failed before reaching the driver).
    pub fn flush_pending(&mut self, stubs: &mut dyn StubNames) {
        let mut pending: Vec<CudaEvent> = self.pending.drain().map(|(_, ev)| ev).collect();
        pending.sort_by_key(|ev| (ev.ts_ns, ev.tid));
        for rt in pending {
            if !self.driver_tgids.contains(&rt.tgid) {
                self.count_without_driver(&rt, stubs);
            }
        }
    }

    /// This interval's figures; starts the next interval.
    pub fn take_interval(&mut self) -> CudaInterval {
        let iv = std::mem::take(&mut self.interval);
        let mut counts = iv.counts;
        counts.top_kernel = iv
            .kernels
            .iter()
            .map(|(&id, &n)| (n, self.names.get(id).display.as_str()))
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
            .map(|(n, name)| (short_name(name), n));
        counts
    }

    /// The session's figures.
    /// `comm_of(pid, tid)` names threads in the sync table.
    pub fn report(
        &mut self,
        duration_s: f64,
        comm_of: &dyn Fn(u32, u32) -> Option<String>,
    ) -> CudaAnalysis {
        self.flush_pending(&mut NoStubs);
        CudaAnalysis {
            apis: self.api_stats(),
            launches: self.launch_stats(duration_s),
            sync: sync_summary(&self.syncs, duration_s, comm_of),
            copies: self
                .copies
                .iter()
                .zip(DIRECTIONS)
                .filter(|((calls, _), _)| *calls > 0)
                .map(|(&(calls, bytes), direction)| CopyStats {
                    direction,
                    calls,
                    bytes,
                    bytes_per_s: per_s(bytes, duration_s),
                })
                .collect(),
            memory: self.memory.stats,
            streams: stream_rows(&self.streams),
            gpu_busy_is_estimate: true,
            names: NameStats {
                functions: self.names.counts.functions,
                kernels: self.names.counts.kernels,
                truncated: self.names.counts.truncated,
            },
            // Filled by the session from the `--cuda-trace` sink.
            trace: None,
            malformed_records: self.malformed,
        }
    }

    fn api_stats(&self) -> Vec<ApiStats> {
        let mut out: Vec<ApiStats> = self
            .apis
            .iter()
            .enumerate()
            .filter(|(_, a)| a.calls > 0)
            .map(|(id, a)| a.stats(api_name(id as u16)))
            .collect();
        out.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.api.cmp(b.api)));
        out
    }

    fn launch_stats(&self, duration_s: f64) -> Launches {
        let mut all: Vec<(&KernelAgg, NameId)> =
            self.kernels.iter().map(|(&id, k)| (k, id)).collect();
        let name = |id: NameId| &self.names.get(id).display;
        all.sort_by(|a, b| {
            b.0.launches
                .cmp(&a.0.launches)
                .then_with(|| name(a.1).cmp(name(b.1)))
        });
        let split = all.len().min(self.top_kernels);
        let kernels = all[..split]
            .iter()
            .map(|&(k, id)| {
                let n = self.names.get(id);
                KernelStats {
                    name: n.display.clone(),
                    mangled: n.mangled.clone(),
                    launches: k.launches,
                    per_s: per_s(k.launches, duration_s),
                    last_grid: k.grid,
                    last_block: k.block,
                    shared_mem: k.shared_mem,
                    truncated_name: n.truncated,
                }
            })
            .collect();
        let other = OtherKernels {
            kernels: (all.len() - split) as u64,
            launches: all[split..].iter().map(|(k, _)| k.launches).sum(),
        };
        Launches {
            total: self.launches,
            per_s: per_s(self.launches, duration_s),
            graph_launches: self.graph_launches,
            runtime_launches: self.runtime_launches,
            runtime_launches_without_driver: self.runtime_without_driver,
            unnamed: self.unnamed,
            kernels,
            other,
        }
    }
}

#[cfg(test)]
#[path = "analyzer_tests.rs"]
mod tests;
