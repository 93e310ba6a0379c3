//! Hardware and energy sections: software perf counters against the workload's own CPU
//! accounting, and every unavailable part (hardware PMU, RAPL, NVML) saying why.

use std::path::Path;

use profiler_tests::*;

#[test]
fn software_counters_count_and_missing_hardware_says_why() {
    if !privileged("software_counters_count_and_missing_hardware_says_why") {
        return;
    }
    let (truth, report) = profile_workload(&["burn-sleep", "--seconds", "1"]);
    let threads = truth["threads"].as_array().expect("threads");
    let cpu_of = |name: &str| {
        threads
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["cpu_s"].as_f64())
            .unwrap_or_else(|| panic!("no {name} in {truth}"))
    };
    let (burner_cpu, sleeper_cpu) = (cpu_of("burner"), cpu_of("sleeper"));
    let counters = &report["processes"][0]["counters"];
    println!("counters: {counters}");
    let sw = &counters["software"];
    let task_clock_s = sw["task_clock_ms"].as_f64().expect("task_clock_ms") / 1e3;
    // The process's threads ran as long as the burner and sleeper (the main thread only
    // waits). They start after attach and are counted from the profiler's next look at
    // /proc/<pid>/task (every 50 ms): up to 5% of the burner's second may be missed.
    assert!(
        task_clock_s >= 0.9 * (burner_cpu + sleeper_cpu)
            && task_clock_s <= 1.05 * (burner_cpu + sleeper_cpu) + 0.05,
        "task clock {task_clock_s:.3} s vs burner {burner_cpu:.3} s + sleeper {sleeper_cpu:.3} s"
    );
    // The sleeper sleeps 10 ms at a time: ~100 voluntary switches in a second.
    let switches = sw["context_switches"].as_u64().expect("context_switches");
    assert!(switches >= 80, "context switches {switches}");

    // Hardware counters exactly when the kernel has a hardware PMU.
    let pmu = Path::new("/sys/bus/event_source/devices/cpu/events/instructions").exists()
        || Path::new("/sys/bus/event_source/devices/cpu_core/events/instructions").exists();
    if pmu {
        assert!(counters["hardware"].is_object(), "{counters}");
    } else {
        assert!(counters["hardware"].is_null(), "{counters}");
        let why = counters["hardware_unavailable"].as_str().unwrap_or("");
        assert!(
            why.contains("PMU"),
            "no reason for missing hardware counters: {why:?}"
        );
    }

    // RAPL: powercap or the perf power PMU, else a reason.
    let rapl = Path::new("/sys/class/powercap/intel-rapl:0/energy_uj").exists()
        || Path::new("/sys/bus/event_source/devices/power").exists();
    let cpu_energy = &report["cpu_energy"];
    if !rapl {
        assert_eq!(cpu_energy["available"], false, "{cpu_energy}");
        assert!(
            !cpu_energy["unavailable_reason"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{cpu_energy}"
        );
    }
    // NVML: a reason when there is no driver.
    let gpu = &report["gpu"];
    if gpu["available"] == false {
        assert!(
            !gpu["unavailable_reason"].as_str().unwrap_or("").is_empty(),
            "{gpu}"
        );
    }
    // No energy figure without a reason.
    let eff = &report["efficiency"];
    if eff["energy_j"].is_null() {
        assert!(
            eff["notes"].as_array().is_some_and(|n| !n.is_empty()),
            "{eff}"
        );
    }
}
