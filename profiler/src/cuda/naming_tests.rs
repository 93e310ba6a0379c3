//! Unit tests of kernel naming in the CUDA analyzer: module functions, library kernels,
//! runtime host stubs, de-duplication of runtime vs driver launches, unresolved handles and the
//! top-N table (helpers in `analyzer_tests.rs`).

use super::*;

#[test]
fn module_function_names_are_demangled_and_keep_the_mangled_form() {
    let mut a = analyzer();
    name(
        &mut a,
        api::MODULE_GET_FUNCTION,
        0xf1,
        "_Z10vector_addPfPKfi",
    );
    name(&mut a, api::MODULE_GET_FUNCTION, 0xf2, "plain_c_kernel");
    let mut stubs = Stubs::default();
    feed(
        &mut a,
        &[launch(0xf1), launch(0xf1), launch(0xf2)],
        &mut stubs,
    );
    let r = report(&mut a);
    let k = kernel(&r, "vector_add(float*, float const*, int)");
    assert_eq!(k.mangled.as_deref(), Some("_Z10vector_addPfPKfi"));
    assert_eq!(k.launches, 2);
    assert_eq!(k.per_s, 1.0);
    assert_eq!((k.last_grid, k.last_block), ([4, 1, 1], [256, 1, 1]));
    assert!(!k.truncated_name);
    assert_eq!(kernel(&r, "plain_c_kernel").mangled, None);
    assert_eq!((r.launches.unnamed, r.names.functions), (0, 2));
    assert_eq!(stubs.asked, 0, "named launches never ask for stub symbols");
}

