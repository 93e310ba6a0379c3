//! Derived efficiency figures (pure): joules per request and per output token, requests per
//! joule, GPU energy per busy second, and a carbon estimate. Every figure is None when an
//! input is missing or a divisor is zero, with a note saying which input was missing.
//! Schema: the report's `efficiency` section.

use std::fmt::Write as _;

use serde::Serialize;

/// Joules in a kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

/// What the session knows at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EfficiencyInputs {
    pub duration_s: f64,
    /// Requests the watched processes served (the HTTP capability).
    pub requests: Option<u64>,
    /// Output tokens streamed (SSE events / `usage`).
    pub output_tokens: Option<u64>,
    /// GPU energy of the GPUs the watched processes used (`GpuSection::energy_j(true)`):
    /// whole-GPU energy, measured.
    pub gpu_energy_j: Option<f64>,
    /// CPU energy attributed to the watched processes (`CpuEnergySection::attributed_j()`):
    /// an estimate.
    pub cpu_energy_j: Option<f64>,
    /// Seconds the GPUs ran kernels (`GpuSection::busy_s(true)`, or the CUDA section's
    /// busy estimate).
    pub gpu_busy_s: Option<f64>,
    /// Where `gpu_busy_s` came from, e.g. `nvml-utilization` or `cuda-estimate`.
    pub gpu_busy_source: Option<&'static str>,
    /// `--carbon-intensity`, gCO2 per kWh.
    pub carbon_intensity_g_per_kwh: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EfficiencySection {
    /// GPU + attributed CPU energy, joules (whichever of the two exist).
    pub energy_j: Option<f64>,
    pub gpu_energy_j: Option<f64>,
    /// Estimate (CPU-time share of RAPL energy).
    pub cpu_energy_j: Option<f64>,
    pub mean_power_w: Option<f64>,
    pub requests: Option<u64>,
    pub output_tokens: Option<u64>,
    pub joules_per_request: Option<f64>,
    pub requests_per_joule: Option<f64>,
    pub joules_per_output_token: Option<f64>,
    pub gpu_busy_s: Option<f64>,
    pub gpu_busy_source: Option<&'static str>,
    /// GPU energy / GPU busy seconds: watts while kernels ran (idle power included).
    pub gpu_joules_per_busy_s: Option<f64>,
    pub carbon_intensity_g_per_kwh: Option<f64>,
    /// energy_j in kWh × the intensity, grams CO2.
    pub carbon_g: Option<f64>,
    /// True when a figure rests on an estimate (the CPU attribution, the carbon intensity).
    pub estimate: bool,
    /// Why figures are missing.
    pub notes: Vec<String>,
}

/// `num / den` when both are known, finite, and `den` > 0.
pub fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 && n.is_finite() && d.is_finite() => Some(n / d),
        _ => None,
    }
}

/// Grams of CO2 for `joules` at `g_per_kwh`.
pub fn carbon_g(joules: f64, g_per_kwh: f64) -> f64 {
    joules / J_PER_KWH * g_per_kwh
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

pub fn compute(i: &EfficiencyInputs) -> EfficiencySection {
    let mut notes = Vec::new();
    let energy_j = sum(i.gpu_energy_j, i.cpu_energy_j);
    let requests = i.requests.map(|r| r as f64);
    let tokens = i.output_tokens.map(|t| t as f64);
    if energy_j.is_none() {
        notes
            .push("no energy figure: neither GPU (NVML) nor CPU (RAPL) energy is available".into());
    }
    match i.requests {
        None => notes.push("no request counts (HTTP analysis off)".into()),
        Some(0) => notes.push("no requests seen: per-request figures need requests".into()),
        Some(_) => {}
    }
    if matches!(i.output_tokens, None | Some(0)) {
        notes.push("no output tokens seen (no streamed LLM responses): no per-token figure".into());
    }
    if i.gpu_busy_s.is_none_or(|b| b <= 0.0) && i.gpu_energy_j.is_some() {
        notes.push("no GPU busy time: no energy per kernel-second".into());
    }
    let intensity = match i.carbon_intensity_g_per_kwh {
        Some(c) if c >= 0.0 && c.is_finite() => Some(c),
        Some(c) => {
            notes.push(format!(
                "carbon intensity {c} gCO2/kWh is not valid: ignored"
            ));
            None
        }
        None => {
            notes.push("no carbon estimate: pass --carbon-intensity gCO2/kWh".into());
            None
        }
    };
    EfficiencySection {
        energy_j,
        gpu_energy_j: i.gpu_energy_j,
        cpu_energy_j: i.cpu_energy_j,
        mean_power_w: ratio(energy_j, Some(i.duration_s)),
        requests: i.requests,
        output_tokens: i.output_tokens,
        joules_per_request: ratio(energy_j, requests),
        requests_per_joule: ratio(requests, energy_j),
        joules_per_output_token: ratio(energy_j, tokens),
        gpu_busy_s: i.gpu_busy_s,
        gpu_busy_source: i.gpu_busy_source,
        gpu_joules_per_busy_s: ratio(i.gpu_energy_j, i.gpu_busy_s),
        carbon_intensity_g_per_kwh: intensity,
        carbon_g: energy_j.zip(intensity).map(|(j, c)| carbon_g(j, c)),
        estimate: i.cpu_energy_j.is_some() || intensity.is_some(),
        notes,
    }
}

fn opt(v: Option<f64>, digits: usize, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}{unit}"))
}

/// Appends the efficiency block to `out`.
pub fn render_text(s: &EfficiencySection, out: &mut String) {
    out.push('\n');
    let parts = [
        s.gpu_energy_j.map(|j| format!("GPU {j:.1} J")),
        s.cpu_energy_j.map(|j| format!("CPU {j:.1} J (estimate)")),
    ];
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    let _ = writeln!(
        out,
        "efficiency: energy {}{}   mean power {}",
        opt(s.energy_j, 1, " J"),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(" + "))
        },
        opt(s.mean_power_w, 1, " W")
    );
    if s.energy_j.is_some() {
        let _ = writeln!(
            out,
            "  per request {}   requests per joule {}   per output token {}",
            opt(s.joules_per_request, 3, " J"),
            opt(s.requests_per_joule, 3, ""),
            opt(s.joules_per_output_token, 4, " J")
        );
    }
    if let Some(w) = s.gpu_joules_per_busy_s {
        let _ = writeln!(
            out,
            "  GPU energy per busy second {w:.1} J/s ({:.1} s busy, from {})",
            s.gpu_busy_s.unwrap_or_default(),
            s.gpu_busy_source.unwrap_or("?")
        );
    }
    if let (Some(g), Some(c)) = (s.carbon_g, s.carbon_intensity_g_per_kwh) {
        let _ = writeln!(out, "  carbon ≈ {g:.3} gCO2 at {c} gCO2/kWh (estimate)");
    }
    for n in &s.notes {
        let _ = writeln!(out, "  note: {n}");
    }
}

#[cfg(test)]
#[path = "efficiency_tests.rs"]
mod tests;
