//! Figures that combine capabilities: energy per request and per token, GPU busy share, carbon
//! (`efficiency`), and the hardware part of a session that gathers perf counters, NVML and RAPL
//! with the request and CUDA figures they are divided by (`hardware`).

pub mod efficiency;
pub mod hardware;
