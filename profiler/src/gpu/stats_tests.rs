use super::*;
use crate::gpu::render::render_text;
use crate::gpu::sample::{GpmReading, GpuProcess, reason_names};

fn reading(power_w: f64, energy_mj: u64, util: u32) -> GpuReading {
    GpuReading {
        index: 0,
        uuid: "GPU-0".into(),
        name: "Test GPU".into(),
        utilization_gpu_pct: Some(util),
        power_w: Some(power_w),
        energy_mj: Some(energy_mj),
        memory_total_bytes: Some(80 << 30),
        clock_event_reasons: Some(Vec::new()),
        ..Default::default()
    }
}

fn sample(t_s: f64, g: GpuReading) -> GpuSample {
    GpuSample { t_s, gpus: vec![g] }
}

#[test]
fn trapezoid_integrates_a_ramp_exactly() {
    let mut t = Trapezoid::default();
    // Power ramps 100 → 300 W over 2 s: 400 J.
    t.push(0.0, Some(100.0));
    t.push(1.0, Some(200.0));
    t.push(2.0, Some(300.0));
    assert_eq!(t.integral, 400.0);
    assert_eq!(t.covered_s, 2.0);
    // A gap is not covered; integration resumes after it.
    t.push(3.0, None);
    t.push(4.0, Some(100.0));
    t.push(5.0, Some(100.0));
    assert_eq!(t.integral, 500.0);
    assert_eq!(t.covered_s, 3.0);
}

#[test]
fn counter_energy_spans_gaps_and_rebases_on_reset() {
    let mut c = CounterEnergy::default();
    c.push(0.0, Some(1_000_000));
    c.push(1.0, Some(1_300_000)); // +300 J
    c.push(2.0, None); // missing reading: the next one spans it
    c.push(3.0, Some(1_900_000)); // +600 J over 2 s
    assert_eq!(c.joules, 900.0);
    assert_eq!(c.covered_s, 3.0);
    c.push(4.0, Some(5_000)); // driver reloaded: counter restarted
    c.push(5.0, Some(205_000)); // +200 J
    assert_eq!(c.resets, 1);
    assert_eq!(c.joules, 1100.0);
    assert_eq!(c.covered_s, 4.0);
}

#[test]
fn throttle_intervals_are_charged_to_the_interval_a_sample_closes() {
    let mut tr = ThrottleTracker::new(3);
    let none: &[&str] = &[];
    tr.push(0.0, none);
    tr.push(1.0, &["gpu-idle"]); // informational: counted per reason, not a throttle
    tr.push(2.0, &["sw-power-cap"]);
    tr.push(3.0, &["sw-power-cap", "hw-thermal-slowdown"]);
    tr.push(4.0, none);
    tr.push(5.0, &["hw-slowdown"]);
    tr.finish();
    assert_eq!(
        tr.intervals,
        vec![
            ThrottleInterval {
                gpu: 3,
                start_s: 1.0,
                end_s: 3.0,
                reasons: vec!["sw-power-cap", "hw-thermal-slowdown"],
            },
            ThrottleInterval {
                gpu: 3,
                start_s: 4.0,
                end_s: 5.0,
                reasons: vec!["hw-slowdown"],
            },
        ]
    );
    assert_eq!(tr.throttled_s, 3.0);
    assert_eq!(tr.reason_s["sw-power-cap"], 2.0);
    assert_eq!(tr.reason_s["hw-thermal-slowdown"], 1.0);
    assert_eq!(tr.reason_s["gpu-idle"], 1.0);
    // The throttled time equals the intervals' total length.
    let total: f64 = tr.intervals.iter().map(|i| i.end_s - i.start_s).sum();
    assert_eq!(total, tr.throttled_s);
}

#[test]
fn a_throttled_first_sample_opens_a_zero_length_interval() {
    let mut tr = ThrottleTracker::new(0);
    tr.push(7.0, &["sw-thermal-slowdown"]);
    tr.finish();
    assert_eq!(tr.intervals.len(), 1);
    assert_eq!((tr.intervals[0].start_s, tr.intervals[0].end_s), (7.0, 7.0));
    assert_eq!(tr.throttled_s, 0.0);
}

