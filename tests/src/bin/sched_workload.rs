//! Workloads with known scheduler behaviour for the end-to-end tests and benchmarks. Each mode
//! waits for a line on stdin ("go") before it starts (so the profiler is attached first, unless
//! `--no-wait`), then prints ground truth as one JSON line on stdout, measured by the threads
//! themselves from /proc/thread-self.
//!
//!   burn-sleep --seconds S    one thread burns CPU for S s, another sleeps in 10 ms steps for S s
//!   pinned --cpu C --seconds S  two threads burn on CPU C for S s (they share it)
//!   child-burn --seconds S    starts a child process (this binary, `burn`) and waits for it
//!   burn --seconds S          one thread burns for S s
//!   idle --seconds S          sleeps
//!   pingpong --rounds N       two threads bounce a byte over pipes N times; reports ns/round

use std::{
    io::{BufRead as _, Read as _, Write as _},
    thread,
    time::{Duration, Instant},
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_default();
    let num = |flag: &str, default: f64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let seconds = num("--seconds", 2.0);
    if !args.iter().any(|a| a == "--no-wait") {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .expect("read go");
    }
    let threads: Vec<String> = match mode.as_str() {
        "burn-sleep" => join_all(vec![
            named("burner", move || burn_for(seconds)),
            named("sleeper", move || sleep_for(seconds)),
        ]),
        "pinned" => {
            let cpu = num("--cpu", 0.0) as usize;
            join_all(vec![
                named("burner-a", move || {
                    pin_to(cpu);
                    burn_for(seconds)
                }),
                named("burner-b", move || {
                    pin_to(cpu);
                    burn_for(seconds)
                }),
            ])
        }
        "burn" => join_all(vec![named("burner", move || burn_for(seconds))]),
        "child-burn" => {
            let exe = std::env::current_exe().expect("current exe");
            let status = std::process::Command::new(exe)
                .args(["burn", "--no-wait", "--seconds", &seconds.to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("start child");
            assert!(status.success());
            // The child's own CPU time (it has been waited for): the ground truth to compare.
            // SAFETY: rusage is plain data that getrusage fills in.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: ru is a valid, writable rusage.
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            println!(
                "{{\"child_cpu_s\":{:.6}}}",
                secs(ru.ru_utime) + secs(ru.ru_stime)
            );
            return;
        }
        "idle" => join_all(vec![named("idler", move || sleep_for(seconds))]),
        "pingpong" => {
            let rounds = num("--rounds", 100_000.0) as u64;
            let ns = pingpong(rounds);
            println!("{{\"rounds\":{rounds},\"ns_per_round\":{ns:.1}}}");
            return;
        }
        other => {
            eprintln!("sched-workload: unknown mode {other:?}");
            std::process::exit(2);
        }
    };
    println!(
        "{{\"pid\":{},\"threads\":[{}]}}",
        std::process::id(),
        threads.join(",")
    );
}

fn named(name: &str, f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<String> {
    let name = name.to_string();
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let start = Instant::now();
            f();
            thread_truth(&name, start.elapsed().as_secs_f64())
        })
        .expect("spawn")
}

fn join_all(handles: Vec<thread::JoinHandle<String>>) -> Vec<String> {
    handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect()
}

/// This thread's own accounting, read just before it exits.
fn thread_truth(name: &str, wall_s: f64) -> String {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tps = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ss: Vec<u64> = schedstat
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // Context switches so far (the final one, at exit, is not in them).
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let count = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!(
        "{{\"name\":\"{name}\",\"tid\":{tid},\"cpu_s\":{},\"wall_s\":{wall_s},\
         \"schedstat_run_ns\":{},\"schedstat_wait_ns\":{},\"schedstat_slices\":{},\
         \"voluntary_switches\":{},\
         \"involuntary_switches\":{}}}",
        ticks / tps,
        ss.first().copied().unwrap_or(0),
        ss.get(1).copied().unwrap_or(0),
        ss.get(2).copied().unwrap_or(0),
        count("voluntary_ctxt_switches:"),
        count("nonvoluntary_ctxt_switches:")
    )
}

fn burn_for(seconds: f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut x = 1u64;
    while Instant::now() < end {
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
}

fn sleep_for(seconds: f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
    }
}

fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; pid 0 means this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity({cpu})");
    }
}

/// Two threads alternate strictly, so each round is two blocking reads and two wakeups.
fn pingpong(rounds: u64) -> f64 {
    let (mut a_rx, mut a_tx) = std::io::pipe().unwrap();
    let (mut b_rx, mut b_tx) = std::io::pipe().unwrap();
    let echo = thread::spawn(move || {
        let mut byte = [0u8; 1];
        for _ in 0..rounds {
            a_rx.read_exact(&mut byte).unwrap();
            b_tx.write_all(&byte).unwrap();
        }
    });
    let start = Instant::now();
    let mut byte = [7u8; 1];
    for _ in 0..rounds {
        a_tx.write_all(&byte).unwrap();
        b_rx.read_exact(&mut byte).unwrap();
    }
    let ns = start.elapsed().as_nanos() as f64 / rounds as f64;
    echo.join().unwrap();
    ns
}
