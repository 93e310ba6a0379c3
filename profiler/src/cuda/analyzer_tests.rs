//! Unit tests of the CUDA analyzer (`analyzer.rs`): per-API counts, copies, memory, syncs and
//! streams here; kernel naming in `naming_tests.rs`, the report's in
//! `report_tests.rs`, the trace's in `sinks/cuda_trace_tests.rs`.
//! Records are built as the eBPF side writes them and fed as bytes.

use profiler_common::CUDA_NAME_MAX;

use super::*;
use crate::cuda::report::{MemoryStats, StreamStats};
use crate::cuda::testing::*;

#[path = "naming_tests.rs"]
mod naming_tests;

#[test]
fn per_api_calls_errors_and_host_times() {
    let mut a = analyzer();
    let mut evs = vec![launch(1); 100];
    for i in 1..=10 {
        let ret = if i == 10 { 1 } else { 0 };
        evs.push(timed(call(api::MEMCPY_HTOD), i * US, ret));
    }
    evs.push(runtime_launch(0x400));
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(r.apis[0].api, "cuLaunchKernel");
    let l = api_row(&r, "cuLaunchKernel");
    assert_eq!((l.calls, l.errors, l.timed), (100, 0, false));
    assert_eq!(
        (l.total_ms, l.mean_us, l.p99_us, l.max_us),
        (None, None, None, None)
    );
    let m = api_row(&r, "cuMemcpyHtoD");
    assert_eq!((m.calls, m.errors, m.timed), (10, 1, true));
    assert_eq!(m.total_ms, Some(0.055));
    assert_eq!(m.mean_us, Some(5.5));
    // Percentiles come from the HDR histogram: within 0.1 %.
    for (got, want) in [
        (m.p50_us, 5.0),
        (m.p90_us, 9.0),
        (m.p99_us, 10.0),
        (m.max_us, 10.0),
    ] {
        let got = got.unwrap();
        assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
    }
    // Runtime calls are listed (calls only) but are not launches.
    assert_eq!(api_row(&r, "cudaLaunchKernel").calls, 1);
    assert_eq!(r.launches.total, 100);
    assert_eq!(r.launches.runtime_launches, 1);
    assert_eq!(r.apis.len(), 3);
}

