//! The CUDA report section: the serializable figures (`CudaAnalysis`, built by the analyzer),
//! the section around them (`CudaSection`), its text block and the live-view line.
//! Schema: docs/report-schema.md, `cuda`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cuda::attach::AttachedLibrary;
use crate::util::fmt::{fmt_bytes, fmt_us};

/// Figures since the previous `take_interval`, for the live view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CudaInterval {
    pub launches: u64,
    pub graph_launches: u64,
    pub sync_calls: u64,
    /// Thread time blocked in syncs, summed over threads.
    pub sync_wait_ns: u64,
    pub copy_bytes: u64,
    /// The most launched kernel (short name) and its launches.
    pub top_kernel: Option<(String, u64)>,
}

/// `CudaEvent::direction` as the report and the trace spell it (index = the value).
pub const DIRECTIONS: [&str; 6] = ["unknown", "htod", "dtoh", "dtod", "htoh", "peer"];

/// A copy direction's name; values the probes do not emit read as `unknown`.
pub fn direction_name(direction: u8) -> &'static str {
    DIRECTIONS
        .get(usize::from(direction))
        .copied()
        .unwrap_or("unknown")
}

/// Rounds to 3 decimals (ms and µs figures: ns resolution is noise in a report).
pub fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

#[derive(Debug, Clone, Serialize)]
pub struct CudaSection {
    pub libraries: Vec<AttachedLibrary>,
    /// `timed` (launches carry host time: `--cuda-launch-latency`) or `entry-only`.
    pub launch_latency: &'static str,
    /// CUDA call or name events dropped because a CUDA ring buffer was full.
    pub events_lost: u64,
    /// Timed calls whose entry record was replaced before their return.
    pub calls_unfinished: u64,
    #[serde(flatten)]
    pub analysis: CudaAnalysis,
}

impl CudaSection {
    /// GPU busy seconds estimated from the streams' launch→sync spans (used without NVML);
    /// `None` when no stream has an estimate.
    pub fn gpu_busy_estimate_s(&self) -> Option<f64> {
        let ms: Vec<f64> = self
            .analysis
            .streams
            .iter()
            .filter_map(|s| s.gpu_busy_estimate_ms)
            .collect();
        (!ms.is_empty()).then(|| ms.iter().sum::<f64>() / 1e3)
    }
}

