//! `profiler daemon` end to end: processes started after it get their own series within 2 s,
//! an exited one's series stop, and 200 short-lived processes neither grow the agent's memory
//! nor reload the eBPF programs.

use std::{
    os::unix::fs::symlink,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use profiler_tests::{
    Profiler,
    http::{TempDir, curl, free_port},
    privileged, programs_held_by,
};

/// The workloads' comm: `sleep` run through a symlink of this name.
const COMM: &str = "pdaemon-work";

struct Daemon {
    profiler: Option<Profiler>,
    addr: String,
}

impl Daemon {
    /// A daemon serving on a free loopback port with `select` (what it profiles).
    fn start(select: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["daemon", "--listen", &addr];
        args.extend(select);
        let mut profiler = Profiler::start(&args);
        profiler.wait_attached();
        Self {
            profiler: Some(profiler),
            addr,
        }
    }

    fn metrics(&self) -> String {
        let r = curl(&["-sf", &format!("http://{}/metrics", self.addr)]);
        assert_eq!(r.code, 0, "scrape failed: {}", r.stderr);
        r.body
    }

    fn pid(&self) -> u32 {
        self.profiler.as_ref().expect("running").child.id()
    }

    fn stop(mut self) -> Vec<String> {
        let p = self.profiler.take().expect("running");
        p.signal(libc::SIGTERM);
        let (status, _, stderr) = p.wait();
        assert!(status.success(), "daemon failed: {status:?} {stderr:?}");
        stderr
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut p) = self.profiler.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

fn has_series(text: &str, pid: u32) -> bool {
    let needle = format!("profiler_sched_oncpu_seconds_total{{pid=\"{pid}\",comm=\"{COMM}\"");
    text.lines().any(|l| l.starts_with(&needle))
}

fn workload(bin: &PathBuf, secs: &str) -> Child {
    Command::new(bin)
        .arg(secs)
        .stdin(Stdio::null())
        .spawn()
        .expect("start workload")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Polls `f` every 100 ms for at most `limit`; returns how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn daemon_discovers_forgets_and_stays_bounded() {
    if !privileged("daemon_discovers_forgets_and_stays_bounded") {
        return;
    }
    let dir = TempDir::new(&format!("daemon-{}", free_port()));
    let bin = dir.path().join(COMM);
    symlink("/bin/sleep", &bin).expect("symlink sleep");
    let select = format!("comm=^{COMM}$");
    let daemon = Daemon::start(&["--match", &select, "--no-cuda-discovery"]);
    let programs = programs_held_by(daemon.pid());
    assert!(!programs.is_empty(), "the daemon holds its programs");

    // Two workloads started after the daemon.
    let mut a = workload(&bin, "60");
    let mut b = workload(&bin, "60");
    let (pa, pb) = (a.id(), b.id());
    let took = within(Duration::from_secs(2), || {
        let m = daemon.metrics();
        has_series(&m, pa) && has_series(&m, pb)
    });
    println!("both workloads' series appeared after {took:?}");
    assert!(
        took.is_some(),
        "series of {pa} and {pb} within 2 s:\n{}",
        daemon.metrics()
    );

    // One exits: its series stop, the other's stay.
    b.kill().expect("kill b");
    b.wait().expect("reap b");
    let gone = within(Duration::from_secs(10), || {
        !has_series(&daemon.metrics(), pb)
    });
    println!("exited workload's series gone after {gone:?}");
    assert!(gone.is_some(), "series of exited pid {pb} still exported");
    assert!(has_series(&daemon.metrics(), pa));

    // 200 short-lived workloads, 25 at a time, each alive long enough for several scans.
    let spawn_batches = |batches: usize| {
        let mut pids = Vec::new();
        for _ in 0..batches {
            let mut kids: Vec<Child> = (0..25).map(|_| workload(&bin, "1.2")).collect();
            pids.extend(kids.iter().map(Child::id));
            for k in &mut kids {
                k.wait().expect("reap");
            }
        }
        pids
    };
    let mut short = spawn_batches(2);
    std::thread::sleep(Duration::from_secs(2));
    let rss_warm = rss_kib(daemon.pid());
    short.extend(spawn_batches(6));
    std::thread::sleep(Duration::from_secs(2));
    let rss_end = rss_kib(daemon.pid());
    let metrics = daemon.metrics();
    let left: Vec<&u32> = short.iter().filter(|p| has_series(&metrics, **p)).collect();
    println!(
        "daemon RSS after 50 short-lived processes {rss_warm} KiB, after 200 {rss_end} KiB \
         ({:+} KiB)",
        rss_end as i64 - rss_warm as i64
    );
    assert!(left.is_empty(), "exited processes still exported: {left:?}");
    assert!(
        metrics.contains("profiler_watched_processes 1")
            || metrics.contains("profiler_watched_processes{} 1"),
        "only the long-lived workload is watched:\n{metrics}"
    );
    // 150 more processes seen and forgotten: whatever is kept per process would show here.
    assert!(
        rss_end <= rss_warm + 1024,
        "RSS grew from {rss_warm} KiB to {rss_end} KiB over 150 processes"
    );
    assert_eq!(
        programs_held_by(daemon.pid()),
        programs,
        "programs reloaded"
    );

    a.kill().expect("kill a");
    a.wait().expect("reap a");
    let stderr = daemon.stop();
    let watched: Vec<&String> = stderr
        .iter()
        .filter(|l| l.starts_with("profiler: watching pid"))
        .collect();
    println!("daemon watched {} processes", watched.len());
    for pid in &short {
        assert!(
            stderr
                .iter()
                .any(|l| l.starts_with(&format!("profiler: watching pid {pid} "))),
            "short-lived pid {pid} was never watched"
        );
    }
}

/// A cgroup laid out like a Kubernetes container's (cgroupfs driver:
/// `kubepods/besteffort/pod<uid>/<container id>`), removed on drop.
struct FakePodCgroup {
    leaf: PathBuf,
    /// The directories this test created (removed on drop, deepest first).
    dirs: Vec<PathBuf>,
}

const POD_UID: &str = "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b";
const CONTAINER_ID: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";

impl FakePodCgroup {
    /// Under the unified (v2) hierarchy: the root on a pure cgroup v2 host, `unified/` on a
    /// hybrid one; None when neither exists.
    fn create() -> Option<Self> {
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists())?;
        let mut dirs = Vec::new();
        let mut path = root;
        for part in [
            "kubepods".to_string(),
            "besteffort".to_string(),
            format!("pod{POD_UID}"),
            CONTAINER_ID.to_string(),
        ] {
            path = path.join(part);
            if !path.exists() {
                std::fs::create_dir(&path).ok()?;
                dirs.push(path.clone());
            }
        }
        Some(Self { leaf: path, dirs })
    }

    fn procs(&self) -> PathBuf {
        self.leaf.join("cgroup.procs")
    }
}

impl Drop for FakePodCgroup {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A child killed and reaped however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `label` on the first sample of `metric` for `pid`.
fn label_of(text: &str, metric: &str, pid: u32, label: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&format!("pid=\"{pid}\"")))?;
    let start = line.find(&format!("{label}=\""))? + label.len() + 2;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

/// A server in a pod-like cgroup and mount namespace (service-account namespace file, HOSTNAME
/// = pod name), found by its listening port: its series carry the container and pod labels,
/// and the requests wrk makes are counted.
#[test]
fn daemon_labels_a_pod_found_by_port() {
    if !privileged("daemon_labels_a_pod_found_by_port") {
        return;
    }
    let Some(cgroup) = FakePodCgroup::create() else {
        profiler_tests::record_skip(
            "daemon_labels_a_pod_found_by_port",
            "no writable unified cgroup hierarchy",
        );
        return;
    };
    let port = free_port();
    let port_s = port.to_string();
    let daemon = Daemon::start(&["--port", &port_s, "--no-cuda-discovery"]);
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && \
         echo team-a > /run/secrets/kubernetes.io/serviceaccount/namespace && \
         echo $$ > {} && exec env HOSTNAME=llm-server-7d9f-x2 {} --port {port}",
        cgroup.procs().display(),
        profiler_tests::http::package_bin("http-server").display()
    );
    let mut server = KillOnDrop(
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server through unshare"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("server output");
    assert_eq!(line.trim(), format!("listening on {port}"));
    let pid = server.0.id();
    let found = within(Duration::from_secs(5), || {
        label_of(
            &daemon.metrics(),
            "profiler_sched_oncpu_seconds_total",
            pid,
            "pid",
        )
        .is_some()
    });
    println!("server found by its port after {found:?}");
    assert!(
        found.is_some(),
        "no series for pid {pid}:\n{}",
        daemon.metrics()
    );
    let m = daemon.metrics();
    let label = |l| label_of(&m, "profiler_sched_oncpu_seconds_total", pid, l);
    assert_eq!(label("comm").as_deref(), Some("http-server"));
    assert_eq!(label("container_id").as_deref(), Some(CONTAINER_ID));
    assert_eq!(label("pod_uid").as_deref(), Some(POD_UID));
    assert_eq!(label("pod").as_deref(), Some("llm-server-7d9f-x2"));
    assert_eq!(label("namespace").as_deref(), Some("team-a"));

    let r = profiler_tests::http::wrk(
        &format!("http://127.0.0.1:{port}/delay?ms=0-2"),
        2,
        50,
        true,
    );
    assert_eq!(r.requests, 100);
    let count = || {
        daemon
            .metrics()
            .lines()
            .filter(|l| {
                l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains(&format!("pid=\"{pid}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let counted = within(Duration::from_secs(5), || count() >= 100.0);
    println!("requests exported: {} (wrk: {})", count(), r.requests);
    assert!(counted.is_some());
    assert_eq!(count(), 100.0);
    drop(server);
    daemon.stop();
}
