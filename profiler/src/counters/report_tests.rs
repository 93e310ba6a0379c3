use super::*;
use crate::counters::arith::Estimate;

fn totals(values: &[(EventId, u64)], multiplexed: &[EventId]) -> CounterTotals {
    let mut t = CounterTotals::default();
    for &(id, value) in values {
        t.add(
            id,
            Estimate {
                value,
                multiplexed: multiplexed.contains(&id),
            },
        );
    }
    t
}

fn software_only() -> Vec<(EventId, u64)> {
    use EventId::*;
    vec![
        (TaskClock, 1_500_000_000),
        (PageFaults, 42),
        (ContextSwitches, 300),
        (CpuMigrations, 7),
    ]
}

fn no_pmu() -> SamplerStatus {
    SamplerStatus {
        kernel_included: true,
        hardware_unavailable: Some("no hardware PMU: test".into()),
        ..Default::default()
    }
}

fn process(total: CounterTotals) -> ProcessCounters {
    ProcessCounters {
        pid: 1,
        total,
        threads_counted: 3,
        threads_exited: 1,
        ..Default::default()
    }
}

#[test]
fn software_only_machine() {
    let s = build_section(&no_pmu(), &process(totals(&software_only(), &[])));
    let sw = s.software.as_ref().unwrap();
    assert_eq!(sw.task_clock_ms, 1500.0);
    assert_eq!(
        (sw.page_faults, sw.context_switches, sw.migrations),
        (42, Some(300), Some(7))
    );
    assert_eq!(s.hardware, None);
    assert_eq!(
        s.hardware_unavailable.as_deref(),
        Some("no hardware PMU: test")
    );
    assert_eq!(s.vectorization, None);
    assert!(
        s.vectorization_unavailable
            .as_deref()
            .unwrap()
            .contains("needs hardware")
    );
    assert!(!s.multiplexed);
    assert_eq!(s.scope, "user+kernel");

    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["software"]["context_switches"], 300);
    assert!(json["hardware"].is_null());
    assert_eq!(json["hardware_unavailable"], "no hardware PMU: test");

    let mut text = String::new();
    render_text(&s, &mut text);
    assert!(
        text.contains("perf counters (user+kernel, 3 thread(s), 1 exited)"),
        "{text}"
    );
    assert!(text.contains("task-clock 1.50 s"), "{text}");
    assert!(
        text.contains("hardware  unavailable: no hardware PMU: test"),
        "{text}"
    );
    assert!(
        text.contains("vector    unavailable: needs hardware"),
        "{text}"
    );
    assert!(!text.contains("note:"), "{text}");
}

#[test]
fn hardware_and_intel_vectors() {
    use EventId::*;
    // User scope: the sampler does not open the kernel-side switch and migration events.
    let mut v: Vec<_> = software_only().into_iter().take(2).collect();
    v.extend([
        (Cycles, 2_000_000_000),
        (Instructions, 3_000_000_000),
        (BranchInstructions, 500_000_000),
        (BranchMisses, 5_000_000),
        (CacheReferences, 10_000_000),
        (CacheMisses, 1_000_000),
        (L1dLoads, 800_000_000),
        (L1dLoadMisses, 8_000_000),
        (IntelScalarDouble, 100),
        (Intel512Single, 300),
    ]);
    let status = SamplerStatus {
        kernel_included: false,
        vector_source: Some(VectorSource::IntelFpArith),
        unsupported_events: vec!["LLC-loads: No such file or directory (os error 2)".into()],
        ..Default::default()
    };
    let s = build_section(&status, &process(totals(&v, &[Cycles, Instructions])));
    let h = s.hardware.as_ref().unwrap();
    assert_eq!(h.ipc, Some(1.5));
    assert_eq!(h.branch_miss_ratio, Some(0.01));
    assert_eq!(h.cache_miss_ratio, Some(0.1));
    assert_eq!(h.l1d_load_miss_ratio, Some(0.01));
    assert_eq!((h.llc_loads, h.llc_load_miss_ratio), (None, None));
    assert_eq!(s.hardware_unavailable, None);
    let vz = s.vectorization.as_ref().unwrap();
    assert_eq!(vz.fp_ops, 400);
    assert_eq!(vz.flops, Some(100 + 16 * 300));
    assert_eq!(vz.packed_share, Some(0.75));
    assert!(s.multiplexed);
    assert_eq!(s.scaled_events, vec!["cycles", "instructions"]);
    assert_eq!(s.scope, "user");

    let mut text = String::new();
    render_text(&s, &mut text);
    assert!(
        text.contains("IPC 1.50 (3.00 G instructions / 2.00 G cycles)"),
        "{text}"
    );
    assert!(text.contains("branch miss 1.0% of 500.0 M"), "{text}");
    assert!(text.contains("L1d load miss 1.0% of 800.0 M"), "{text}");
    assert!(!text.contains("LLC load miss"), "{text}");
    assert!(text.contains("not offered: LLC-loads"), "{text}");
    assert!(text.contains("400 FP instructions: scalar 25.0%"), "{text}");
    assert!(text.contains("512-bit 75.0%"), "{text}");
    assert!(text.contains("note: scaled for PMU multiplexing"), "{text}");
    assert!(text.lines().all(|l| l.starts_with("  ")), "{text}");
}

