//! `--cuda-trace FILE`: one JSON line per CUDA call, up to a limit, written as the CUDA
//! analyzer decodes them (an observer). Writes to any `Write`.
//!
//! Every line has the same keys, null where they mean nothing for the API: `ts_unix_ns`, `pid`,
//! `tid`, `api`, `kernel` (driver launches), `grid`, `block`, `shared_mem` (launches, runtime
//! launches), `stream` (hex: launches, graph launches, copies, stream syncs, async allocations
//! and frees), `handle` (hex: CUfunction, host stub, CUgraphExec, device pointer, CUevent),
//! `bytes` (copies, allocations), `direction` (copies), `host_ns` and `result` (timed calls).

use std::{
    cell::RefCell,
    io::{BufWriter, Write},
    path::PathBuf,
    rc::Rc,
};

use profiler_common::{CudaEvent, cuda_flag};
use serde::Serialize;

use crate::cuda::{
    observer::CudaObserver,
    report::{TraceSummary, direction_name},
    symbols::{ApiClass, api_class, api_name, has_bytes, has_stream},
};

/// What the user asked of the trace (`--cuda-trace FILE`, `--cuda-trace-limit`).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// Calls written at most; the report says when later ones were left out.
    pub limit: u64,
}

pub struct CudaTrace {
    out: BufWriter<Box<dyn Write>>,
    limit: u64,
    mono_to_unix_ns: i128,
    written: u64,
    truncated: bool,
    error: Option<String>,
    path: Option<String>,
    line: Vec<u8>,
}

#[derive(Serialize)]
struct TraceLine<'a> {
    ts_unix_ns: i64,
    pid: u32,
    tid: u32,
    api: &'static str,
    kernel: Option<&'a str>,
    grid: Option<[u32; 3]>,
    block: Option<[u32; 3]>,
    shared_mem: Option<u32>,
    stream: Option<String>,
    handle: String,
    bytes: Option<u64>,
    direction: Option<&'static str>,
    host_ns: Option<u64>,
    result: Option<i32>,
}

impl CudaTrace {
    /// `limit`: lines written at most; `mono_to_unix_ns` is added to CLOCK_MONOTONIC ns.
    pub fn new(writer: Box<dyn Write>, limit: u64, mono_to_unix_ns: i128) -> Self {
        Self {
            out: BufWriter::new(writer),
            limit,
            mono_to_unix_ns,
            written: 0,
            truncated: false,
            error: None,
            path: None,
            line: Vec::with_capacity(512),
        }
    }

    /// The file name the report shows.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Writes one call; `kernel_name` for launches the analyzer named.
    pub fn record(&mut self, ev: &CudaEvent, kernel_name: Option<&str>) {
        if self.error.is_some() {
            return;
        }
        if self.written >= self.limit {
            self.truncated = true;
            return;
        }
        let class = api_class(ev.api);
        let launch = matches!(class, ApiClass::Launch | ApiClass::Runtime);
        let has_stream = has_stream(ev.api);
        let has_bytes = has_bytes(ev.api);
        let timed = ev.flags & cuda_flag::TIMED != 0;
        let unix_ns = i128::from(ev.ts_ns) + self.mono_to_unix_ns;
        let line = TraceLine {
            ts_unix_ns: i64::try_from(unix_ns).unwrap_or(i64::MAX),
            pid: ev.tgid,
            tid: ev.tid,
            api: api_name(ev.api),
            kernel: if class == ApiClass::Launch {
                kernel_name
            } else {
                None
            },
            grid: launch.then_some(ev.grid),
            block: launch.then_some(ev.block),
            shared_mem: launch.then_some(ev.shared_mem),
            stream: has_stream.then(|| format!("{:#x}", ev.stream)),
            handle: format!("{:#x}", ev.handle),
            bytes: has_bytes.then_some(ev.bytes),
            direction: (class == ApiClass::Copy).then(|| direction_name(ev.direction)),
            host_ns: timed.then_some(ev.duration_ns),
            result: timed.then_some(ev.ret),
        };
        self.line.clear();
        let res = serde_json::to_writer(&mut self.line, &line)
            .map_err(std::io::Error::other)
            .and_then(|()| {
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            });
        match res {
            Ok(()) => self.written += 1,
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Flushes the file (call once at the end; a flush error is kept for the report).
    pub fn finish(&mut self) {
        if let Err(e) = self.out.flush()
            && self.error.is_none()
        {
            self.error = Some(e.to_string());
        }
    }

    #[cfg(test)]
    pub fn written(&self) -> u64 {
        self.written
    }

    #[cfg(test)]
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn summary(&self) -> TraceSummary {
        TraceSummary {
            path: self.path.clone(),
            written: self.written,
            truncated: self.truncated,
            error: self.error.clone(),
        }
    }
}

impl CudaTrace {
    /// The trace as an observer for the CUDA capture, and the handle that finishes it.
    pub fn into_observer(self) -> (Box<dyn CudaObserver>, CudaTraceHandle) {
        let shared = Rc::new(RefCell::new(self));
        (
            Box::new(TraceObserver(shared.clone())),
            CudaTraceHandle(shared),
        )
    }
}

struct TraceObserver(Rc<RefCell<CudaTrace>>);

impl CudaObserver for TraceObserver {
    fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>) {
        self.0.borrow_mut().record(ev, kernel);
    }
}

/// Kept by the session while the observer is with the capture.
pub struct CudaTraceHandle(Rc<RefCell<CudaTrace>>);

impl CudaTraceHandle {
    /// Flushes the file (after the capture's last drain) and says what it holds.
    pub fn finish(&self) -> TraceSummary {
        let mut trace = self.0.borrow_mut();
        trace.finish();
        trace.summary()
    }
}

#[cfg(test)]
#[path = "cuda_trace_tests.rs"]
mod tests;
