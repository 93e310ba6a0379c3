//! Time-series arithmetic for the GPU aggregate (pure): mean/min/max, energy from a cumulative
//! counter, trapezoid integration, and throttle-interval bookkeeping.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::gpu::sample::is_throttle;

/// Mean, min and max of one metric over the samples that had it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub samples: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Series {
    sum: f64,
    min: f64,
    max: f64,
    pub n: u64,
}

impl Series {
    pub fn add(&mut self, v: Option<f64>) {
        let Some(v) = v else { return };
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        }
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        self.n += 1;
    }

    pub fn stat(&self) -> Option<Stat> {
        (self.n > 0).then(|| Stat {
            mean: self.sum / self.n as f64,
            min: self.min,
            max: self.max,
            samples: self.n,
        })
    }
}

/// Energy from a cumulative millijoule counter: the sum of deltas between consecutive
/// readings. A missing reading is spanned by the next one (the counter kept counting); a
/// counter that goes backwards (driver reloaded) is re-based and counted in `resets`, its
/// segment left out rather than guessed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CounterEnergy {
    last: Option<(f64, u64)>,
    pub joules: f64,
    pub covered_s: f64,
    pub resets: u32,
}

impl CounterEnergy {
    pub fn push(&mut self, t_s: f64, mj: Option<u64>) {
        let Some(mj) = mj else { return };
        if let Some((t0, m0)) = self.last {
            if mj >= m0 {
                self.joules += (mj - m0) as f64 / 1e3;
                self.covered_s += t_s - t0;
            } else {
                self.resets += 1;
            }
        }
        self.last = Some((t_s, mj));
    }
}

/// Trapezoid integral of a sampled rate (watts → joules, busy fraction → seconds) over
/// consecutive readings; a missing reading breaks it (the gap is not covered).
#[derive(Debug, Clone, Copy, Default)]
pub struct Trapezoid {
    last: Option<(f64, f64)>,
    pub integral: f64,
    pub covered_s: f64,
}

impl Trapezoid {
    pub fn push(&mut self, t_s: f64, v: Option<f64>) {
        if let (Some((t0, v0)), Some(v)) = (self.last, v) {
            let dt = t_s - t0;
            if dt > 0.0 {
                self.integral += (v0 + v) / 2.0 * dt;
                self.covered_s += dt;
            }
        }
        self.last = v.map(|v| (t_s, v));
    }
}

/// A span during which a GPU was throttled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThrottleInterval {
    pub gpu: u32,
    /// Seconds since the sampler started: from the sample before the first throttled one to
    /// the last throttled sample (each sample describes the interval it closes).
    pub start_s: f64,
    pub end_s: f64,
    /// Every throttle reason seen during the span.
    pub reasons: Vec<&'static str>,
}

/// Throttle bookkeeping for one GPU. A sample's reasons are charged to the interval since the
/// previous sample, the way the session flags the interval a sample closes.
#[derive(Debug, Clone, Default)]
pub struct ThrottleTracker {
    gpu: u32,
    last_t: Option<f64>,
    /// Seconds each clock-event reason (throttle or not) was active.
    pub reason_s: BTreeMap<&'static str, f64>,
    pub throttled_s: f64,
    open: Option<ThrottleInterval>,
    pub intervals: Vec<ThrottleInterval>,
}

impl ThrottleTracker {
    pub fn new(gpu: u32) -> Self {
        Self {
            gpu,
            ..Default::default()
        }
    }

    pub fn push(&mut self, t_s: f64, reasons: &[&'static str]) {
        let dt = self.last_t.map_or(0.0, |t0| (t_s - t0).max(0.0));
        let start = self.last_t.unwrap_or(t_s);
        self.last_t = Some(t_s);
        for r in reasons {
            *self.reason_s.entry(r).or_default() += dt;
        }
        let throttles: Vec<&'static str> =
            reasons.iter().copied().filter(|r| is_throttle(r)).collect();
        if throttles.is_empty() {
            if let Some(iv) = self.open.take() {
                self.intervals.push(iv);
            }
            return;
        }
        self.throttled_s += dt;
        let iv = self.open.get_or_insert_with(|| ThrottleInterval {
            gpu: self.gpu,
            start_s: start,
            end_s: t_s,
            reasons: Vec::new(),
        });
        iv.end_s = t_s;
        for r in throttles {
            if !iv.reasons.contains(&r) {
                iv.reasons.push(r);
            }
        }
    }

    /// Closes a span still open at the end of the session.
    pub fn finish(&mut self) {
        if let Some(iv) = self.open.take() {
            self.intervals.push(iv);
        }
    }
}
