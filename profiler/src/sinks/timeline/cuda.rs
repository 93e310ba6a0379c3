//! CUDA API calls on their thread's CUDA track (`tracks::cuda_track_tid`): a complete slice for
//! every timed call (syncs, blocking copies, allocations, name lookups; launches too with
//! `--cuda-launch-latency`), an instant for entry-only ones (launches by default). `cat` is
//! "cuda_sync" for stream/context/event syncs and "cuda" otherwise; `name` is the API family
//! (`cuLaunchKernel`, `cuStreamSynchronize`, …), the kernel and the call's details are in `args`.

use std::{cell::RefCell, rc::Rc};

use profiler_common::{CudaEvent, cuda_flag};
use serde::Serialize;

use super::{Shared, event::TraceEvent, tracks::cuda_track_tid};
use crate::{
    cuda::observer::CudaObserver,
    cuda::{
        report::direction_name,
        symbols::{ApiClass, api_class, api_name},
        symbols::{has_bytes, has_stream},
    },
};

pub const CATEGORY: &str = "cuda";
pub const SYNC_CATEGORY: &str = "cuda_sync";

/// `args` of a CUDA call event; what does not apply to the API is left out.
#[derive(Debug, Serialize)]
pub struct CudaArgs<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<[u32; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<[u32; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_mem: Option<u32>,
    /// Hex, as in `--cuda-trace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// The CUresult of a timed call that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
}

pub fn category(api: u16) -> &'static str {
    match api_class(api) {
        ApiClass::Sync => SYNC_CATEGORY,
        _ => CATEGORY,
    }
}

pub fn call_args<'a>(ev: &CudaEvent, kernel: Option<&'a str>) -> CudaArgs<'a> {
    let class = api_class(ev.api);
    let launch = matches!(class, ApiClass::Launch | ApiClass::Runtime);
    let timed = ev.flags & cuda_flag::TIMED != 0;
    CudaArgs {
        kernel: if class == ApiClass::Launch {
            kernel
        } else {
            None
        },
        grid: launch.then_some(ev.grid),
        block: launch.then_some(ev.block),
        shared_mem: launch.then_some(ev.shared_mem),
        stream: has_stream(ev.api).then(|| format!("{:#x}", ev.stream)),
        bytes: has_bytes(ev.api).then_some(ev.bytes),
        direction: (class == ApiClass::Copy).then(|| direction_name(ev.direction)),
        error: (timed && ev.ret != 0).then_some(ev.ret),
    }
}

/// Writes one call (one event) unless the limit is reached; returns whether it was written.
pub fn write_call(shared: &mut Shared, ev: &CudaEvent, kernel: Option<&str>) -> bool {
    if !shared.writer.reserve(1) {
        return false;
    }
    shared.tracks.cuda_thread(ev.tgid, ev.tid);
    let track = (ev.tgid, cuda_track_tid(ev.tid));
    let (name, cat, args) = (api_name(ev.api), category(ev.api), call_args(ev, kernel));
    let end = ev.ts_ns.saturating_add(ev.duration_ns);
    let event = if ev.flags & cuda_flag::TIMED != 0 {
        TraceEvent::complete(name, cat, track, ev.ts_ns, end, args)
    } else {
        TraceEvent::instant(name, cat, track, ev.ts_ns, args)
    };
    shared.writer.write(&event);
    shared.cuda_calls += 1;
    true
}

/// The observer the CUDA analyzer calls for every decoded call.
pub struct CudaTrack {
    shared: Rc<RefCell<Shared>>,
}

impl CudaTrack {
    pub fn new(shared: Rc<RefCell<Shared>>) -> Self {
        Self { shared }
    }
}

impl CudaObserver for CudaTrack {
    fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>) {
        write_call(&mut self.shared.borrow_mut(), ev, kernel);
    }
}

#[cfg(test)]
mod tests {
    use profiler_common::{copy_direction, cuda_api as api};
    use serde_json::Value;

    use super::*;
    use crate::sinks::timeline::{testing::MemorySink, writer::TraceWriter};

    fn call(api: u16, timed: bool) -> CudaEvent {
        CudaEvent {
            ts_ns: 5_000_000,
            duration_ns: if timed { 2_000_000 } else { 0 },
            tgid: 40,
            tid: 41,
            api,
            flags: if timed { cuda_flag::TIMED } else { 0 },
            stream: 0xabc,
            bytes: 4096,
            grid: [4, 2, 1],
            block: [256, 1, 1],
            shared_mem: 1024,
            direction: copy_direction::HTOD,
            ..CudaEvent::default()
        }
    }

    fn written(calls: &[(CudaEvent, Option<&str>)]) -> Vec<Value> {
        let sink = MemorySink::default();
        let mut shared = Shared::new(TraceWriter::new(Box::new(sink.clone()), 100));
        for (ev, kernel) in calls {
            assert!(write_call(&mut shared, ev, *kernel));
        }
        shared.writer.close(&serde_json::json!({})).unwrap();
        sink.json()["traceEvents"].as_array().unwrap().clone()
    }

    #[test]
    fn entry_only_launches_are_instants_with_their_kernel() {
        let ev = written(&[(call(api::LAUNCH_KERNEL, false), Some("gemm"))]);
        let e = &ev[0];
        assert_eq!(e["ph"], "i");
        assert_eq!(e["s"], "t");
        assert_eq!(e["name"], "cuLaunchKernel");
        assert_eq!(e["cat"], "cuda");
        assert_eq!(e["pid"], 40);
        assert_eq!(e["tid"], u64::from(cuda_track_tid(41)));
        assert_eq!(e["ts"], 5000.0);
        assert_eq!(e["args"]["kernel"], "gemm");
        assert_eq!(e["args"]["grid"], serde_json::json!([4, 2, 1]));
        assert_eq!(e["args"]["stream"], "0xabc");
        assert!(e["args"].get("bytes").is_none() && e.get("dur").is_none());
    }

    #[test]
    fn timed_calls_are_slices_and_syncs_have_their_own_category() {
        let ev = written(&[
            (call(api::STREAM_SYNC, true), None),
            (call(api::MEMCPY_HTOD, true), None),
            (call(api::LAUNCH_KERNEL, true), None),
        ]);
        assert_eq!(ev[0]["ph"], "X");
        assert_eq!(ev[0]["cat"], "cuda_sync");
        assert_eq!(ev[0]["name"], "cuStreamSynchronize");
        assert_eq!(ev[0]["dur"], 2000.0);
        assert_eq!(ev[0]["args"], serde_json::json!({"stream": "0xabc"}));
        assert_eq!(ev[1]["cat"], "cuda");
        assert_eq!(ev[1]["args"]["bytes"], 4096);
        assert_eq!(ev[1]["args"]["direction"], "htod");
        assert_eq!(ev[2]["ph"], "X");
        assert!(ev[2]["args"].get("kernel").is_none(), "unnamed launch");
    }

    #[test]
    fn failed_timed_calls_carry_their_error() {
        let mut failed = call(api::MEM_ALLOC, true);
        failed.ret = 2;
        let ev = written(&[(failed, None)]);
        assert_eq!(ev[0]["args"]["error"], 2);
        assert_eq!(ev[0]["args"]["bytes"], 4096);
    }
}