#[test]
fn session_aggregate_reports_both_energies_and_their_agreement() {
    let mut st = GpuStats::new();
    // 10 samples at 1 s, constant 350 W; the counter reads 352 W worth (≈ +0.57%).
    for i in 0..=10u64 {
        let mut g = reading(350.0, 1_000_000 + i * 352_000, 90);
        g.memory_used_bytes = Some((10 + i) << 30);
        g.gpm = Some(GpmReading {
            sm_activity_pct: Some(96.0),
            sm_occupancy_pct: Some(14.0),
            tensor_activity_pct: Some(93.0),
            dram_bw_util_pct: None,
        });
        if i == 4 {
            g.processes.push(GpuProcess {
                pid: 42,
                memory_used_bytes: Some(9 << 30),
                sm_util_pct: Some(80),
                mem_util_pct: Some(10),
            });
        }
        if (3..=5).contains(&i) {
            g.clock_event_reasons = Some(reason_names(0x4));
        }
        st.push(&sample(i as f64, g));
    }
    let sec = st.finish(Some("580.1".into()), vec!["a note".into()]);
    assert!(sec.available);
    assert_eq!(sec.samples, 11);
    assert_eq!(sec.span_s, 10.0);
    let g = &sec.gpus[0];
    assert!(g.used_by_watched);
    assert_eq!(g.energy.counter_j, Some(3520.0));
    assert_eq!(g.energy.power_integral_j, Some(3500.0));
    let d = g.energy.counter_vs_power_pct.unwrap();
    assert!((d - 0.5714).abs() < 1e-3, "{d}");
    assert_eq!(g.energy.best_j(), Some(3520.0));
    assert!((g.busy_s.unwrap() - 9.0).abs() < 1e-9);
    assert_eq!(g.memory_used_peak_bytes, Some(20 << 30));
    assert_eq!(g.utilization_pct.unwrap().mean, 90.0);
    let gpm = g.gpm.unwrap();
    assert_eq!(gpm.sm_occupancy_pct.unwrap().max, 14.0);
    assert_eq!(gpm.dram_bw_util_pct, None);
    assert_eq!(g.throttled_s, 3.0);
    assert_eq!(sec.throttled_intervals.len(), 1);
    assert_eq!(sec.throttled_intervals[0].start_s, 2.0);
    assert_eq!(sec.throttled_intervals[0].end_s, 5.0);
    assert_eq!(sec.processes.len(), 1);
    assert_eq!(sec.processes[0].memory_peak_bytes, Some(9 << 30));
    assert_eq!(sec.energy_j(true), Some(3520.0));
    assert!((sec.busy_s(false).unwrap() - 9.0).abs() < 1e-9);

    let v = serde_json::to_value(&sec).unwrap();
    assert_eq!(v["gpus"][0]["energy"]["counter_j"], 3520.0);
    assert_eq!(v["throttled_intervals"][0]["reasons"][0], "sw-power-cap");
    assert_eq!(v["gpus"][0]["clock_event_s"]["sw-power-cap"], 3.0);

    let mut text = String::new();
    render_text(&sec, &mut text);
    assert!(
        text.contains("GPU: 1 device(s), driver 580.1, 11 samples"),
        "{text}"
    );
    assert!(text.contains("3520.0 J (counter), 3500.0 J (∫ power, counter +0.6%)"));
    assert!(
        text.contains("throttled 3.00 s: sw-power-cap 3.00 s"),
        "{text}"
    );
    assert!(text.contains("GPU 0 2.0–5.0 s: sw-power-cap"));
    assert!(text.contains("pid 42 on GPU 0: peak memory 9.0 GiB"));
    assert!(text.contains("note: a note"));
}

#[test]
fn missing_metrics_stay_null_and_unwatched_gpus_are_excluded() {
    let mut st = GpuStats::new();
    for i in 0..3 {
        st.push(&sample(
            f64::from(i),
            GpuReading {
                index: 1,
                ..Default::default()
            },
        ));
    }
    let sec = st.finish(None, Vec::new());
    let g = &sec.gpus[0];
    assert_eq!(g.energy.counter_j, None);
    assert_eq!(g.energy.power_integral_j, None);
    assert_eq!(g.energy.counter_vs_power_pct, None);
    assert!(g.gpm.is_none() && g.power_w.is_none() && g.busy_s.is_none());
    assert_eq!(sec.energy_j(false), None);
    assert_eq!(sec.energy_j(true), None);
    let mut text = String::new();
    render_text(&sec, &mut text);
    assert!(text.contains("GPM: not available"));
}

#[test]
fn interval_list_is_capped() {
    let mut st = GpuStats::new();
    for i in 0..(2 * MAX_INTERVALS + 10) {
        let mut g = reading(100.0, 0, 0);
        if i % 2 == 1 {
            g.clock_event_reasons = Some(vec!["hw-slowdown"]);
        }
        st.push(&sample(i as f64, g));
    }
    let sec = st.finish(None, Vec::new());
    assert_eq!(sec.throttled_intervals.len(), MAX_INTERVALS);
    assert_eq!(sec.throttled_intervals_dropped, 5);
}

#[test]
fn unavailable_section_says_why() {
    let sec = GpuSection::unavailable("no NVIDIA driver (libnvidia-ml.so.1 not found)");
    let mut text = String::new();
    render_text(&sec, &mut text);
    assert_eq!(
        text,
        "\nGPU: unavailable — no NVIDIA driver (libnvidia-ml.so.1 not found)\n"
    );
    let v = serde_json::to_value(&sec).unwrap();
    assert_eq!(v["available"], false);
}

#[test]
fn the_timeline_keeps_each_reading_with_its_gpm_values() {
    let mut stats = GpuStats::new();
    let mut busy = reading(650.0, 2_000, 99);
    busy.gpm = Some(GpmReading {
        sm_activity_pct: Some(96.0),
        sm_occupancy_pct: Some(14.0),
        tensor_activity_pct: Some(93.0),
        dram_bw_util_pct: Some(24.0),
    });
    stats.push(&sample(0.0, reading(70.0, 1_000, 0)));
    stats.push(&sample(1.0, busy));
    let section = stats.finish(None, Vec::new());
    assert_eq!(section.timeline.len(), 2);
    assert_eq!(section.timeline_dropped, 0);
    let (idle, loaded) = (&section.timeline[0], &section.timeline[1]);
    assert_eq!((idle.t_s, idle.utilization_pct), (0.0, Some(0)));
    assert_eq!(idle.sm_occupancy_pct, None);
    assert_eq!(loaded.t_s, 1.0);
    assert_eq!(loaded.power_w, Some(650.0));
    assert_eq!(loaded.energy_mj, Some(2_000));
    assert_eq!(loaded.tensor_activity_pct, Some(93.0));
    assert_eq!(loaded.sm_occupancy_pct, Some(14.0));
}

#[test]
fn the_timeline_is_bounded() {
    let mut stats = GpuStats::new();
    for i in 0..MAX_TIMELINE + 5 {
        stats.push(&sample(i as f64, reading(70.0, i as u64, 0)));
    }
    let section = stats.finish(None, Vec::new());
    assert_eq!(section.timeline.len(), MAX_TIMELINE);
    assert_eq!(section.timeline_dropped, 5);
}
