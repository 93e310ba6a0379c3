//! The trait the HTTP analyzer's sinks implement: one call per finished exchange. The
//! Prometheus exporter, the timeline and the `--events` log hook in here, so the analyzer
//! knows none of them. No I/O of its own.

use crate::http::record::RequestRecord;

/// Sees every finished HTTP exchange (both roles), with the process that served or sent it.
pub trait RequestObserver {
    fn on_request(&mut self, pid: u32, rec: &RequestRecord);

    /// The session ends: write out what is buffered.
    fn finish(&mut self) {}

    /// Writes this observer failed (a file sink); the report shows their sum as
    /// `http.analysis.event_log_errors`.
    fn write_errors(&self) -> u64 {
        0
    }
}