#[test]
fn names_are_per_process() {
    let mut a = analyzer();
    name(&mut a, api::MODULE_GET_FUNCTION, 0xf1, "k_in_100");
    let other = CudaEvent {
        tgid: 200,
        tid: 201,
        ..launch(0xf1)
    };
    feed(&mut a, &[launch(0xf1), other], &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(kernel(&r, "k_in_100").launches, 1);
    assert_eq!(kernel(&r, "unresolved@0xf1").launches, 1);
    assert_eq!(r.launches.unnamed, 1);
}

#[test]
fn library_kernel_names_a_resolved_launch_and_is_remembered_for_its_function() {
    let mut a = analyzer();
    name(&mut a, api::LIBRARY_GET_KERNEL, 0xc0de, "gemm_kernel");
    let first = CudaEvent {
        handle2: 0xc0de,
        flags: cuda_flag::KERNEL_RESOLVED,
        ..launch(0xf7)
    };
    // Later launches of the same CUfunction carry no CUkernel.
    feed(&mut a, &[first, launch(0xf7), launch(0xf7)], &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(kernel(&r, "gemm_kernel").launches, 3);
    assert_eq!((r.launches.unnamed, r.names.kernels), (0, 1));
}

#[test]
fn module_function_name_wins_over_the_library_kernel() {
    let mut a = analyzer();
    name(&mut a, api::MODULE_GET_FUNCTION, 0xf7, "by_function");
    name(&mut a, api::LIBRARY_GET_KERNEL, 0xc0de, "by_kernel");
    let ev = CudaEvent {
        handle2: 0xc0de,
        flags: cuda_flag::KERNEL_RESOLVED,
        ..launch(0xf7)
    };
    feed(&mut a, &[ev], &mut NoStubs);
    assert_eq!(report(&mut a).launches.kernels[0].name, "by_function");
}

#[test]
fn runtime_stub_names_the_next_driver_launch_once_and_lazily() {
    let mut a = analyzer();
    let mut stubs = Stubs::with(PID, 0x4000, "_Z6scale2Pfi");
    let evs = [
        runtime_launch(0x4000),
        launch(0xf9),
        runtime_launch(0x4000),
        launch(0xf9),
    ];
    feed(&mut a, &evs, &mut stubs);
    let r = report(&mut a);
    let k = kernel(&r, "scale2(float*, int)");
    assert_eq!(k.launches, 2);
    assert_eq!(k.mangled.as_deref(), Some("_Z6scale2Pfi"));
    // The second launch is named through the remembered function: no second lookup.
    assert_eq!(stubs.asked, 1);
    let l = &r.launches;
    assert_eq!(
        (
            l.total,
            l.runtime_launches,
            l.runtime_launches_without_driver,
            l.unnamed
        ),
        (2, 2, 0, 0)
    );
}

#[test]
fn stub_lookups_are_cached_per_process_and_address() {
    let mut a = analyzer();
    let mut stubs = Stubs::default(); // knows nothing
    // Three different functions launched through the same unknown stub.
    let evs = [
        runtime_launch(0x4000),
        launch(0xa1),
        runtime_launch(0x4000),
        launch(0xa2),
        runtime_launch(0x4000),
        launch(0xa3),
    ];
    feed(&mut a, &evs, &mut stubs);
    assert_eq!(stubs.asked, 1);
    assert_eq!(report(&mut a).launches.unnamed, 3);
}

#[test]
fn a_runtime_stub_is_consumed_by_the_next_driver_launch_of_its_thread_only() {
    let mut a = analyzer();
    let mut stubs = Stubs::with(PID, 0x4000, "stub_kernel");
    let other_thread = CudaEvent {
        tid: TID + 1,
        ..launch(0xb1)
    };
    feed(
        &mut a,
        &[runtime_launch(0x4000), other_thread, launch(0xb2)],
        &mut stubs,
    );
    let r = report(&mut a);
    assert_eq!(kernel(&r, "stub_kernel").launches, 1);
    assert_eq!(kernel(&r, "unresolved@0xb1").launches, 1);
    assert_eq!(r.launches.total, 2);
}

#[test]
fn runtime_launches_without_driver_launches_count_as_launches() {
    let mut a = analyzer();
    let mut stubs = Stubs::with(PID, 0x4000, "_Z4stepv");
    let evs = [
        runtime_launch(0x4000),
        runtime_launch(0x4000),
        runtime_launch(0x4000),
    ];
    feed(&mut a, &evs, &mut stubs);
    let r = report(&mut a);
    let l = &r.launches;
    // Two seen in a row while running, the last one flushed at the report (this process made
    // no driver launch at all), named from the stub cache.
    assert_eq!(
        (
            l.total,
            l.runtime_launches,
            l.runtime_launches_without_driver
        ),
        (3, 3, 3)
    );
    assert_eq!(kernel(&r, "step()").launches, 3);
    assert_eq!(stubs.asked, 1);
}

#[test]
fn a_pending_runtime_launch_at_the_end_is_dropped_when_the_process_has_driver_launches() {
    let mut a = analyzer();
    let mut stubs = Stubs::with(PID, 0x4000, "k");
    feed(
        &mut a,
        &[runtime_launch(0x4000), launch(0xc1), runtime_launch(0x4000)],
        &mut stubs,
    );
    let r = report(&mut a);
    assert_eq!(r.launches.total, 1);
    assert_eq!(r.launches.runtime_launches, 2);
    assert_eq!(r.launches.runtime_launches_without_driver, 0);
}

#[test]
fn flush_pending_names_leftovers_with_a_real_resolver() {
    let mut a = analyzer();
    feed(&mut a, &[runtime_launch(0x5000)], &mut NoStubs);
    let mut stubs = Stubs::with(PID, 0x5000, "late");
    a.flush_pending(&mut stubs);
    let r = report(&mut a);
    assert_eq!(kernel(&r, "late").launches, 1);
    assert_eq!(r.launches.runtime_launches_without_driver, 1);
}

#[test]
fn unresolved_launches_get_a_placeholder_and_are_counted_unnamed() {
    let mut a = analyzer();
    feed(&mut a, &[launch(0xdead), launch(0xdead)], &mut NoStubs);
    let r = report(&mut a);
    let k = kernel(&r, "unresolved@0xdead");
    assert_eq!((k.launches, k.mangled.clone()), (2, None));
    assert_eq!(r.launches.unnamed, 2);
}

#[test]
fn a_name_learnt_after_an_unresolved_launch_names_the_later_ones() {
    let mut a = analyzer();
    feed(&mut a, &[launch(0xe1)], &mut NoStubs);
    name(&mut a, api::MODULE_GET_FUNCTION, 0xe1, "late_name");
    feed(&mut a, &[launch(0xe1)], &mut NoStubs);
    let r = report(&mut a);
    assert_eq!(kernel(&r, "late_name").launches, 1);
    assert_eq!(r.launches.unnamed, 1);
}

#[test]
fn a_name_without_nul_is_marked_truncated() {
    let mut a = analyzer();
    let long = vec![b'k'; CUDA_NAME_MAX + 10];
    a.on_name(&name_bytes(&name_event(
        api::MODULE_GET_FUNCTION,
        0xf1,
        &long,
    )));
    feed(&mut a, &[launch(0xf1)], &mut NoStubs);
    let r = report(&mut a);
    let k = &r.launches.kernels[0];
    assert!(k.truncated_name);
    assert_eq!(k.name.len(), CUDA_NAME_MAX);
    assert_eq!(r.names.truncated, 1);
}

#[test]
fn top_kernels_and_the_rest_in_other() {
    let mut a = CudaAnalyzer::new(2);
    for (h, n) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        name(&mut a, api::MODULE_GET_FUNCTION, h, n);
    }
    let mut evs = Vec::new();
    for (h, times) in [(4, 5), (3, 3), (2, 3), (1, 1)] {
        evs.extend(std::iter::repeat_n(launch(h), times));
    }
    feed(&mut a, &evs, &mut NoStubs);
    let r = report(&mut a);
    let top: Vec<(&str, u64)> = r
        .launches
        .kernels
        .iter()
        .map(|k| (k.name.as_str(), k.launches))
        .collect();
    assert_eq!(top, [("d", 5), ("b", 3)]);
    assert_eq!(
        r.launches.other,
        OtherKernels {
            kernels: 2,
            launches: 4
        }
    );
    assert_eq!(r.launches.total, 12);
    assert_eq!(r.launches.per_s, 6.0);
}

#[test]
fn failed_launches_are_not_counted_but_consume_the_runtime_stub() {
    let mut a = analyzer();
    let mut stubs = Stubs::with(PID, 0x4000, "k");
    let failed = timed(launch(0xf1), 3 * US, 700);
    feed(
        &mut a,
        &[runtime_launch(0x4000), failed, runtime_launch(0x4000)],
        &mut stubs,
    );
    a.flush_pending(&mut NoStubs);
    let r = report(&mut a);
    assert_eq!(r.launches.total, 0);
    assert_eq!(r.launches.runtime_launches_without_driver, 0);
    assert_eq!(api_row(&r, "cuLaunchKernel").errors, 1);
}
