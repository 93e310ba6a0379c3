//! Test fixtures for the CUDA analyzer and its sinks' tests: records built as the eBPF side
//! writes them, fed as bytes. Test builds only.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use profiler_common::{CUDA_NAME_MAX, CudaEvent, CudaNameEvent, cuda_api as api, cuda_flag};

use crate::cuda::{
    analyzer::{CudaAnalyzer, StubNames},
    report::{ApiStats, CudaAnalysis, KernelStats},
};

pub(crate) const PID: u32 = 100;
pub(crate) const TID: u32 = 101;
pub(crate) const US: u64 = 1_000;

/// The bytes of a CUDA record, as the ring buffer hands them over.
pub(crate) fn event_bytes(ev: &CudaEvent) -> Vec<u8> {
    // SAFETY: CudaEvent is #[repr(C)] with explicit padding fields (no implicit padding bytes),
    // so all its size_of bytes are initialized; the slice lives no longer than `ev`.
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const CudaEvent).cast::<u8>(),
            size_of::<CudaEvent>(),
        )
    }
    .to_vec()
}

pub(crate) fn name_bytes(ev: &CudaNameEvent) -> Vec<u8> {
    // SAFETY: as `event_bytes`: #[repr(C)], explicit padding, every byte initialized.
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const CudaNameEvent).cast::<u8>(),
            size_of::<CudaNameEvent>(),
        )
    }
    .to_vec()
}

pub(crate) fn call(api_id: u16) -> CudaEvent {
    CudaEvent {
        ts_ns: 1_000,
        tgid: PID,
        tid: TID,
        api: api_id,
        ..Default::default()
    }
}

pub(crate) fn timed(mut ev: CudaEvent, duration_ns: u64, ret: i32) -> CudaEvent {
    ev.flags |= cuda_flag::TIMED;
    ev.duration_ns = duration_ns;
    ev.ret = ret;
    ev
}

pub(crate) fn launch(function: u64) -> CudaEvent {
    CudaEvent {
        handle: function,
        grid: [4, 1, 1],
        block: [256, 1, 1],
        ..call(api::LAUNCH_KERNEL)
    }
}

pub(crate) fn runtime_launch(stub: u64) -> CudaEvent {
    CudaEvent {
        handle: stub,
        ..call(api::RT_LAUNCH_KERNEL)
    }
}

pub(crate) fn name_event(api_id: u16, handle: u64, name: &[u8]) -> CudaNameEvent {
    let mut ev = CudaNameEvent {
        ts_ns: 1,
        handle,
        scope: 0x77,
        tgid: PID,
        tid: TID,
        api: api_id,
        truncated: 0,
        _pad: [0; 5],
        name: [0; CUDA_NAME_MAX],
    };
    let n = name.len().min(CUDA_NAME_MAX);
    ev.name[..n].copy_from_slice(&name[..n]);
    ev
}

/// A stub resolver that counts how often it is asked.
#[derive(Default)]
pub(crate) struct Stubs {
    pub(crate) names: HashMap<(u32, u64), String>,
    pub(crate) asked: usize,
}

impl Stubs {
    pub(crate) fn with(pid: u32, addr: u64, name: &str) -> Self {
        let mut s = Self::default();
        s.names.insert((pid, addr), name.into());
        s
    }
}

impl StubNames for Stubs {
    fn stub_name(&mut self, pid: u32, addr: u64) -> Option<String> {
        self.asked += 1;
        self.names.get(&(pid, addr)).cloned()
    }
}

pub(crate) fn analyzer() -> CudaAnalyzer {
    CudaAnalyzer::new(10)
}

pub(crate) fn feed(a: &mut CudaAnalyzer, evs: &[CudaEvent], stubs: &mut dyn StubNames) {
    for ev in evs {
        a.on_event(&event_bytes(ev), stubs);
    }
}

pub(crate) fn name(a: &mut CudaAnalyzer, api_id: u16, handle: u64, n: &str) {
    a.on_name(&name_bytes(&name_event(api_id, handle, n.as_bytes())));
}

pub(crate) fn report(a: &mut CudaAnalyzer) -> CudaAnalysis {
    a.report(2.0, &|_, tid| Some(format!("t{tid}")))
}

pub(crate) fn api_row<'a>(r: &'a CudaAnalysis, n: &str) -> &'a ApiStats {
    r.apis.iter().find(|a| a.api == n).expect(n)
}

pub(crate) fn kernel<'a>(r: &'a CudaAnalysis, n: &str) -> &'a KernelStats {
    r.launches.kernels.iter().find(|k| k.name == n).expect(n)
}

/// A writer the test can read back after the trace owns it.
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
        let buf = self.0.lock().unwrap();
        std::str::from_utf8(&buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Per-API counts and host times.
// ---------------------------------------------------------------------------------------------

pub(crate) fn copy(api_id: u16, bytes: u64, direction: u8) -> CudaEvent {
    CudaEvent {
        bytes,
        direction,
        ..call(api_id)
    }
}

pub(crate) fn alloc(ptr: u64, bytes: u64) -> CudaEvent {
    timed(
        CudaEvent {
            handle: ptr,
            bytes,
            ..call(api::MEM_ALLOC)
        },
        10 * US,
        0,
    )
}

pub(crate) fn free(ptr: u64) -> CudaEvent {
    timed(
        CudaEvent {
            handle: ptr,
            ..call(api::MEM_FREE)
        },
        5 * US,
        0,
    )
}

pub(crate) fn sync_on(api_id: u16, tid: u32, stream: u64, ts_ns: u64, wait_ns: u64) -> CudaEvent {
    timed(
        CudaEvent {
            ts_ns,
            tid,
            stream,
            ..call(api_id)
        },
        wait_ns,
        0,
    )
}

pub(crate) fn launch_on(stream: u64, ts_ns: u64) -> CudaEvent {
    CudaEvent {
        stream,
        ts_ns,
        ..launch(0xf1)
    }
}
