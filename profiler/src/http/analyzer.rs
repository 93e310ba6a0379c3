//! Socket events from the ring buffer → per-connection HTTP analysis → request statistics and
//! the observers (sinks) of every finished exchange. Pure: fed bytes, unit-tested with
//! synthetic events.

use std::{collections::BTreeMap, net::IpAddr};

use profiler_common::sock_event;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::http::endpoints::ConnLifetimes;
pub use crate::http::{
    decode::{SockEvent, decode},
    endpoints::{ConnectionsReport, Endpoint, EndpointRequests},
};
use crate::{
    http::observer::RequestObserver,
    http::stats::{RequestStats, is_error},
    http::{CloseKind, Connection, Direction, Limits, RequestRecord, Role, Segment},
    util::{hist::dist, num::ratio},
};

/// Connections tracked at once; beyond this the least recently active are dropped (counted).
pub const MAX_CONNECTIONS: usize = 16_384;

/// Distinct endpoints (local ports served, peers called) reported; the rest go to `other`.
pub const MAX_ENDPOINTS: usize = 64;

/// A connection's identity: the kernel socket when the socket tracepoints named it (shared by
/// dup'ed fds), else the (pid, fd) it was seen on (fd-table mode, accept before any transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ConnId {
    Sock(u32, u64),
    Fd(u32, i32),
}

impl ConnId {
    fn pid(self) -> u32 {
        match self {
            ConnId::Sock(pid, _) | ConnId::Fd(pid, _) => pid,
        }
    }
}

/// Bound on the fd → socket map (entries leave at close; this only guards against missed
/// closes).
const MAX_FD_SOCKS: usize = 4 * MAX_CONNECTIONS;

/// What the analyzer could not analyse or had to drop, for the report's health section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SocketCounters {
    /// Socket events received from the kernel.
    pub events: u64,
    /// Records too short to decode.
    pub malformed_events: u64,
    pub connections_seen: u64,
    /// Connections dropped because `MAX_CONNECTIONS` were tracked.
    pub connections_evicted: u64,
    /// Connections that turned out not to carry HTTP/1.x (TLS, HTTP/2, other protocols, an
    /// engine's internal channels), all kinds.
    pub not_http_connections: u64,
    /// …of which TCP connections.
    pub not_http_tcp: u64,
    /// …of which Unix-socket connections.
    pub not_http_unix: u64,
    /// Request/response heads longer than the analyzer buffers.
    pub head_overflow: u64,
    /// Pipelined requests beyond the per-connection limit.
    pub pending_overflow: u64,
    /// Segments skipped to find the next request boundary (connections joined mid-exchange,
    /// bytes that could not be framed).
    pub resync_skips: u64,
    /// Lines that could not be written to the `--events` file.
    pub event_log_errors: u64,
}

/// Counts a connection that did not carry HTTP/1.x, by kind.
fn count_not_http(c: &mut SocketCounters, family: u8) {
    const AF_UNIX: u8 = 1;
    c.not_http_connections += 1;
    if family == AF_UNIX {
        c.not_http_unix += 1;
    } else {
        c.not_http_tcp += 1;
    }
}

/// (is client, served/called address — `Some(None)` unknown, `None` the `other` bucket); the
/// value is (requests, errors).
type EndpointKey = (bool, Option<Option<(IpAddr, u16)>>);

struct ConnEntry {
    conn: Connection,
    /// When accept/connect returned its fd; `None` for connections older than the session
    /// (their lifetime is unknown).
    opened_ns: Option<u64>,
    requests: u64,
    last_ts_ns: u64,
    peer_closed: bool,
    /// Looked up once, at the first event that names the kernel socket.
    endpoint: Option<Endpoint>,
    /// Address family from the events (AF_UNIX, AF_INET, AF_INET6), 0 until one says.
    family: u8,
}

