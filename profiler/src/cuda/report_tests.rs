//! Unit tests of the CUDA report's outputs: the live line, the `--cuda-trace` file, the JSON
//! section and its text block (helpers in `analyzer_tests.rs`).

use super::*;

// ---------------------------------------------------------------------------------------------
// Live view.
// ---------------------------------------------------------------------------------------------

#[test]
fn intervals_count_since_the_previous_take() {
    let mut a = analyzer();
    name(
        &mut a,
        api::MODULE_GET_FUNCTION,
        0xf1,
        "_ZN2at6native4gemmILi4EEEvPf",
    );
    let mut evs = vec![launch(0xf1); 3];
    evs.push(launch(0xf2));
    evs.push(call(api::GRAPH_LAUNCH));
    evs.push(call(api::GRAPH_LAUNCH));
    evs.push(copy(api::MEMCPY_HTOD, 2 << 20, copy_direction::HTOD));
    evs.push(sync_on(api::CTX_SYNC, TID, 0, 0, 500_000_000));
    feed(&mut a, &evs, &mut NoStubs);
    let iv = a.take_interval();
    assert_eq!(
        iv,
        CudaInterval {
            launches: 4,
            graph_launches: 2,
            sync_calls: 1,
            sync_wait_ns: 500_000_000,
            copy_bytes: 2 << 20,
            top_kernel: Some(("at::native::gemm<…>".into(), 3)),
        }
    );
    assert_eq!(
        live_line(&iv, 2.0),
        "cuda: 2 launches/s + 1 graphs/s, sync wait 25%, copies 1.0 MiB/s, top \
         at::native::gemm<…>"
    );
    assert_eq!(a.take_interval(), CudaInterval::default());
    assert_eq!(
        live_line(&CudaInterval::default(), 0.0),
        "cuda: 0 launches/s, sync wait 0%, copies 0 B/s"
    );
}

// ---------------------------------------------------------------------------------------------
// Trace.
// ---------------------------------------------------------------------------------------------

#[test]
fn trace_writes_one_line_per_call_up_to_the_limit() {
    let out = Shared::default();
    let trace = CudaTrace::new(Box::new(out.clone()), 4, 1_000_000_000).with_path("t.jsonl");
    let mut a = CudaAnalyzer::new(10, Some(trace));
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
    let t = r.trace.as_ref().unwrap();
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
    let mut a = CudaAnalyzer::new(10, Some(CudaTrace::new(Box::new(Broken), 10, 0)));
    feed(&mut a, &[launch(1), launch(2)], &mut NoStubs);
    let t = report(&mut a).trace.unwrap();
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

// ---------------------------------------------------------------------------------------------
// Report section: JSON shape and text.
// ---------------------------------------------------------------------------------------------

fn section(analysis: CudaAnalysis, libraries: usize, latency: &'static str) -> CudaSection {
    use crate::cuda::attach::AttachedLibrary;
    use crate::cuda::symbols::LibraryKind;
    CudaSection {
        libraries: (0..libraries)
            .map(|_| AttachedLibrary {
                pid: PID,
                path: "/usr/lib/libcuda.so.1".into(),
                kind: LibraryKind::Driver,
                probes: 40,
                error: None,
            })
            .collect(),
        launch_latency: latency,
        events_lost: 0,
        calls_unfinished: 0,
        analysis,
    }
}

fn sample() -> CudaAnalysis {
    let mut a = analyzer();
    name(
        &mut a,
        api::MODULE_GET_FUNCTION,
        0xf1,
        "_Z10vector_addPfPKfi",
    );
    let evs = [
        launch_on(0, 1_000),
        sync_on(api::STREAM_SYNC, TID, 0, 2_000, 3_000),
        copy(api::MEMCPY_HTOD, 3000, copy_direction::HTOD),
        alloc(0xa000, 4096),
    ];
    feed(&mut a, &evs, &mut NoStubs);
    report(&mut a)
}

#[test]
fn section_json_has_the_documented_shape() {
    let v = serde_json::to_value(section(sample(), 1, "entry-only")).unwrap();
    for key in [
        "libraries",
        "launch_latency",
        "events_lost",
        "calls_unfinished",
        "apis",
        "launches",
        "sync",
        "copies",
        "memory",
        "streams",
        "gpu_busy_is_estimate",
        "names",
        "trace",
        "malformed_records",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["launch_latency"], "entry-only");
    assert_eq!(v["libraries"][0]["kind"], "driver");
    assert_eq!(v["gpu_busy_is_estimate"], true);
    assert_eq!(v["trace"], serde_json::Value::Null);
    let k = &v["launches"]["kernels"][0];
    assert_eq!(k["name"], "vector_add(float*, float const*, int)");
    assert_eq!(k["mangled"], "_Z10vector_addPfPKfi");
    assert_eq!(k["last_grid"], serde_json::json!([4, 1, 1]));
    assert_eq!(
        v["launches"]["other"],
        serde_json::json!({"kernels": 0, "launches": 0})
    );
    let launch_api = v["apis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["api"] == "cuLaunchKernel")
        .unwrap();
    assert_eq!(launch_api["timed"], false);
    assert_eq!(launch_api["p50_us"], serde_json::Value::Null);
    assert_eq!(v["streams"][0]["stream"], "0x0");
    assert_eq!(v["streams"][0]["gpu_busy_estimate_ms"], 0.004);
    assert_eq!(v["copies"][0]["direction"], "htod");
    assert_eq!(v["memory"]["peak_live_bytes"], 4096);
    assert_eq!(v["sync"]["threads"][0]["comm"], "t101");
}

#[test]
fn text_block_says_what_was_not_measured() {
    let mut text = String::new();
    render_text(&section(sample(), 1, "entry-only"), &mut text);
    assert!(text.starts_with("\nCUDA: /usr/lib/libcuda.so.1 (pid 100, 40 probes)"));
    assert!(text.contains(
        "launch latency not measured (entry probes only; --cuda-launch-latency times launches)"
    ));
    assert!(text.contains("vector_add(float*, float const*, int)"));
    assert!(text.contains("(estimate: launch→sync spans)"));
    assert!(text.contains("htod 1 calls 2.9 KiB"));
    assert!(!text.contains("warning"));

    let mut timed_text = String::new();
    render_text(&section(sample(), 1, "timed"), &mut timed_text);
    assert!(!timed_text.contains("launch latency not measured"));

    let mut none = String::new();
    render_text(
        &section(report(&mut analyzer()), 0, "entry-only"),
        &mut none,
    );
    assert_eq!(
        none,
        "\nCUDA: no CUDA library mapped by the watched processes\n"
    );

    let mut idle = String::new();
    render_text(
        &section(report(&mut analyzer()), 1, "entry-only"),
        &mut idle,
    );
    assert!(idle.contains("no CUDA calls seen"));

    let mut lossy = section(sample(), 1, "timed");
    lossy.events_lost = 3;
    let mut text = String::new();
    render_text(&lossy, &mut text);
    assert!(text.contains("warning: data lost — 3 CUDA events"));
}
