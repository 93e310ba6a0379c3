//! Unit tests of the CUDA report's outputs: the live line, the JSON section and its text block (fixtures in `testing.rs`).

use profiler_common::{copy_direction, cuda_api as api};

use super::*;
use crate::cuda::{analyzer::NoStubs, testing::*};

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