pub struct SocketAnalyzer {
    /// Fx hashing: the keys are small integers chosen by the kernel, not by a peer.
    conns: FxHashMap<ConnId, ConnEntry>,
    /// Which kernel socket each (pid, fd) was last seen carrying: dup'ed fds share one socket,
    /// so one connection's reads and writes may come through different fds.
    fd_socks: FxHashMap<(u32, i32), u64>,
    /// accept/connect times of fds that have not carried a transfer yet.
    opens: FxHashMap<(u32, i32), u64>,
    limits: Limits,
    pub stats: RequestStats,
    observers: Vec<Box<dyn RequestObserver>>,
    counters: SocketCounters,
    records: Vec<RequestRecord>,
    endpoints: BTreeMap<EndpointKey, (u64, u64)>,
    lifetimes: ConnLifetimes,
    /// `PROFILER_DEBUG_SOCKETS=1`: print every socket event to stderr (development aid).
    debug: bool,
    /// False until the session's window opens (`open_window`): exchanges finished before it
    /// are analysed (connection state) but reach no observer, and the figures are reset then.
    window_open: bool,
}

impl SocketAnalyzer {
    pub fn new(stats: RequestStats) -> Self {
        Self {
            conns: FxHashMap::default(),
            fd_socks: FxHashMap::default(),
            opens: FxHashMap::default(),
            limits: Limits::default(),
            stats,
            observers: Vec::new(),
            counters: SocketCounters::default(),
            records: Vec::new(),
            endpoints: BTreeMap::new(),
            lifetimes: ConnLifetimes::default(),
            debug: std::env::var_os("PROFILER_DEBUG_SOCKETS").is_some_and(|v| v != "0"),
            window_open: true,
        }
    }

    /// Holds the figures and observers back until `open_window` (a session attaches its probes
    /// one after the other and opens its window when all are in).
    pub fn wait_for_window(&mut self) {
        self.window_open = false;
    }

    /// The session's window opens: what was counted before (during attach) is dropped, the
    /// connections' state is kept.
    pub fn open_window(&mut self) {
        self.window_open = true;
        self.stats = RequestStats::new(self.stats.sla());
        self.counters = SocketCounters::default();
        self.endpoints.clear();
        self.lifetimes = ConnLifetimes::default();
    }

    /// Adds an observer that sees every finished exchange from now on.
    pub fn observe(&mut self, observer: Box<dyn RequestObserver>) {
        self.observers.push(observer);
    }

