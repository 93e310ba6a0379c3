//! The shipped deployment (deploy/): the Prometheus rules pass `promtool check rules` and their
//! unit tests, every metric the rules and the Grafana dashboard query is one the profiler
//! exports (`profiler metrics --names`) or a recording rule, the dashboard's queries are valid
//! PromQL (the Kubernetes manifests: deploy_kubernetes.rs; the PromQL name extraction:
//! tests/src/deploy.rs).
//!
//! Needs `promtool` (Debian's prometheus package, installed by `cargo xtask setup`) and the
//! built profiler binary; no root.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::{Command, Output},
};

use profiler_tests::{
    deploy::{is_ident, is_ident_start, metric_names, read, repo},
    profiler_bin, temp_path,
};
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// promtool

/// promtool from PATH; a missing one fails the test (setup installs it), it never skips.
fn promtool() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not on PATH: run `cargo xtask setup` (it installs Debian's \
                 prometheus package, which provides /usr/bin/promtool)"
            )
        })
}

fn run_promtool(args: &[&str]) -> Output {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("starting promtool {args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("promtool {}:\n{text}", args.join(" "));
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    out
}

#[test]
fn rules_pass_promtool_check() {
    let out = run_promtool(&["check", "rules", "deploy/prometheus/rules.yml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SUCCESS"),
        "promtool check rules did not report SUCCESS: {stdout}"
    );
}

#[test]
fn rules_unit_tests_pass() {
    let out = run_promtool(&["test", "rules", "deploy/prometheus/rules_test.yml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SUCCESS") && !stdout.contains("FAILED"),
        "promtool test rules: {stdout}"
    );
}

/// The series names `profiler metrics --names` prints (histograms as `_bucket`, `_sum`,
/// `_count`; counters with `_total`).
fn exported_series() -> BTreeSet<String> {
    let bin = profiler_bin();
    assert!(
        bin.exists(),
        "profiler binary not found at {}: build it with `cargo build` (cargo xtask test builds it)",
        bin.display()
    );
    let out = Command::new(&bin)
        .args(["metrics", "--names"])
        .output()
        .unwrap_or_else(|e| panic!("starting {} metrics --names: {e}", bin.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`profiler metrics --names` failed ({}): {stderr}",
        out.status
    );
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for name in &names {
        assert!(
            name.bytes().next().is_some_and(is_ident_start) && name.bytes().all(is_ident),
            "`profiler metrics --names` printed {name:?}, not a metric name"
        );
    }
    for expected in [
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_count",
        "profiler_events_lost_total",
        "profiler_gpu_memory_used_bytes",
    ] {
        assert!(
            names.contains(expected),
            "`profiler metrics --names` lacks {expected}: {names:?}"
        );
    }
    names
}

/// Series Prometheus itself adds to every scrape target.
const PROMETHEUS_SERIES: &[&str] = &["up"];

// ---------------------------------------------------------------------------------------------
// rules.yml

struct Rule {
    /// `record` or `alert` name.
    name: String,
    alert: bool,
    expr: String,
    raw: Yaml,
}

fn rules() -> Vec<Rule> {
    let doc: Yaml = serde_norway::from_str(&read("deploy/prometheus/rules.yml"))
        .expect("deploy/prometheus/rules.yml is not YAML");
    let groups = doc["groups"]
        .as_sequence()
        .expect("rules.yml: no `groups` list");
    let mut rules = Vec::new();
    for group in groups {
        for rule in group["rules"]
            .as_sequence()
            .unwrap_or_else(|| panic!("rules.yml: group without rules: {group:?}"))
        {
            let (name, alert) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(r), None) => (r, false),
                (None, Some(a)) => (a, true),
                _ => panic!("rules.yml: a rule needs exactly one of record/alert: {rule:?}"),
            };
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("rules.yml: {name} has no expr"));
            rules.push(Rule {
                name: name.to_string(),
                alert,
                expr: expr.to_string(),
                raw: rule.clone(),
            });
        }
    }
    assert!(!rules.is_empty(), "rules.yml has no rules");
    rules
}

