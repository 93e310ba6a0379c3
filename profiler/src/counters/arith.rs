//! Counter arithmetic, all pure: multiplex scaling, deltas between readings, totals over
//! threads, ratios (IPC, miss ratios) and the vectorization breakdown.

use serde::Serialize;

use super::events::{EVENT_COUNT, EventId, VectorSource};

/// One counter as the kernel reports it (`PERF_FORMAT_TOTAL_TIME_{ENABLED,RUNNING}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    pub value: u64,
    pub time_enabled_ns: u64,
    pub time_running_ns: u64,
}

/// A counter value scaled to the whole enabled time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    pub value: u64,
    /// The counter shared the PMU with others (running < enabled) or missed part of the
    /// time entirely: the value is an extrapolation.
    pub multiplexed: bool,
}

impl Reading {
    /// `value × enabled / running`, flagged as multiplexed when running < enabled; `None`
    /// when the counter never ran (nothing to extrapolate from).
    pub fn scaled(&self) -> Option<Estimate> {
        if self.time_running_ns == 0 {
            return None;
        }
        if self.time_running_ns >= self.time_enabled_ns {
            return Some(Estimate {
                value: self.value,
                multiplexed: false,
            });
        }
        let v = u128::from(self.value) * u128::from(self.time_enabled_ns)
            / u128::from(self.time_running_ns);
        Some(Estimate {
            value: u64::try_from(v).unwrap_or(u64::MAX),
            multiplexed: true,
        })
    }

    /// What the counter gathered since `prev`. Counters and their times only grow, so a
    /// reading below `prev` belongs to a counter that was reopened (a new thread) and started
    /// again from 0: all of it is new.
    pub fn delta_since(&self, prev: &Reading) -> Reading {
        if self.value < prev.value
            || self.time_enabled_ns < prev.time_enabled_ns
            || self.time_running_ns < prev.time_running_ns
        {
            return *self;
        }
        Reading {
            value: self.value - prev.value,
            time_enabled_ns: self.time_enabled_ns - prev.time_enabled_ns,
            time_running_ns: self.time_running_ns - prev.time_running_ns,
        }
    }
}

/// Scaled counts per event, summed over threads (and over intervals for a total). An event
/// is `None` until a counter for it was read at least once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterTotals {
    values: [Option<Estimate>; EVENT_COUNT],
}

impl Default for CounterTotals {
    fn default() -> Self {
        Self {
            values: [None; EVENT_COUNT],
        }
    }
}

impl CounterTotals {
    pub fn estimate(&self, id: EventId) -> Option<Estimate> {
        self.values[id.index()]
    }

    pub fn get(&self, id: EventId) -> Option<u64> {
        self.estimate(id).map(|e| e.value)
    }

    pub fn add(&mut self, id: EventId, e: Estimate) {
        let slot = self.values[id.index()].get_or_insert_with(Estimate::default);
        slot.value = slot.value.saturating_add(e.value);
        slot.multiplexed |= e.multiplexed;
    }

    /// Adds one counter's reading for an interval (a delta), scaled. A counter that was
    /// enabled but never ran in the interval adds nothing and marks the event multiplexed;
    /// one that was not enabled (its thread did not run) adds 0.
    pub fn add_reading(&mut self, id: EventId, r: Reading) {
        let e = r.scaled().unwrap_or(Estimate {
            value: 0,
            multiplexed: r.time_enabled_ns > 0,
        });
        self.add(id, e);
    }

