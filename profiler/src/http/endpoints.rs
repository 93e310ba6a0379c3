//! Where requests went and how long connections lived: the endpoint of a connection (local
//! address served, or peer called), requests per endpoint, connection lifetimes and keep-alive
//! reuse, as the report shows them. Pure.

use std::net::{IpAddr, Ipv6Addr};

use hdrhistogram::Histogram;
use profiler_common::ConnAddrs;
use serde::Serialize;

use crate::{
    http::record::Role,
    util::hist::{Dist, new_hist, record_ns},
};

/// Where a connection's requests went: the local address a server answered on, or the peer an
/// outbound call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub local: (IpAddr, u16),
    pub peer: (IpAddr, u16),
}

impl Endpoint {
    pub fn from_addrs(a: &ConnAddrs) -> Self {
        let ip = |b: [u8; 16]| {
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        };
        Self {
            local: (ip(a.saddr), a.sport),
            peer: (ip(a.daddr), a.dport),
        }
    }

    /// The served address for a server, the called address for a client.
    pub(crate) fn addr(&self, role: Role) -> (IpAddr, u16) {
        match role {
            Role::Server => self.local,
            Role::Client => self.peer,
        }
    }
}

/// Requests per endpoint, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointRequests {
    pub role: Role,
    /// `ip:port` served (server) or called (client); `unknown` when the connection has no
    /// addresses (Unix sockets; no kernel BTF).
    pub endpoint: String,
    pub requests: u64,
    pub errors: u64,
}

/// Connections the session saw from accept/connect to close.
pub(crate) struct ConnLifetimes {
    pub(crate) closed: u64,
    pub(crate) requests: u64,
    pub(crate) duration: Histogram<u64>,
}

impl Default for ConnLifetimes {
    fn default() -> Self {
        Self {
            closed: 0,
            requests: 0,
            duration: new_hist(),
        }
    }
}

impl ConnLifetimes {
    pub(crate) fn record(&mut self, duration_ns: u64, requests: u64) {
        self.closed += 1;
        self.requests += requests;
        record_ns(&mut self.duration, duration_ns);
    }
}

/// Connection lifetimes for the report (`http.connections`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionsReport {
    /// Connections accepted or connected and closed while attached.
    pub closed: u64,
    /// Connections still tracked when the session ended.
    pub open_at_end: u64,
    /// Requests per closed connection (keep-alive reuse).
    pub requests_per_connection_mean: f64,
    /// accept/connect → close.
    pub duration: Option<Dist>,
}
