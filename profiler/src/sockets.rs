//! Socket events from the ring buffer → per-connection HTTP analysis → request statistics and the
//! per-request event log. Pure apart from the optional event-log writer: fed bytes, unit-tested
//! with synthetic events.

use std::{collections::HashMap, io::Write, mem::size_of};

use profiler_common::{SockEventHeader, sock_event};
use serde::Serialize;

use crate::{
    http::{CloseKind, Connection, Direction, Limits, RequestRecord, Role, Segment},
    requests::{EventLine, RequestStats, write_event},
};

/// Connections tracked at once; beyond this the least recently active are dropped (counted).
pub const MAX_CONNECTIONS: usize = 16_384;

/// One decoded ring-buffer record.
#[derive(Debug, Clone, Copy)]
pub struct SockEvent<'a> {
    pub header: SockEventHeader,
    pub data: &'a [u8],
}

/// Decodes a ring-buffer record; `None` for a record too short for its header. Never panics.
pub fn decode(bytes: &[u8]) -> Option<SockEvent<'_>> {
    let hdr_len = size_of::<SockEventHeader>();
    if bytes.len() < hdr_len {
        return None;
    }
    // SAFETY: the length was checked; SockEventHeader is plain integers (any bit pattern is
    // valid) and read_unaligned does not require alignment.
    let header = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<SockEventHeader>()) };
    let rest = &bytes[hdr_len..];
    let n = (header.captured as usize).min(rest.len());
    Some(SockEvent {
        header,
        data: &rest[..n],
    })
}

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
    /// Connections that turned out not to carry HTTP/1.x (TLS, HTTP/2, other protocols).
    pub not_http_connections: u64,
    /// Request/response heads longer than the analyzer buffers.
    pub head_overflow: u64,
    /// Pipelined requests beyond the per-connection limit.
    pub pending_overflow: u64,
    /// Lines that could not be written to the `--events` file.
    pub event_log_errors: u64,
}

struct ConnEntry {
    conn: Connection,
    last_ts_ns: u64,
    peer_closed: bool,
}

pub struct SocketAnalyzer {
    conns: HashMap<(u32, i32), ConnEntry>,
    limits: Limits,
    pub stats: RequestStats,
    event_log: Option<Box<dyn Write>>,
    /// Add to a CLOCK_MONOTONIC timestamp to get Unix time (ns).
    mono_to_unix_ns: i128,
    counters: SocketCounters,
    records: Vec<RequestRecord>,
    /// `PROFILER_DEBUG_SOCKETS=1`: print every socket event to stderr (development aid).
    debug: bool,
}

