//! Unit tests of the `--cuda-trace` sink (`cuda_trace.rs`), fed through the CUDA analyzer as
//! in a session.

use std::io::Write;

use profiler_common::{CudaEvent, CudaNameEvent, copy_direction, cuda_api as api};

use super::*;
use crate::cuda::{
    analyzer::{CudaAnalyzer, NoStubs},
    report::{CudaSection, render_text},
    testing::*,
};

// ---------------------------------------------------------------------------------------------
// Trace.
// ---------------------------------------------------------------------------------------------

#[test]
fn trace_writes_one_line_per_call_up_to_the_limit() {
    let out = Shared::default();
    let trace = CudaTrace::new(Box::new(out.clone()), 4, 1_000_000_000).with_path("t.jsonl");
    let mut a = CudaAnalyzer::new(10);
    let (observer, handle) = trace.into_observer();
    a.observe(observer);
    name(
        &mut a,
        api::MODULE_GET_FUNCTION,
        0xf1,
        "_Z10vector_addPfPKfi",
    );
    let evs = [
        runtime_launch(0x4000),
        CudaEvent {
            stream: 0x50,
            shared_mem: 128,
            ..launch(0xf1)
        },
        timed(
            copy(api::MEMCPY_DTOH, 4096, copy_direction::DTOH),
            7 * US,
            0,
        ),
        alloc(0xa000, 64),
        free(0xa000),
        call(api::CTX_SYNC),
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    let t = &handle.finish();
    assert!(r.trace.is_none(), "the session fills it from the sink");
    assert_eq!(
        (t.path.as_deref(), t.written, t.truncated, t.error.clone()),
        (Some("t.jsonl"), 4, true, None)
    );
    let lines = out.lines();
    assert_eq!(lines.len(), 4);
    let rt = &lines[0];
    assert_eq!(rt["api"], "cudaLaunchKernel");
    assert_eq!(rt["kernel"], serde_json::Value::Null);
    assert_eq!(rt["handle"], "0x4000");
    let l = &lines[1];
    assert_eq!(l["ts_unix_ns"], 1_000_001_000i64);
    assert_eq!(
        (l["pid"].as_u64(), l["tid"].as_u64()),
        (Some(100), Some(101))
    );
    assert_eq!(l["api"], "cuLaunchKernel");
    assert_eq!(l["kernel"], "vector_add(float*, float const*, int)");
    assert_eq!(l["grid"], serde_json::json!([4, 1, 1]));
    assert_eq!(l["block"], serde_json::json!([256, 1, 1]));
    assert_eq!(l["shared_mem"], 128);
    assert_eq!(l["stream"], "0x50");
    assert_eq!(l["host_ns"], serde_json::Value::Null);
    assert_eq!(l["result"], serde_json::Value::Null);
    assert_eq!(l["bytes"], serde_json::Value::Null);
    let c = &lines[2];
    assert_eq!(
        (c["bytes"].as_u64(), c["direction"].as_str()),
        (Some(4096), Some("dtoh"))
    );
    assert_eq!(
        (c["host_ns"].as_u64(), c["result"].as_i64()),
        (Some(7000), Some(0))
    );
    assert_eq!(c["kernel"], serde_json::Value::Null);
    assert_eq!(lines[3]["api"], "cuMemAlloc");
    assert_eq!(lines[3]["bytes"], 64);
    // Every line has every key.
    for l in &lines {
        assert_eq!(l.as_object().unwrap().len(), 14, "{l}");
    }
}

#[test]
fn trace_write_errors_stop_the_trace_and_are_reported() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }
    let mut a = CudaAnalyzer::new(10);
    let (observer, handle) = CudaTrace::new(Box::new(Broken), 10, 0).into_observer();
    a.observe(observer);
    feed(&mut a, &[launch(1), launch(2)], &mut NoStubs);
    report(&mut a);
    let t = handle.finish();
    // The lines went into the buffer; that they were lost is only known at the flush.
    assert_eq!(t.written, 2);
    assert_eq!(t.error.as_deref(), Some("disk full"));
}

#[test]
fn trace_limit_zero_writes_nothing() {
    let out = Shared::default();
    let mut trace = CudaTrace::new(Box::new(out.clone()), 0, 0);
    trace.record(&launch(1), Some("k"));
    trace.finish();
    assert_eq!((trace.written(), trace.truncated()), (0, true));
    assert!(out.lines().is_empty());
}

#[test]
fn random_records_never_panic() {
    // A fixed xorshift stream: reproducible garbage, with the api field often in range.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let out = Shared::default();
    let mut a = CudaAnalyzer::new(3);
    let (observer, _handle) = CudaTrace::new(Box::new(out), 50, i128::MIN).into_observer();
    a.observe(observer);
    let mut stubs = Stubs::with(PID, 1, "_Z");
    for i in 0..20_000 {
        let len = if i % 7 == 0 {
            (next() % 700) as usize
        } else {
            size_of::<CudaEvent>()
        };
        let mut rec: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if rec.len() >= 96 && i % 2 == 0 {
            rec[88] = (next() % 32) as u8; // api low byte
            rec[89] = 0;
            rec[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // stream
        }
        a.on_event(&rec, &mut stubs);
        let mut name: Vec<u8> = (0..size_of::<CudaNameEvent>())
            .map(|_| next() as u8)
            .collect();
        name[32] = 26 + (i % 2) as u8;
        name[33] = 0;
        a.on_name(&name);
    }
    let r = report(&mut a);
    assert!(r.malformed_records > 0);
    let section = CudaSection {
        libraries: vec![],
        launch_latency: "timed",
        events_lost: 0,
        calls_unfinished: 0,
        analysis: r,
    };
    let mut text = String::new();
    render_text(&section, &mut text);
    serde_json::to_string(&section).unwrap();
}