#[test]
fn reasons_when_nothing_was_counted() {
    let status = SamplerStatus {
        kernel_included: true,
        vectorization_unavailable: Some("hybrid Intel CPU".into()),
        ..Default::default()
    };
    let mut p = process(CounterTotals::default());
    p.open_error = Some("thread 5 (software events): not permitted".into());
    let s = build_section(&status, &p);
    assert!(
        s.software_unavailable
            .as_deref()
            .unwrap()
            .contains("not permitted")
    );
    assert!(
        s.hardware_unavailable
            .as_deref()
            .unwrap()
            .contains("not permitted")
    );
    assert_eq!(
        s.vectorization_unavailable.as_deref(),
        Some("hybrid Intel CPU")
    );
    let s = build_section(
        &SamplerStatus::default(),
        &process(CounterTotals::default()),
    );
    assert!(
        s.software_unavailable
            .as_deref()
            .unwrap()
            .contains("no thread")
    );
}

#[test]
fn amd_precision_text() {
    use EventId::*;
    let mut v = software_only();
    v.extend([
        (Cycles, 10),
        (AmdFlopsSingle, 3_000_000),
        (AmdFlopsDouble, 1_000_000),
    ]);
    let status = SamplerStatus {
        vector_source: Some(VectorSource::AmdFlopsByPrecision),
        ..Default::default()
    };
    let s = build_section(&status, &process(totals(&v, &[])));
    let mut text = String::new();
    render_text(&s, &mut text);
    assert!(
        text.contains("4.0 M FP flops; single precision 75.0% of FLOPs"),
        "{text}"
    );
    assert!(text.contains("hardware  "), "{text}");
}

#[test]
fn counts_format() {
    assert_eq!(fmt_count(999), "999");
    assert_eq!(fmt_count(12_345), "12.3 k");
    assert_eq!(fmt_count(4_500_000), "4.5 M");
    assert_eq!(fmt_count(2_100_000_000), "2.10 G");
}

#[test]
fn live_lines() {
    use EventId::*;
    let t = totals(&software_only(), &[]);
    assert_eq!(
        live_line(&t, 1.0),
        "perf: 1.50 CPUs, 300 csw/s, 7 migr/s, 42 faults/s"
    );
    assert_eq!(
        live_line(&t, 0.5),
        "perf: 3.00 CPUs, 600 csw/s, 14 migr/s, 84 faults/s"
    );
    let mut v = software_only();
    v.extend([
        (Cycles, 100),
        (Instructions, 250),
        (LlcLoads, 10),
        (LlcLoadMisses, 1),
        (AmdScalar, 1),
        (Amd256, 3),
    ]);
    let t = totals(&v, &[Cycles]);
    let line = live_line(&t, 1.0);
    assert!(
        line.ends_with("IPC 2.50, LLC miss 10.0%, packed FP 75.0% ~"),
        "{line}"
    );
    assert_eq!(live_line(&CounterTotals::default(), 1.0), "perf: no counts");
}
