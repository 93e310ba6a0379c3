//! Energy: CPU energy from RAPL (`rapl`: I/O, `arith`: its arithmetic; `cpu`: the session
//! aggregate and the attribution to watched processes, an estimate). The derived efficiency
//! figures (per request, per token, carbon) are in `derive/efficiency.rs`.
//!
//! Use from the session:
//! - start: `RaplSampler::new()`; on `Err(reason)` put `CpuEnergySection::unavailable(reason)`
//!   in the report and carry on. Then `rapl.sample(&pids)` once to baseline the pids;
//! - each interval: `cpu_stats.push(&rapl.sample(&watched_pids))`;
//! - end: `cpu_stats.finish(rapl.source(), vec![])`, then `efficiency::compute(&inputs)` with
//!   the GPU section's `energy_j(true)` / `busy_s(true)` and the CPU section's `attributed_j()`.

pub mod arith;
pub mod cpu;
pub mod rapl;

pub use cpu::{CpuEnergySection, CpuEnergyStats};
pub use rapl::RaplSampler;
