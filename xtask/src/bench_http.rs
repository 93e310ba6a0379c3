//! HTTP benchmark: nginx on loopback saturated by wrk, without and with the profiler attached
//! (alternating, median of several runs). Reports the throughput ratio and the profiler's own
//! CPU time per request it analysed.

use std::{
    io::{BufRead as _, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::shell::root;

const REPEATS: usize = 3;
const SECONDS: &str = "5";
const CONNECTIONS: &str = "16";

pub struct HttpBench {
    pub json: Value,
    pub summary: String,
}

pub fn run(profiler: &Path) -> Result<HttpBench> {
    let dir = root().join("target/bench/nginx");
    let nginx = Nginx::start(&dir)?;
    let url = format!("http://127.0.0.1:{}/small.txt", nginx.port);
    // Warm up (page cache, nginx worker, wrk) before measuring.
    wrk(&url, "1")?;
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut agent_ns_per_request = Vec::new();
    let mut counted = Vec::new();
    for _ in 0..REPEATS {
        without.push(wrk(&url, SECONDS)?.requests_per_s);
        let run = profiled(profiler, nginx.pid(), &url)?;
        with.push(run.wrk.requests_per_s);
        agent_ns_per_request.push(run.agent_cpu_s * 1e9 / run.requests_seen.max(1) as f64);
        counted.push((run.requests_seen, run.wrk.requests));
    }
    let base = median(&mut without);
    let probed = median(&mut with);
    let agent = median(&mut agent_ns_per_request);
    let json = serde_json::json!({
        "benchmark": "http-nginx-wrk",
        "server": "nginx 1 worker, 100-byte static file, keep-alive",
        "load": format!("wrk -t2 -c{CONNECTIONS} -d{SECONDS}s"),
        "repeats": REPEATS,
        "requests_per_s_without": base,
        "requests_per_s_with": probed,
        "throughput_ratio": probed / base,
        "agent_cpu_ns_per_request": agent,
        "requests_seen_vs_wrk_completed": counted,
    });
    let summary = format!(
        "http: {base:.0} req/s alone, {probed:.0} req/s profiled (ratio {:.3}); \
         agent CPU {:.2} µs per request",
        probed / base,
        agent / 1e3
    );
    Ok(HttpBench { json, summary })
}

struct WrkResult {
    requests: u64,
    requests_per_s: f64,
}

fn wrk(url: &str, seconds: &str) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args(["-t2", "-c", CONNECTIONS, "-d", &format!("{seconds}s"), url])
        .output()
        .context("running wrk (installed by `cargo xtask setup`)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let requests_per_s = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))?;
    // "  123456 requests in 5.00s, 35.10MB read"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        requests,
        requests_per_s,
    })
}

struct ProfiledRun {
    wrk: WrkResult,
    requests_seen: u64,
    agent_cpu_s: f64,
}

fn profiled(profiler: &Path, pid: u32, url: &str) -> Result<ProfiledRun> {
    let mut child = Command::new(profiler)
        .args(["attach", "--pid", &pid.to_string(), "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
    let mut line = String::new();
    while !line.starts_with("profiler: attached") {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("profiler exited before attaching");
        }
    }
    // Keep draining stderr (live view) so the profiler never blocks on it.
    std::thread::spawn(move || for _ in stderr.lines() {});
    let wrk = wrk(url, SECONDS)?;
    // SAFETY: kill has no memory-safety preconditions; the pid is our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output()?;
    let report: Value = serde_json::from_slice(&out.stdout).context("profiler report")?;
    Ok(ProfiledRun {
        wrk,
        requests_seen: report["http"]["server"]["requests"].as_u64().unwrap_or(0),
        agent_cpu_s: report["health"]["agent"]["cpu_s"].as_f64().unwrap_or(0.0),
    })
}

struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path) -> Result<Self> {
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("small.txt"), "x".repeat(100))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, &www, port))?;
        let child = Command::new("nginx")
            .args([
                "-c",
                &conf.display().to_string(),
                "-p",
                &dir.display().to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx (installed by `cargo xtask setup`)")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self { child, port });
            }
            sleep(Duration::from_millis(50));
        }
        bail!("nginx did not start listening on port {port}")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: as above; QUIT lets the master stop its workers.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, www: &Path, port: u16) -> String {
    let d = |p: &Path| p.display().to_string();
    let tmp: PathBuf = dir.join("tmp");
    let _ = std::fs::create_dir_all(&tmp);
    format!(
        "daemon off;\nworker_processes 1;\npid {pid};\nerror_log stderr;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  keepalive_requests 1000000;\n  \
         client_body_temp_path {t};\n  proxy_temp_path {t};\n  fastcgi_temp_path {t};\n  \
         uwsgi_temp_path {t};\n  scgi_temp_path {t};\n  \
         server {{\n    listen 127.0.0.1:{port};\n    root {www};\n  }}\n}}\n",
        pid = d(&dir.join("nginx.pid")),
        t = d(&tmp),
        www = d(www),
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