impl SocketAnalyzer {
    pub fn new(
        stats: RequestStats,
        event_log: Option<Box<dyn Write>>,
        mono_to_unix_ns: i128,
    ) -> Self {
        Self {
            conns: HashMap::new(),
            limits: Limits::default(),
            stats,
            event_log,
            mono_to_unix_ns,
            counters: SocketCounters::default(),
            records: Vec::new(),
            debug: std::env::var_os("PROFILER_DEBUG_SOCKETS").is_some_and(|v| v != "0"),
        }
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
                "sock: ts={} tgid={} tid={} fd={} kind={} ret={} fam={} {:?}",
                h.ts_ns,
                h.tgid,
                h.tid,
                h.fd,
                h.kind,
                h.ret,
                h.family,
                String::from_utf8_lossy(&ev.data[..ev.data.len().min(60)])
            );
        }
        let key = (h.tgid, h.fd);
        match h.kind {
            sock_event::ACCEPT | sock_event::CONNECT => {
                // A new connection on this fd: whatever we held for it belongs to an old one
                // whose close we did not see.
                self.close(key, h.ts_ns, CloseKind::Closed);
                self.entry(key, h.ts_ns);
            }
            sock_event::CLOSE => {
                let how = match self.conns.get(&key) {
                    Some(e) if e.peer_closed => CloseKind::PeerEof,
                    _ => CloseKind::Closed,
                };
                self.close(key, h.ts_ns, how);
            }
            sock_event::READ | sock_event::WRITE => {
                if h.ret < 0 {
                    // ECONNRESET / EPIPE: the kernel only reports those.
                    self.close(key, h.ts_ns, CloseKind::Reset);
                } else if h.ret == 0 {
                    if let Some(e) = self.conns.get_mut(&key) {
                        e.peer_closed = true;
                    }
                } else {
                    let dir = if h.kind == sock_event::READ {
                        Direction::Read
                    } else {
                        Direction::Write
                    };
                    let seg = Segment {
                        ts_ns: h.ts_ns,
                        dir,
                        len: h.ret as u64,
                        data: ev.data,
                    };
                    let mut records = std::mem::take(&mut self.records);
                    let entry = self.entry(key, h.ts_ns);
                    if entry.conn.is_http() {
                        entry.conn.on_segment(&seg, &mut records);
                    }
                    self.records = records;
                    self.flush_records(h.tgid);
                }
            }
            _ => self.counters.malformed_events += 1,
        }
    }

    fn entry(&mut self, key: (u32, i32), ts_ns: u64) -> &mut ConnEntry {
        if !self.conns.contains_key(&key) {
            if self.conns.len() >= MAX_CONNECTIONS {
                self.evict_oldest();
            }
            self.counters.connections_seen += 1;
        }
        let limits = self.limits;
        let e = self.conns.entry(key).or_insert_with(|| ConnEntry {
            conn: Connection::new(limits),
            last_ts_ns: ts_ns,
            peer_closed: false,
        });
        e.last_ts_ns = ts_ns;
        e
    }

    /// Drops the least recently active tenth of the connections (idle keep-alive connections
    /// whose close we missed, typically).
    fn evict_oldest(&mut self) {
        let mut ages: Vec<(u64, (u32, i32))> =
            self.conns.iter().map(|(k, e)| (e.last_ts_ns, *k)).collect();
        ages.sort_unstable();
        for (_, key) in ages.iter().take((MAX_CONNECTIONS / 10).max(1)) {
            if let Some(e) = self.conns.remove(key) {
                self.fold_drops(&e.conn);
                self.counters.connections_evicted += 1;
            }
        }
    }

    fn close(&mut self, key: (u32, i32), ts_ns: u64, how: CloseKind) {
        if let Some(mut e) = self.conns.remove(&key) {
            if e.conn.is_http() {
                e.conn.on_close(ts_ns, how, &mut self.records);
            }
            self.fold_drops(&e.conn);
            self.flush_records(key.0);
        }
    }

    fn fold_drops(&mut self, conn: &Connection) {
        if !conn.is_http() {
            self.counters.not_http_connections += 1;
        }
        self.counters.head_overflow += conn.drops.head_overflow;
        self.counters.pending_overflow += conn.drops.pending_overflow;
    }

    fn flush_records(&mut self, pid: u32) {
        for rec in self.records.drain(..) {
            self.stats.record(pid, &rec);
            if let Some(log) = self.event_log.as_mut() {
                let line = EventLine::new(pid, &rec, self.mono_to_unix_ns);
                if write_event(log, &line).is_err() {
                    self.counters.event_log_errors += 1;
                }
            }
        }
    }

    /// Requests whose first byte was seen and whose response has not completed, by role.
    pub fn in_flight(&self) -> (u64, u64) {
        let mut server = 0;
        let mut client = 0;
        for e in self.conns.values() {
            let n = e.conn.in_flight() as u64;
            match conn_role(&e.conn) {
                Some(Role::Client) => client += n,
                _ => server += n,
            }
        }
        (server, client)
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
        for e in self.conns.values() {
            c.head_overflow += e.conn.drops.head_overflow;
            c.pending_overflow += e.conn.drops.pending_overflow;
            if !e.conn.is_http() {
                c.not_http_connections += 1;
            }
        }
        c
    }

    /// Flushes the event log (at the end of the session).
    pub fn finish(&mut self) {
        self.update_gauges();
        if let Some(log) = self.event_log.as_mut()
            && log.flush().is_err()
        {
            self.counters.event_log_errors += 1;
        }
    }
}

// TEMP until Connection::role exists.
fn conn_role(_c: &Connection) -> Option<Role> {
    None
}
