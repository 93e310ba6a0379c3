//! The HTTP capability's session side: attach the socket probes, hand their ring-buffer records
//! to the analyzer, summarise at the end.
//! Privileged I/O through `Probes`.

use std::os::fd::BorrowedFd;

use anyhow::Result;
use profiler_common::NetConfig;

use crate::{
    bpf::{Capability, Probes},
    http::{
        analyzer::SocketAnalyzer,
        observer::RequestObserver,
        probes::{
            SocketMaps, SocketPath, active_calls_evicted, attach_socket_probes, sock_events_lost,
            sock_layer_unknown_callers,
        },
        section::HttpSection,
        stats::{IntervalRequests, RequestStats, SlaTargets},
    },
};

/// What the user asked of the HTTP capture.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    /// Leading bytes of each socket read/write copied for parsing.
    pub capture_bytes: u32,
    pub sla: SlaTargets,
}

/// The socket side of a session: how sockets are classified and the analyzer of their traffic.
pub struct HttpCapture {
    maps: SocketMaps,
    analyzer: SocketAnalyzer,
    path: SocketPath,
    capture_bytes: u32,
    /// `sock_events_lost` at the previous interval.
    lost_before: u64,
}

impl HttpCapture {
    /// Attaches the socket probes and sets up the analysis.
    pub fn start(probes: &mut Probes, net: &NetConfig, config: &Config) -> Result<Self> {
        let maps = SocketMaps::take(probes)?;
        let path = attach_socket_probes(probes, net)?;
        let mut analyzer = SocketAnalyzer::new(RequestStats::new(config.sla));
        analyzer.wait_for_window();
        Ok(Self {
            maps,
            analyzer,
            path,
            capture_bytes: net.capture_bytes,
            lost_before: 0,
        })
    }

    /// Adds a sink that sees every finished exchange from now on.
    pub fn observe(&mut self, observer: Box<dyn RequestObserver>) {
        self.analyzer.observe(observer);
    }

    /// Server requests in flight now, per process (the exporter's gauge).
    pub fn server_in_flight_by_pid(&self) -> std::collections::BTreeMap<u32, u64> {
        self.analyzer.server_in_flight_by_pid()
    }

    /// The figures of the interval that just ended (for the live view), after a last drain.
    pub fn take_interval(&mut self, probes: &mut Probes) -> IntervalRequests {
        self.drain(probes);
        self.analyzer.update_gauges();
        let lost = sock_events_lost(probes);
        let mut interval = self.analyzer.stats.take_interval();
        interval.events_lost = lost.saturating_sub(self.lost_before);
        self.lost_before = lost;
        interval
    }

    /// Drains the last events and summarises the session's requests; the connections of the
    /// processes in `exited` end (their unfinished exchanges are errors, not in flight).
    pub fn finish(&mut self, probes: &mut Probes, duration_s: f64, exited: &[u32]) -> HttpSection {
        self.drain(probes);
        for &pid in exited {
            self.analyzer.process_gone(pid);
        }
        self.analyzer.finish();
        HttpSection {
            requests: self.analyzer.stats.report(duration_s),
            socket_classification: self.path.name(),
            capture_bytes: self.capture_bytes,
            events_lost: sock_events_lost(probes),
            calls_evicted: active_calls_evicted(probes),
            unknown_callers: sock_layer_unknown_callers(probes),
            analysis: self.analyzer.counters(),
            endpoints: self.analyzer.endpoints(),
            connections: self.analyzer.connections(),
        }
    }
}

impl Capability for HttpCapture {
    fn drain(&mut self, _probes: &mut Probes) {
        let Self { maps, analyzer, .. } = self;
        maps.drain(|bytes| analyzer.on_record(bytes));
    }

    fn wake_fds(&self) -> Vec<BorrowedFd<'_>> {
        vec![self.maps.wake_fd()]
    }

    fn open_window(&mut self, probes: &mut Probes) {
        self.drain(probes);
        self.analyzer.open_window();
    }

    fn forget_process(&mut self, probes: &mut Probes, pid: u32) {
        self.drain(probes);
        self.analyzer.process_gone(pid);
    }
}
