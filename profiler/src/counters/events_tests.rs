use super::*;

fn cpuinfo(vendor: &str, family: u32, model: u32) -> String {
    format!(
        "processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n\
         model name\t: Some CPU\nflags\t\t: fpu vme\n\nprocessor\t: 1\nvendor_id\t: Other\n\
         cpu family\t: 1\nmodel\t\t: 1\n"
    )
}

fn select(vendor: &str, family: u32, model: u32) -> Result<VectorSource, String> {
    select_vector_source(parse_cpuinfo(&cpuinfo(vendor, family, model)).as_ref())
}

#[test]
fn parses_first_processor_only() {
    let cpu = parse_cpuinfo(&cpuinfo("GenuineIntel", 6, 143)).unwrap();
    assert_eq!(
        cpu,
        CpuId {
            vendor: "GenuineIntel".into(),
            family: 6,
            model: 143
        }
    );
    assert_eq!(parse_cpuinfo("processor : 0\nflags : fpu\n"), None);
    assert_eq!(parse_cpuinfo(""), None);
}

#[test]
fn parses_this_machines_cpuinfo_when_x86() {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if text.contains("vendor_id") {
        let cpu = parse_cpuinfo(&text).expect("x86 cpuinfo parses");
        assert!(!cpu.vendor.is_empty());
    }
}

#[test]
fn intel_big_cores_use_fp_arith() {
    assert_eq!(
        select("GenuineIntel", 6, 0x8F),
        Ok(VectorSource::IntelFpArith)
    ); // SPR
    assert_eq!(
        select("GenuineIntel", 6, 0x55),
        Ok(VectorSource::IntelFpArith)
    ); // SKX
    assert_eq!(
        select("GenuineIntel", 6, 0x3D),
        Ok(VectorSource::IntelFpArith)
    ); // BDW
}

#[test]
fn intel_hybrid_and_unknown_models_give_reasons() {
    let e = select("GenuineIntel", 6, 0x97).unwrap_err();
    assert!(e.contains("hybrid"), "{e}");
    let e = select("GenuineIntel", 6, 0x3C).unwrap_err(); // Haswell: no FP_ARITH
    assert!(e.contains("0x3c"), "{e}");
    assert!(select("GenuineIntel", 19, 1).is_err());
}

#[test]
fn amd_generations() {
    // Zen 1/2
    assert_eq!(
        select("AuthenticAMD", 0x17, 0x31),
        Ok(VectorSource::AmdFlopsByPrecision)
    );
    // Zen 3: Milan (model 1), Vermeer (0x21), Cezanne (0x50)
    for m in [0x01, 0x21, 0x50] {
        assert_eq!(
            select("AuthenticAMD", 0x19, m),
            Ok(VectorSource::AmdFlopsByPrecision)
        );
    }
    // Zen 4: Genoa (0x11), Raphael (0x61), Phoenix (0x74), Bergamo (0xA0)
    for m in [0x11, 0x61, 0x74, 0xA0] {
        assert_eq!(
            select("AuthenticAMD", 0x19, m),
            Ok(VectorSource::AmdByWidth)
        );
    }
    // Zen 5
    assert_eq!(
        select("AuthenticAMD", 0x1A, 0x02),
        Ok(VectorSource::AmdByWidth)
    );
    // pre-Zen and unknown vendors
    assert!(
        select("AuthenticAMD", 0x15, 0x02)
            .unwrap_err()
            .contains("0x15")
    );
    assert!(
        select("HygonGenuine", 0x18, 0)
            .unwrap_err()
            .contains("HygonGenuine")
    );
    assert!(select_vector_source(None).is_err());
}

#[test]
fn raw_encoding() {
    assert_eq!(raw(EventId::Intel512Single, 0xC7, 0x80).config, 0x80C7);
    assert_eq!(raw(EventId::AmdScalar, 0x08, 0x04).config, 0x0408);
    // AMD extended event select: bits 8-11 go to config bits 32-35.
    assert_eq!(raw(EventId::AmdFlops, 0x1C7, 0x01).config, 0x1_0000_01C7);
    assert_eq!(raw(EventId::AmdFlops, 0x03, 0x1F).type_, TYPE_RAW);
}

#[test]
fn intel_umasks_follow_fp_arith_meaning() {
    let fams = vector_families(VectorSource::IntelFpArith);
    let all: Vec<(EventId, u64)> = fams
        .iter()
        .flat_map(|f| f.events.iter().map(|e| (e.id, e.config)))
        .collect();
    use EventId::*;
    assert_eq!(
        all,
        vec![
            (IntelScalarDouble, 0x01C7),
            (IntelScalarSingle, 0x02C7),
            (Intel128Double, 0x04C7),
            (Intel128Single, 0x08C7),
            (Intel256Double, 0x10C7),
            (Intel256Single, 0x20C7),
            (Intel512Double, 0x40C7),
            (Intel512Single, 0x80C7),
        ]
    );
}

#[test]
fn groups_are_small_and_ids_unique() {
    for v in [
        None,
        Some(VectorSource::IntelFpArith),
        Some(VectorSource::AmdByWidth),
        Some(VectorSource::AmdFlopsByPrecision),
    ] {
        let fams = event_families(v);
        assert_eq!(fams[0].kind, FamilyKind::Software);
        let mut ids: Vec<EventId> = Vec::new();
        for f in &fams {
            assert!(!f.events.is_empty() && f.events.len() <= 4, "{}", f.name);
            ids.extend(f.events.iter().map(|e| e.id));
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
    assert_eq!(event_families(None).len(), 5);
}

#[test]
fn generic_encodings() {
    let fams = event_families(None);
    let find = |id| {
        fams.iter()
            .flat_map(|f| f.events.iter())
            .find(|e| e.id == id)
            .copied()
            .unwrap()
    };
    // PERF_COUNT_SW_TASK_CLOCK = 1, PERF_COUNT_HW_INSTRUCTIONS = 1
    assert_eq!(
        find(EventId::TaskClock),
        EventSpec {
            id: EventId::TaskClock,
            type_: 1,
            config: 1
        }
    );
    assert_eq!(find(EventId::Instructions).type_, TYPE_HARDWARE);
    // L1D (0) | READ (0) << 8 | MISS (1) << 16; LL = 2
    assert_eq!(find(EventId::L1dLoadMisses).config, 0x1_0000);
    assert_eq!(find(EventId::LlcLoads).config, 0x2);
    assert_eq!(find(EventId::LlcLoadMisses).config, 0x1_0002);
    assert_eq!(EventId::ALL.len(), EVENT_COUNT);
    assert_eq!(EventId::ALL[EventId::LlcLoads.index()], EventId::LlcLoads);
}
