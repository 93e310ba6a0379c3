use super::*;

#[test]
fn domain_kinds_from_zone_and_event_names() {
    assert_eq!(DomainKind::from_name("package-0"), DomainKind::Package);
    assert_eq!(DomainKind::from_name("core"), DomainKind::Cores);
    assert_eq!(DomainKind::from_name("dram"), DomainKind::Dram);
    assert_eq!(DomainKind::from_name("psys"), DomainKind::Psys);
    assert_eq!(DomainKind::Psys.label(), "platform (psys)");
}

/// Here (no powercap, no power PMU) `new` fails with a one-line reason; where RAPL exists it
/// samples without panicking.
#[test]
fn new_gives_a_reason_or_samples() {
    match RaplSampler::new() {
        Err(reason) => {
            assert!(reason.starts_with("no RAPL energy counters: "), "{reason}");
            assert!(!reason.contains('\n'));
            eprintln!("RaplSampler::new: {reason}");
        }
        Ok(mut s) => {
            let me = std::process::id();
            s.sample(&[me]);
            let iv = s.sample(&[me]);
            assert!(!iv.domains.is_empty());
            assert_eq!(iv.processes.len(), 1);
        }
    }
}