    /// Feeds one raw ring-buffer record.
    pub fn on_record(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Some(ev) => self.on_event(&ev),
            None => self.counters.malformed_events += 1,
        }
    }

    pub fn on_event(&mut self, ev: &SockEvent<'_>) {
        self.counters.events += 1;
        let h = &ev.header;
        if self.debug {
            eprintln!(
                "sock: ts={} tgid={} tid={} fd={} sk={:x} kind={} ret={} fam={} {:?}",
                h.ts_ns,
                h.tgid,
                h.tid,
                h.fd,
                h.sk,
                h.kind,
                h.ret,
                h.family,
                String::from_utf8_lossy(&ev.data[..ev.data.len().min(60)])
            );
        }
        let fd_key = (h.tgid, h.fd);
        match h.kind {
            sock_event::ACCEPT | sock_event::CONNECT => {
                // A new connection on this fd: whatever we held for it belongs to an old one
                // whose close we did not see. Not so on the socket layer (the event names the
                // new socket): closes come by socket there, and the old socket's address may
                // already carry another live connection on another fd.
                if let Some(sk) = self.fd_socks.remove(&fd_key)
                    && h.sk == 0
                {
                    self.close(ConnId::Sock(h.tgid, sk), h.ts_ns, CloseKind::Closed);
                }
                self.close(ConnId::Fd(h.tgid, h.fd), h.ts_ns, CloseKind::Closed);
                // The connection exists for us from its first transfer: a connect() that never
                // carries a stream transfer (a UDP socket resolving a name) leaves nothing.
                if self.opens.len() >= MAX_FD_SOCKS {
                    self.opens.clear();
                }
                self.opens.insert(fd_key, h.ts_ns);
            }
            sock_event::CLOSE => {
                self.opens.remove(&fd_key);
                let id = match self.fd_socks.remove(&fd_key) {
                    // The socket layer reports closes by socket (a TCP state change), not fd.
                    _ if h.sk != 0 => ConnId::Sock(h.tgid, h.sk),
                    Some(sk) => ConnId::Sock(h.tgid, sk),
                    None => ConnId::Fd(h.tgid, h.fd),
                };
                let how = match self.conns.get(&id) {
                    Some(e) if e.peer_closed => CloseKind::PeerEof,
                    _ => CloseKind::Closed,
                };
                self.close(id, h.ts_ns, how);
            }
            sock_event::READ | sock_event::WRITE => {
                let id = self.resolve(h.tgid, h.fd, h.sk, h.ts_ns);
                if h.ret < 0 {
                    // ECONNRESET / EPIPE: the kernel only reports those.
                    self.close(id, h.ts_ns, CloseKind::Reset);
                } else if h.ret == 0 {
                    if let Some(e) = self.conns.get_mut(&id) {
                        e.peer_closed = true;
                    }
                } else {
                    self.on_transfer(ev, id);
                }
            }
            _ => self.counters.malformed_events += 1,
        }
    }

    /// Bytes transferred on connection `id`: its segments to the connection's analysis.
    fn on_transfer(&mut self, ev: &SockEvent<'_>, id: ConnId) {
        let h = &ev.header;
        let dir = if h.kind == sock_event::READ {
            Direction::Read
        } else {
            Direction::Write
        };
        // The tail (the transfer's last bytes, captured apart) follows the unseen middle as a
        // segment of its own, at the same time.
        let tail_len = ev.tail.len() as u64;
        let lead_len = (h.ret as u64).saturating_sub(tail_len);
        let tail = (tail_len > 0 && ev.data.len() as u64 <= lead_len).then_some(Segment {
            ts_ns: h.ts_ns,
            dir,
            len: tail_len,
            data: ev.tail,
        });
        let seg = Segment {
            ts_ns: h.ts_ns,
            dir,
            len: if tail.is_some() {
                lead_len
            } else {
                h.ret as u64
            },
            data: ev.data,
        };
        let mut records = std::mem::take(&mut self.records);
        let opened = if self.opens.is_empty() {
            None
        } else {
            self.opens.remove(&(h.tgid, h.fd))
        };
        let entry = self.entry(id, h.ts_ns);
        if let Some(t) = opened {
            entry.opened_ns = Some(entry.opened_ns.map_or(t, |o| o.min(t)));
        }
        if entry.family == 0 {
            entry.family = h.family;
        }
        if entry.endpoint.is_none()
            && let Some(addrs) = ev.addrs.filter(|a| a.family != 0)
        {
            entry.endpoint = Some(Endpoint::from_addrs(&addrs));
        }
        for seg in std::iter::once(&seg).chain(tail.as_ref()) {
            if entry.conn.is_http() {
                entry.conn.on_segment(seg, &mut records);
            }
        }
        // Counted here, while the entry is at hand: no second lookup per event.
        entry.requests += records.len() as u64;
        let endpoint = entry.endpoint;
        self.records = records;
        self.flush_records_to(id.pid(), endpoint);
    }

    /// The connection a transfer on (pid, fd) belongs to. The first transfer that names the
    /// kernel socket moves what was held under the fd (accepted, nothing sent yet) to the socket.
    fn resolve(&mut self, pid: u32, fd: i32, sk: u64, ts_ns: u64) -> ConnId {
        if sk == 0 {
            return match self.fd_socks.get(&(pid, fd)) {
                Some(&sk) => ConnId::Sock(pid, sk),
                None => ConnId::Fd(pid, fd),
            };
        }
        let id = ConnId::Sock(pid, sk);
        if self.fd_socks.get(&(pid, fd)) != Some(&sk) {
            if self.fd_socks.len() >= MAX_FD_SOCKS {
                self.fd_socks.clear();
            }
            self.fd_socks.insert((pid, fd), sk);
            if let Some(held) = self.conns.remove(&ConnId::Fd(pid, fd)) {
                match self.conns.get_mut(&id) {
                    // Traffic already came through a dup of this fd: keep that state, and the
                    // accept time the fd entry knew.
                    Some(live) => {
                        live.opened_ns = live.opened_ns.or(held.opened_ns);
                        live.last_ts_ns = live.last_ts_ns.max(ts_ns);
                    }
                    None => {
                        self.conns.insert(id, held);
                    }
                }
            }
        }
        id
    }

    fn entry(&mut self, key: ConnId, ts_ns: u64) -> &mut ConnEntry {
        // One hash lookup per event; the second only when the table is full.
        if self.conns.len() >= MAX_CONNECTIONS && !self.conns.contains_key(&key) {
            self.evict_oldest();
        }
        let limits = self.limits;
        let seen = &mut self.counters.connections_seen;
        let e = self.conns.entry(key).or_insert_with(|| {
            *seen += 1;
            ConnEntry {
                conn: Connection::new(limits),
                opened_ns: None,
                requests: 0,
                last_ts_ns: ts_ns,
                peer_closed: false,
                endpoint: None,
                family: 0,
            }
        });
        e.last_ts_ns = ts_ns;
        e
    }

    /// Drops the least recently active tenth of the connections (idle keep-alive connections
    /// whose close we missed, typically).
    fn evict_oldest(&mut self) {
        let mut ages: Vec<(u64, ConnId)> =
            self.conns.iter().map(|(k, e)| (e.last_ts_ns, *k)).collect();
        ages.sort_unstable();
        for (_, key) in ages.iter().take((MAX_CONNECTIONS / 10).max(1)) {
            if let Some(e) = self.conns.remove(key) {
                self.fold_drops(&e);
                self.counters.connections_evicted += 1;
            }
        }
    }

    fn close(&mut self, key: ConnId, ts_ns: u64, how: CloseKind) {
        if let Some(mut e) = self.conns.remove(&key) {
            if e.conn.is_http() {
                e.conn.on_close(ts_ns, how, &mut self.records);
            }
            if self.debug && !self.records.is_empty() {
                eprintln!(
                    "close: {key:?} at {ts_ns} ({how:?}) finished {} exchange(s)",
                    self.records.len()
                );
            }
            self.fold_drops(&e);
            let requests = e.requests + self.records.len() as u64;
            self.flush_records_to(key.pid(), e.endpoint);
            if let Some(opened) = e.opened_ns {
                self.lifetimes
                    .record(ts_ns.saturating_sub(opened), requests);
            }
        }
    }

    fn fold_drops(&mut self, e: &ConnEntry) {
        let conn = &e.conn;
        if !conn.is_http() {
            count_not_http(&mut self.counters, e.family);
        }
        self.counters.head_overflow += conn.drops.head_overflow;
        self.counters.pending_overflow += conn.drops.pending_overflow;
        self.counters.resync_skips += conn.drops.desync;
    }

    fn flush_records_to(&mut self, pid: u32, endpoint: Option<Endpoint>) {
        for rec in self.records.drain(..) {
            self.stats.record(pid, &rec);
            if !self.window_open {
                continue;
            }
            for o in &mut self.observers {
                o.on_request(pid, &rec);
            }
            let client = rec.role == Role::Client;
            let addr = endpoint.map(|e| e.addr(rec.role));
            let key = if self.endpoints.len() < MAX_ENDPOINTS
                || self.endpoints.contains_key(&(client, Some(addr)))
            {
                (client, Some(addr))
            } else {
                (client, None)
            };
            let slot = self.endpoints.entry(key).or_default();
            slot.0 += 1;
            slot.1 += u64::from(is_error(&rec));
        }
    }

    /// Requests whose first byte was seen and whose response has not completed, by role.
    pub fn in_flight(&self) -> (u64, u64) {
        let mut server = 0;
        let mut client = 0;
        for e in self.conns.values() {
            let n = e.conn.in_flight() as u64;
            match e.conn.role() {
                Some(Role::Client) => client += n,
                _ => server += n,
            }
        }
        (server, client)
    }

    /// In-flight server requests per process.
    pub fn server_in_flight_by_pid(&self) -> BTreeMap<u32, u64> {
        let mut by_pid = BTreeMap::new();
        for (id, e) in &self.conns {
            if e.conn.role() != Some(Role::Client) {
                *by_pid.entry(id.pid()).or_insert(0) += e.conn.in_flight() as u64;
            }
        }
        by_pid
    }

    /// Publishes the in-flight gauges to the statistics.
    pub fn update_gauges(&mut self) {
        let (server, client) = self.in_flight();
        self.stats.set_in_flight(Role::Server, server);
        self.stats.set_in_flight(Role::Client, client);
    }

    /// Counters so far, including the drops of connections still open.
    pub fn counters(&self) -> SocketCounters {
        let mut c = self.counters;
        c.event_log_errors = self.observers.iter().map(|o| o.write_errors()).sum();
        for e in self.conns.values() {
            c.head_overflow += e.conn.drops.head_overflow;
            c.pending_overflow += e.conn.drops.pending_overflow;
            c.resync_skips += e.conn.drops.desync;
            if !e.conn.is_http() {
                count_not_http(&mut c, e.family);
            }
        }
        c
    }

    /// Requests per endpoint (local address served, or peer called).
    pub fn endpoints(&self) -> Vec<EndpointRequests> {
        self.endpoints
            .iter()
            .map(|(&(client, addr), &(requests, errors))| EndpointRequests {
                role: if client { Role::Client } else { Role::Server },
                endpoint: match addr {
                    None => "other".into(),
                    Some(None) => "unknown".into(),
                    Some(Some((IpAddr::V4(ip), port))) => format!("{ip}:{port}"),
                    Some(Some((IpAddr::V6(ip), port))) => format!("[{ip}]:{port}"),
                },
                requests,
                errors,
            })
            .collect()
    }

    /// Lifetimes of the connections opened and closed during the session.
    pub fn connections(&self) -> ConnectionsReport {
        ConnectionsReport {
            closed: self.lifetimes.closed,
            open_at_end: self.conns.len() as u64,
            requests_per_connection_mean: ratio(
                self.lifetimes.requests as f64,
                self.lifetimes.closed as f64,
            )
            .unwrap_or(0.0),
            duration: dist(&self.lifetimes.duration),
        }
    }

    /// Ends the session for the observers (the event log flushes its file).
    /// Process `pid` is gone: its connections end where their last transfer did, each
    /// unfinished exchange as the error its state says (closed before or mid response). On the
    /// syscall paths nothing else would end them: the kernel closes a dead process's sockets
    /// without a close() syscall.
    pub fn process_gone(&mut self, pid: u32) {
        let ids: Vec<(ConnId, u64)> = self
            .conns
            .iter()
            .filter(|(id, _)| id.pid() == pid)
            .map(|(id, e)| (*id, e.last_ts_ns))
            .collect();
        for (id, last_ts_ns) in ids {
            self.close(id, last_ts_ns, CloseKind::Closed);
        }
        self.fd_socks.retain(|(p, _), _| *p != pid);
        self.opens.retain(|(p, _), _| *p != pid);
    }

    pub fn finish(&mut self) {
        self.update_gauges();
        for o in &mut self.observers {
            o.finish();
        }
    }
}

#[cfg(test)]
#[path = "analyzer_tests.rs"]
mod tests;
