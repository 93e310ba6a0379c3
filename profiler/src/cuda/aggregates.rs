//! The analyzer's accumulators, one per kind of figure, and their report rows: per-API calls
//! and host times, per-kernel launches, per-stream busy spans, per-thread sync waits, live
//! device memory. Sums saturate: records come from the watched process and may be garbage.

use hdrhistogram::Histogram;
use profiler_common::CudaEvent;
use rustc_hash::FxHashMap;

use crate::cuda::report::{ApiStats, MemoryStats, StreamStats, SyncSummary, SyncThread, round3};
use crate::util::hist::{new_hist, record_ns};

pub fn per_s(n: u64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        round3(n as f64 / duration_s)
    } else {
        0.0
    }
}

pub fn ms(ns: u64) -> f64 {
    round3(ns as f64 / 1e6)
}

/// One API family.
#[derive(Debug, Default)]
pub struct ApiAgg {
    pub calls: u64,
    errors: u64,
    total_ns: u64,
    /// Host time of timed calls (ns); created at the first one.
    hist: Option<Histogram<u64>>,
}

impl ApiAgg {
    pub fn record(&mut self, ev: &CudaEvent, timed: bool, failed: bool) {
        self.calls += 1;
        if timed {
            self.errors += u64::from(failed);
            self.total_ns = self.total_ns.saturating_add(ev.duration_ns);
            record_ns(self.hist.get_or_insert_with(new_hist), ev.duration_ns);
        }
    }

    /// Timing fields are over the timed calls only, null when there were none.
    pub fn stats(&self, api: &'static str) -> ApiStats {
        let h = self.hist.as_ref().filter(|h| !h.is_empty());
        let us = |ns: u64| round3(ns as f64 / 1e3);
        let q = |q: f64| h.map(|h| us(h.value_at_quantile(q)));
        ApiStats {
            api,
            calls: self.calls,
            errors: self.errors,
            timed: h.is_some(),
            total_ms: h.map(|_| ms(self.total_ns)),
            mean_us: h.map(|h| round3(self.total_ns as f64 / h.len() as f64 / 1e3)),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            max_us: h.map(|h| us(h.max())),
        }
    }
}

/// One kernel (by name).
#[derive(Debug, Default)]
pub struct KernelAgg {
    pub launches: u64,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem: u32,
}

impl KernelAgg {
    pub fn launch(&mut self, ev: &CudaEvent) {
        self.launches += 1;
        self.grid = ev.grid;
        self.block = ev.block;
        self.shared_mem = ev.shared_mem;
    }
}

/// One (process, stream): launches and the launch→sync spans of the GPU busy estimate.
#[derive(Debug, Default)]
pub struct StreamAgg {
    launches: u64,
    syncs: u64,
    /// Entry time of the first launch since the last sync.
    pending_since: Option<u64>,
    last_sync_end: u64,
    busy_ns: u64,
    synced: bool,
}

impl StreamAgg {
    pub fn launch(&mut self, ts_ns: u64) {
        self.launches += 1;
        // Threads' events can interleave out of time order: keep the earliest.
        self.pending_since = Some(self.pending_since.map_or(ts_ns, |p| p.min(ts_ns)));
    }

    /// A sync ending at `end` covered this stream: the span from its first pending launch (or
    /// the previous sync, whichever is later) to `end` counts as busy.
    pub fn close(&mut self, end: u64) {
        self.syncs += 1;
        self.synced = true;
        if let Some(since) = self.pending_since.take() {
            let span = end.saturating_sub(since.max(self.last_sync_end));
            self.busy_ns = self.busy_ns.saturating_add(span);
        }
        self.last_sync_end = self.last_sync_end.max(end);
    }

    /// A context-wide sync: closes the span if launches are pending; else only moves the
    /// previous-sync mark (the stream was idle, nothing to count).
    pub fn close_if_pending(&mut self, end: u64) {
        if self.pending_since.is_some() {
            self.close(end);
        } else {
            self.last_sync_end = self.last_sync_end.max(end);
        }
    }
}

/// Rows by pid, launches (desc), stream.
pub fn stream_rows(streams: &FxHashMap<(u32, u64), StreamAgg>) -> Vec<StreamStats> {
    let mut rows: Vec<(&(u32, u64), &StreamAgg)> = streams.iter().collect();
    rows.sort_by(|a, b| (a.0.0, b.1.launches, a.0.1).cmp(&(b.0.0, a.1.launches, b.0.1)));
    rows.into_iter()
        .map(|(&(pid, stream), s)| StreamStats {
            pid,
            stream: format!("{stream:#x}"),
            launches: s.launches,
            syncs: s.syncs,
            gpu_busy_estimate_ms: s.synced.then(|| ms(s.busy_ns)),
        })
        .collect()
}

/// One thread's syncs.
#[derive(Debug, Default)]
pub struct ThreadSync {
    pub calls: u64,
    pub wait_ns: u64,
}

/// The sync summary, threads by wait (desc).
pub fn sync_summary(
    threads: &FxHashMap<(u32, u32), ThreadSync>,
    duration_s: f64,
    comm_of: &dyn Fn(u32, u32) -> Option<String>,
) -> SyncSummary {
    let mut rows: Vec<(&(u32, u32), &ThreadSync)> = threads.iter().collect();
    rows.sort_by(|a, b| b.1.wait_ns.cmp(&a.1.wait_ns).then_with(|| a.0.cmp(b.0)));
    let share = |ns: u64| {
        if duration_s > 0.0 {
            (ns as f64 / 1e9 / duration_s * 1e6).round() / 1e6
        } else {
            0.0
        }
    };
    SyncSummary {
        calls: threads.values().map(|t| t.calls).sum(),
        wait_ms: ms(threads
            .values()
            .fold(0u64, |sum, t| sum.saturating_add(t.wait_ns))),
        threads: rows
            .into_iter()
            .map(|(&(pid, tid), t)| SyncThread {
                pid,
                tid,
                comm: comm_of(pid, tid),
                calls: t.calls,
                wait_ms: ms(t.wait_ns),
                wall_share: share(t.wait_ns),
            })
            .collect(),
    }
}

/// Device memory allocated and freed through the driver.
#[derive(Debug, Default)]
pub struct Memory {
    pub stats: MemoryStats,
    /// (tgid, device pointer) → bytes, for allocations seen while attached.
    live: FxHashMap<(u32, u64), u64>,
}

impl Memory {
    /// A successful allocation; its pointer is only known when the return was probed.
    pub fn alloc(&mut self, ev: &CudaEvent, timed: bool) {
        let m = &mut self.stats;
        m.allocations += 1;
        m.allocated_bytes = m.allocated_bytes.saturating_add(ev.bytes);
        if timed && ev.handle != 0 {
            if let Some(old) = self.live.insert((ev.tgid, ev.handle), ev.bytes) {
                // Its free was not seen (lost event): the old allocation is gone.
                m.live_bytes = m.live_bytes.saturating_sub(old);
            }
            m.live_bytes = m.live_bytes.saturating_add(ev.bytes);
            m.peak_live_bytes = m.peak_live_bytes.max(m.live_bytes);
        }
    }

    /// A successful free.
    pub fn free(&mut self, ev: &CudaEvent) {
        let m = &mut self.stats;
        m.frees += 1;
        match self.live.remove(&(ev.tgid, ev.handle)) {
            Some(bytes) => {
                m.freed_bytes = m.freed_bytes.saturating_add(bytes);
                m.live_bytes = m.live_bytes.saturating_sub(bytes);
            }
            None => m.frees_unknown += 1,
        }
    }
}
