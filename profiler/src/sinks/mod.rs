//! Where figures go: the final report (JSON/text), the live view, Prometheus `/metrics` and the
//! Perfetto timeline. Sinks read the capabilities' sections or observe their analyzers; no
//! capability knows about any sink.

pub mod cuda_trace;
pub mod event_log;
pub mod live;
pub mod prometheus;
pub mod report;
pub mod timeline;
