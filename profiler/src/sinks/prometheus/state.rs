//! The exporter's state: per watched process, the series fed by the analyzers' observers
//! (histograms, counters) and the totals the session sets each interval; plus GPU, energy and
//! self-observability rows. Pure bookkeeping under one lock; `collector` encodes it.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use profiler_common::{CudaEvent, copy_direction, cuda_flag};
use prometheus_client::metrics::histogram::Histogram;

use crate::{
    cuda::{
        report::direction_name,
        symbols::{ApiClass, api_class, api_name},
    },
    http::record::{Outcome, RequestRecord, Role},
    sched::model::SchedTotals,
    sinks::prometheus::{
        catalogue::{HTTP_BUCKETS, LAUNCH_BUCKETS, SYNC_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS},
        labels::{OTHER, ProcIdentity},
    },
};

/// Limits on the number of series.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Processes with their own series; later ones are summed under pid="other".
    pub processes: usize,
    /// Kernel names with their own series per process; later ones count as kernel="other".
    pub kernels: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            processes: 256,
            kernels: 50,
        }
    }
}

/// Labels of one HTTP duration series, kept as values: the label strings are made when the
/// series is encoded, not for every request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpKey {
    pub method: Cow<'static, str>,
    pub status: Option<u16>,
    pub error_type: ErrorType,
}

/// The `error_type` label. Declared in the order of its label strings, so series sort as
/// their labels do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorType {
    /// Empty label: no error.
    None,
    /// A 4xx or 5xx status (as in the report: docs/http.md).
    Status(u16),
    ClosedBeforeResponse,
    ClosedMidResponse,
    Reset,
}

impl ErrorType {
    fn label(self) -> String {
        match self {
            ErrorType::None => String::new(),
            ErrorType::Status(s) => s.to_string(),
            ErrorType::ClosedBeforeResponse => "closed_before_response".into(),
            ErrorType::ClosedMidResponse => "closed_mid_response".into(),
            ErrorType::Reset => "reset".into(),
        }
    }
}

impl HttpKey {
    pub fn of(rec: &RequestRecord) -> Self {
        let error_type = match rec.outcome {
            Outcome::Complete => match rec.status {
                Some(s @ 400..=599) => ErrorType::Status(s),
                _ => ErrorType::None,
            },
            Outcome::ClosedBeforeResponse => ErrorType::ClosedBeforeResponse,
            Outcome::ClosedMidResponse => ErrorType::ClosedMidResponse,
            Outcome::Reset => ErrorType::Reset,
        };
        Self {
            method: rec.method.clone(),
            status: rec.status,
            error_type,
        }
    }

    /// The series' label pairs.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("http_request_method", self.method.to_string()),
            (
                "http_response_status_code",
                self.status.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("error_type", self.error_type.label()),
        ]
    }
}

/// What the session reads for a process each interval (cumulative since attach).
#[derive(Debug, Clone, Default)]
pub struct ProcTotals {
    pub sched: SchedTotals,
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub active_requests: Option<u64>,
    /// perf counters: (catalogue name, value); task clock in seconds.
    pub counters: Vec<(&'static str, f64)>,
    /// (GPU index, bytes) from NVML's process list.
    pub gpu_memory: Vec<(u32, u64)>,
    /// GPU energy share + attributed CPU energy since the process was first seen (joules).
    pub energy_j: Option<f64>,
}

fn histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

/// Every series of one process (or of the processes over the cap, summed).
#[derive(Debug)]
pub struct ProcSeries {
    pub identity: ProcIdentity,
    pub http_server: BTreeMap<HttpKey, Histogram>,
    pub http_client: BTreeMap<HttpKey, Histogram>,
    pub ttft: Option<Histogram>,
    pub tpot: Option<Histogram>,
    pub gen_ai_duration: Option<Histogram>,
    pub server_requests: u64,
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub kernels: BTreeMap<String, u64>,
    pub graph_launches: u64,
    pub api_calls: BTreeMap<&'static str, u64>,
    pub api_errors: BTreeMap<&'static str, u64>,
    pub launch_latency: BTreeMap<&'static str, Histogram>,
    pub sync_wait: BTreeMap<&'static str, Histogram>,
    pub memcpy_bytes: BTreeMap<&'static str, u64>,
    /// Latest totals; summed over processes for the "other" row.
    pub totals: ProcTotals,
    /// Totals of processes that left the "other" row, kept so its counters never go down.
    pub totals_by_pid: BTreeMap<u32, ProcTotals>,
}

impl ProcSeries {
    fn new(identity: ProcIdentity) -> Self {
        Self {
            identity,
            http_server: BTreeMap::new(),
            http_client: BTreeMap::new(),
            ttft: None,
            tpot: None,
            gen_ai_duration: None,
            server_requests: 0,
            output_tokens: 0,
            input_tokens: 0,
            kernels: BTreeMap::new(),
            graph_launches: 0,
            api_calls: BTreeMap::new(),
            api_errors: BTreeMap::new(),
            launch_latency: BTreeMap::new(),
            sync_wait: BTreeMap::new(),
            memcpy_bytes: BTreeMap::new(),
            totals: ProcTotals::default(),
            totals_by_pid: BTreeMap::new(),
        }
    }

