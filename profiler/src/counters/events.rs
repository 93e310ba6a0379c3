//! The event set: which perf events the sampler opens, in which groups, and the vendor raw
//! events for vectorization chosen from `/proc/cpuinfo`. Everything here is pure data and
//! selection logic; `sampler` opens what it describes.

use perf_event::events::{Cache, CacheOp, CacheResult, Hardware, Software, WhichCache};

/// `perf_event_attr.type` values (linux/perf_event.h).
pub const TYPE_HARDWARE: u32 = 0;
pub const TYPE_SOFTWARE: u32 = 1;
pub const TYPE_HW_CACHE: u32 = 3;
pub const TYPE_RAW: u32 = 4;

macro_rules! event_ids {
    ($($id:ident => $name:literal,)*) => {
        /// Every event the sampler may count. `name` is the perf-tool spelling.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventId { $($id,)* }
        impl EventId {
            pub const ALL: &'static [EventId] = &[$(EventId::$id,)*];
            pub fn name(self) -> &'static str {
                match self { $(EventId::$id => $name,)* }
            }
        }
    };
}

event_ids! {
    TaskClock => "task-clock",
    PageFaults => "page-faults",
    ContextSwitches => "context-switches",
    CpuMigrations => "cpu-migrations",
    Cycles => "cycles",
    Instructions => "instructions",
    BranchInstructions => "branch-instructions",
    BranchMisses => "branch-misses",
    CacheReferences => "cache-references",
    CacheMisses => "cache-misses",
    L1dLoads => "L1-dcache-loads",
    L1dLoadMisses => "L1-dcache-load-misses",
    LlcLoads => "LLC-loads",
    LlcLoadMisses => "LLC-load-misses",
    // Intel FP_ARITH_INST_RETIRED (event 0xC7): instructions by width and precision.
    IntelScalarDouble => "fp_arith_inst_retired.scalar_double",
    IntelScalarSingle => "fp_arith_inst_retired.scalar_single",
    Intel128Double => "fp_arith_inst_retired.128b_packed_double",
    Intel128Single => "fp_arith_inst_retired.128b_packed_single",
    Intel256Double => "fp_arith_inst_retired.256b_packed_double",
    Intel256Single => "fp_arith_inst_retired.256b_packed_single",
    Intel512Double => "fp_arith_inst_retired.512b_packed_double",
    Intel512Single => "fp_arith_inst_retired.512b_packed_single",
    // AMD Zen 4/5 FpOpsRetiredByWidth (PMCx008): uops by width, any precision.
    AmdScalar => "fp_ops_retired_by_width.scalar_uops_retired",
    Amd128 => "fp_ops_retired_by_width.pack_128_uops_retired",
    Amd256 => "fp_ops_retired_by_width.pack_256_uops_retired",
    Amd512 => "fp_ops_retired_by_width.pack_512_uops_retired",
    // AMD FpRetSseAvxOps (PMCx003): FLOPs. Zen 4/5 all types; Zen 1-3 split by precision.
    AmdFlops => "fp_ret_sse_avx_ops.all",
    AmdFlopsSingle => "fp_ret_sse_avx_ops.sp_all",
    AmdFlopsDouble => "fp_ret_sse_avx_ops.dp_all",
}

pub const EVENT_COUNT: usize = EventId::ALL.len();

impl EventId {
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One event to open: its id and the `perf_event_attr` type and config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    pub id: EventId,
    pub type_: u32,
    pub config: u64,
}

/// What a group needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    /// Kernel software events: always available.
    Software,
    /// Generic hardware and cache events: need a hardware PMU.
    Hardware,
    /// Vendor raw events for vectorization: need a hardware PMU and a known CPU.
    Vector,
}

/// One perf group, opened per thread; its first event leads. Groups stay small (≤ 4 PMU
/// counters) so that each can be scheduled on its own, with SMT and the NMI watchdog taking
/// counters; the kernel then multiplexes whole groups and time_enabled/time_running scale them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: FamilyKind,
    pub events: Vec<EventSpec>,
}

fn sw(id: EventId, s: Software) -> EventSpec {
    EventSpec {
        id,
        type_: TYPE_SOFTWARE,
        config: s as u64,
    }
}

fn hw(id: EventId, h: Hardware) -> EventSpec {
    EventSpec {
        id,
        type_: TYPE_HARDWARE,
        config: h as u64,
    }
}

fn cache(id: EventId, c: Cache) -> EventSpec {
    // The PERF_TYPE_HW_CACHE encoding: id | op << 8 | result << 16 (perf_event_open(2)).
    let config = c.which as u64 | (c.operation as u64) << 8 | (c.result as u64) << 16;
    EventSpec {
        id,
        type_: TYPE_HW_CACHE,
        config,
    }
}

fn read(which: WhichCache, result: CacheResult) -> Cache {
    Cache {
        which,
        operation: CacheOp::READ,
        result,
    }
}

