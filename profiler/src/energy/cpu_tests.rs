use super::*;
use crate::energy::rapl::ProcessTicks;

fn dom(domain: &str, kind: DomainKind, joules: Option<f64>) -> DomainEnergy {
    DomainEnergy {
        domain: domain.into(),
        kind,
        joules,
    }
}

fn interval(domains: Vec<DomainEnergy>, busy: u64, procs: &[(u32, u64)]) -> CpuEnergyInterval {
    CpuEnergyInterval {
        dt_s: 1.0,
        domains,
        busy_ticks: busy,
        total_ticks: 200,
        ticks_per_s: 100.0,
        processes: procs
            .iter()
            .map(|&(pid, ticks)| ProcessTicks { pid, ticks })
            .collect(),
    }
}

#[test]
fn base_prefers_packages_then_psys() {
    let both = [
        dom("package-0", DomainKind::Package, Some(10.0)),
        dom("package-1", DomainKind::Package, Some(5.0)),
        dom("package-0/core", DomainKind::Cores, Some(7.0)),
        dom("psys", DomainKind::Psys, Some(40.0)),
    ];
    assert_eq!(attribution_base(&both), Some((DomainKind::Package, 15.0)));
    let psys = [dom("psys", DomainKind::Psys, Some(40.0))];
    assert_eq!(attribution_base(&psys), Some((DomainKind::Psys, 40.0)));
    // An unread package leaves the interval unattributed rather than under-counted.
    let unread = [
        dom("package-0", DomainKind::Package, Some(10.0)),
        dom("package-1", DomainKind::Package, None),
    ];
    assert_eq!(attribution_base(&unread), None);
    assert_eq!(
        attribution_base(&[dom("dram", DomainKind::Dram, Some(1.0))]),
        None
    );
}

#[test]
fn attribution_follows_the_cpu_share_of_each_interval() {
    let mut st = CpuEnergyStats::new();
    // Interval 1: 100 J, the process used 50 of 100 busy ticks → 50 J.
    st.push(&interval(
        vec![dom("package-0", DomainKind::Package, Some(100.0))],
        100,
        &[(7, 50)],
    ));
    // Interval 2: 60 J, 30 of 120 ticks → 15 J; pid 8 used 120 (clamped to the whole) → 60 J.
    st.push(&interval(
        vec![dom("package-0", DomainKind::Package, Some(60.0))],
        120,
        &[(7, 30), (8, 120)],
    ));
    // Interval 3: counter unreadable → no energy, nothing attributed.
    st.push(&interval(
        vec![dom("package-0", DomainKind::Package, None)],
        100,
        &[(7, 100)],
    ));
    let s = st.finish("powercap", Vec::new());
    assert_eq!(s.machine_j, Some(160.0));
    assert_eq!(s.machine_domain, Some(DomainKind::Package));
    assert_eq!(s.domains[0].joules, 160.0);
    assert_eq!(s.domains[0].unread_intervals, 1);
    assert_eq!(s.domains[0].mean_w, Some(160.0 / 3.0));
    let a = s.attribution.as_ref().unwrap();
    assert!(a.estimate);
    assert_eq!(a.processes[0].pid, 7);
    assert_eq!(a.processes[0].joules, 65.0);
    assert_eq!(a.processes[0].cpu_s, 0.8);
    assert_eq!(a.processes[0].busy_share_pct, 80.0 / 220.0 * 100.0);
    assert_eq!(a.processes[1].joules, 60.0);
    assert_eq!(s.attributed_j(), Some(125.0));

    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["machine_domain"], "package");
    assert_eq!(v["attribution"]["estimate"], true);
    let mut text = String::new();
    render_text(&s, &mut text);
    assert!(text.contains("CPU energy (powercap, 3.00 s): package-0 [CPU package] 160.0 J"));
    assert!(text.contains("pid 7: 65.0 J estimated"), "{text}");
}

#[test]
fn psys_only_is_labelled_platform_and_a_stuck_counter_is_noted() {
    let mut st = CpuEnergyStats::new();
    for _ in 0..2 {
        st.push(&interval(
            vec![dom("psys", DomainKind::Psys, Some(0.0))],
            10,
            &[(1, 5)],
        ));
    }
    let s = st.finish("perf-power-pmu", Vec::new());
    assert_eq!(s.machine_domain, Some(DomainKind::Psys));
    assert_eq!(s.domains[0].label, "platform (psys)");
    assert!(s.notes.iter().any(|n| n.contains("did not advance")));
    assert!(s.notes.iter().any(|n| n.contains("platform (psys)")));
}

#[test]
fn unavailable_section_says_why() {
    let s = CpuEnergySection::unavailable("no RAPL energy counters: x");
    assert_eq!(s.attributed_j(), None);
    let mut text = String::new();
    render_text(&s, &mut text);
    assert_eq!(
        text,
        "\nCPU energy: unavailable — no RAPL energy counters: x\n"
    );
}
