//! The scenario `cuda-workload` runs (keep in sync with the `#define`s of
//! tests/cuda/cuda_workload.c), and what the report must say about it: calls per API, kernels,
//! streams, copies, memory.

use std::collections::BTreeMap;

/// Launches of `vector_add` through `cuLaunchKernel_ptsz` (default stream, before the others).
pub const N_PTSZ: u64 = 20;
pub const N_VECTOR_ADD: u64 = 300;
pub const N_RELU: u64 = 200;
/// `reduce_rowwise` through `cuLaunchKernelEx`.
pub const N_REDUCE: u64 = 40;
/// `kernel::grid_sync` through `cuLaunchCooperativeKernel`.
pub const N_GRID_SYNC: u64 = 1;
/// The kernel whose name is longer than the profiler copies.
pub const N_LONG: u64 = 3;
/// `scale_values` through the runtime's `cudaLaunchKernel`.
pub const N_SCALE: u64 = 50;
/// `gelu_fwd` through the runtime's `cudaLaunchKernelExC`.
pub const N_GELU: u64 = 10;
pub const N_GRAPH: u64 = 5;
pub const N_SYNC_S1: u64 = 4;
pub const N_SYNC_S2: u64 = 6;
pub const N_CTX_SYNC: u64 = 1;
pub const N_EVENT_SYNC: u64 = 1;
/// `cuModuleGetFunction` calls: five kernels and one name that is not found.
pub const N_MODULE_LOOKUPS: u64 = 6;
pub const N_MODULE_LOOKUP_ERRORS: u64 = 1;
/// `cuLibraryGetKernel` calls: the runtime's, once per host stub.
pub const N_LIBRARY_LOOKUPS: u64 = 2;

/// Copies: (API family, direction, calls, bytes per call).
pub const COPIES: &[(&str, &str, u64, u64)] = &[
    ("cuMemcpyHtoD", "htod", 10, 4096),
    ("cuMemcpyHtoDAsync", "htod", 4, 1000),
    ("cuMemcpy2D", "htod", 2, 640 * 3),
    ("cuMemcpyDtoH", "dtoh", 6, 8192),
    ("cuMemcpyDtoHAsync", "dtoh", 3, 3000),
    ("cuMemcpy2D", "dtoh", 1, 100 * 7),
    ("cuMemcpyDtoD", "dtod", 5, 65536),
    ("cuMemcpyDtoDAsync", "dtod", 2, 12345),
    ("cuMemcpyPeer", "peer", 2, 777),
    ("cuMemcpy", "unknown", 3, 555),
    ("cuMemcpyAsync", "unknown", 2, 333),
];

/// `cuMemAlloc_v2` of (i + 1) × `ALLOC_UNIT` bytes, i < `ALLOC_CALLS`; the first `ALLOC_FREED`
/// are freed.
pub const ALLOC_CALLS: u64 = 8;
pub const ALLOC_UNIT: u64 = 4096;
pub const ALLOC_FREED: u64 = 5;
/// `cuMemAllocPitch_v2`: 1024 bytes wide (the pitch too), 10 rows; freed.
pub const PITCH_BYTES: u64 = 1024 * 10;
/// `cuMemAllocManaged`, never freed.
pub const MANAGED_BYTES: u64 = 50000;
/// `cuMemAllocAsync` × 2; the first freed with `cuMemFreeAsync`.
pub const ASYNC_ALLOC_CALLS: u64 = 2;
pub const ASYNC_ALLOC_BYTES: u64 = 3000;

/// The long kernel name: this prefix, then "0123456789" repeated, 600 characters in all.
pub const LONG_NAME_PREFIX: &str = "very_long_kernel_name_";
pub const LONG_NAME_LEN: usize = 600;

pub fn long_kernel_name() -> String {
    let mut name = LONG_NAME_PREFIX.to_owned();
    let digits = b"0123456789";
    for i in 0..LONG_NAME_LEN - LONG_NAME_PREFIX.len() {
        name.push(digits[i % 10] as char);
    }
    name
}