/// A raw PMU event: event select and unit mask as the vendor documents them. AMD event
/// selects above 0xFF keep their high nibble in config bits 32-35.
pub fn raw(id: EventId, event: u16, umask: u8) -> EventSpec {
    let event = u64::from(event);
    let config = (event & 0xff) | u64::from(umask) << 8 | (event & 0xf00) << 24;
    EventSpec {
        id,
        type_: TYPE_RAW,
        config,
    }
}

/// Which vendor events measure vectorization on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorSource {
    /// Intel FP_ARITH_INST_RETIRED: instructions by width and precision.
    IntelFpArith,
    /// AMD Zen 4/5: FpOpsRetiredByWidth uops by width, plus FpRetSseAvxOps FLOPs.
    AmdByWidth,
    /// AMD Zen 1-3: FpRetSseAvxOps FLOPs by precision; the PMU has no width breakdown.
    AmdFlopsByPrecision,
}

impl VectorSource {
    pub fn describe(self) -> &'static str {
        match self {
            VectorSource::IntelFpArith => "Intel FP_ARITH_INST_RETIRED (instructions)",
            VectorSource::AmdByWidth => "AMD FpOpsRetiredByWidth (uops) + FpRetSseAvxOps (FLOPs)",
            VectorSource::AmdFlopsByPrecision => "AMD FpRetSseAvxOps (FLOPs by precision)",
        }
    }
}

/// The CPU as `/proc/cpuinfo` names it (first processor; `cpu family` and `model` are the
/// decimal display values, extended family and model already folded in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuId {
    pub vendor: String,
    pub family: u32,
    pub model: u32,
}

pub fn parse_cpuinfo(text: &str) -> Option<CpuId> {
    let mut vendor = None;
    let mut family = None;
    let mut model = None;
    for line in text.lines() {
        if line.trim().is_empty() && vendor.is_some() {
            break; // end of the first processor's block
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "vendor_id" => vendor = Some(value.to_owned()),
            "cpu family" => family = value.parse().ok(),
            "model" => model = value.parse().ok(),
            _ => {}
        }
    }
    Some(CpuId {
        vendor: vendor?,
        family: family?,
        model: model?,
    })
}

/// Intel family-6 models with FP_ARITH_INST_RETIRED on every core, from the Linux perf
/// `pmu-events/arch/x86/mapfile.csv` (Broadwell through Granite Rapids, big cores only).
const INTEL_FP_ARITH_MODELS: &[u32] = &[
    0x3D, 0x47, 0x4F, 0x56, // Broadwell, Broadwell-X/DE
    0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6, 0x55, 0x66, // Skylake family, Skylake-X, Cannon Lake
    0x7D, 0x7E, 0x6A, 0x6C, 0x8C, 0x8D, 0xA7, // Ice Lake, Ice Lake-X, Tiger Lake, Rocket Lake
    0x8F, 0xCF, 0xAD, 0xAE, // Sapphire, Emerald, Granite Rapids
];

/// Hybrid Intel CPUs (P and E cores): a PERF_TYPE_RAW event goes to the P-core PMU only, so
/// FP work on E-cores would be missed.
const INTEL_HYBRID_MODELS: &[u32] = &[0x97, 0x9A, 0xB7, 0xBA, 0xBF, 0xAA, 0xAC, 0xBD, 0xC5, 0xC6];

/// Chooses the vectorization events for a CPU, or says why there are none.
pub fn select_vector_source(cpu: Option<&CpuId>) -> Result<VectorSource, String> {
    let Some(cpu) = cpu else {
        return Err("CPU vendor unknown (/proc/cpuinfo has no vendor_id)".into());
    };
    let (f, m) = (cpu.family, cpu.model);
    match cpu.vendor.as_str() {
        "GenuineIntel" if f == 6 && INTEL_FP_ARITH_MODELS.contains(&m) => {
            Ok(VectorSource::IntelFpArith)
        }
        "GenuineIntel" if f == 6 && INTEL_HYBRID_MODELS.contains(&m) => Err(format!(
            "hybrid Intel CPU (family 6 model {m:#x}): FP_ARITH events would count P-cores only"
        )),
        "GenuineIntel" => Err(format!(
            "Intel family {f} model {m:#x}: no known FP_ARITH_INST_RETIRED events"
        )),
        // Event codes from the Linux perf pmu-events JSON (tools/perf/pmu-events/arch/x86/
        // amdzen{1..5}/floating-point.json), model ranges from its mapfile.csv: family 0x17 is
        // Zen 1/2; 0x19 models 0x00-0x0F and 0x20-0x5F are Zen 3, the rest Zen 4; 0x1A is Zen 5
        // (assumed to keep the Zen 4 FP events).
        "AuthenticAMD" if f == 0x17 => Ok(VectorSource::AmdFlopsByPrecision),
        "AuthenticAMD" if f == 0x19 && (m <= 0x0F || (0x20..=0x5F).contains(&m)) => {
            Ok(VectorSource::AmdFlopsByPrecision)
        }
        "AuthenticAMD" if f == 0x19 || f == 0x1A => Ok(VectorSource::AmdByWidth),
        "AuthenticAMD" => Err(format!("AMD family {f:#x}: no known FP retired-op events")),
        other => Err(format!(
            "no vectorization events known for vendor {other:?}"
        )),
    }
}

