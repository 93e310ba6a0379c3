//! HDR histograms of nanosecond durations and their summary in microseconds, shared by the
//! request and CUDA statistics. Pure. Fixed precision (3 significant digits, ~0.1 %
//! quantization); values clamped to 1 ns ..= 1 h, so memory stays bounded.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest duration recorded; longer ones count as this.
const MAX_NS: u64 = 3_600 * 1_000_000_000;
/// Significant digits kept by every histogram.
const SIGFIG: u8 = 3;

/// A distribution in microseconds (from an HDR histogram: ~0.1 % quantization).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub count: u64,
    pub mean_us: f64,
    /// Standard deviation, shown as jitter.
    pub stddev_us: f64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

pub fn new_hist() -> Histogram<u64> {
    // Auto-resizing: grows only to the largest value seen, and values are clamped to `MAX_NS`.
    Histogram::new(SIGFIG).expect("3 significant digits is a valid histogram precision")
}

pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    let v = ns.clamp(1, MAX_NS);
    // `record` grows an auto-resizing histogram; `saturating_record` would clamp to its
    // current range instead. Growing fails only if the allocation does.
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The summary of `h`; `None` when it is empty.
pub fn dist(h: &Histogram<u64>) -> Option<Dist> {
    if h.is_empty() {
        return None;
    }
    let q = |q: f64| ns_to_us(h.value_at_quantile(q));
    Some(Dist {
        count: h.len(),
        mean_us: h.mean() / 1e3,
        stddev_us: h.stdev() / 1e3,
        min_us: ns_to_us(h.min()),
        p50_us: q(0.50),
        p90_us: q(0.90),
        p95_us: q(0.95),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: ns_to_us(h.max()),
    })
}

/// Quantile `q` of `h` in microseconds; `None` when it is empty.
pub fn quantile_us(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ns_to_us(h.value_at_quantile(q)))
}
