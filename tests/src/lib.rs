//! Helpers for the privileged end-to-end tests: start the real profiler binary and real
//! workloads, read their output, and check what is loaded in the kernel with bpftool.

pub mod cuda;
pub mod deploy;
pub mod http;
pub mod llm;
pub mod timeline;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::PathBuf,
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The profiler binary under test: `PROFILER_BIN` (set by `cargo xtask test`) or the debug build.
pub fn profiler_bin() -> PathBuf {
    std::env::var_os("PROFILER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/profiler")
        })
}

/// The workload binary, built by cargo next to the test executables (`target/<profile>/`).
pub fn workload_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.ends_with("deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.join("sched-workload")
}

/// Whether this test can load eBPF here. When it cannot, prints why, records the skip for
/// `cargo xtask test`'s summary (so a skip is never counted as a pass) and returns false.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("needs root to load eBPF programs")
    } else if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("kernel has no BTF")
    } else if !profiler_bin().exists() {
        Some("profiler binary not built (run through `cargo xtask test`)")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) => {
            record_skip(test, reason);
            false
        }
    }
}

/// Prints why `test` is skipped and adds it to `PROFILER_SKIP_LOG`, so `cargo xtask test`
/// counts it as skipped rather than passed.
pub fn record_skip(test: &str, reason: &str) {
    println!("SKIPPED {test}: {reason}");
    if let Some(log) = std::env::var_os("PROFILER_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
}

/// A temporary path unique to this test process and `name`.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("profiler-e2e-{}-{name}", std::process::id()))
}

/// A workload from `sched-workload`, waiting for `go`.
pub struct Workload {
    pub child: Child,
    stdin: Option<ChildStdin>,
}

impl Workload {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(workload_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sched-workload");
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("go once");
        stdin.write_all(b"go\n").expect("write go");
    }

    /// Waits for the workload and returns the ground truth it printed.
    pub fn finish(mut self) -> Value {
        let out = std::mem::replace(&mut self.child, dummy_child())
            .wait_with_output()
            .expect("wait workload");
        assert!(out.status.success(), "workload failed: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("bad ground truth {text:?}: {e}"))
    }
}

fn dummy_child() -> Child {
    Command::new("true").spawn().expect("spawn true")
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running profiler whose stderr is read line by line in the background.
pub struct Profiler {
    pub child: Child,
    stderr: mpsc::Receiver<String>,
    pub stderr_lines: Vec<String>,
}

impl Profiler {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(Command::new(profiler_bin()).args(args))
    }

    pub fn start_with(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start profiler");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stderr: rx,
            stderr_lines: Vec::new(),
        }
    }

    /// Blocks until the profiler says it is attached (panics after 60 s or if it exits).
    pub fn wait_attached(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let attached = line.starts_with("profiler: attached");
                    self.stderr_lines.push(line);
                    if attached {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("profiler did not attach; stderr: {:?}", self.stderr_lines);
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits (at most 60 s) for exit; returns the status and everything it printed on stdout.
    pub fn wait(mut self) -> (ExitStatus, String, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "profiler did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
        }
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            self.stderr_lines.push(line);
        }
        (status, stdout, self.stderr_lines)
    }
}

/// Attaches the profiler to a `sched-workload` started with `args`, lets the workload run once
/// the profiler is attached, and returns the workload's ground truth and the JSON report (the
/// session ends when the workload exits).
pub fn profile_workload(args: &[&str]) -> (Value, Value) {
    let mut workload = Workload::start(args);
    let out = temp_path(&format!("{}.json", args.join("-")));
    let pid = workload.pid().to_string();
    let mut profiler = Profiler::start(&[
        "attach",
        "--pid",
        &pid,
        // Scheduler accounting alone: with the socket probes attached, a syscall program that
        // is running when a context switch comes makes the kernel skip `sched_switch` (BPF
        // recursion protection); the report counts that under health.missed_runs.
        "--no-http",
        "--interval",
        "200ms",
        "--format",
        "json",
        "--output",
        out.to_str().expect("utf-8 temp path"),
    ]);
    profiler.wait_attached();
    workload.go();
    let truth = workload.finish();
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler failed: {stderr:?}");
    let report = read_report(&out);
    let _ = std::fs::remove_file(out);
    assert_eq!(report["end_reason"], "target-exited");
    (truth, report)
}

