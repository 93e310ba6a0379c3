//! `cargo xtask soak MINUTES [--check]`: the daemon (`--listen`, `--match comm=^soak-`) on a
//! node-like mix for MINUTES — an HTTP server (the hyper test server, as `soak-http`) started
//! every minute and killed when the next one serves, each under a keep-alive client, a
//! new-connection client and an SSE client; the CUDA stand-in in short-lived processes
//! (`soak-cuda`); short-lived processes that start and end threads (`soak-threads`). Every 10 s
//! it samples the daemon's RSS, open fds, CPU time and events lost. Before each server is
//! killed, the requests its clients completed must all be in `/metrics` (exact). Prints the
//! samples as a table; with `--check`, fails when a count differs, RSS grew by 5% or more after
//! the first minute, fds grew, or events were lost.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bench_cuda,
    shell::{cargo, root, run_logged},
};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const SERVER_EVERY: Duration = Duration::from_secs(60);

/// One reading of the daemon.
struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: u64,
    cpu_s: f64,
    requests: u64,
    events_lost: u64,
    watched: u64,
}

/// One server's life: what its clients completed and what `/metrics` said before it was killed.
struct Epoch {
    pid: u32,
    completed: u64,
    exported: u64,
}

pub fn run(minutes: f64, check: bool) -> Result<()> {
    let dir = root().join("target/soak");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    println!("xtask soak: building (release; log: {})", log.display());
    run_logged(
        cargo().args([
            "build",
            "--release",
            "-p",
            "profiler",
            "-p",
            "profiler-tests",
            "--bins",
        ]),
        &log,
    )?;
    let release = root().join("target/release");
    let http = copy_as(&release.join("http-server"), &dir.join("soak-http"))?;
    let threads = copy_as(&release.join("sched-workload"), &dir.join("soak-threads"))?;
    let cuda = bench_cuda::build_workload(&dir.join("cuda"))
        .and_then(|exe| copy_as(&exe, &dir.join("soak-cuda")))
        .inspect_err(|e| println!("xtask soak: no CUDA stand-in ({e:#})"))
        .ok();
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let daemon_log = std::fs::File::create(dir.join("daemon.log"))?;
    let mut daemon = Command::new(release.join("profiler"))
        .args(["daemon", "--listen", &listen, "--match", "comm=^soak-"])
        .stdout(Stdio::null())
        .stderr(daemon_log)
        .spawn()
        .context("starting the daemon")?;
    let result = soak(&daemon, &listen, minutes, &http, &threads, cuda.as_deref());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait()?;
    let (samples, epochs) = result?;
    print_table(&samples, &epochs);
    if !status.success() {
        bail!("the daemon ended with {status} (its log: target/soak/daemon.log)");
    }
    if check {
        verdict(&samples, &epochs)?;
        println!("xtask soak: counts exact, RSS and fds bounded, no events lost");
    }
    Ok(())
}

fn copy_as(from: &Path, to: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(to.to_path_buf())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

type Soaked = (Vec<Sample>, Vec<Epoch>);

fn soak(
    daemon: &Child,
    listen: &str,
    minutes: f64,
    http: &Path,
    threads: &Path,
    cuda: Option<&Path>,
) -> Result<Soaked> {
    wait_until(Duration::from_secs(30), || scrape(listen).is_ok())
        .context("the daemon's /metrics never answered (target/soak/daemon.log)")?;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(minutes * 60.0);
    let requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let churn = spawn_churn(
        threads.to_path_buf(),
        cuda.map(Path::to_path_buf),
        stop.clone(),
    );
    let mut samples = Vec::new();
    let mut epochs = Vec::new();
    let mut next_sample = start;
    while Instant::now() < end {
        let server = Server::start(http)?;
        wait_until(Duration::from_secs(15), || {
            scrape(listen).is_ok_and(|m| m.contains(&format!("pid=\"{}\"", server.pid())))
        })
        .context("the daemon did not pick up the new server within 15 s")?;
        let clients = Clients::start(server.port, requests.clone());
        let epoch_end = (Instant::now() + SERVER_EVERY).min(end);
        while Instant::now() < epoch_end {
            if Instant::now() >= next_sample {
                samples.push(sample(daemon.id(), listen, start, &requests)?);
                next_sample += SAMPLE_EVERY;
            }
            thread::sleep(Duration::from_millis(200));
        }
        let completed = clients.stop();
        // Two export intervals: the last exchanges reach the counters.
        thread::sleep(Duration::from_millis(2500));
        let exported = server_requests(&scrape(listen)?, server.pid());
        epochs.push(Epoch {
            pid: server.pid(),
            completed,
            exported,
        });
        drop(server);
    }
    samples.push(sample(daemon.id(), listen, start, &requests)?);
    stop.store(true, Ordering::Relaxed);
    let _ = churn.join();
    Ok((samples, epochs))
}

/// The hyper test server as `soak-http`, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(exe: &Path) -> Result<Self> {
        let mut child = Command::new(exe)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting soak-http")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("soak-http said {line:?}"))?;
        Ok(Self { child, port })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client round against a server's port: the responses it read whole.
type Round = fn(u16) -> Result<u64>;

/// The three clients of one server, each a thread counting the responses it read whole.
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<u64>>,
}

impl Clients {
    fn start(port: u16, total: Arc<AtomicU64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let kinds: [(Round, u64); 3] =
            [(keep_alive_round, 2), (new_connection, 5), (sse_stream, 20)];
        let threads = kinds
            .into_iter()
            .map(|(round, pause_ms)| {
                let stop = stop.clone();
                let total = total.clone();
                thread::spawn(move || {
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(n) = round(port) {
                            done += n;
                            total.fetch_add(n, Ordering::Relaxed);
                        }
                        thread::sleep(Duration::from_millis(pause_ms));
                    }
                    done
                })
            })
            .collect();
        Self { stop, threads }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .sum()
    }
}

