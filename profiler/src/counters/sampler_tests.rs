//! Counts on the test process itself: software events need no PMU, and watching one's own
//! threads needs no privilege (kernel-mode counting may be refused; then only user time).

use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use super::*;

const MS: u64 = 1_000_000;

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spins until this thread has used `d` of CPU (so other tests competing for the cores do
/// not shorten it), or 10 s have passed.
fn burn(d: Duration) {
    let start = thread_cpu_ns();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut x = 0u64;
    while thread_cpu_ns() - start < d.as_nanos() as u64 && Instant::now() < deadline {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// A sampler watching `pid` with no thread opened yet; `None` (printed) when software
/// counters cannot be opened here.
fn empty_sampler(pid: u32) -> Option<CounterSampler> {
    let mut s = CounterSampler::new(&[]);
    if let Some(reason) = &s.status().software_unavailable {
        eprintln!("skipping: software perf counters unavailable here: {reason}");
        return None;
    }
    s.procs.insert(
        pid,
        ProcState {
            counters: ProcessCounters {
                pid,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    Some(s)
}

fn wait_gone(pid: u32, tid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while list_tasks(pid).contains(&tid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn status_is_probed_once_with_reasons() {
    let s = CounterSampler::new(&[]);
    let st = s.status();
    eprintln!("counter status: {st:#?}");
    eprintln!(
        "families: {:?}",
        s.families().iter().map(|f| f.name).collect::<Vec<_>>()
    );
    let devices = std::path::Path::new("/sys/bus/event_source/devices");
    let has_pmu = ["cpu", "cpu_core"].iter().any(|d| devices.join(d).exists());
    if st.software_unavailable.is_none() && !has_pmu {
        // This machine (and the GPU one): no hardware PMU, said once, clearly.
        let reason = st
            .hardware_unavailable
            .as_deref()
            .expect("hardware must be unavailable");
        assert!(reason.contains("no hardware PMU"), "{reason}");
        assert!(s.families().iter().all(|f| f.kind == FamilyKind::Software));
        assert_eq!(st.vector_source, None);
    }
    if st.hardware_unavailable.is_some() {
        assert!(s.families().iter().all(|f| f.kind == FamilyKind::Software));
    }
}

#[test]
fn counts_this_thread_after_work_and_sleep() {
    let pid = std::process::id();
    let Some(mut s) = empty_sampler(pid) else {
        return;
    };
    assert!(s.add_thread(pid, sys::gettid()));
    burn(Duration::from_millis(30));
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(5));
    }
    let p = s.read().into_iter().find(|p| p.pid == pid).unwrap();
    let t = &p.interval;
    eprintln!("this thread: {:?}", t.iter().collect::<Vec<_>>());
    assert!(t.get(EventId::TaskClock).unwrap() >= 25 * MS, "{t:?}");
    assert_eq!(p.threads_live, 1);
    if s.status().kernel_included {
        // A sleep is a voluntary context switch, counted in kernel mode.
        assert!(t.get(EventId::ContextSwitches).unwrap() >= 3, "{t:?}");
    } else {
        eprintln!("kernel-mode counting not permitted: context switches not asserted");
    }
    let section = s.section(pid).unwrap();
    assert!(section.software.as_ref().unwrap().task_clock_ms >= 25.0);
    let mut text = String::new();
    crate::counters::report::render_text(&section, &mut text);
    eprintln!("{text}");
    assert!(text.contains("task-clock"));
}

#[test]
fn exited_thread_keeps_its_counts() {
    let pid = std::process::id();
    let Some(mut s) = empty_sampler(pid) else {
        return;
    };
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        tid_tx.send(sys::gettid()).unwrap();
        go_rx.recv().unwrap();
        burn(Duration::from_millis(30));
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        burn(Duration::from_millis(30));
    });
    let tid = tid_rx.recv().unwrap();
    assert!(s.add_thread(pid, tid));
    go_tx.send(()).unwrap();
    done_rx.recv().unwrap();
    let first = s.read().remove(0);
    assert!(first.interval.get(EventId::TaskClock).unwrap() >= 25 * MS);

    go_tx.send(()).unwrap();
    worker.join().unwrap();
    wait_gone(pid, tid);
    s.remove_thread(pid, tid);
    let p = s.read().remove(0);
    let last = p.interval.get(EventId::TaskClock).unwrap();
    let total = p.total.get(EventId::TaskClock).unwrap();
    eprintln!("exited thread: last interval {last} ns, total {total} ns");
    assert!(
        last >= 25 * MS,
        "the exited thread's last stretch was lost: {last}"
    );
    assert!(total >= 55 * MS);
    assert_eq!(
        (p.threads_live, p.threads_counted, p.threads_exited),
        (0, 1, 1)
    );

    // A thread that is gone is skipped silently.
    assert!(!s.add_thread(pid, tid));
    assert_eq!(s.counters(pid).unwrap().open_error, None);
    // Reading again adds nothing.
    let again = s.read().remove(0);
    assert_eq!(again.total.get(EventId::TaskClock), Some(total));
}

#[test]
fn refresh_follows_proc_task() {
    let pid = std::process::id();
    let Some(mut s) = empty_sampler(pid) else {
        return;
    };
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        tid_tx.send(sys::gettid()).unwrap();
        go_rx.recv().unwrap();
    });
    let tid = tid_rx.recv().unwrap();
    let (added, _) = s.refresh(pid);
    assert!(added >= 2, "this thread and the worker at least: {added}");
    assert!(s.procs[&pid].threads.contains_key(&tid));
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    wait_gone(pid, tid);
    s.refresh_all();
    assert!(!s.procs[&pid].threads.contains_key(&tid));
    assert!(s.counters(pid).unwrap().threads_exited >= 1);
    let sections = s.finish();
    assert!(sections[&pid].software.is_some());
    assert_eq!(s.counters(pid).unwrap().threads_live, 0);
}

#[test]
fn gone_process_is_harmless() {
    let mut s = CounterSampler::new(&[u32::MAX - 1]);
    assert_eq!(s.refresh(u32::MAX - 1), (0, 0));
    let p = s.read().remove(0);
    assert!(p.total.is_empty());
    let section = s.section(u32::MAX - 1).unwrap();
    assert!(section.software.is_none());
    assert!(section.software_unavailable.is_some());
    assert!(!s.add_thread(7, 7)); // not watched
}

#[test]
fn reasons_are_one_line() {
    let e = io::Error::from_raw_os_error(libc::ENOENT);
    let r = hardware_reason(&e);
    assert!(r.starts_with("no hardware PMU") && !r.contains('\n'), "{r}");
    let e = io::Error::from_raw_os_error(libc::EACCES);
    assert!(hardware_reason(&e).contains("perf_event_paranoid"));
    let e = io::Error::from_raw_os_error(libc::EMFILE);
    assert!(describe("thread 1", &e).contains("file descriptors"));
}

#[test]
fn foreign_process_needs_privilege() {
    let mut s = CounterSampler::new(&[1]);
    if s.status().software_unavailable.is_some() {
        return;
    }
    let section = s.finish().remove(&1).unwrap();
    eprintln!("pid 1: {section:?}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(section.software.is_some(), "{section:?}");
    } else {
        let reason = section.software_unavailable.unwrap();
        assert!(reason.contains("not permitted"), "{reason}");
    }
}
