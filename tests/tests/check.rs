//! `profiler check` reports what this machine can do, matching facts the test reads itself.

use std::{path::Path, process::Command};

use profiler_tests::*;

fn status_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
                .starts_with(name)
        })
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

#[test]
fn check_reports_capabilities_of_this_machine() {
    if !privileged("check_reports_capabilities_of_this_machine") {
        return;
    }
    let out = Command::new(profiler_bin())
        .arg("check")
        .output()
        .expect("run check");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "check failed: {text}");
    for name in [
        "kernel",
        "privileges",
        "btf",
        "tracefs",
        "tracepoints",
        "uprobes",
        "cuda programs",
    ] {
        assert_eq!(status_of(&text, name), "ok", "{name}");
    }
    // Ground truth from sysfs: a kprobe PMU exists exactly when the kernel has kprobes.
    let kprobes = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    assert_eq!(
        status_of(&text, "kprobes"),
        if kprobes { "ok" } else { "missing" }
    );
    // A hardware PMU registers a `cpu` (Intel/AMD core) event source with an instructions event.
    let pmu = Path::new("/sys/bus/event_source/devices/cpu/events/instructions").exists()
        || Path::new("/sys/bus/event_source/devices/cpu_core/events/instructions").exists();
    assert_eq!(
        status_of(&text, "hardware perf events"),
        if pmu { "ok" } else { "missing" }
    );
    // The loader's cache is the ground truth for the NVIDIA driver library.
    let ldconfig = Command::new("ldconfig")
        .arg("-p")
        .output()
        .expect("ldconfig");
    let has_libcuda = String::from_utf8_lossy(&ldconfig.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with("libcuda.so"));
    assert_eq!(
        status_of(&text, "cuda driver"),
        if has_libcuda { "ok" } else { "missing" }
    );
    let fentry = status_of(&text, "fentry");
    assert!(fentry == "ok" || fentry == "missing");
    // Missing capabilities say what they cost.
    for line in text.lines().filter(|l| l.starts_with("missing")) {
        assert!(line.contains(" — "), "no impact given: {line}");
    }
}