/// The objects `bpftool <kind> show --json` lists (kind: "prog" or "link").
fn bpftool_list(kind: &str) -> Vec<Value> {
    let out = Command::new("bpftool")
        .args([kind, "show", "--json"])
        .output()
        .expect("bpftool (installed by `cargo xtask setup`)");
    assert!(out.status.success(), "bpftool {kind} show failed");
    match serde_json::from_slice(&out.stdout).expect("bpftool json") {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// Ids and names of the eBPF programs loaded in the kernel.
pub fn loaded_programs() -> Vec<(u64, String)> {
    bpftool_list("prog")
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().unwrap_or(0),
                p["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Program ids of the eBPF links in the kernel: a program with no link (and no perf event) no
/// longer runs, even while the kernel has yet to free it.
pub fn linked_programs() -> Vec<u64> {
    bpftool_list("link")
        .iter()
        .filter_map(|l| l["prog_id"].as_u64())
        .collect()
}

/// Which of `ids` are still loaded once the kernel has had up to `patience` to release them.
///
/// A program outlives the process that loaded it by a grace period or more: closing a raw
/// tracepoint link defers the link's last program reference to an RCU callback (6.9+), and a
/// perf-event or link put from IRQ context goes through a workqueue. So "exited" and "unloaded"
/// are not the same instant; under load (CI's 2 CPUs) the gap was seen to exceed a `bpftool`
/// call (≈ 200 ms on 6.18 after every session, while the links were gone at once). The caller
/// asserts the result is empty: a leak still fails, after `patience`.
pub fn still_loaded_after(ids: &[u64], patience: Duration) -> Vec<u64> {
    let deadline = Instant::now() + patience;
    loop {
        let loaded: Vec<u64> = loaded_programs().into_iter().map(|(id, _)| id).collect();
        let left: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| loaded.contains(id))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The profiler's scheduler programs.
pub const OUR_PROGRAMS: &[&str] = &[
    "sched_switch_raw",
    "sched_wakeup_raw",
    "sched_wakeup_new_raw",
    "sched_migrate_task_raw",
    "task_newtask_raw",
    "sched_process_exit_raw",
];

/// Whether a program name bpftool shows is one of ours: bpftool prints the full name from BTF
/// where the kernel has it, else the name truncated to 15 characters.
/// The perf-event versions (loaded instead of the raw ones where those cannot be) count as the
/// same programs.
pub fn is_ours(name: &str) -> bool {
    let perf_event = OUR_PROGRAMS
        .iter()
        .any(|p| p.strip_suffix("_raw") == Some(name));
    perf_event
        || OUR_PROGRAMS
            .iter()
            .any(|p| *p == name || (name.len() == 15 && p.starts_with(name)))
}

/// The ids of the eBPF programs process `pid` holds open (`prog_id:` in its fds' fdinfo), sorted
/// and deduplicated: exact where `bpftool prog show` cannot say who loaded a program.
pub fn programs_held_by(pid: u32) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Reads a JSON report file written with `--format json --output`.
pub fn read_report(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).expect("report file");
    serde_json::from_str(&text).expect("report is JSON")
}

/// The report's entry for thread `tid`.
pub fn thread_in(report: &Value, tid: u64) -> &Value {
    report["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["threads"].as_array().into_iter().flatten())
        .find(|t| t["tid"].as_u64() == Some(tid))
        .unwrap_or_else(|| panic!("thread {tid} not in report"))
}

/// Pins the calling thread (and the processes it starts later) to `cpu`.
pub fn pin_self_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; pid 0 means this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Relative difference |a - b| / b.
pub fn rel_diff(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}