/// 50 requests on one keep-alive connection.
fn keep_alive_round(port: u16) -> Result<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut done = 0;
    for _ in 0..50 {
        s.write_all(b"GET /delay?ms=0&bytes=64 HTTP/1.1\r\nHost: soak\r\n\r\n")?;
        read_sized_response(&mut reader)?;
        done += 1;
    }
    Ok(done)
}

/// One request on its own connection.
fn new_connection(port: u16) -> Result<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /delay?ms=0&bytes=600 HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    if !body.starts_with(b"HTTP/1.1 200") {
        bail!("unexpected response");
    }
    Ok(1)
}

/// One short SSE stream, read to its end.
fn sse_stream(port: u16) -> Result<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(
        b"GET /sse?events=10&delay_ms=5&usage=1&role=1 HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
    )?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    if !body.windows(6).any(|w| w == b"[DONE]") {
        bail!("stream without its end");
    }
    Ok(1)
}

/// Reads one response with a Content-Length body.
fn read_sized_response(r: &mut impl std::io::BufRead) -> Result<()> {
    let mut length = 0usize;
    let mut status = String::new();
    r.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        bail!("unexpected status {status:?}");
    }
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line
            .to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().to_string())
        {
            length = v.parse()?;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok(())
}

/// Short-lived processes every 10 s: one that starts and ends threads, and the CUDA stand-in.
fn spawn_churn(
    threads: PathBuf,
    cuda: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let _ = Command::new(&threads)
                .args(["burn-sleep", "--seconds", "1", "--no-wait"])
                .stdout(Stdio::null())
                .status();
            if let Some(cuda) = &cuda {
                let lib = cuda
                    .parent()
                    .map(|d| d.join("cuda/lib"))
                    .unwrap_or_default();
                let _ = Command::new(cuda)
                    .arg("--lib-dir")
                    .arg(lib)
                    .args(["--start-delay-ms", "500", "main"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            for _ in 0..40 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                thread::sleep(Duration::from_millis(200));
            }
        }
    })
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}");
        }
        thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn scrape(listen: &str) -> Result<String> {
    let mut s = TcpStream::connect(listen)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: soak\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string()))
}

/// Sum of the samples of `metric` (over all label sets) whose labels contain `filter`.
fn metric_sum(metrics: &str, metric: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && l.contains(filter)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn server_requests(metrics: &str, pid: u32) -> u64 {
    metric_sum(
        metrics,
        "http_server_request_duration_seconds_count",
        &format!("pid=\"{pid}\""),
    ) as u64
}

fn sample(pid: u32, listen: &str, start: Instant, requests: &AtomicU64) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let metrics = scrape(listen)?;
    Ok(Sample {
        at_s: start.elapsed().as_secs_f64(),
        rss_kib,
        fds,
        // utime and stime: fields 14 and 15 of stat, 11 and 12 after the comm.
        cpu_s: (ticks(11) + ticks(12)) / hz,
        requests: requests.load(Ordering::Relaxed),
        events_lost: metric_sum(&metrics, "profiler_events_lost_total", "") as u64,
        watched: metric_sum(&metrics, "profiler_watched_processes", "") as u64,
    })
}

fn print_table(samples: &[Sample], epochs: &[Epoch]) {
    println!("| t (s) | daemon RSS (MiB) | fds | CPU (s) | requests | events lost | watched |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for s in samples {
        println!(
            "| {:.0} | {:.1} | {} | {:.2} | {} | {} | {} |",
            s.at_s,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.cpu_s,
            s.requests,
            s.events_lost,
            s.watched
        );
    }
    if let (Some(first), Some(last)) = (samples.first(), samples.last())
        && last.requests > 0
    {
        println!(
            "daemon CPU per request: {:.1} µs ({} requests, {:.2} s CPU)",
            (last.cpu_s - first.cpu_s) * 1e6 / last.requests as f64,
            last.requests,
            last.cpu_s - first.cpu_s
        );
    }
    for e in epochs {
        println!(
            "server pid {}: clients completed {}, /metrics {}",
            e.pid, e.completed, e.exported
        );
    }
}

fn verdict(samples: &[Sample], epochs: &[Epoch]) -> Result<()> {
    let mut problems = Vec::new();
    for e in epochs {
        if e.completed != e.exported {
            problems.push(format!(
                "server {}: clients completed {} requests, /metrics has {}",
                e.pid, e.completed, e.exported
            ));
        }
    }
    // Warm-up: the first minute (the first server's connections, the first CUDA attach).
    let warm = samples.iter().find(|s| s.at_s >= 55.0).or(samples.first());
    if let (Some(warm), Some(last)) = (warm, samples.last()) {
        if last.rss_kib as f64 >= warm.rss_kib as f64 * 1.05 {
            problems.push(format!(
                "RSS grew from {} KiB at {:.0} s to {} KiB",
                warm.rss_kib, warm.at_s, last.rss_kib
            ));
        }
        if last.fds > warm.fds + 2 {
            problems.push(format!("fds grew from {} to {}", warm.fds, last.fds));
        }
        if last.events_lost > 0 {
            problems.push(format!("{} events lost", last.events_lost));
        }
    }
    if epochs.is_empty() {
        problems.push("no server lived through a whole epoch".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("soak: {}", problems.join("; "))
    }
}
