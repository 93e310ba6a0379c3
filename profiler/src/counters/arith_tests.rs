use super::*;

fn r(value: u64, enabled: u64, running: u64) -> Reading {
    Reading {
        value,
        time_enabled_ns: enabled,
        time_running_ns: running,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn scaling() {
    assert_eq!(
        r(100, 10, 10).scaled(),
        Some(Estimate {
            value: 100,
            multiplexed: false
        })
    );
    // Ran a quarter of the time: ×4, flagged.
    assert_eq!(
        r(100, 40, 10).scaled(),
        Some(Estimate {
            value: 400,
            multiplexed: true
        })
    );
    // Never ran: nothing to extrapolate from.
    assert_eq!(r(0, 40, 0).scaled(), None);
    assert_eq!(r(0, 0, 0).scaled(), None);
    // Rounds down, no overflow on large values.
    assert_eq!(r(10, 3, 2).scaled().unwrap().value, 15);
    assert_eq!(r(u64::MAX, 2, 1).scaled().unwrap().value, u64::MAX);
    assert_eq!(r(u64::MAX / 2, 2, 1).scaled().unwrap().value, u64::MAX - 1);
}

#[test]
fn deltas() {
    assert_eq!(r(150, 30, 20).delta_since(&r(100, 10, 10)), r(50, 20, 10));
    assert_eq!(r(100, 10, 10).delta_since(&r(100, 10, 10)), r(0, 0, 0));
    // A reopened counter (new thread on the same slot) starts again from 0.
    assert_eq!(r(7, 5, 5).delta_since(&r(100, 10, 10)), r(7, 5, 5));
    assert_eq!(r(200, 5, 5).delta_since(&r(100, 10, 10)), r(200, 5, 5));
    assert_eq!(r(5, 1, 1).delta_since(&Reading::default()), r(5, 1, 1));
}

#[test]
fn interval_delta_scaled_not_cumulative() {
    // Scaling each interval's delta (as perf stat -I does) rather than differencing scaled
    // cumulative values, which can go backwards.
    let a = r(100, 2, 1);
    let b = r(101, 10, 9);
    assert!(b.scaled().unwrap().value < a.scaled().unwrap().value);
    let d = b.delta_since(&a).scaled().unwrap();
    assert_eq!(
        d,
        Estimate {
            value: 1,
            multiplexed: false
        }
    );
}

#[test]
fn totals_sum_threads_and_flag_multiplexing() {
    let mut t = CounterTotals::default();
    assert!(t.is_empty());
    assert_eq!(t.get(EventId::Cycles), None);
    t.add_reading(EventId::Cycles, r(100, 10, 10));
    t.add_reading(EventId::Cycles, r(100, 20, 10)); // second thread, multiplexed ×2
    assert_eq!(
        t.estimate(EventId::Cycles),
        Some(Estimate {
            value: 300,
            multiplexed: true
        })
    );
    // A thread that did not run: counted as 0, not multiplexed.
    t.add_reading(EventId::TaskClock, r(0, 0, 0));
    assert_eq!(
        t.estimate(EventId::TaskClock),
        Some(Estimate {
            value: 0,
            multiplexed: false
        })
    );
    // Enabled but never scheduled on the PMU: unknown part, flagged.
    t.add_reading(EventId::Instructions, r(0, 10, 0));
    assert_eq!(
        t.estimate(EventId::Instructions),
        Some(Estimate {
            value: 0,
            multiplexed: true
        })
    );
    assert!(t.multiplexed());
    assert_eq!(t.multiplexed_events(), vec!["cycles", "instructions"]);

    let mut total = CounterTotals::default();
    total.merge(&t);
    total.merge(&t);
    assert_eq!(total.get(EventId::Cycles), Some(600));
    let d = total.delta_since(&t);
    assert_eq!(d.get(EventId::Cycles), Some(300));
    assert_eq!(d.get(EventId::TaskClock), Some(0));
    assert_eq!(t.delta_since(&total).get(EventId::Cycles), Some(0)); // saturates
}

#[test]
fn ratios() {
    assert_eq!(ipc(3_000, 1_500), Some(2.0));
    assert_eq!(ipc(3_000, 0), None);
    assert_eq!(miss_ratio(5, 100), Some(0.05));
    assert_eq!(miss_ratio(120, 100), Some(1.0)); // capped: separate extrapolations
    assert_eq!(miss_ratio(0, 0), None);
    let mut t = CounterTotals::default();
    t.add(
        EventId::BranchMisses,
        Estimate {
            value: 2,
            multiplexed: false,
        },
    );
    t.add(
        EventId::BranchInstructions,
        Estimate {
            value: 200,
            multiplexed: false,
        },
    );
    assert_eq!(
        t.ratio(EventId::BranchMisses, EventId::BranchInstructions),
        Some(0.01)
    );
    assert_eq!(t.ratio(EventId::LlcLoadMisses, EventId::LlcLoads), None);
}

#[test]
fn width_shares() {
    assert_eq!(WidthShares::from_counts([0; 4]), None);
    let s = WidthShares::from_counts([1, 1, 2, 0]).unwrap();
    assert!(close(s.scalar, 0.25) && close(s.packed_128, 0.25) && close(s.packed_256, 0.5));
    assert!(close(s.packed(), 0.75));
}

#[test]
fn intel_flop_weights() {
    // One instruction of each kind: FLOPs 1+1 + 4+2 + 8+4 + 16+8 = 44.
    let c = IntelFpCounts {
        scalar_single: 1,
        scalar_double: 1,
        packed_128_single: 1,
        packed_128_double: 1,
        packed_256_single: 1,
        packed_256_double: 1,
        packed_512_single: 1,
        packed_512_double: 1,
    };
    assert_eq!(c.by_width(), [2, 2, 2, 2]);
    assert_eq!(c.flops_by_width(), [2, 6, 12, 24]);
    assert_eq!(c.flops_single(), 29);
    let v = intel_vectorization(&c);
    assert_eq!(v.unit, "instructions");
    assert_eq!(v.fp_ops, 8);
    assert_eq!(v.flops, Some(44));
    assert!(close(v.share_by_width.unwrap().packed_512, 0.25));
    assert!(close(
        v.flop_share_by_width.unwrap().packed_512,
        24.0 / 44.0
    ));
    assert!(close(v.packed_share.unwrap(), 0.75));
    assert!(close(v.single_precision_flop_share.unwrap(), 29.0 / 44.0));
}

#[test]
fn intel_all_scalar_and_none() {
    let v = intel_vectorization(&IntelFpCounts {
        scalar_double: 10,
        ..Default::default()
    });
    assert!(close(v.packed_share.unwrap(), 0.0));
    assert_eq!(v.flops, Some(10));
    assert_eq!(v.single_precision_flop_share, Some(0.0));
    let v = intel_vectorization(&IntelFpCounts::default());
    assert_eq!(v.share_by_width, None);
    assert_eq!(v.packed_share, None);
    assert_eq!(v.single_precision_flop_share, None);
}

#[test]
fn amd_shapes() {
    let c = AmdWidthCounts {
        scalar: 10,
        packed_128: 10,
        packed_256: 60,
        packed_512: 20,
    };
    let v = amd_width_vectorization(&c, Some(1_000));
    assert_eq!((v.unit, v.fp_ops, v.flops), ("uops", 100, Some(1_000)));
    assert!(close(v.packed_share.unwrap(), 0.9));
    assert!(close(v.share_by_width.unwrap().packed_256, 0.6));
    assert_eq!(v.flop_share_by_width, None);

    let v = amd_precision_vectorization(300, 100);
    assert_eq!((v.unit, v.fp_ops, v.flops), ("flops", 400, Some(400)));
    assert_eq!(v.share_by_width, None);
    assert!(close(v.single_precision_flop_share.unwrap(), 0.75));
}

#[test]
fn vectorization_from_totals() {
    use EventId::*;
    let mut t = CounterTotals::default();
    for s in [
        VectorSource::IntelFpArith,
        VectorSource::AmdByWidth,
        VectorSource::AmdFlopsByPrecision,
    ] {
        assert_eq!(vectorization(s, &t), None, "{s:?}");
    }
    let e = |value| Estimate {
        value,
        multiplexed: false,
    };
    t.add(Intel256Single, e(10));
    t.add(IntelScalarDouble, e(10));
    let v = vectorization(VectorSource::IntelFpArith, &t).unwrap();
    assert_eq!(v.flops, Some(90));
    assert!(close(v.share_by_width.unwrap().packed_256, 0.5));

    t.add(AmdScalar, e(1));
    t.add(Amd512, e(3));
    let v = vectorization(VectorSource::AmdByWidth, &t).unwrap();
    assert_eq!((v.fp_ops, v.flops), (4, None));
    t.add(AmdFlopsSingle, e(5));
    assert_eq!(vectorization(VectorSource::AmdFlopsByPrecision, &t), None);
    t.add(AmdFlopsDouble, e(5));
    let v = vectorization(VectorSource::AmdFlopsByPrecision, &t).unwrap();
    assert_eq!(v.single_precision_flop_share, Some(0.5));
}
