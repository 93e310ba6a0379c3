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
    is_ours, loaded_programs, privileged,
};

/// The workloads' comm: `sleep` run through a symlink of this name.
const COMM: &str = "pdaemon-work";

struct Daemon {
    profiler: Option<Profiler>,
    addr: String,
}

impl Daemon {
    fn start() -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut profiler = Profiler::start(&[
            "daemon",
            "--listen",
            &addr,
            "--match",
            &format!("comm=^{COMM}$"),
            "--no-cuda-discovery",
        ]);
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

fn our_programs() -> Vec<u64> {
    loaded_programs()
        .into_iter()
        .filter(|(_, name)| is_ours(name))
        .map(|(id, _)| id)
        .collect()
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
    let daemon = Daemon::start();
    let programs = our_programs();

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
    assert_eq!(our_programs(), programs, "programs reloaded");

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