#[test]
fn apis_sort_by_calls_then_name() {
    let mut a = analyzer();
    let evs = [
        call(api::CTX_SYNC),
        call(api::STREAM_SYNC),
        call(api::MEM_ALLOC),
        call(api::MEM_ALLOC),
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let names: Vec<&str> = report(&mut a).apis.iter().map(|a| a.api).collect();
    assert_eq!(
        names,
        ["cuMemAlloc", "cuCtxSynchronize", "cuStreamSynchronize"]
    );
}

// ---------------------------------------------------------------------------------------------
// Copies, memory, syncs, streams.
// ---------------------------------------------------------------------------------------------

#[test]
fn copies_per_direction_in_order() {
    use copy_direction::*;
    let mut a = analyzer();
    let evs = [
        copy(api::MEMCPY_PEER, 10, PEER),
        copy(api::MEMCPY_HTOD, 1000, HTOD),
        copy(api::MEMCPY_HTOD_ASYNC, 2000, HTOD),
        copy(api::MEMCPY_DTOH, 500, DTOH),
        copy(api::MEMCPY, 7, UNKNOWN),
        copy(api::MEMCPY, 3, 42), // not a direction the probes emit: unknown
        timed(copy(api::MEMCPY_DTOH, 999, DTOH), US, 1), // failed: nothing copied
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    let rows: Vec<(&str, u64, u64, f64)> = r
        .copies
        .iter()
        .map(|c| (c.direction, c.calls, c.bytes, c.bytes_per_s))
        .collect();
    assert_eq!(
        rows,
        [
            ("unknown", 2, 10, 5.0),
            ("htod", 2, 3000, 1500.0),
            ("dtoh", 1, 500, 250.0),
            ("peer", 1, 10, 5.0),
        ]
    );
    assert_eq!(api_row(&r, "cuMemcpyDtoH").errors, 1);
}

#[test]
fn allocations_live_and_peak_bytes() {
    let mut a = analyzer();
    let failed = timed(
        CudaEvent {
            bytes: 1 << 40,
            ..call(api::MEM_ALLOC)
        },
        US,
        2,
    );
    let other_process = CudaEvent {
        tgid: 7,
        ..free(0xa000)
    };
    let evs = [
        alloc(0xa000, 1000),
        alloc(0xb000, 3000),
        failed,
        free(0xa000),
        other_process, // same pointer, other process: unknown
        free(0xc000),  // never allocated while attached
        alloc(0xd000, 500),
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(
        r.memory,
        MemoryStats {
            allocations: 3,
            allocated_bytes: 4500,
            frees: 3,
            freed_bytes: 1000,
            frees_unknown: 2,
            live_bytes: 3500,
            peak_live_bytes: 4000,
        }
    );
    let m = api_row(&r, "cuMemAlloc");
    assert_eq!((m.calls, m.errors), (4, 1));
}

#[test]
fn an_untimed_allocation_counts_but_is_not_live() {
    let mut a = analyzer();
    let untimed = CudaEvent {
        handle: 0xa000,
        bytes: 64,
        ..call(api::MEM_ALLOC_MANAGED)
    };
    feed(&mut a, &[untimed], &mut NoStubs);
    let m = report(&mut a).memory;
    assert_eq!((m.allocations, m.allocated_bytes, m.live_bytes), (1, 64, 0));
}

#[test]
fn sync_wait_per_thread() {
    let mut a = analyzer();
    let evs = [
        sync_on(api::STREAM_SYNC, 1, 0, 0, 100 * US),
        sync_on(api::CTX_SYNC, 2, 0, 0, 300_000 * US),
        sync_on(api::STREAM_SYNC, 1, 0, 0, 200 * US),
        sync_on(api::EVENT_SYNC, 1, 0, 0, 700 * US),
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    assert_eq!((r.sync.calls, r.sync.wait_ms), (4, 301.0));
    let t: Vec<(u32, Option<&str>, u64, f64, f64)> = r
        .sync
        .threads
        .iter()
        .map(|t| (t.tid, t.comm.as_deref(), t.calls, t.wait_ms, t.wall_share))
        .collect();
    assert_eq!(
        t,
        [
            (2, Some("t2"), 1, 300.0, 0.15),
            (1, Some("t1"), 3, 1.0, 0.0005)
        ]
    );
    assert_eq!(api_row(&r, "cuStreamSynchronize").total_ms, Some(0.3));
}

fn stream<'a>(r: &'a CudaAnalysis, pid: u32, s: &str) -> &'a StreamStats {
    r.streams
        .iter()
        .find(|x| x.pid == pid && x.stream == s)
        .expect(s)
}

#[test]
fn gpu_busy_estimate_from_stream_syncs() {
    let mut a = analyzer();
    let evs = [
        launch_on(0x50, 1_000),
        launch_on(0x50, 2_000),
        sync_on(api::STREAM_SYNC, TID, 0x50, 3_000, 7_000), // ends 10_000: busy 9_000
        launch_on(0x50, 12_000),
        sync_on(api::STREAM_SYNC, TID, 0x50, 13_000, 7_000), // ends 20_000: busy +8_000
        sync_on(api::STREAM_SYNC, TID, 0x50, 21_000, 1_000), // nothing pending: +0
        launch_on(0x60, 5_000),                              // never synced
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    let s = stream(&r, PID, "0x50");
    assert_eq!((s.launches, s.syncs), (3, 3));
    assert_eq!(s.gpu_busy_estimate_ms, Some(0.017));
    assert_eq!(stream(&r, PID, "0x60").gpu_busy_estimate_ms, None);
    assert!(r.gpu_busy_is_estimate);
    // Ordered by launches (desc) within a process.
    assert_eq!(r.streams[0].stream, "0x50");
}

#[test]
fn a_launch_reported_after_a_sync_that_covered_it_starts_at_the_sync() {
    let mut a = analyzer();
    // Another thread's launch entered at 5_000 but arrives after the sync that ended at 10_000.
    let evs = [
        launch_on(0x50, 1_000),
        sync_on(api::STREAM_SYNC, TID, 0x50, 2_000, 8_000),
        launch_on(0x50, 5_000),
        sync_on(api::STREAM_SYNC, TID, 0x50, 11_000, 4_000), // ends 15_000
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    // 9_000 + (15_000 − max(5_000, 10_000)).
    assert_eq!(stream(&r, PID, "0x50").gpu_busy_estimate_ms, Some(0.014));
}

#[test]
fn ctx_and_event_syncs_close_every_pending_stream_of_the_process() {
    let mut a = analyzer();
    let other = CudaEvent {
        tgid: 9,
        ..launch_on(0x70, 1_000)
    };
    let graph = CudaEvent {
        stream: 0x60,
        ts_ns: 4_000,
        ..call(api::GRAPH_LAUNCH)
    };
    let evs = [
        launch_on(0x50, 1_000),
        graph,
        other,
        sync_on(api::CTX_SYNC, TID, 0, 6_000, 4_000), // ends 10_000
        launch_on(0x50, 11_000),
        sync_on(api::EVENT_SYNC, TID, 0, 12_000, 8_000), // ends 20_000
    ];
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    let s50 = stream(&r, PID, "0x50");
    assert_eq!((s50.launches, s50.syncs), (2, 2));
    assert_eq!(s50.gpu_busy_estimate_ms, Some(0.018)); // 9_000 + 9_000
    let s60 = stream(&r, PID, "0x60");
    assert_eq!((s60.launches, s60.syncs), (1, 1)); // nothing pending at the event sync
    assert_eq!(s60.gpu_busy_estimate_ms, Some(0.006));
    assert_eq!(stream(&r, 9, "0x70").gpu_busy_estimate_ms, None);
    assert_eq!(r.launches.graph_launches, 1);
    assert_eq!(r.launches.total, 3);
}

#[test]
fn a_failed_sync_counts_its_wait_but_closes_no_span() {
    let mut a = analyzer();
    let mut failed = sync_on(api::STREAM_SYNC, TID, 0x50, 2_000, 1_000);
    failed.ret = 999;
    feed(&mut a, &[launch_on(0x50, 1_000), failed], &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(stream(&r, PID, "0x50").gpu_busy_estimate_ms, None);
    assert_eq!(
        (r.sync.calls, api_row(&r, "cuStreamSynchronize").errors),
        (1, 1)
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input.
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_records_are_counted_not_applied() {
    let mut a = analyzer();
    let good = event_bytes(&launch(1));
    a.on_event(&good[..95], &mut NoStubs);
    a.on_event(&[], &mut NoStubs);
    for bad_api in [0, api::COUNT, 999, api::KERNEL_GET_FUNCTION] {
        a.on_event(&event_bytes(&call(bad_api)), &mut NoStubs);
    }
    let good_name = name_bytes(&name_event(api::MODULE_GET_FUNCTION, 1, b"k"));
    a.on_name(&good_name[..100]);
    a.on_name(&name_bytes(&name_event(api::LAUNCH_KERNEL, 1, b"k")));
    a.on_name(&name_bytes(&name_event(api::MODULE_GET_FUNCTION, 1, b"")));
    // A longer record (padding) is fine.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 8]);
    a.on_event(&padded, &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(r.malformed_records, 9);
    assert_eq!(r.launches.total, 1);
    assert!(r.apis.iter().all(|x| x.api != "cuKernelGetFunction"));
}
