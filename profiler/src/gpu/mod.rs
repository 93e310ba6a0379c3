//! GPU metrics from NVML: `nvml` reads the driver each interval (I/O), `sample` holds one
//! reading (pure, serializable), `stats` aggregates readings over the session into the report's
//! `gpu` section (pure, with the arithmetic in `series`), `render` writes its text block.
//!
//! Use from the session:
//! - start: `GpuSampler::new()`; on `Err(reason)` put `GpuSection::unavailable(reason)` in the
//!   report and carry on (no driver, no GPU, no permission: never fatal);
//! - each interval: `let s = sampler.sample(&watched_pids); stats.push(&s);` (the live view can
//!   show `s.throttled()` next to that interval's latency);
//! - end: `stats.finish(sampler.driver_version(), sampler.notes())`.

pub mod nvml;
pub mod render;
pub mod sample;
pub mod series;
pub mod stats;

pub use nvml::GpuSampler;
pub use render::render_text;
pub use sample::GpuSample;
pub use stats::{GpuSection, GpuStats};
