//! Encodes the exporter state on each scrape through prometheus-client: one descriptor per
//! catalogue metric that has series, then its series with the process (and `node`) labels.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, histogram::Histogram},
};

use crate::{
    sched::model::bucket_high_ns,
    sinks::prometheus::{
        catalogue::{Kind, METRICS, MetricDef},
        labels::ProcIdentity,
        state::{HttpKey, ProcSeries, State},
    },
};

type Labels = Vec<(&'static str, String)>;

enum Value<'a> {
    Counter(f64),
    Gauge(f64),
    Histogram(&'a Histogram),
    /// Sum, count, per-bucket (upper bound, count) including +Inf.
    RawHistogram(f64, u64, Vec<(f64, u64)>),
    Info,
}

#[derive(Debug, Clone)]
pub struct StateCollector(pub Arc<Mutex<State>>);

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // A poisoned lock means a panic elsewhere already; still serve what is there.
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for def in METRICS {
            let rows = rows(&state, def);
            if rows.is_empty() {
                continue;
            }
            let name = descriptor_name(def);
            let mut metric =
                encoder.encode_descriptor(&name, def.help, None, metric_type(def.kind))?;
            for (labels, value) in &rows {
                encode_row(&mut metric, labels, value)?;
            }
        }
        Ok(())
    }
}

/// prometheus-client adds `_total` to counters and `_info` to info metrics itself.
fn descriptor_name(def: &MetricDef) -> String {
    let name = match def.kind {
        Kind::Counter => def.name.strip_suffix("_total"),
        Kind::Info => def.name.strip_suffix("_info"),
        Kind::Gauge | Kind::Histogram => None,
    };
    name.unwrap_or(def.name).to_string()
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
        Kind::Info => MetricType::Info,
    }
}

fn encode_row(metric: &mut MetricEncoder<'_>, labels: &Labels, value: &Value<'_>) -> fmt::Result {
    if let Value::Info = value {
        return metric.encode_info(labels);
    }
    let mut series = metric.encode_family(labels)?;
    match value {
        Value::Counter(v) => series.encode_counter::<NoLabelSet, _, f64>(v, None),
        Value::Gauge(v) => series.encode_gauge(v),
        Value::Histogram(h) => h.encode(series),
        Value::RawHistogram(sum, count, buckets) => {
            series.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)
        }
        Value::Info => unreachable!("handled above"),
    }
}