/// Everything the analyzer aggregated over the session.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CudaAnalysis {
    /// Per API family, by calls (desc) then name.
    pub apis: Vec<ApiStats>,
    pub launches: Launches,
    pub sync: SyncSummary,
    /// Per direction with at least one call, in `DIRECTIONS` order.
    pub copies: Vec<CopyStats>,
    pub memory: MemoryStats,
    /// Per (pid, stream), by pid, launches (desc), stream.
    pub streams: Vec<StreamStats>,
    /// Always true: `gpu_busy_estimate_ms` is inferred from launch→sync spans, not measured.
    pub gpu_busy_is_estimate: bool,
    /// Kernel name events seen (`cuModuleGetFunction`, `cuLibraryGetKernel`).
    pub names: NameStats,
    /// `--cuda-trace`; null without it.
    pub trace: Option<TraceSummary>,
    /// Records too short, or with an API id or name kind the analyzer does not know.
    pub malformed_records: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiStats {
    pub api: &'static str,
    pub calls: u64,
    /// Timed calls that returned an error (untimed calls' results are unknown).
    pub errors: u64,
    /// Some calls carried host time (the timing fields are over those calls only).
    pub timed: bool,
    pub total_ms: Option<f64>,
    pub mean_us: Option<f64>,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Launches {
    /// Kernel launches (driver launches, plus runtime launches no driver launch followed);
    /// graph launches are not included.
    pub total: u64,
    pub per_s: f64,
    pub graph_launches: u64,
    /// Runtime `cudaLaunchKernel*` calls seen (each names the driver launch that follows).
    pub runtime_launches: u64,
    /// Runtime launches with no driver launch after them on their thread (libcuda not probed,
    /// e.g. a static runtime whose driver calls were not seen): counted in `total`.
    pub runtime_launches_without_driver: u64,
    /// Launches no name table could name (`unresolved@0x<CUfunction>` kernels).
    pub unnamed: u64,
    /// The top kernels by launches (desc) then name.
    pub kernels: Vec<KernelStats>,
    pub other: OtherKernels,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KernelStats {
    pub name: String,
    /// The mangled name when `name` was demangled; null for plain C names.
    pub mangled: Option<String>,
    pub launches: u64,
    pub per_s: f64,
    pub last_grid: [u32; 3],
    pub last_block: [u32; 3],
    /// Dynamic shared memory of the last launch, bytes.
    pub shared_mem: u32,
    pub truncated_name: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct OtherKernels {
    pub kernels: u64,
    pub launches: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncSummary {
    pub calls: u64,
    /// Thread time blocked in syncs, summed over threads.
    pub wait_ms: f64,
    /// By wait (desc).
    pub threads: Vec<SyncThread>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncThread {
    pub pid: u32,
    pub tid: u32,
    pub comm: Option<String>,
    pub calls: u64,
    pub wait_ms: f64,
    /// wait / session duration.
    pub wall_share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CopyStats {
    pub direction: &'static str,
    pub calls: u64,
    pub bytes: u64,
    /// bytes / session duration.
    pub bytes_per_s: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct MemoryStats {
    pub allocations: u64,
    pub allocated_bytes: u64,
    pub frees: u64,
    /// Bytes of the frees whose allocation was seen.
    pub freed_bytes: u64,
    /// Frees of pointers not allocated while attached.
    pub frees_unknown: u64,
    /// Allocated while attached and not freed at the end.
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamStats {
    pub pid: u32,
    /// The CUstream handle, hex (`0x0` = the legacy default stream).
    pub stream: String,
    /// Kernel and graph launches.
    pub launches: u64,
    /// Syncs that covered it: stream syncs on it, context/event syncs of its process that
    /// closed a span of its launches.
    pub syncs: u64,
    /// Σ (sync end − first launch since the previous sync): an upper bound of the GPU time of
    /// its work; null when it was never synced.
    pub gpu_busy_estimate_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct NameStats {
    pub functions: u64,
    pub kernels: u64,
    /// Names longer than the capture buffer, cut.
    pub truncated: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TraceSummary {
    pub path: Option<String>,
    /// JSON lines written.
    pub written: u64,
    /// The `--cuda-trace-limit` was reached: later calls are not in the file.
    pub truncated: bool,
    /// The first write error; nothing was written after it.
    pub error: Option<String>,
}

/// The CUDA block of the text report. It starts with a blank line, like the other sections.
pub fn render_text(section: &CudaSection, out: &mut String) {
    let a = &section.analysis;
    out.push('\n');
    if section.libraries.is_empty() {
        let _ = writeln!(out, "CUDA: no CUDA library mapped by the watched processes");
    } else {
        let libs: Vec<String> = section
            .libraries
            .iter()
            .map(|l| {
                let mut s = format!("{} (pid {}, {} probes)", l.path, l.pid, l.probes);
                if let Some(e) = &l.error {
                    let _ = write!(s, " [{e}]");
                }
                s
            })
            .collect();
        let _ = writeln!(out, "CUDA: {}", libs.join("; "));
        if a.apis.is_empty() {
            let _ = writeln!(out, "  no CUDA calls seen");
        }
    }
    if a.apis.is_empty() {
        write_losses(section, out);
        return;
    }
    write_launches(section, out);
    write_apis(&a.apis, out);
    write_sync(a, out);
    write_copies_memory_streams(a, out);
    write_losses(section, out);
}

/// Launch totals, the top kernels with their last grid and block, and the rest summed.
fn write_launches(section: &CudaSection, out: &mut String) {
    let l = &section.analysis.launches;
    let _ = writeln!(
        out,
        "  launches    {} ({:.1}/s), {} graph launches, {} runtime launches ({} without a \
         driver launch), {} unnamed",
        l.total,
        l.per_s,
        l.graph_launches,
        l.runtime_launches,
        l.runtime_launches_without_driver,
        l.unnamed
    );
    for k in &l.kernels {
        let [gx, gy, gz] = k.last_grid;
        let [bx, by, bz] = k.last_block;
        let _ = writeln!(
            out,
            "  {:>10}  {}  grid {gx}×{gy}×{gz} block {bx}×{by}×{bz}{}",
            k.launches,
            k.name,
            if k.truncated_name { " (name cut)" } else { "" }
        );
    }
    if l.other.kernels > 0 {
        let _ = writeln!(
            out,
            "  {:>10}  launches of {} other kernels",
            l.other.launches, l.other.kernels
        );
    }
    if section.launch_latency != "timed" {
        let _ = writeln!(
            out,
            "  launch latency not measured (entry probes only; --cuda-launch-latency times \
             launches)"
        );
    }
}

/// Copies per direction, device memory, per-stream busy estimates and the trace file.
fn write_copies_memory_streams(a: &CudaAnalysis, out: &mut String) {
    let copies: Vec<String> = a
        .copies
        .iter()
        .map(|c| {
            format!(
                "{} {} calls {} ({}/s)",
                c.direction,
                c.calls,
                fmt_bytes(c.bytes),
                fmt_bytes(c.bytes_per_s as u64)
            )
        })
        .collect();
    if !copies.is_empty() {
        let _ = writeln!(out, "  copies      {}", copies.join("; "));
    }
    let m = &a.memory;
    if m.allocations + m.frees > 0 {
        let _ = writeln!(
            out,
            "  memory      {} allocations {}, {} frees {} ({} of unknown pointers), live {}, \
             peak {}",
            m.allocations,
            fmt_bytes(m.allocated_bytes),
            m.frees,
            fmt_bytes(m.freed_bytes),
            m.frees_unknown,
            fmt_bytes(m.live_bytes),
            fmt_bytes(m.peak_live_bytes)
        );
    }
    for s in &a.streams {
        let busy = s
            .gpu_busy_estimate_ms
            .map_or("not synced".to_string(), |ms| {
                format!(
                    "GPU busy {} (estimate: launch→sync spans)",
                    fmt_us(ms * 1e3)
                )
            });
        let _ = writeln!(
            out,
            "  stream      pid {} {}: {} launches, {} syncs, {busy}",
            s.pid, s.stream, s.launches, s.syncs
        );
    }
    if let Some(t) = &a.trace {
        let _ = writeln!(
            out,
            "  trace       {} calls written to {}{}{}",
            t.written,
            t.path.as_deref().unwrap_or("the trace file"),
            if t.truncated {
                " (limit reached: later calls left out)"
            } else {
                ""
            },
            t.error
                .as_deref()
                .map_or(String::new(), |e| format!(" (write error: {e})"))
        );
    }
}

fn write_apis(apis: &[ApiStats], out: &mut String) {
    let _ = writeln!(
        out,
        "  {:<26} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "api", "calls", "errors", "total", "mean", "p50", "p90", "p99", "max"
    );
    let us = |v: Option<f64>| v.map_or("-".to_string(), fmt_us);
    for a in apis {
        let _ = writeln!(
            out,
            "  {:<26} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            a.api,
            a.calls,
            a.errors,
            us(a.total_ms.map(|ms| ms * 1e3)),
            us(a.mean_us),
            us(a.p50_us),
            us(a.p90_us),
            us(a.p99_us),
            us(a.max_us)
        );
    }
}

fn write_sync(a: &CudaAnalysis, out: &mut String) {
    if a.sync.calls == 0 {
        return;
    }
    let threads: Vec<String> = a
        .sync
        .threads
        .iter()
        .take(5)
        .map(|t| {
            format!(
                "{} {}/{} {} calls {} ({:.1}% of wall)",
                t.comm.as_deref().unwrap_or("?"),
                t.pid,
                t.tid,
                t.calls,
                fmt_us(t.wait_ms * 1e3),
                t.wall_share * 100.0
            )
        })
        .collect();
    let more = a.sync.threads.len().saturating_sub(5);
    let _ = writeln!(
        out,
        "  sync        {} calls, {} blocked; {}{}",
        a.sync.calls,
        fmt_us(a.sync.wait_ms * 1e3),
        threads.join("; "),
        if more > 0 {
            format!("; {more} more threads")
        } else {
            String::new()
        }
    );
}

fn write_losses(section: &CudaSection, out: &mut String) {
    let a = &section.analysis;
    if section.events_lost + section.calls_unfinished + a.malformed_records > 0 {
        let _ = writeln!(
            out,
            "  warning: data lost — {} CUDA events (ring buffer full), {} calls unfinished, {} \
             malformed records",
            section.events_lost, section.calls_unfinished, a.malformed_records
        );
    }
}

/// One short live-view line for an interval, e.g.
/// `cuda: 1234 launches/s, sync wait 35%, copies 1.2 MiB/s, top gemm_kernel`.
/// The sync share is thread time blocked over the interval (several threads can exceed 100%).
pub fn live_line(iv: &CudaInterval, interval_s: f64) -> String {
    let per_s = |n: u64| {
        if interval_s > 0.0 {
            n as f64 / interval_s
        } else {
            0.0
        }
    };
    let mut s = format!("cuda: {:.0} launches/s", per_s(iv.launches));
    if iv.graph_launches > 0 {
        let _ = write!(s, " + {:.0} graphs/s", per_s(iv.graph_launches));
    }
    let _ = write!(
        s,
        ", sync wait {:.0}%, copies {}/s",
        per_s(iv.sync_wait_ns) / 1e9 * 100.0,
        fmt_bytes(per_s(iv.copy_bytes) as u64)
    );
    if let Some((name, _)) = &iv.top_kernel {
        let _ = write!(s, ", top {name}");
    }
    s
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
