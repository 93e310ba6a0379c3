//! The load side of the HTTP benchmark: the nginx it measures (one worker, a 100-byte file),
//! `wrk` driving it (with the machine's busy CPU time over the run), and `bpftrace` attached
//! with a counting script (the floors the profiler is compared with).
//!
//! On a machine with two CPUs or more, nginx's worker runs on one CPU and wrk on another: left
//! to the scheduler, the two moved between the CPUs and "nothing attached" alone ranged over
//! ±10% between rounds minutes apart on the 2-vCPU VM; pinned, ±1% in a quiet phase and ±7% in
//! a noisy one (docs/benchmarks.md). The profiler and bpftrace are not pinned: where their work
//! lands is part of what they cost.

use std::{
    io::{BufRead as _, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// wrk's connections (keep-alive).
pub const CONNECTIONS: &str = "16";

/// The CPUs nginx's worker and wrk run on: the first two this process may run on (a cpuset can
/// exclude CPUs 0 and 1), when there are two.
fn pinned_cpus() -> Option<(usize, usize)> {
    // SAFETY: cpu_set_t is plain data, all zeros is an empty set; sched_getaffinity writes at
    // most the size it is given.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return None;
    }
    // SAFETY: CPU_ISSET reads the set within CPU_SETSIZE.
    let mut allowed =
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some((allowed.next()?, allowed.next()?))
}

/// How the load is placed, for the report.
pub fn placement() -> String {
    match pinned_cpus() {
        Some((server, load)) => format!(
            "nginx worker on CPU {server}, wrk (one thread) on CPU {load}; the profiler unpinned"
        ),
        None => "one CPU: nothing pinned".into(),
    }
}

/// `bpftrace -e SCRIPT`, attached once it says so; stopped on drop.
pub struct Bpftrace(Child);

impl Bpftrace {
    pub fn start(script: &str) -> Result<Self> {
        let mut child = Command::new("bpftrace")
            .args(["-e", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("running bpftrace (apt-get install bpftrace)")?;
        let out = BufReader::new(child.stdout.take().context("bpftrace stdout")?);
        // Its stdout is read on a thread: once (in ~100 runs) the "Attaching" line never came
        // while bpftrace sat attached in epoll_wait, and the bench waited forever.
        let (attached, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if line.starts_with("Attaching") || line.starts_with("Attached") {
                    let _ = attached.send(());
                }
            }
        });
        let mut tracer = Self(child);
        if seen.recv_timeout(Duration::from_secs(30)).is_err() {
            if tracer.0.try_wait()?.is_some() {
                bail!("bpftrace exited before attaching");
            }
            println!("http bench: bpftrace said nothing in 30 s but runs; measuring anyway");
        }
        // "Attaching N probes..." comes before the last probe is in.
        sleep(Duration::from_millis(500));
        Ok(tracer)
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

pub struct WrkResult {
    pub requests: u64,
    pub requests_per_s: f64,
    /// Busy CPU seconds of the whole machine while wrk ran.
    pub busy_cpu_s: f64,
}

impl WrkResult {
    pub fn cpu_us_per_request(&self) -> f64 {
        self.busy_cpu_s * 1e6 / self.requests.max(1) as f64
    }
}

/// CPU seconds the machine spent busy (user, nice, system, irq, softirq: not idle, iowait or
/// steal) since boot, from /proc/stat.
fn busy_cpu_s() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| ticks.get(i)).sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(busy as f64 / hz as f64)
}

pub fn wrk(url: &str, seconds: &str) -> Result<WrkResult> {
    let busy_before = busy_cpu_s()?;
    let mut command = match pinned_cpus() {
        Some((_, load_cpu)) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", &load_cpu.to_string(), "wrk"]);
            taskset
        }
        None => Command::new("wrk"),
    };
    let out = command
        .args(["-t1", "-c", CONNECTIONS, "-d", &format!("{seconds}s"), url])
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
        busy_cpu_s: busy_cpu_s()? - busy_before,
    })
}

/// The benchmark's nginx, stopped on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path) -> Result<Self> {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child; QUIT lets
        // the master stop its workers.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, www: &Path, port: u16) -> String {
    let d = |p: &Path| p.display().to_string();
    let tmp: PathBuf = dir.join("tmp");
    let _ = std::fs::create_dir_all(&tmp);
    // worker_cpu_affinity is a bit mask written in binary, CPU 0 rightmost.
    let affinity = pinned_cpus().map_or(String::new(), |(server_cpu, _)| {
        format!("worker_cpu_affinity 1{};\n", "0".repeat(server_cpu))
    });
    format!(
        "daemon off;\nworker_processes 1;\n{affinity}pid {pid};\nerror_log stderr;\n\
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