#[test]
fn alerts_have_for_severity_and_annotations() {
    let rules = rules();
    let alerts: Vec<&Rule> = rules.iter().filter(|r| r.alert).collect();
    assert!(
        alerts.len() >= 8,
        "only {} alerts in rules.yml",
        alerts.len()
    );
    let docs = read("docs/deploy.md");
    for a in alerts {
        let r = &a.raw;
        assert!(
            r["for"].as_str().is_some_and(|f| !f.is_empty()),
            "{}: no `for:` duration",
            a.name
        );
        let severity = r["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{}: severity {severity:?}, want critical, warning or info",
            a.name
        );
        for key in ["summary", "description"] {
            assert!(
                r["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{}: no {key} annotation",
                a.name
            );
        }
        assert!(
            docs.contains(&a.name),
            "docs/deploy.md does not explain alert {}",
            a.name
        );
    }
}

#[test]
fn main_alerts_are_unit_tested_firing_and_quiet() {
    let doc: Yaml = serde_norway::from_str(&read("deploy/prometheus/rules_test.yml"))
        .expect("rules_test.yml is not YAML");
    // Per alert: (checks where it fires, checks where it must stay quiet).
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for test in doc["tests"]
        .as_sequence()
        .expect("rules_test.yml: no tests")
    {
        for check in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_string();
            let entry = seen.entry(name).or_default();
            // An alert fires for the unhealthy series only when the same test also feeds healthy
            // ones: count the firing checks whose inputs outnumber the expected alerts.
            let expected = check["exp_alerts"].as_sequence().map_or(0, Vec::len);
            let inputs = test["input_series"].as_sequence().map_or(0, Vec::len);
            if expected == 0 {
                entry.1 += 1;
            } else if inputs > expected {
                entry.0 += 1;
            }
        }
    }
    for alert in [
        "ProfilerHttpErrorRatioHigh",
        "ProfilerHttpLatencyP99High",
        "ProfilerEventsLost",
        "ProfilerGpuMemoryPressure",
    ] {
        let (firing, quiet) = seen.get(alert).copied().unwrap_or_default();
        assert!(
            firing > 0 && quiet > 0,
            "rules_test.yml must show {alert} firing (next to healthy series) and quiet before \
             its `for:`; firing checks {firing}, quiet checks {quiet}"
        );
    }
}

/// The reason names of `profiler/src/gpu/sample.rs`'s `REASONS` table, with whether each is
/// a throttle.
fn profiler_clock_event_reasons() -> BTreeMap<String, bool> {
    let src = read("profiler/src/gpu/sample.rs");
    let table = src
        .split_once("pub const REASONS")
        .expect("REASONS table not found in profiler/src/gpu/sample.rs")
        .1;
    let table = &table[..table.find("];").expect("end of REASONS")];
    let reasons: BTreeMap<String, bool> = table
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix('(')?.strip_suffix("),")?;
            let mut parts = l.split(',').map(str::trim);
            let _bit = parts.next()?;
            let name = parts.next()?.trim_matches('"').to_string();
            let throttle = parts.next()? == "true";
            Some((name, throttle))
        })
        .collect();
    assert!(
        reasons.len() >= 8,
        "parsed only {reasons:?} from REASONS in profiler/src/gpu/sample.rs"
    );
    reasons
}

#[test]
fn throttle_alerts_cover_exactly_the_profilers_throttle_reasons() {
    let reasons = profiler_clock_event_reasons();
    let throttles: BTreeSet<&str> = reasons
        .iter()
        .filter(|(_, t)| **t)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut alerted = BTreeSet::new();
    for rule in rules()
        .into_iter()
        .filter(|r| r.expr.contains("profiler_gpu_throttle_reasons"))
    {
        let (_, rest) = rule
            .expr
            .split_once(r#"reason=~""#)
            .unwrap_or_else(|| panic!("{}: no reason=~\"...\" matcher", rule.name));
        let regex = &rest[..rest.find('"').expect("end of the reason regex")];
        for name in regex.split('|') {
            assert!(
                reasons.contains_key(name),
                "{}: reason {name:?} is not one the profiler exports ({:?})",
                rule.name,
                reasons.keys()
            );
            alerted.insert(name.to_string());
        }
    }
    let alerted: BTreeSet<&str> = alerted.iter().map(String::as_str).collect();
    assert_eq!(
        alerted, throttles,
        "the throttle alerts must cover exactly the reasons the profiler counts as throttles"
    );
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/profiler-dashboard.json"))
        .expect("deploy/grafana/profiler-dashboard.json is not JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// (where, expr) of every panel target.
fn panel_exprs(dash: &Json) -> Vec<(String, String)> {
    panels(dash)
        .into_iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            p["targets"].as_array().into_iter().flatten().map(move |t| {
                (
                    format!(
                        "panel {:?} target {}",
                        p["title"].as_str().unwrap_or("?"),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    t["expr"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

/// The query variables: name → query.
fn variable_queries(dash: &Json) -> BTreeMap<String, String> {
    dash["templating"]["list"]
        .as_array()
        .expect("dashboard: no templating list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                q.to_string(),
            )
        })
        .collect()
}

/// The series selector of a `label_values(selector, label)` variable query.
fn label_values_selector(query: &str) -> &str {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(selector, label)"));
    inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("variable query {query:?} names no selector"))
        .0
        .trim()
}

const DASHBOARD_VARIABLES: &[&str] = &["node", "namespace", "pod", "comm", "pid"];

#[test]
fn dashboard_is_well_formed() {
    let dash = dashboard();
    let schema = dash["schemaVersion"].as_u64().unwrap_or(0);
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("no `datasource` template variable");
    assert_eq!(ds["type"], "datasource", "datasource variable type");
    assert_eq!(ds["query"], "prometheus", "datasource variable plugin");
    let queries = variable_queries(&dash);
    for name in DASHBOARD_VARIABLES {
        let q = queries
            .get(*name)
            .unwrap_or_else(|| panic!("no query variable `{name}`"));
        assert!(
            q.starts_with("label_values(") && q.trim_end().ends_with(&format!(", {name})")),
            "variable {name}: query {q:?} is not label_values(..., {name})"
        );
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            v["datasource"]["uid"], "${datasource}",
            "variable {} datasource",
            v["name"]
        );
    }
    let defined: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();

    let all = panels(&dash);
    let mut ids = BTreeSet::new();
    for p in &all {
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel without id: {}", p["title"]));
        assert!(ids.insert(id), "panel id {id} used twice");
    }
    let rows: Vec<&str> = all
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for want in [
        "Requests",
        "Streaming",
        "CUDA",
        "CPU",
        "GPU",
        "Energy",
        "Profiler health",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(want)),
            "no row titled {want}…; rows: {rows:?}"
        );
    }
    let graphs: Vec<&&Json> = all.iter().filter(|p| p["type"] != "row").collect();
    assert!(graphs.len() >= 30, "only {} panels", graphs.len());
    for p in graphs {
        let title = &p["title"];
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {title} datasource"
        );
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel {title} has no targets"));
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "panel {title} target datasource"
            );
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "panel {title}: empty expr");
            for var in grafana_variables(expr) {
                assert!(
                    var.starts_with("__") || defined.contains(var.as_str()),
                    "panel {title}: ${var} is not a dashboard variable"
                );
            }
        }
    }
}

