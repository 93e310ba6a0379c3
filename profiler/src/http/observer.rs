//! Observers of what the analyzers decode, one call per finished exchange or CUDA call: the
//! Prometheus exporter and the timeline export hook in here, so neither analyzer knows about
//! them.

use profiler_common::CudaEvent;

use crate::http::record::RequestRecord;

/// Sees every finished HTTP exchange (both roles), with the process that served or sent it.
pub trait RequestObserver {
    fn on_request(&mut self, pid: u32, rec: &RequestRecord);
}

/// Sees every decoded CUDA call (failed ones included: `ev.ret`), with the kernel's display
/// name for driver launches whose name is known.
pub trait CudaObserver {
    fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>);
}
