//! The exporter end to end with a real Prometheus (Debian's `prometheus`, installed by
//! `cargo xtask setup`): the profiler attached to our hyper server under wrk with `--listen`,
//! Prometheus scraping it every second; PromQL through Prometheus's HTTP API must return the
//! request count wrk completed, and `histogram_quantile(0.99, …)` must land in the same or the
//! neighbouring bucket as the report's exact p99. The classic text format is checked by
//! `promtool check metrics`.

use std::{
    io::Write as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use profiler_tests::{http::*, privileged};
use serde_json::Value;

/// http_server_request_duration_seconds buckets (the design's catalogue).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn prometheus_tool(name: &str) -> std::path::PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("{name} not found: `cargo xtask setup` installs Debian's prometheus package")
    })
}

/// A Prometheus server with its own data directory, scraping one target every second.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = TempDir::new(&format!("prometheus-{}", free_port()));
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: profiler\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(prometheus_tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Self {
            child,
            port,
            _dir: dir,
        };
        p.wait_until("ready", || {
            curl(&["-sf", &format!("http://127.0.0.1:{port}/-/ready")]).code == 0
        });
        p
    }

    fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "prometheus: not {what} after 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The single value of an instant query, or None when the result is empty.
    fn query(&self, promql: &str) -> Option<f64> {
        let r = curl(&[
            "-sf",
            "-G",
            "--data-urlencode",
            &format!("query={promql}"),
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
        ]);
        assert_eq!(r.code, 0, "query {promql}: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.body).expect("query JSON");
        assert_eq!(v["status"], "success", "{promql}: {v}");
        let result = v["data"]["result"].as_array().expect("result array");
        assert!(result.len() <= 1, "{promql}: several series: {v}");
        let value = result.first()?["value"][1].as_str()?;
        Some(value.parse().expect("numeric sample"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Index of the first bucket whose upper bound holds `seconds` (BUCKETS.len() = +Inf).
fn bucket_of(seconds: f64) -> usize {
    BUCKETS
        .iter()
        .position(|&b| seconds <= b)
        .unwrap_or(BUCKETS.len())
}

#[test]
fn prometheus_scrapes_request_count_and_p99() {
    if !privileged("prometheus_scrapes_request_count_and_p99") {
        return;
    }
    let hyper = HyperServer::start(&[]);
    let pid = hyper.pid();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut scraped = None;
    let (profiled, (wrk_result, classic)) = profile(pid, &["--listen", &listen], false, || {
        let prometheus = Prometheus::start(&listen);
        prometheus.wait_until("scraping the profiler", || {
            prometheus.query("up{job=\"profiler\"}") == Some(1.0)
        });
        // 1–40 ms uniform: the requests spread over four buckets.
        let r = wrk(&hyper.url("/delay?ms=1-40"), 4, 100, true);
        let count_q = format!("sum(http_server_request_duration_seconds_count{{pid=\"{pid}\"}})");
        // Wait for a scrape after the last response (the value only grows).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut count = None;
        while Instant::now() < deadline {
            count = prometheus.query(&count_q);
            if count.is_some_and(|c| c >= r.requests as f64) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let p99 = prometheus.query(&format!(
            "histogram_quantile(0.99, sum by (le) \
             (http_server_request_duration_seconds_bucket{{pid=\"{pid}\"}}))"
        ));
        let errors = prometheus.query(&format!(
            "sum(http_server_request_duration_seconds_count{{pid=\"{pid}\",error_type!=\"\"}})"
        ));
        let oncpu = prometheus.query(&format!(
            "profiler_sched_oncpu_seconds_total{{pid=\"{pid}\"}}"
        ));
        scraped = Some((count, p99, errors, oncpu));
        // The classic text format, as a client without OpenMetrics gets it.
        let classic = curl(&["-s", "-D", "-", &format!("http://{listen}/metrics")]);
        (r, classic)
    });
    let (count, p99, errors, oncpu) = scraped.expect("queries ran");
    let server = profiled.server();
    let report_requests = count_of(server);
    let report_p99_s = server["latency"]["p99_us"].as_f64().expect("p99_us") / 1e6;
    println!(
        "wrk {} requests; report {report_requests}, p99 {report_p99_s:.4} s; PromQL count \
         {count:?}, histogram_quantile(0.99) {p99:?}, errors {errors:?}, on-CPU {oncpu:?} s",
        wrk_result.requests
    );
    assert_eq!(wrk_result.requests, 400);
    assert_eq!(
        count,
        Some(wrk_result.requests as f64),
        "PromQL request count"
    );
    assert_eq!(report_requests, wrk_result.requests);
    assert_eq!(errors, None, "no error series: every response was a 200");
    let p99 = p99.expect("histogram_quantile result");
    let (a, b) = (bucket_of(p99), bucket_of(report_p99_s));
    assert!(
        a.abs_diff(b) <= 1,
        "histogram_quantile {p99} s is in bucket {a}, the report's p99 {report_p99_s} s in {b}"
    );
    assert!(oncpu.is_some_and(|s| s > 0.0), "on-CPU seconds exported");

    // Classic exposition: right content type, and promtool's parser and linter accept it.
    let (head, body) = classic
        .body
        .split_once("\r\n\r\n")
        .expect("headers and body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!body.contains("# EOF"));
    let mut check = Command::new(prometheus_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = check.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count_of(server: &Value) -> u64 {
    count(&server["requests"], "requests")
}