    pub fn merge(&mut self, other: &CounterTotals) {
        for (id, e) in other.iter() {
            self.add(id, e);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (EventId, Estimate)> + '_ {
        EventId::ALL
            .iter()
            .filter_map(|&id| self.estimate(id).map(|e| (id, e)))
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// Events whose value was extrapolated (in perf-tool spelling).
    pub fn multiplexed_events(&self) -> Vec<&'static str> {
        self.iter()
            .filter(|(_, e)| e.multiplexed)
            .map(|(id, _)| id.name())
            .collect()
    }

    pub fn multiplexed(&self) -> bool {
        self.iter().any(|(_, e)| e.multiplexed)
    }

    /// Per-event difference of two totals of the same process (saturating at 0).
    #[cfg(test)]
    pub fn delta_since(&self, prev: &CounterTotals) -> CounterTotals {
        let mut out = CounterTotals::default();
        for (id, e) in self.iter() {
            let before = prev.get(id).unwrap_or(0);
            out.values[id.index()] = Some(Estimate {
                value: e.value.saturating_sub(before),
                multiplexed: e.multiplexed,
            });
        }
        out
    }

    /// `num / den` of two events, when both were counted and `den > 0`.
    pub fn ratio(&self, num: EventId, den: EventId) -> Option<f64> {
        ratio(self.get(num)?, self.get(den)?)
    }
}

pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Instructions per cycle.
#[cfg(test)]
pub fn ipc(instructions: u64, cycles: u64) -> Option<f64> {
    ratio(instructions, cycles)
}

/// `misses / accesses`, capped at 1: with multiplexing both are separate extrapolations and
/// their ratio can overshoot.
pub fn miss_ratio(misses: u64, accesses: u64) -> Option<f64> {
    ratio(misses, accesses).map(|r| r.min(1.0))
}

/// Shares of floating-point work by vector width; they sum to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WidthShares {
    pub scalar: f64,
    pub packed_128: f64,
    pub packed_256: f64,
    pub packed_512: f64,
}

impl WidthShares {
    /// From counts `[scalar, 128, 256, 512]`; `None` when all are 0.
    pub fn from_counts(c: [u64; 4]) -> Option<Self> {
        let total: u128 = c.iter().map(|&v| u128::from(v)).sum();
        if total == 0 {
            return None;
        }
        let s = |v: u64| v as f64 / total as f64;
        Some(Self {
            scalar: s(c[0]),
            packed_128: s(c[1]),
            packed_256: s(c[2]),
            packed_512: s(c[3]),
        })
    }

    /// Share of packed (vector) work: 128 + 256 + 512 bit.
    pub fn packed(&self) -> f64 {
        self.packed_128 + self.packed_256 + self.packed_512
    }
}

/// Intel FP_ARITH_INST_RETIRED counts. Each count is one instruction (FMA and DPP count
/// twice, once per operation) operating on `lanes` elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntelFpCounts {
    pub scalar_single: u64,
    pub scalar_double: u64,
    pub packed_128_single: u64,
    pub packed_128_double: u64,
    pub packed_256_single: u64,
    pub packed_256_double: u64,
    pub packed_512_single: u64,
    pub packed_512_double: u64,
}

impl IntelFpCounts {
    /// Instructions by width: `[scalar, 128, 256, 512]`.
    pub fn by_width(&self) -> [u64; 4] {
        [
            self.scalar_single + self.scalar_double,
            self.packed_128_single + self.packed_128_double,
            self.packed_256_single + self.packed_256_double,
            self.packed_512_single + self.packed_512_double,
        ]
    }

    /// FLOPs by width: instructions × elements per register (4/2 at 128 bit, 8/4 at 256,
    /// 16/8 at 512 for single/double).
    pub fn flops_by_width(&self) -> [u64; 4] {
        [
            self.scalar_single + self.scalar_double,
            4 * self.packed_128_single + 2 * self.packed_128_double,
            8 * self.packed_256_single + 4 * self.packed_256_double,
            16 * self.packed_512_single + 8 * self.packed_512_double,
        ]
    }

    pub fn flops_single(&self) -> u64 {
        self.scalar_single
            + 4 * self.packed_128_single
            + 8 * self.packed_256_single
            + 16 * self.packed_512_single
    }
}

/// AMD Zen 4/5 FpOpsRetiredByWidth counts (uops, any precision; x87 and MMX left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AmdWidthCounts {
    pub scalar: u64,
    pub packed_128: u64,
    pub packed_256: u64,
    pub packed_512: u64,
}

