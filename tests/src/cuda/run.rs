//! Profiler sessions over the workload (`profiler run`, `profiler attach`), and the workload
//! alone.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{build::StubCuda, report::parse_hex};
use crate::{Profiler, read_report, temp_path};

/// In every `run` session the workload waits, after loading the libraries and before its first
/// CUDA call, until the functions it calls carry uprobes (`--wait-for-probes`, at most this
/// long): the profiler finds libraries loaded after it started by scanning /proc/<pid>/maps
/// (every 250 ms) and then attaches, one uprobe at a time, so calls made right after a dlopen
/// are not seen. Attaching ~100 uprobes took 30–280 ms on an idle 2-vCPU VM but 8 s while it
/// compiled (bpftrace: 18 s for 65): a fixed pause was not enough under load (2 s); waiting for
/// the probes themselves is exact and as short as the profiler allows. Bounded so that the
/// session still ends within [`Profiler::wait`]'s 60 s.
pub const PROBE_WAIT_MS: u64 = 40_000;

/// Host time the stub spends inside calls (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    pub launch_us: u64,
    pub sync_us: u64,
    pub copy_us: u64,
}

impl Durations {
    pub fn args(&self) -> Vec<String> {
        vec![
            "--launch-us".into(),
            self.launch_us.to_string(),
            "--sync-us".into(),
            self.sync_us.to_string(),
            "--copy-us".into(),
            self.copy_us.to_string(),
        ]
    }
}

/// A profiler session over the workload and what came out of it.
#[derive(Debug)]
pub struct CudaRun {
    pub report: Value,
    /// The workload's ground-truth line.
    pub truth: Value,
    /// `--cuda-trace` lines (empty unless asked for).
    pub trace: Vec<Value>,
    pub stderr: Vec<String>,
    /// The workload's executable.
    pub workload: PathBuf,
}

impl CudaRun {
    /// `report.cuda`; panics (showing the report's top-level keys) when there is none.
    pub fn cuda(&self) -> &Value {
        let c = &self.report["cuda"];
        assert!(
            c.is_object(),
            "report has no cuda section; keys: {:?}; stderr: {:?}",
            self.report
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            self.stderr
        );
        c
    }

    pub fn pid(&self) -> u64 {
        self.truth["pid"].as_u64().expect("truth pid")
    }

    pub fn tid(&self) -> u64 {
        self.truth["tid"].as_u64().expect("truth tid")
    }

    /// The workload's `comm` as the kernel has it: its file name, cut to 15 bytes.
    pub fn comm(&self) -> String {
        let name = self
            .workload
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 workload file name");
        name.chars().take(15).collect()
    }

    /// A handle from the ground truth (`functions.vector_add`, `streams.s1`, …).
    pub fn handle(&self, group: &str, key: &str) -> u64 {
        let v = &self.truth[group][key];
        v.as_str()
            .and_then(parse_hex)
            .unwrap_or_else(|| panic!("truth {group}.{key} is not a handle: {v}"))
    }
}

/// Files a session writes, removed on Drop.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn session_files(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = format!("cuda-{tag}-{n}");
    (
        temp_path(&format!("{base}.json")),
        temp_path(&format!("{base}.truth.json")),
        temp_path(&format!("{base}.trace.jsonl")),
    )
}

/// `--format json --output REPORT --quiet --no-http`, plus `--cuda-trace TRACE` when `extra`
/// asks for a trace with `--cuda-trace` alone (the path is filled in here).
fn profiler_args(report: &Path, trace: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--format",
        "json",
        "--output",
        report.to_str().expect("utf-8"),
        "--quiet",
        "--no-http",
    ]
    .map(String::from)
    .to_vec();
    for a in extra {
        args.push((*a).to_owned());
        if *a == "--cuda-trace" {
            args.push(trace.to_str().expect("utf-8").to_owned());
        }
    }
    args
}

fn read_truth(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("workload wrote no ground truth at {}: {e}", path.display()));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad ground truth {text:?}: {e}"))
}

fn finish(
    report: &Path,
    truth: &Path,
    trace: &Path,
    stderr: Vec<String>,
    workload: &Path,
) -> CudaRun {
    let report = read_report(report);
    let truth = read_truth(truth);
    let trace = crate::http::read_jsonl(trace);
    if let Some(c) = report["cuda"].as_object() {
        println!(
            "cuda: libraries {} launch_latency {} events_lost {} calls_unfinished {}",
            c.get("libraries").unwrap_or(&Value::Null),
            c.get("launch_latency").unwrap_or(&Value::Null),
            c.get("events_lost").unwrap_or(&Value::Null),
            c.get("calls_unfinished").unwrap_or(&Value::Null),
        );
    }
    CudaRun {
        report,
        truth,
        trace,
        stderr,
        workload: workload.to_path_buf(),
    }
}

/// `profiler run [ARGS] -- cuda-workload --lib-dir LIB_DIR --truth FILE --wait-for-probes
/// PROBE_WAIT_MS WORKLOAD_ARGS` (later workload arguments override earlier ones). With a
/// `prefix` (e.g. `unshare …`), `prefix` is the whole command instead, with `{workload}`,
/// `{lib_dir}`, `{truth}` and `{probe_wait_ms}` replaced, and `workload_args` unused.
/// Panics, before looking at the report, when the profiler never put its uprobes on the
/// libraries.
pub fn run_profiled(
    stub: &StubCuda,
    extra: &[&str],
    prefix: &[&str],
    workload_args: &[&str],
) -> CudaRun {
    run_profiled_exe(stub, &stub.workload, extra, prefix, workload_args)
}