    fn on_request(&mut self, rec: &RequestRecord) {
        let secs = rec.latency_ns() as f64 / 1e9;
        let side = match rec.role {
            Role::Server => &mut self.http_server,
            Role::Client => &mut self.http_client,
        };
        side.entry(HttpKey::of(rec))
            .or_insert_with(|| histogram(HTTP_BUCKETS))
            .observe(secs);
        if rec.role != Role::Server {
            return;
        }
        self.server_requests += 1;
        if rec.stream.is_some() {
            self.gen_ai_duration
                .get_or_insert_with(|| histogram(HTTP_BUCKETS))
                .observe(secs);
            if let Some(ttft) = rec.ttft_ns() {
                self.ttft
                    .get_or_insert_with(|| histogram(TTFT_BUCKETS))
                    .observe(ttft as f64 / 1e9);
            }
            if let Some(per_token) = rec.tpot_ns() {
                self.tpot
                    .get_or_insert_with(|| histogram(TPOT_BUCKETS))
                    .observe(per_token / 1e9);
            }
        }
        self.output_tokens += rec.output_tokens().unwrap_or(0);
        self.input_tokens += rec.prompt_tokens().unwrap_or(0);
    }

    fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>, max_kernels: usize) {
        let api = api_name(ev.api);
        *self.api_calls.entry(api).or_default() += 1;
        let timed = ev.flags & cuda_flag::TIMED != 0;
        let failed = timed && ev.ret != 0;
        if failed {
            *self.api_errors.entry(api).or_default() += 1;
            return;
        }
        let secs = ev.duration_ns as f64 / 1e9;
        match api_class(ev.api) {
            ApiClass::Launch => {
                let name = match kernel {
                    Some(k) if self.kernels.contains_key(k) => k,
                    Some(k) if self.kernels.len() < max_kernels => k,
                    _ => OTHER,
                };
                *self.kernels.entry(name.to_string()).or_default() += 1;
                if timed {
                    self.launch_latency
                        .entry(api)
                        .or_insert_with(|| histogram(LAUNCH_BUCKETS))
                        .observe(secs);
                }
            }
            ApiClass::GraphLaunch => self.graph_launches += 1,
            ApiClass::Copy => {
                let dir = match ev.direction {
                    d @ copy_direction::UNKNOWN..=copy_direction::PEER => d,
                    _ => copy_direction::UNKNOWN,
                };
                *self.memcpy_bytes.entry(direction_name(dir)).or_default() += ev.bytes;
            }
            ApiClass::Sync if timed => {
                self.sync_wait
                    .entry(api)
                    .or_insert_with(|| histogram(SYNC_BUCKETS))
                    .observe(secs);
            }
            _ => {}
        }
    }
}