fn proc_labels(state: &State, id: &ProcIdentity, extra: &[(&'static str, String)]) -> Labels {
    let mut labels: Labels = state.node.iter().map(|n| ("node", n.clone())).collect();
    labels.extend(id.pairs().iter().map(|&(k, v)| (k, v.to_string())));
    labels.extend(extra.iter().cloned());
    labels
}

fn global_labels(state: &State, extra: &[(&'static str, String)]) -> Labels {
    let mut labels: Labels = state.node.iter().map(|n| ("node", n.clone())).collect();
    labels.extend(extra.iter().cloned());
    labels
}

/// Every process row: the processes with their own series, then "other".
fn all_procs(state: &State) -> impl Iterator<Item = &ProcSeries> {
    state.procs.values().chain(state.other.iter())
}

/// Per-process rows of a metric with extra labels, from `f` returning (extra labels, value).
fn per_proc<'a>(
    state: &'a State,
    f: impl Fn(&'a ProcSeries) -> Vec<(Vec<(&'static str, String)>, Value<'a>)>,
) -> Vec<(Labels, Value<'a>)> {
    all_procs(state)
        .flat_map(|p| {
            f(p).into_iter()
                .map(|(extra, v)| (proc_labels(state, &p.identity, &extra), v))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn http_rows(
    side: &std::collections::BTreeMap<HttpKey, Histogram>,
) -> Vec<(Vec<(&'static str, String)>, Value<'_>)> {
    side.iter()
        .map(|(k, h)| (k.labels(), Value::Histogram(h)))
        .collect()
}

fn one<'a>(v: Option<Value<'a>>) -> Vec<(Vec<(&'static str, String)>, Value<'a>)> {
    v.map(|v| vec![(vec![], v)]).unwrap_or_default()
}

fn keyed_counters<'a, K: ToString>(
    label: &'static str,
    map: impl IntoIterator<Item = (K, &'a u64)>,
) -> Vec<(Vec<(&'static str, String)>, Value<'a>)> {
    map.into_iter()
        .map(|(k, &v)| (vec![(label, k.to_string())], Value::Counter(v as f64)))
        .collect()
}

/// The run-queue histogram from the kernel's log2 buckets: bucket i holds waits in
/// [2^i, 2^(i+1)) ns, so its upper bound is exact; the sum is the kernel's run-queue total.
fn runq_histogram(p: &ProcSeries) -> Option<Value<'static>> {
    let t = &p.totals.sched;
    let count: u64 = t.runq_hist.iter().sum();
    if count == 0 {
        return None;
    }
    let mut buckets: Vec<(f64, u64)> = t
        .runq_hist
        .iter()
        .enumerate()
        .map(|(i, &n)| (bucket_high_ns(i) as f64 / 1e9, n))
        .collect();
    buckets.push((f64::INFINITY, 0));
    Some(Value::RawHistogram(t.runq_ns as f64 / 1e9, count, buckets))
}

/// The series of metric `def` now (empty when it has none).
fn rows<'a>(state: &'a State, def: &MetricDef) -> Vec<(Labels, Value<'a>)> {
    request_rows(state, def)
        .or_else(|| process_rows(state, def))
        .or_else(|| cuda_rows(state, def))
        .or_else(|| hardware_rows(state, def))
        .or_else(|| self_rows(state, def))
        .unwrap_or_default()
}

/// HTTP and GenAI request series; `None` for other metrics.
fn request_rows<'a>(state: &'a State, def: &MetricDef) -> Option<Vec<(Labels, Value<'a>)>> {
    Some(match def.name {
        "http_server_request_duration_seconds" => per_proc(state, |p| http_rows(&p.http_server)),
        "http_client_request_duration_seconds" => per_proc(state, |p| http_rows(&p.http_client)),
        "http_server_active_requests" => per_proc(state, |p| {
            one(p.totals.active_requests.map(|n| Value::Gauge(n as f64)))
        }),
        "gen_ai_server_time_to_first_token_seconds" => {
            per_proc(state, |p| one(p.ttft.as_ref().map(Value::Histogram)))
        }
        "gen_ai_server_time_per_output_token_seconds" => {
            per_proc(state, |p| one(p.tpot.as_ref().map(Value::Histogram)))
        }
        "gen_ai_server_request_duration_seconds" => per_proc(state, |p| {
            one(p.gen_ai_duration.as_ref().map(Value::Histogram))
        }),
        "gen_ai_server_output_tokens_total" => per_proc(state, |p| {
            one((p.gen_ai_duration.is_some() || p.output_tokens > 0)
                .then_some(Value::Counter(p.output_tokens as f64)))
        }),
        "gen_ai_server_input_tokens_total" => per_proc(state, |p| {
            one((p.input_tokens > 0).then_some(Value::Counter(p.input_tokens as f64)))
        }),
        _ => return None,
    })
}

/// Scheduler and /proc series per process; `None` for other metrics.
fn process_rows<'a>(state: &'a State, def: &MetricDef) -> Option<Vec<(Labels, Value<'a>)>> {
    Some(match def.name {
        "profiler_sched_oncpu_seconds_total" => per_proc(state, |p| {
            one(Some(Value::Counter(p.totals.sched.oncpu_ns as f64 / 1e9)))
        }),
        "profiler_sched_offcpu_seconds_total" => per_proc(state, |p| {
            one(Some(Value::Counter(p.totals.sched.offcpu_ns as f64 / 1e9)))
        }),
        "profiler_sched_runqueue_latency_seconds" => per_proc(state, |p| one(runq_histogram(p))),
        "profiler_sched_context_switches_total" => per_proc(state, |p| {
            let t = &p.totals.sched;
            vec![
                (
                    vec![("kind", "voluntary".into())],
                    Value::Counter(t.voluntary_switches as f64),
                ),
                (
                    vec![("kind", "involuntary".into())],
                    Value::Counter(t.involuntary_switches as f64),
                ),
            ]
        }),
        "profiler_process_resident_memory_bytes" => per_proc(state, |p| {
            one(p.totals.rss_bytes.map(|b| Value::Gauge(b as f64)))
        }),
        "profiler_process_threads" => per_proc(state, |p| {
            one(p.totals.threads.map(|n| Value::Gauge(n as f64)))
        }),
        _ => return None,
    })
}

/// CUDA series per process; `None` for other metrics.
fn cuda_rows<'a>(state: &'a State, def: &MetricDef) -> Option<Vec<(Labels, Value<'a>)>> {
    Some(match def.name {
        "profiler_cuda_kernel_launches_total" => {
            per_proc(state, |p| keyed_counters("kernel", p.kernels.iter()))
        }
        "profiler_cuda_graph_launches_total" => per_proc(state, |p| {
            one((p.graph_launches > 0).then_some(Value::Counter(p.graph_launches as f64)))
        }),
        "profiler_cuda_api_calls_total" => {
            per_proc(state, |p| keyed_counters("api", p.api_calls.iter()))
        }
        "profiler_cuda_api_errors_total" => {
            per_proc(state, |p| keyed_counters("api", p.api_errors.iter()))
        }
        "profiler_cuda_launch_latency_seconds" => per_proc(state, |p| {
            p.launch_latency
                .iter()
                .map(|(api, h)| (vec![("api", api.to_string())], Value::Histogram(h)))
                .collect()
        }),
        "profiler_cuda_sync_wait_seconds" => per_proc(state, |p| {
            p.sync_wait
                .iter()
                .map(|(api, h)| (vec![("api", api.to_string())], Value::Histogram(h)))
                .collect()
        }),
        "profiler_cuda_memcpy_bytes_total" => per_proc(state, |p| {
            keyed_counters("direction", p.memcpy_bytes.iter())
        }),
        _ => return None,
    })
}

/// perf counters, GPU and energy series; `None` for other metrics.
fn hardware_rows<'a>(state: &'a State, def: &MetricDef) -> Option<Vec<(Labels, Value<'a>)>> {
    Some(match def.name {
        name if name.starts_with("profiler_cpu_") && name != "profiler_cpu_energy_joules_total" => {
            per_proc(state, |p| {
                one(p
                    .totals
                    .counters
                    .iter()
                    .find(|(n, _)| *n == def.name)
                    .map(|&(_, v)| Value::Counter(v)))
            })
        }
        "profiler_gpu_process_memory_bytes" => per_proc(state, |p| {
            p.totals
                .gpu_memory
                .iter()
                .map(|&(gpu, b)| (vec![("gpu", gpu.to_string())], Value::Gauge(b as f64)))
                .collect()
        }),
        "profiler_energy_per_request_joules" => per_proc(state, |p| {
            one(per(p.totals.energy_j, p.server_requests).map(Value::Gauge))
        }),
        "profiler_energy_per_token_joules" => per_proc(state, |p| {
            one(per(p.totals.energy_j, p.output_tokens).map(Value::Gauge))
        }),
        "profiler_gpu_energy_joules_total" => state
            .gpus
            .iter()
            .filter_map(|g| {
                let v = g.energy_j?;
                Some((gpu_labels(state, g.index, &g.uuid, None), Value::Counter(v)))
            })
            .collect(),
        "profiler_gpu_throttle_reasons" => state
            .gpus
            .iter()
            .flat_map(|g| {
                g.throttle.iter().map(|&(reason, on)| {
                    (
                        gpu_labels(state, g.index, &g.uuid, Some(reason)),
                        Value::Gauge(if on { 1.0 } else { 0.0 }),
                    )
                })
            })
            .collect(),
        name if name.starts_with("profiler_gpu_") => state
            .gpus
            .iter()
            .filter_map(|g| {
                let &(_, v) = g.gauges.iter().find(|(n, _)| *n == name)?;
                Some((gpu_labels(state, g.index, &g.uuid, None), Value::Gauge(v)))
            })
            .collect(),
        "profiler_cpu_energy_joules_total" => state
            .cpu_energy
            .iter()
            .map(|(domain, j)| {
                (
                    global_labels(state, &[("domain", domain.clone())]),
                    Value::Counter(*j),
                )
            })
            .collect(),
        _ => return None,
    })
}

/// The profiler's own series; `None` for other metrics.
fn self_rows<'a>(state: &'a State, def: &MetricDef) -> Option<Vec<(Labels, Value<'a>)>> {
    Some(match def.name {
        "profiler_events_lost_total" => probe_rows(state, |r| r.events_lost),
        "profiler_probe_run_seconds_total" => probe_rows(state, |r| r.run_ns)
            .into_iter()
            .map(|(l, v)| match v {
                Value::Counter(ns) => (l, Value::Counter(ns / 1e9)),
                other => (l, other),
            })
            .collect(),
        "profiler_probe_runs_total" => probe_rows(state, |r| r.runs),
        "profiler_agent_cpu_seconds_total" => {
            vec![(global_labels(state, &[]), Value::Counter(state.agent_cpu_s))]
        }
        "profiler_agent_resident_memory_bytes" => vec![(
            global_labels(state, &[]),
            Value::Gauge(state.agent_rss_bytes as f64),
        )],
        "profiler_watched_processes" => vec![(
            global_labels(state, &[]),
            Value::Gauge(state.watched() as f64),
        )],
        "profiler_build_info" => vec![(
            global_labels(state, &[("version", env!("CARGO_PKG_VERSION").to_string())]),
            Value::Info,
        )],
        _ => return None,
    })
}

fn per(energy_j: Option<f64>, n: u64) -> Option<f64> {
    energy_j.filter(|_| n > 0).map(|j| j / n as f64)
}

fn gpu_labels(state: &State, index: u32, uuid: &str, reason: Option<&str>) -> Labels {
    let mut extra = vec![("gpu", index.to_string()), ("uuid", uuid.to_string())];
    if let Some(r) = reason {
        extra.push(("reason", r.to_string()));
    }
    global_labels(state, &extra)
}

fn probe_rows<'a>(
    state: &'a State,
    f: impl Fn(&crate::sinks::prometheus::state::ProbeRow) -> Option<u64>,
) -> Vec<(Labels, Value<'a>)> {
    state
        .probes
        .iter()
        .filter_map(|r| {
            let v = f(r)?;
            Some((
                global_labels(state, &[("probe", r.probe.clone())]),
                Value::Counter(v as f64),
            ))
        })
        .collect()
}

#[cfg(test)]
#[path = "collector_tests.rs"]
mod tests;