/// A kernel of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// Its key in the ground truth's `functions` (driver lookups) or `host_stubs` (runtime).
    pub key: &'static str,
    /// The name it is looked up by (the host stub's symbol for runtime kernels); for the long
    /// kernel, [`LONG_NAME_PREFIX`].
    pub lookup: &'static str,
    /// The name the report shows.
    pub name: &'static str,
    pub launches: u64,
    /// Launched through the runtime (`cudaLaunchKernel*`).
    pub runtime: bool,
    /// Its name is longer than the profiler copies (reported cut, `truncated_name`).
    pub truncated: bool,
    /// The last launch's configuration.
    pub grid: [u64; 3],
    pub block: [u64; 3],
    pub shared_mem: u64,
}

pub const KERNELS: &[Kernel] = &[
    Kernel {
        key: "vector_add",
        lookup: "_Z10vector_addPfPKfi",
        name: "vector_add(float*, float const*, int)",
        launches: N_PTSZ + N_VECTOR_ADD,
        runtime: false,
        truncated: false,
        grid: [4, 2, 1],
        block: [256, 1, 1],
        shared_mem: 1024,
    },
    Kernel {
        key: "relu_kernel",
        lookup: "relu_kernel",
        name: "relu_kernel",
        launches: N_RELU,
        runtime: false,
        truncated: false,
        grid: [16, 1, 1],
        block: [128, 2, 1],
        shared_mem: 0,
    },
    Kernel {
        key: "scale_values",
        lookup: "_Z12scale_valuesPff",
        name: "scale_values(float*, float)",
        launches: N_SCALE,
        runtime: true,
        truncated: false,
        grid: [64, 1, 1],
        block: [512, 1, 1],
        shared_mem: 0,
    },
    Kernel {
        key: "reduce_rowwise",
        lookup: "_Z14reduce_rowwisePKfPfi",
        name: "reduce_rowwise(float const*, float*, int)",
        launches: N_REDUCE,
        runtime: false,
        truncated: false,
        grid: [32, 1, 1],
        block: [64, 1, 1],
        shared_mem: 2048,
    },
    Kernel {
        key: "gelu_fwd",
        lookup: "_Z8gelu_fwdPKfPfi",
        name: "gelu_fwd(float const*, float*, int)",
        launches: N_GELU,
        runtime: true,
        truncated: false,
        grid: [128, 1, 1],
        block: [256, 1, 1],
        shared_mem: 4096,
    },
    Kernel {
        key: "long_kernel",
        lookup: LONG_NAME_PREFIX,
        name: LONG_NAME_PREFIX,
        launches: N_LONG,
        runtime: false,
        truncated: true,
        grid: [1, 1, 1],
        block: [32, 1, 1],
        shared_mem: 0,
    },
    Kernel {
        key: "grid_sync",
        lookup: "_ZN6kernel9grid_syncEPii",
        name: "kernel::grid_sync(int*, int)",
        launches: N_GRID_SYNC,
        runtime: false,
        truncated: false,
        grid: [2, 1, 1],
        block: [32, 1, 1],
        shared_mem: 512,
    },
];

/// Kernel launches (every `cuLaunchKernel*` call, runtime-driven ones once); graph launches
/// are counted apart.
pub fn total_launches() -> u64 {
    KERNELS.iter().map(|k| k.launches).sum()
}

/// Streams: (ground-truth key, launches, syncs). A stream's syncs are its
/// `cuStreamSynchronize` calls plus the context/event syncs that found launches of it pending
/// (docs/report-schema.md): S1 and S2 are synced at the end of the launch loop, so only S3 (the
/// runtime launches, never stream-synced) has its span closed by the `cuEventSynchronize` that
/// follows. (S4 has only graph launches, the default stream only `_ptsz` ones: not checked.)
pub const STREAMS: &[(&str, u64, u64)] = &[
    ("s1", N_VECTOR_ADD + N_GRID_SYNC + N_LONG, N_SYNC_S1),
    ("s2", N_RELU + N_REDUCE, N_SYNC_S2),
    ("s3", N_SCALE + N_GELU, N_EVENT_SYNC),
];