/// One GPU's latest reading.
#[derive(Debug, Clone, Default)]
pub struct GpuRow {
    pub index: u32,
    pub uuid: String,
    /// (catalogue name, value) gauges present on this GPU.
    pub gauges: Vec<(&'static str, f64)>,
    pub energy_j: Option<f64>,
    /// (reason, active) for every reason NVML can report on this GPU.
    pub throttle: Vec<(&'static str, bool)>,
}

/// Self-observability of one probe family.
#[derive(Debug, Clone, Default)]
pub struct ProbeRow {
    pub probe: String,
    pub events_lost: Option<u64>,
    pub run_ns: Option<u64>,
    pub runs: Option<u64>,
}

#[derive(Debug, Default)]
pub struct State {
    pub caps: Caps,
    /// `node` label on every series, from NODE_NAME.
    pub node: Option<String>,
    pub procs: BTreeMap<u32, ProcSeries>,
    pub other: Option<ProcSeries>,
    /// Processes summed under "other" (pid → still alive).
    other_pids: HashMap<u32, ()>,
    pub gpus: Vec<GpuRow>,
    pub cpu_energy: Vec<(String, f64)>,
    pub probes: Vec<ProbeRow>,
    pub agent_cpu_s: f64,
    pub agent_rss_bytes: u64,
}

impl State {
    pub fn new(caps: Caps, node: Option<String>) -> Self {
        Self {
            caps,
            node,
            ..Self::default()
        }
    }

    /// Starts series for `pid`, or counts it under "other" past the process cap.
    pub fn add_process(&mut self, pid: u32, identity: ProcIdentity) {
        if self.procs.contains_key(&pid) || self.other_pids.contains_key(&pid) {
            return;
        }
        if self.procs.len() < self.caps.processes {
            self.procs.insert(pid, ProcSeries::new(identity));
        } else {
            self.other_pids.insert(pid, ());
            self.other
                .get_or_insert_with(|| ProcSeries::new(ProcIdentity::other()));
        }
    }

    /// Stops the series of an exited process (its counters in "other" are kept).
    pub fn remove_process(&mut self, pid: u32) {
        self.procs.remove(&pid);
        self.other_pids.remove(&pid);
    }

    /// Every process with series, its own or under "other".
    pub fn pids(&self) -> Vec<u32> {
        self.procs
            .keys()
            .chain(self.other_pids.keys())
            .copied()
            .collect()
    }

    pub fn watched(&self) -> usize {
        self.procs.len() + self.other_pids.len()
    }

    fn series(&mut self, pid: u32) -> Option<&mut ProcSeries> {
        if let Some(s) = self.procs.get_mut(&pid) {
            return Some(s);
        }
        if self.other_pids.contains_key(&pid) {
            return self.other.as_mut();
        }
        None
    }

    pub fn on_request(&mut self, pid: u32, rec: &RequestRecord) {
        if let Some(s) = self.series(pid) {
            s.on_request(rec);
        }
    }

    pub fn on_cuda_call(&mut self, ev: &CudaEvent, kernel: Option<&str>) {
        let max = self.caps.kernels;
        if let Some(s) = self.series(ev.tgid) {
            s.on_cuda_call(ev, kernel, max);
        }
    }

    /// Sets a process's totals for this interval.
    pub fn set_totals(&mut self, pid: u32, totals: ProcTotals) {
        if let Some(s) = self.procs.get_mut(&pid) {
            s.totals = totals;
        } else if self.other_pids.contains_key(&pid)
            && let Some(o) = self.other.as_mut()
        {
            o.totals_by_pid.insert(pid, totals);
            o.totals = sum_totals(o.totals_by_pid.values());
        }
    }
}

/// The "other" row: every total summed over the processes it ever held, so its counters never
/// go down (its gauges are sums too, exited processes included: an approximation).
fn sum_totals<'a>(all: impl Iterator<Item = &'a ProcTotals>) -> ProcTotals {
    let mut sum = ProcTotals::default();
    for t in all {
        sum.sched.add(&t.sched);
        sum.rss_bytes = Some(sum.rss_bytes.unwrap_or(0) + t.rss_bytes.unwrap_or(0));
        sum.threads = Some(sum.threads.unwrap_or(0) + t.threads.unwrap_or(0));
        for &(name, v) in &t.counters {
            match sum.counters.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 += v,
                None => sum.counters.push((name, v)),
            }
        }
    }
    sum
}
