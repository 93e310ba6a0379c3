//! (c) Every way a session ends gives a report and leaves no program loaded.

use profiler_tests::*;

enum Ending {
    Sigint,
    Sigterm,
    Duration,
    TargetExit,
}

fn end_session(ending: Ending, expected_reason: &str) {
    let seconds = match ending {
        Ending::TargetExit => "1",
        _ => "30",
    };
    let mut workload = Workload::start(&["idle", "--seconds", seconds]);
    let pid = workload.pid().to_string();
    let mut args = vec![
        "attach",
        "--pid",
        &pid,
        "--interval",
        "200ms",
        "--format",
        "json",
    ];
    if let Ending::Duration = ending {
        args.extend(["--duration", "1s"]);
    }
    let mut profiler = Profiler::start(&args);
    profiler.wait_attached();

    let ours: Vec<u64> = loaded_programs()
        .into_iter()
        .filter(|(_, name)| is_ours(name))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        ours.len(),
        OUR_PROGRAMS.len(),
        "expected every scheduler program loaded while attached"
    );
    let linked = linked_programs();
    assert!(
        ours.iter().all(|id| linked.contains(id)),
        "expected every scheduler program linked while attached: {ours:?} vs {linked:?}"
    );

    match ending {
        Ending::Sigint => profiler.signal(libc::SIGINT),
        Ending::Sigterm => profiler.signal(libc::SIGTERM),
        Ending::Duration => {}
        Ending::TargetExit => workload.go(),
    }
    let (status, stdout, stderr) = profiler.wait();
    assert!(status.success(), "profiler exit {status:?}: {stderr:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report on stdout");
    assert_eq!(report["end_reason"], expected_reason);

    // Detached at exit: no link runs our programs any more (the kernel drops links at once)...
    let linked: Vec<u64> = linked_programs()
        .into_iter()
        .filter(|id| ours.contains(id))
        .collect();
    assert!(
        linked.is_empty(),
        "programs still linked after exit: {linked:?}"
    );
    // ...and unloaded once the kernel's deferred release has run.
    let still = still_loaded_after(&ours, std::time::Duration::from_secs(5));
    assert!(
        still.is_empty(),
        "programs still loaded 5 s after exit: {still:?}"
    );
    let uprobe_events =
        std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default();
    assert!(
        !uprobe_events.contains("profiler"),
        "left uprobe events: {uprobe_events}"
    );
}

#[test]
fn sigint_detaches_everything() {
    if privileged("sigint_detaches_everything") {
        end_session(Ending::Sigint, "interrupted");
    }
}

#[test]
fn sigterm_detaches_everything() {
    if privileged("sigterm_detaches_everything") {
        end_session(Ending::Sigterm, "terminated");
    }
}

#[test]
fn duration_detaches_everything() {
    if privileged("duration_detaches_everything") {
        end_session(Ending::Duration, "duration");
    }
}

#[test]
fn target_exit_detaches_everything() {
    if privileged("target_exit_detaches_everything") {
        end_session(Ending::TargetExit, "target-exited");
    }
}
