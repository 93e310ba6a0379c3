//! The trait the CUDA analyzer's sinks implement: one call per decoded CUDA call. The
//! Prometheus exporter and the timeline hook in here, so the analyzer knows neither. No I/O.

use profiler_common::CudaEvent;

/// Sees every decoded CUDA call (failed ones included: `ev.ret`), with the kernel's display
/// name for driver launches whose name is known.
pub trait CudaObserver {
    fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>);
}
