use super::*;

fn inputs() -> EfficiencyInputs {
    EfficiencyInputs {
        duration_s: 10.0,
        requests: Some(500),
        output_tokens: Some(20_000),
        gpu_energy_j: Some(3_000.0),
        cpu_energy_j: Some(600.0),
        gpu_busy_s: Some(8.0),
        gpu_busy_source: Some("nvml-utilization"),
        carbon_intensity_g_per_kwh: Some(400.0),
    }
}

#[test]
fn per_request_token_and_busy_second_figures() {
    let s = compute(&inputs());
    assert_eq!(s.energy_j, Some(3_600.0));
    assert_eq!(s.mean_power_w, Some(360.0));
    assert_eq!(s.joules_per_request, Some(7.2));
    assert_eq!(s.requests_per_joule, Some(500.0 / 3_600.0));
    assert_eq!(s.joules_per_output_token, Some(0.18));
    assert_eq!(s.gpu_joules_per_busy_s, Some(375.0));
    // 3600 J = 1 Wh = 0.001 kWh; × 400 g/kWh = 0.4 g.
    assert!((s.carbon_g.unwrap() - 0.4).abs() < 1e-12);
    assert!(s.estimate);
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

#[test]
fn carbon_arithmetic() {
    assert_eq!(carbon_g(J_PER_KWH, 350.0), 350.0);
    assert_eq!(carbon_g(0.0, 350.0), 0.0);
    assert_eq!(carbon_g(1.8e6, 0.0), 0.0);
}

#[test]
fn zero_or_missing_inputs_give_none_with_a_note() {
    let s = compute(&EfficiencyInputs {
        requests: Some(0),
        output_tokens: None,
        gpu_busy_s: Some(0.0),
        carbon_intensity_g_per_kwh: None,
        ..inputs()
    });
    assert_eq!(s.joules_per_request, None);
    assert_eq!(s.requests_per_joule, Some(0.0));
    assert_eq!(s.joules_per_output_token, None);
    assert_eq!(s.gpu_joules_per_busy_s, None);
    assert_eq!(s.carbon_g, None);
    assert_eq!(s.notes.len(), 4, "{:?}", s.notes);

    let none = compute(&EfficiencyInputs::default());
    assert_eq!(none.energy_j, None);
    assert_eq!(none.mean_power_w, None);
    assert_eq!(none.requests_per_joule, None);
    assert!(!none.estimate);
    assert!(none.notes[0].starts_with("no energy figure"));

    // Zero energy: requests per joule would divide by zero.
    let zero = compute(&EfficiencyInputs {
        gpu_energy_j: Some(0.0),
        cpu_energy_j: None,
        ..inputs()
    });
    assert_eq!(zero.requests_per_joule, None);
    assert_eq!(zero.joules_per_request, Some(0.0));
}

#[test]
fn gpu_only_or_cpu_only_energy_is_used_as_is() {
    let gpu = compute(&EfficiencyInputs {
        cpu_energy_j: None,
        carbon_intensity_g_per_kwh: None,
        ..inputs()
    });
    assert_eq!(gpu.energy_j, Some(3_000.0));
    assert!(!gpu.estimate);
    let cpu = compute(&EfficiencyInputs {
        gpu_energy_j: None,
        ..inputs()
    });
    assert_eq!(cpu.energy_j, Some(600.0));
    assert_eq!(cpu.gpu_joules_per_busy_s, None);
}

#[test]
fn ratio_guards() {
    assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    assert_eq!(ratio(Some(1.0), Some(-2.0)), None);
    assert_eq!(ratio(None, Some(2.0)), None);
    assert_eq!(ratio(Some(f64::NAN), Some(2.0)), None);
    assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
}

#[test]
fn json_and_text() {
    let s = compute(&inputs());
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["joules_per_request"], 7.2);
    assert_eq!(v["gpu_busy_source"], "nvml-utilization");
    let mut text = String::new();
    render_text(&s, &mut text);
    assert!(
        text.contains("energy 3600.0 J (GPU 3000.0 J + CPU 600.0 J (estimate))"),
        "{text}"
    );
    assert!(text.contains("per request 7.200 J"));
    assert!(text.contains("per output token 0.1800 J"));
    assert!(text.contains("GPU energy per busy second 375.0 J/s (8.0 s busy"));
    assert!(text.contains("carbon ≈ 0.400 gCO2 at 400 gCO2/kWh"));
}
