//! The socket side of a session: attach the socket probes (seeding known sockets in fd-table
//! mode), feed their events to the HTTP analysis, summarise at the end.

use std::io::Write;

use anyhow::Result;
use profiler_common::NetConfig;

use crate::{
    cli::HttpArgs,
    probes::{Probes, SOCK_LENGTH_PROBES, SOCK_PROBES, SOCK_STATE_PROBES},
    procstat,
    report::HttpSection,
    requests::{RequestStats, SlaTargets},
    sockets::SocketAnalyzer,
    tracker::Tracker,
};

/// The socket side of a session: how sockets are classified and the analyzer of their traffic.
pub struct HttpCapture {
    pub analyzer: SocketAnalyzer,
    pub fd_table_only: bool,
    capture_bytes: u32,
}

impl HttpCapture {
    /// Attaches the socket probes (seeding the known sockets in fd-table mode) and sets up the
    /// analysis.
    pub fn start(
        probes: &mut Probes,
        tracker: &Tracker,
        net: &NetConfig,
        args: &HttpArgs,
        event_log: Option<Box<dyn Write>>,
        mono_to_unix_ns: i128,
    ) -> Result<Self> {
        let fd_table_only = net.fd_table_only != 0;
        if fd_table_only {
            for &pid in tracker.procs.keys() {
                for fd in procstat::socket_fds(pid) {
                    probes.mark_socket(pid, fd)?;
                }
            }
        } else {
            probes.attach(SOCK_LENGTH_PROBES)?;
        }
        probes.attach(SOCK_STATE_PROBES)?;
        probes.attach(SOCK_PROBES)?;
        let stats = RequestStats::new(SlaTargets {
            p99: args.sla_p99,
            ttft: args.sla_ttft,
        });
        Ok(Self {
            analyzer: SocketAnalyzer::new(stats, event_log, mono_to_unix_ns),
            fd_table_only,
            capture_bytes: net.capture_bytes,
        })
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
            events_lost: probes.sock_events_lost(),
            calls_evicted: probes.active_calls_evicted(),
            analysis: self.analyzer.counters(),
            endpoints: self.analyzer.endpoints(),
            connections: self.analyzer.connections(),
        }
    }

    /// Hands the queued socket events to the analyzer.
    pub fn drain(&mut self, probes: &mut Probes) {
        probes.drain_sock_events(|bytes, addrs| self.analyzer.on_record(bytes, addrs));
    }
}