/// [`run_profiled`] with the workload executable `exe` (e.g. [`StubCuda::workload_static`]).
pub fn run_profiled_exe(
    stub: &StubCuda,
    exe: &Path,
    extra: &[&str],
    prefix: &[&str],
    workload_args: &[&str],
) -> CudaRun {
    run_profiled_env(stub, exe, extra, prefix, workload_args, &[])
}

/// [`run_profiled_exe`] with environment variables `env` set for the profiler.
pub fn run_profiled_env(
    stub: &StubCuda,
    exe: &Path,
    extra: &[&str],
    prefix: &[&str],
    workload_args: &[&str],
    env: &[(&str, &str)],
) -> CudaRun {
    let (report, truth, trace) = session_files("run");
    let _files = Files(vec![report.clone(), truth.clone(), trace.clone()]);
    let mut args = vec!["run".to_owned()];
    args.extend(profiler_args(&report, &trace, extra));
    args.push("--".to_owned());
    let workload = exe.to_str().expect("utf-8");
    let lib_dir = stub.lib_dir.to_str().expect("utf-8");
    let truth_s = truth.to_str().expect("utf-8");
    let probe_wait = PROBE_WAIT_MS.to_string();
    if prefix.is_empty() {
        args.extend(
            [
                workload,
                "--lib-dir",
                lib_dir,
                "--truth",
                truth_s,
                "--wait-for-probes",
                &probe_wait,
            ]
            .iter()
            .chain(workload_args)
            .map(|s| (*s).to_owned()),
        );
    } else {
        args.extend(prefix.iter().map(|a| {
            a.replace("{workload}", workload)
                .replace("{lib_dir}", lib_dir)
                .replace("{truth}", truth_s)
                .replace("{probe_wait_ms}", &probe_wait)
        }));
    }
    println!("profiler {}", args.join(" "));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let profiler = Profiler::start_with(
        Command::new(crate::profiler_bin())
            .args(&arg_refs)
            .envs(env.iter().copied()),
    );
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler failed: {status:?}: {stderr:?}");
    let run = finish(&report, &truth, &trace, stderr, exe);
    assert_probes_were_there(&run);
    run
}

/// Panics when the workload gave up waiting for the profiler's uprobes (`--wait-for-probes`).
fn assert_probes_were_there(run: &CudaRun) {
    let waited = &run.truth["waited_for_probes_ms"];
    println!("the workload waited {waited} ms for the profiler's uprobes");
    assert!(
        waited.as_i64().is_some_and(|ms| ms >= 0),
        "the profiler did not put uprobes on every CUDA function the workload calls within \
         {PROBE_WAIT_MS} ms (waited_for_probes_ms {waited}); cuda.libraries: {}; stderr: {:?}",
        run.report["cuda"]["libraries"],
        run.stderr
    );
}

/// A `cuda-workload --wait-for-signal`, killed on Drop.
pub struct WaitingWorkload {
    child: Child,
}

impl WaitingWorkload {
    /// Starts it and waits (at most 30 s) for its `ready` line: libraries loaded, names looked
    /// up.
    pub fn start(stub: &StubCuda, truth: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(&stub.workload)
            .arg("--lib-dir")
            .arg(&stub.lib_dir)
            .arg("--truth")
            .arg(truth)
            .arg("--wait-for-signal")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start cuda-workload");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cuda-workload did not say ready in 30 s");
        assert_eq!(line.trim(), "ready", "cuda-workload said {line:?}");
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run the counted phase (SIGUSR1) and waits (at most 60 s) for it to exit.
    pub fn go_and_wait(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) },
            0
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "cuda-workload did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "cuda-workload failed: {status}");
    }
}

impl Drop for WaitingWorkload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cuda-workload --wait-for-signal --wait-for-probes PROBE_WAIT_MS WORKLOAD_ARGS`,
/// attaches the profiler once it is ready (`attach --pid PID [ARGS]`), lets it run (it first
/// waits for the uprobes), and returns what the session produced (it ends when the workload
/// exits).
pub fn attach_profiled(stub: &StubCuda, extra: &[&str], workload_args: &[&str]) -> CudaRun {
    let (report, truth, trace) = session_files("attach");
    let _files = Files(vec![report.clone(), truth.clone(), trace.clone()]);
    let probe_wait = PROBE_WAIT_MS.to_string();
    let mut args = vec!["--wait-for-probes", &probe_wait];
    args.extend(workload_args);
    let mut workload = WaitingWorkload::start(stub, &truth, &args);
    let pid = workload.pid().to_string();
    let mut args = vec!["attach".to_owned(), "--pid".to_owned(), pid];
    args.extend(profiler_args(&report, &trace, extra));
    println!("profiler {}", args.join(" "));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut profiler = Profiler::start(&arg_refs);
    profiler.wait_attached();
    workload.go_and_wait();
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler failed: {status:?}: {stderr:?}");
    let run = finish(&report, &truth, &trace, stderr, &stub.workload);
    assert_probes_were_there(&run);
    run
}

/// Runs the workload without a profiler and returns its ground truth.
pub fn run_alone(stub: &StubCuda, args: &[&str]) -> Value {
    run_alone_exe(stub, &stub.workload, args)
}

/// [`run_alone`] with the workload executable `exe`.
pub fn run_alone_exe(stub: &StubCuda, exe: &Path, args: &[&str]) -> Value {
    let out = Command::new(exe)
        .arg("--lib-dir")
        .arg(&stub.lib_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cuda-workload");
    assert!(
        out.status.success(),
        "cuda-workload {args:?} failed: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad ground truth {text:?}: {e}"))
}