/// What part of the scenario the profiler sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// `profiler run`: every call, the name lookups included.
    Everything,
    /// `attach` to a `--wait-for-signal` workload: the counted phase only. Kernel names were
    /// looked up before; the warm-up allocation's free is a free of memory it never saw.
    AfterReady,
}

/// Calls per API family the profiler must report.
pub fn expected_calls(seen: Seen) -> BTreeMap<&'static str, u64> {
    let mut calls = BTreeMap::from([
        (
            "cuLaunchKernel",
            N_PTSZ + N_VECTOR_ADD + N_RELU + N_LONG + N_SCALE,
        ),
        ("cuLaunchKernelEx", N_REDUCE + N_GELU),
        ("cuLaunchCooperativeKernel", N_GRID_SYNC),
        ("cuGraphLaunch", N_GRAPH),
        ("cuMemAlloc", ALLOC_CALLS),
        ("cuMemAllocPitch", 1),
        ("cuMemAllocManaged", 1),
        ("cuMemAllocAsync", ASYNC_ALLOC_CALLS),
        (
            "cuMemFree",
            ALLOC_FREED + 1 + u64::from(seen == Seen::AfterReady),
        ),
        ("cuMemFreeAsync", 1),
        ("cuStreamSynchronize", N_SYNC_S1 + N_SYNC_S2),
        ("cuCtxSynchronize", N_CTX_SYNC),
        ("cuEventSynchronize", N_EVENT_SYNC),
        ("cudaLaunchKernel", N_SCALE),
        ("cudaLaunchKernelExC", N_GELU),
    ]);
    for (api, _, n, _) in COPIES {
        *calls.entry(*api).or_default() += n;
    }
    if seen == Seen::Everything {
        calls.insert("cuModuleGetFunction", N_MODULE_LOOKUPS);
        calls.insert("cuLibraryGetKernel", N_LIBRARY_LOOKUPS);
    }
    calls
}

/// Failed calls per API family.
pub fn expected_errors(seen: Seen) -> BTreeMap<&'static str, u64> {
    match seen {
        Seen::Everything => BTreeMap::from([("cuModuleGetFunction", N_MODULE_LOOKUP_ERRORS)]),
        Seen::AfterReady => BTreeMap::new(),
    }
}

/// (calls, bytes) per copy direction.
pub fn expected_copies() -> BTreeMap<&'static str, (u64, u64)> {
    let mut by_direction = BTreeMap::new();
    for (_, direction, n, bytes) in COPIES {
        let e: &mut (u64, u64) = by_direction.entry(*direction).or_default();
        e.0 += n;
        e.1 += n * bytes;
    }
    by_direction
}

/// The report's `cuda.memory`, as the scenario makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub allocations: u64,
    pub allocated_bytes: u64,
    /// Every free call, of known memory or not.
    pub frees: u64,
    /// Bytes of the frees of memory allocated while watched.
    pub freed_bytes: u64,
    pub frees_unknown: u64,
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
}

pub fn expected_memory(seen: Seen) -> Memory {
    let allocated = ALLOC_UNIT * ALLOC_CALLS * (ALLOC_CALLS + 1) / 2
        + PITCH_BYTES
        + MANAGED_BYTES
        + ASYNC_ALLOC_CALLS * ASYNC_ALLOC_BYTES;
    let freed = ALLOC_UNIT * ALLOC_FREED * (ALLOC_FREED + 1) / 2 + PITCH_BYTES + ASYNC_ALLOC_BYTES;
    let unknown = u64::from(seen == Seen::AfterReady);
    Memory {
        allocations: ALLOC_CALLS + 1 + 1 + ASYNC_ALLOC_CALLS,
        allocated_bytes: allocated,
        frees: ALLOC_FREED + 1 + 1 + unknown,
        freed_bytes: freed,
        frees_unknown: unknown,
        live_bytes: allocated - freed,
        // Everything is allocated before anything is freed.
        peak_live_bytes: allocated,
    }
}