/// Names of the Grafana variables (`$name`, `${name}`) an expression uses.
fn grafana_variables(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// An expression with Grafana's variables replaced as Prometheus would see them.
fn substitute_grafana_variables(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = rest.trim_start_matches('{');
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let name = &body[..len];
        out.push_str(if name.starts_with("__") { "5m" } else { ".*" });
        rest = &body[len..];
        if braced {
            rest = rest.strip_prefix('}').unwrap_or(rest);
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let dash = dashboard();
    let mut exprs = panel_exprs(&dash);
    for (name, q) in variable_queries(&dash) {
        exprs.push((
            format!("variable {name}"),
            label_values_selector(&q).to_string(),
        ));
    }
    // promtool parses every expression of a rule file: one recording rule per query.
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().enumerate() {
        let expr = substitute_grafana_variables(expr);
        file.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).expect("json string")
        ));
    }
    let path = temp_path("dashboard-rules.yml");
    std::fs::write(&path, &file).expect("write the dashboard's queries as rules");
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("start promtool");
    let _ = std::fs::remove_file(&path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: String = exprs
        .iter()
        .enumerate()
        .map(|(i, (at, e))| format!("  dashboard:query_{i} = {at}: {e}\n"))
        .collect();
    assert!(
        out.status.success(),
        "promtool rejects dashboard queries:\n{text}\nqueries:\n{listing}"
    );
    println!("{} dashboard queries parse: {}", exprs.len(), text.trim());
}

// ---------------------------------------------------------------------------------------------
// Names: rules and dashboard against the profiler's catalogue

#[test]
fn rules_and_dashboard_query_only_exported_metrics() {
    let exported = exported_series();
    let rules = rules();
    let recorded: BTreeSet<&str> = rules
        .iter()
        .filter(|r| !r.alert)
        .map(|r| r.name.as_str())
        .collect();
    let known = |name: &str| {
        exported.contains(name) || recorded.contains(name) || PROMETHEUS_SERIES.contains(&name)
    };

    let dash = dashboard();
    let mut queries: Vec<(String, String)> = rules
        .iter()
        .map(|r| (format!("rules.yml {}", r.name), r.expr.clone()))
        .collect();
    queries.extend(
        panel_exprs(&dash)
            .into_iter()
            .map(|(at, e)| (format!("dashboard {at}"), e)),
    );
    for (name, q) in variable_queries(&dash) {
        queries.push((
            format!("dashboard variable {name}"),
            label_values_selector(&q).to_string(),
        ));
    }

    let mut unknown = Vec::new();
    let mut referenced = BTreeSet::new();
    for (at, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{at}: no metric name found in {expr:?}");
        for name in names {
            if !known(&name) {
                unknown.push(format!("{at}: {name}"));
            }
            referenced.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "metric names that the profiler does not export and no recording rule defines:\n  {}\n\
         exported: {exported:?}",
        unknown.join("\n  ")
    );
    println!(
        "{} queries reference {} distinct series, all exported or recorded",
        queries.len(),
        referenced.len()
    );
}