/// The raw events of a vectorization source, as groups of at most four counters.
pub fn vector_families(source: VectorSource) -> Vec<Family> {
    use EventId::*;
    let fam = |name, events| Family {
        name,
        kind: FamilyKind::Vector,
        events,
    };
    match source {
        // Intel SDM / perfmon FP_ARITH_INST_RETIRED umasks; the event may only use GP
        // counters 0-3, hence two groups of four.
        VectorSource::IntelFpArith => vec![
            fam(
                "fp-scalar-128",
                vec![
                    raw(IntelScalarDouble, 0xC7, 0x01),
                    raw(IntelScalarSingle, 0xC7, 0x02),
                    raw(Intel128Double, 0xC7, 0x04),
                    raw(Intel128Single, 0xC7, 0x08),
                ],
            ),
            fam(
                "fp-256-512",
                vec![
                    raw(Intel256Double, 0xC7, 0x10),
                    raw(Intel256Single, 0xC7, 0x20),
                    raw(Intel512Double, 0xC7, 0x40),
                    raw(Intel512Single, 0xC7, 0x80),
                ],
            ),
        ],
        // amdzen4 floating-point.json: fp_ops_retired_by_width EventCode 0x08 (umask 0x04
        // scalar, 0x08/0x10/0x20 packed 128/256/512) and fp_ret_sse_avx_ops.all EventCode 0x03
        // umask 0x1F. Zen has six counters per thread and no fixed ones.
        VectorSource::AmdByWidth => vec![
            fam(
                "fp-width",
                vec![
                    raw(AmdScalar, 0x08, 0x04),
                    raw(Amd128, 0x08, 0x08),
                    raw(Amd256, 0x08, 0x10),
                    raw(Amd512, 0x08, 0x20),
                ],
            ),
            fam("fp-flops", vec![raw(AmdFlops, 0x03, 0x1F)]),
        ],
        // amdzen1/2/3 floating-point.json: fp_ret_sse_avx_ops EventCode 0x03, umask bits 0-3
        // single precision (add/sub, mult, div/sqrt, mult-add counted twice), bits 4-7 double.
        VectorSource::AmdFlopsByPrecision => vec![fam(
            "fp-flops",
            vec![
                raw(AmdFlopsSingle, 0x03, 0x0F),
                raw(AmdFlopsDouble, 0x03, 0xF0),
            ],
        )],
    }
}

/// Every group the sampler opens per thread: software always; hardware and vector groups are
/// dropped by the sampler when the PMU is absent.
pub fn event_families(vector: Option<VectorSource>) -> Vec<Family> {
    use EventId::*;
    let fam = |name, kind, events| Family { name, kind, events };
    let mut out = vec![
        fam(
            "software",
            FamilyKind::Software,
            vec![
                sw(TaskClock, Software::TASK_CLOCK),
                sw(PageFaults, Software::PAGE_FAULTS),
                sw(ContextSwitches, Software::CONTEXT_SWITCHES),
                sw(CpuMigrations, Software::CPU_MIGRATIONS),
            ],
        ),
        fam(
            "core",
            FamilyKind::Hardware,
            vec![
                hw(Cycles, Hardware::CPU_CYCLES),
                hw(Instructions, Hardware::INSTRUCTIONS),
                hw(BranchInstructions, Hardware::BRANCH_INSTRUCTIONS),
                hw(BranchMisses, Hardware::BRANCH_MISSES),
            ],
        ),
        fam(
            "cache",
            FamilyKind::Hardware,
            vec![
                hw(CacheReferences, Hardware::CACHE_REFERENCES),
                hw(CacheMisses, Hardware::CACHE_MISSES),
            ],
        ),
        fam(
            "l1d",
            FamilyKind::Hardware,
            vec![
                cache(L1dLoads, read(WhichCache::L1D, CacheResult::ACCESS)),
                cache(L1dLoadMisses, read(WhichCache::L1D, CacheResult::MISS)),
            ],
        ),
        fam(
            "llc",
            FamilyKind::Hardware,
            vec![
                cache(LlcLoads, read(WhichCache::LL, CacheResult::ACCESS)),
                cache(LlcLoadMisses, read(WhichCache::LL, CacheResult::MISS)),
            ],
        ),
    ];
    if let Some(v) = vector {
        out.extend(vector_families(v));
    }
    out
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