/// How vectorized the floating-point work was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vectorization {
    pub source: &'static str,
    /// What `fp_ops` counts: `instructions`, `uops` or `flops`.
    pub unit: &'static str,
    pub fp_ops: u64,
    /// Share of `fp_ops` per width; absent where the PMU has no width breakdown.
    pub share_by_width: Option<WidthShares>,
    /// Share of FLOPs per width (Intel: instructions weighted by elements per register).
    pub flop_share_by_width: Option<WidthShares>,
    /// Packed (128/256/512-bit) share of `fp_ops`.
    pub packed_share: Option<f64>,
    pub flops: Option<u64>,
    /// Share of FLOPs in single precision.
    pub single_precision_flop_share: Option<f64>,
}

pub fn intel_vectorization(c: &IntelFpCounts) -> Vectorization {
    let by_width = WidthShares::from_counts(c.by_width());
    let flops: u64 = c.flops_by_width().iter().sum();
    Vectorization {
        source: VectorSource::IntelFpArith.describe(),
        unit: "instructions",
        fp_ops: c.by_width().iter().sum(),
        share_by_width: by_width,
        flop_share_by_width: WidthShares::from_counts(c.flops_by_width()),
        packed_share: by_width.map(|s| s.packed()),
        flops: Some(flops),
        single_precision_flop_share: ratio(c.flops_single(), flops),
    }
}

pub fn amd_width_vectorization(c: &AmdWidthCounts, flops: Option<u64>) -> Vectorization {
    let counts = [c.scalar, c.packed_128, c.packed_256, c.packed_512];
    let by_width = WidthShares::from_counts(counts);
    Vectorization {
        source: VectorSource::AmdByWidth.describe(),
        unit: "uops",
        fp_ops: counts.iter().sum(),
        share_by_width: by_width,
        flop_share_by_width: None,
        packed_share: by_width.map(|s| s.packed()),
        flops,
        single_precision_flop_share: None,
    }
}

pub fn amd_precision_vectorization(single_flops: u64, double_flops: u64) -> Vectorization {
    let flops = single_flops + double_flops;
    Vectorization {
        source: VectorSource::AmdFlopsByPrecision.describe(),
        unit: "flops",
        fp_ops: flops,
        share_by_width: None,
        flop_share_by_width: None,
        packed_share: None,
        flops: Some(flops),
        single_precision_flop_share: ratio(single_flops, flops),
    }
}

/// The vectorization figures of a source from counted totals; `None` when its events were
/// not counted.
pub fn vectorization(source: VectorSource, t: &CounterTotals) -> Option<Vectorization> {
    use EventId::*;
    let g = |id| t.get(id);
    Some(match source {
        VectorSource::IntelFpArith => {
            let ids = [
                IntelScalarSingle,
                IntelScalarDouble,
                Intel128Single,
                Intel128Double,
            ];
            let wide = [
                Intel256Single,
                Intel256Double,
                Intel512Single,
                Intel512Double,
            ];
            if ids.iter().chain(&wide).all(|&id| g(id).is_none()) {
                return None;
            }
            let v = |id| g(id).unwrap_or(0);
            intel_vectorization(&IntelFpCounts {
                scalar_single: v(IntelScalarSingle),
                scalar_double: v(IntelScalarDouble),
                packed_128_single: v(Intel128Single),
                packed_128_double: v(Intel128Double),
                packed_256_single: v(Intel256Single),
                packed_256_double: v(Intel256Double),
                packed_512_single: v(Intel512Single),
                packed_512_double: v(Intel512Double),
            })
        }
        VectorSource::AmdByWidth => {
            g(AmdScalar)?;
            let v = |id| g(id).unwrap_or(0);
            let counts = AmdWidthCounts {
                scalar: v(AmdScalar),
                packed_128: v(Amd128),
                packed_256: v(Amd256),
                packed_512: v(Amd512),
            };
            amd_width_vectorization(&counts, g(AmdFlops))
        }
        VectorSource::AmdFlopsByPrecision => {
            amd_precision_vectorization(g(AmdFlopsSingle)?, g(AmdFlopsDouble)?)
        }
    })
}

#[cfg(test)]
#[path = "arith_tests.rs"]
mod tests;
