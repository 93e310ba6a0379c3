//! Prometheus export: the metric catalogue, the exporter state the analyzers and the session
//! feed, its encoding and the `/metrics` endpoint.

pub mod catalogue;
pub mod collector;
pub mod exposition;
pub mod feed;
pub mod labels;
pub mod server;
pub mod state;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs},
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::Result;
use profiler_common::CudaEvent;
use prometheus_client::registry::Registry;

use crate::{
    cuda::observer::CudaObserver,
    http::observer::RequestObserver,
    http::record::RequestRecord,
    sinks::prometheus::{
        collector::StateCollector,
        labels::ProcIdentity,
        server::MetricsServer,
        state::{Caps, State},
    },
};

/// The exporter: state shared between the session (writer) and the HTTP thread (reader).
#[derive(Clone)]
pub struct Exporter {
    state: Arc<Mutex<State>>,
}

impl Exporter {
    /// Starts serving on `addr`; `node` (from NODE_NAME) labels every series.
    pub fn start(
        addr: SocketAddr,
        caps: Caps,
        node: Option<String>,
    ) -> Result<(Self, MetricsServer)> {
        let exporter = Self::new(caps, node);
        let server = server::serve(addr, Arc::new(exporter.registry()))?;
        Ok((exporter, server))
    }

    pub fn new(caps: Caps, node: Option<String>) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::new(caps, node))),
        }
    }

    /// A registry whose one collector encodes this exporter's state.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StateCollector(Arc::clone(&self.state))));
        registry
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_process(&self, pid: u32) {
        let identity = ProcIdentity::read(pid);
        self.lock().add_process(pid, identity);
    }

    pub fn remove_process(&self, pid: u32) {
        self.lock().remove_process(pid);
    }

    /// Starts series for processes the tracker found since, stops those of exited ones.
    pub fn sync_processes(&self, tracker: &crate::sched::tracker::Tracker) {
        let known: std::collections::HashSet<u32> = self.lock().pids().into_iter().collect();
        for p in tracker.procs.values() {
            if p.exited && known.contains(&p.pid) {
                self.remove_process(p.pid);
            } else if !p.exited && !known.contains(&p.pid) {
                self.add_process(p.pid);
            }
        }
    }

    pub fn request_observer(&self) -> Box<dyn RequestObserver> {
        Box::new(self.clone())
    }

    pub fn cuda_observer(&self) -> Box<dyn CudaObserver> {
        Box::new(self.clone())
    }
}

impl RequestObserver for Exporter {
    fn on_request(&mut self, pid: u32, rec: &RequestRecord) {
        self.lock().on_request(pid, rec);
    }
}

impl CudaObserver for Exporter {
    fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>) {
        self.lock().on_cuda_call(ev, kernel);
    }
}

/// `--listen` values: a bare port means loopback only (an exporter on every interface is a
/// decision, not a default); otherwise `HOST:PORT` (`0.0.0.0:9464`, `[::]:9464`,
/// `localhost:9464`).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{e} (expected PORT or HOST:PORT, e.g. 9464 or 0.0.0.0:9464)"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(
            parse_listen("0.0.0.0:9464").unwrap().to_string(),
            "0.0.0.0:9464"
        );
        assert_eq!(parse_listen("[::]:80").unwrap().to_string(), "[::]:80");
        assert!(parse_listen("localhost:9464").unwrap().ip().is_loopback());
        assert!(parse_listen("nope").is_err());
        assert!(parse_listen("70000").is_err());
    }
}
