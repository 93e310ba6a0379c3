//! The HTTP capability's session side: attach the socket probes (seeding known sockets in
//! fd-table mode), hand their ring-buffer records to the analyzer, summarise at the end.
//! Privileged I/O through `Probes`.

use anyhow::Result;
use profiler_common::NetConfig;

use crate::{
    bpf::{Capability, Probes},
    host::procfs,
    http::{
        analyzer::SocketAnalyzer,
        observer::RequestObserver,
        probes::{
            SOCK_LENGTH_PROBES, SOCK_PROBES, SOCK_STATE_PROBES, SocketMaps, active_calls_evicted,
            sock_events_lost,
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
    fd_table_only: bool,
    capture_bytes: u32,
}

impl HttpCapture {
    /// Attaches the socket probes (seeding the known sockets of `pids` in fd-table mode) and
    /// sets up the analysis.
    pub fn start(
        probes: &mut Probes,
        pids: &[u32],
        net: &NetConfig,
        config: &Config,
    ) -> Result<Self> {
        let fd_table_only = net.fd_table_only != 0;
        let mut maps = SocketMaps::take(probes)?;
        if fd_table_only {
            for &pid in pids {
                for fd in procfs::socket_fds(pid) {
                    maps.mark_socket(pid, fd)?;
                }
            }
        } else {
            probes.attach(SOCK_LENGTH_PROBES)?;
        }
        probes.attach(SOCK_STATE_PROBES)?;
        probes.attach(SOCK_PROBES)?;
        Ok(Self {
            maps,
            analyzer: SocketAnalyzer::new(RequestStats::new(config.sla)),
            fd_table_only,
            capture_bytes: net.capture_bytes,
        })
    }

    /// Adds a sink that sees every finished exchange from now on.
    pub fn observe(&mut self, observer: Box<dyn RequestObserver>) {
        self.analyzer.observe(observer);
    }

    /// Whether sockets are recognised only from accept/connect and the fd table (kernels
    /// without `sock:sock_recv_length`).
    pub fn fd_table_only(&self) -> bool {
        self.fd_table_only
    }

    /// Server requests in flight now, per process (the exporter's gauge).
    pub fn server_in_flight_by_pid(&self) -> std::collections::BTreeMap<u32, u64> {
        self.analyzer.server_in_flight_by_pid()
    }

    /// The figures of the interval that just ended (for the live view), after a last drain.
    pub fn take_interval(&mut self, probes: &mut Probes) -> IntervalRequests {
        self.drain(probes);
        self.analyzer.update_gauges();
        self.analyzer.stats.take_interval()
    }

    /// Drains the last events and summarises the session's requests.
    pub fn finish(&mut self, probes: &mut Probes, duration_s: f64) -> HttpSection {
        self.drain(probes);
        self.analyzer.finish();
        HttpSection {
            requests: self.analyzer.stats.report(duration_s),
            socket_classification: if self.fd_table_only {
                "fd-table"
            } else {
                "socket-tracepoints"
            },
            capture_bytes: self.capture_bytes,
            events_lost: sock_events_lost(probes),
            calls_evicted: active_calls_evicted(probes),
            analysis: self.analyzer.counters(),
            endpoints: self.analyzer.endpoints(),
            connections: self.analyzer.connections(),
        }
    }
}

impl Capability for HttpCapture {
    fn drain(&mut self, _probes: &mut Probes) {
        let Self { maps, analyzer, .. } = self;
        maps.drain(|bytes, addrs| analyzer.on_record(bytes, addrs));
    }

    /// In fd-table mode its existing sockets are marked (best effort: it may be gone).
    fn process_added(&mut self, _probes: &mut Probes, pid: u32) {
        if self.fd_table_only {
            for fd in procfs::socket_fds(pid) {
                let _ = self.maps.mark_socket(pid, fd);
            }
        }
    }
}
