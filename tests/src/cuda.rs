//! Harness for the CUDA end-to-end tests. CI has no GPU: the tests build, with the system C
//! compiler, a stand-in driver `libcuda.so.1` (tests/cuda/stub_cuda.c: the real driver API
//! symbols and C signatures, fake handles, host time set by environment variables), a stand-in
//! runtime `libcudart.so.12` (tests/cuda/stub_cudart.c: `cudaLaunchKernel` doing what the CUDA
//! 12 runtime does underneath) and `cuda-workload` (tests/cuda/cuda_workload.c), a program that
//! dlopen()s both and calls them a known number of times. The scenario's numbers live here and
//! in the program's `#define`s; [`assert_truth_matches_scenario`] checks that the two agree
//! with what the stub libraries counted themselves.
//!
//! Needs `cc` (Debian package gcc); without it the tests record a skip.

use std::{
    collections::BTreeMap,
    ffi::CString,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Profiler, http::assert_close, read_report, record_skip, temp_path, workload_bin};

// ---- the scenario (keep in sync with tests/cuda/cuda_workload.c) ----

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

/// In every `run` session the workload waits, after loading the libraries and before its first
/// CUDA call, until the functions it calls carry uprobes (`--wait-for-probes`, at most this
/// long): the profiler finds libraries loaded after it started by scanning /proc/<pid>/maps
/// (every 250 ms) and then attaches, one uprobe at a time, so calls made right after a dlopen
/// are not seen. Attaching ~100 uprobes took 30–280 ms on an idle 2-vCPU VM but 8 s while it
/// compiled (bpftrace: 18 s for 65): a fixed pause was not enough under load (2 s); waiting for
/// the probes themselves is exact and as short as the profiler allows. Bounded so that the
/// session still ends within [`Profiler::wait`]'s 60 s.
pub const PROBE_WAIT_MS: u64 = 40_000;

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

/// API families timed with return probes only under `--cuda-launch-latency`.
pub const LAUNCH_LATENCY_APIS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
    "cuGraphLaunch",
    "cuMemcpyHtoDAsync",
    "cuMemcpyDtoHAsync",
    "cuMemcpyDtoDAsync",
    "cuMemcpyAsync",
];

/// API families always timed.
pub const ALWAYS_TIMED_APIS: &[&str] = &[
    "cuMemcpyHtoD",
    "cuMemcpyDtoH",
    "cuMemcpyDtoD",
    "cuMemcpy",
    "cuMemcpyPeer",
    "cuMemcpy2D",
    "cuMemAlloc",
    "cuMemAllocPitch",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemFree",
    "cuMemFreeAsync",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
];

pub const SYNC_APIS: &[&str] = &[
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
];

/// The host time the stub spends in each call of `api` (µs), where it sets one.
pub fn nominal_us(api: &str, d: Durations) -> Option<u64> {
    match api {
        "cuLaunchKernel" | "cuLaunchKernelEx" | "cuLaunchCooperativeKernel" | "cuGraphLaunch" => {
            Some(d.launch_us)
        }
        "cuMemcpyHtoD" | "cuMemcpyDtoH" | "cuMemcpyDtoD" | "cuMemcpy" | "cuMemcpyPeer"
        | "cuMemcpy2D" => Some(d.copy_us),
        "cuStreamSynchronize" | "cuCtxSynchronize" | "cuEventSynchronize" => Some(d.sync_us),
        _ => None,
    }
    .filter(|us| *us > 0)
}

/// The driver symbols the profiler probes (profiler/src/cuda/symbols.rs): the stub exports
/// every one of them.
pub const PROBED_DRIVER_SYMBOLS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernel_ptsz",
    "cuLaunchKernelEx",
    "cuLaunchKernelEx_ptsz",
    "cuLaunchCooperativeKernel",
    "cuLaunchCooperativeKernel_ptsz",
    "cuGraphLaunch",
    "cuGraphLaunch_ptsz",
    "cuMemcpyHtoD_v2",
    "cuMemcpyHtoD_v2_ptds",
    "cuMemcpyDtoH_v2",
    "cuMemcpyDtoH_v2_ptds",
    "cuMemcpyDtoD_v2",
    "cuMemcpyDtoD_v2_ptds",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyHtoDAsync_v2_ptsz",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoHAsync_v2_ptsz",
    "cuMemcpyDtoDAsync_v2",
    "cuMemcpyDtoDAsync_v2_ptsz",
    "cuMemcpy",
    "cuMemcpy_ptds",
    "cuMemcpyAsync",
    "cuMemcpyAsync_ptsz",
    "cuMemcpyPeer",
    "cuMemcpyPeer_ptds",
    "cuMemcpyPeerAsync",
    "cuMemcpyPeerAsync_ptsz",
    "cuMemcpy2D_v2",
    "cuMemcpy2D_v2_ptds",
    "cuMemcpy2DUnaligned_v2",
    "cuMemcpy2DUnaligned_v2_ptds",
    "cuMemcpy2DAsync_v2",
    "cuMemcpy2DAsync_v2_ptsz",
    "cuMemAlloc_v2",
    "cuMemAllocPitch_v2",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemAllocAsync_ptsz",
    "cuMemAllocFromPoolAsync",
    "cuMemAllocFromPoolAsync_ptsz",
    "cuMemFree_v2",
    "cuMemFreeAsync",
    "cuMemFreeAsync_ptsz",
    "cuStreamSynchronize",
    "cuStreamSynchronize_ptsz",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
    "cuKernelGetFunction",
];

pub const PROBED_RUNTIME_SYMBOLS: &[&str] = &[
    "cudaLaunchKernel",
    "cudaLaunchKernel_ptsz",
    "cudaLaunchKernelExC",
    "cudaLaunchKernelExC_ptsz",
];

/// The API family (report name) of an exported symbol: without `_ptsz`/`_ptds` and `_v2`.
/// `None` for symbols the profiler does not report on their own.
pub fn api_family(symbol: &str) -> Option<&'static str> {
    let base = symbol
        .trim_end_matches("_ptsz")
        .trim_end_matches("_ptds")
        .trim_end_matches("_v2");
    let base = match base {
        "cuMemcpy2DUnaligned" => "cuMemcpy2D",
        "cuMemAllocFromPoolAsync" => "cuMemAllocAsync",
        other => other,
    };
    REPORTED_APIS.iter().copied().find(|a| *a == base)
}

/// Every API family the report may list.
pub const REPORTED_APIS: &[&str] = &[
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
    "cuGraphLaunch",
    "cuMemcpyHtoD",
    "cuMemcpyDtoH",
    "cuMemcpyDtoD",
    "cuMemcpyHtoDAsync",
    "cuMemcpyDtoHAsync",
    "cuMemcpyDtoDAsync",
    "cuMemcpy",
    "cuMemcpyAsync",
    "cuMemcpyPeer",
    "cuMemcpyPeerAsync",
    "cuMemcpy2D",
    "cuMemcpy2DAsync",
    "cuMemAlloc",
    "cuMemAllocPitch",
    "cuMemAllocManaged",
    "cuMemAllocAsync",
    "cuMemFree",
    "cuMemFreeAsync",
    "cuStreamSynchronize",
    "cuCtxSynchronize",
    "cuEventSynchronize",
    "cuModuleGetFunction",
    "cuLibraryGetKernel",
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
];

// ---- building the stubs ----

/// The built stub libraries and workload.
#[derive(Debug)]
pub struct StubCuda {
    /// Holds `libcuda.so.1` and `libcudart.so.12`.
    pub lib_dir: PathBuf,
    pub driver: PathBuf,
    pub runtime: PathBuf,
    pub workload: PathBuf,
}

enum Build {
    Built(StubCuda),
    /// No C compiler: the tests skip.
    NoCompiler(String),
    /// The compiler failed: the tests fail.
    Failed(String),
}

static BUILD: OnceLock<Build> = OnceLock::new();

/// The stub libraries and the workload, built once per test binary into
/// `target/<profile>/cuda-stub/`. `None` (with the skip recorded for `test`) when there is no C
/// compiler; panics when compiling fails.
pub fn stub_cuda(test: &str) -> Option<&'static StubCuda> {
    match BUILD.get_or_init(build) {
        Build::Built(stub) => Some(stub),
        Build::NoCompiler(reason) => {
            record_skip(test, reason);
            None
        }
        Build::Failed(why) => panic!("building the CUDA stubs failed:\n{why}"),
    }
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_owned())
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("cuda")
        .join(name)
}

fn build() -> Build {
    let cc = compiler();
    if Command::new(&cc)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        return Build::NoCompiler(format!(
            "no C compiler ({cc}) to build the stub libcuda (apt-get install gcc)"
        ));
    }
    let dir = workload_bin().with_file_name("cuda-stub");
    let lib_dir = dir.join("lib");
    if let Err(e) = std::fs::create_dir_all(&lib_dir) {
        return Build::Failed(format!("create {}: {e}", lib_dir.display()));
    }
    let lib_dir = lib_dir.canonicalize().expect("canonical lib dir");
    let dir = lib_dir.parent().expect("stub dir").to_path_buf();
    let stub = StubCuda {
        driver: lib_dir.join("libcuda.so.1"),
        runtime: lib_dir.join("libcudart.so.12"),
        workload: dir.join("cuda-workload"),
        lib_dir,
    };
    let shared = |soname: &str| {
        vec![
            "-shared".to_owned(),
            "-fPIC".to_owned(),
            format!("-Wl,-soname,{soname}"),
        ]
    };
    let jobs: [(&str, &Path, Vec<String>); 3] = [
        ("stub_cuda.c", &stub.driver, shared("libcuda.so.1")),
        ("stub_cudart.c", &stub.runtime, shared("libcudart.so.12")),
        (
            "cuda_workload.c",
            &stub.workload,
            vec!["-rdynamic".to_owned()],
        ),
    ];
    for (src, out, flags) in jobs {
        if let Err(e) = compile(&cc, &source(src), out, &flags) {
            return Build::Failed(e);
        }
    }
    Build::Built(stub)
}

/// Compiles `src` to `out` (through a temporary name, renamed into place: a process that has
/// the old file mapped keeps it).
fn compile(cc: &str, src: &Path, out: &Path, flags: &[String]) -> Result<(), String> {
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let output = Command::new(cc)
        .args(["-O2", "-g", "-Wall", "-Wextra", "-fno-ipa-icf"])
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(src)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("{cc}: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{cc} {}: {}\n{}",
            src.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("rename to {}: {e}", out.display()))
}

/// Symbols of `names` that the shared library `lib` does not export (dlopen + dlsym in this
/// process).
pub fn missing_symbols(lib: &Path, names: &[&str]) -> Vec<String> {
    let path = CString::new(lib.to_str().expect("utf-8 path")).expect("no NUL");
    // SAFETY: dlopen with a valid C string; the stub libraries' only constructor reads env.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {} failed", lib.display());
    let missing = names
        .iter()
        .filter(|name| {
            let c = CString::new(**name).expect("no NUL");
            // SAFETY: a valid handle and C string; the result is only compared with null.
            unsafe { libc::dlsym(handle, c.as_ptr()) }.is_null()
        })
        .map(|n| (*n).to_owned())
        .collect();
    // SAFETY: the handle came from dlopen above and nothing from it is used after this.
    unsafe { libc::dlclose(handle) };
    missing
}

// ---- running the workload ----

/// Host time the stub spends inside calls (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    pub launch_us: u64,
    pub sync_us: u64,
    pub copy_us: u64,
}

impl Durations {
    pub fn args(&self) -> Vec<String> {
        vec![
            "--launch-us".into(),
            self.launch_us.to_string(),
            "--sync-us".into(),
            self.sync_us.to_string(),
            "--copy-us".into(),
            self.copy_us.to_string(),
        ]
    }
}

/// A profiler session over the workload and what came out of it.
#[derive(Debug)]
pub struct CudaRun {
    pub report: Value,
    /// The workload's ground-truth line.
    pub truth: Value,
    /// `--cuda-trace` lines (empty unless asked for).
    pub trace: Vec<Value>,
    pub stderr: Vec<String>,
}

impl CudaRun {
    /// `report.cuda`; panics (showing the report's top-level keys) when there is none.
    pub fn cuda(&self) -> &Value {
        let c = &self.report["cuda"];
        assert!(
            c.is_object(),
            "report has no cuda section; keys: {:?}; stderr: {:?}",
            self.report
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            self.stderr
        );
        c
    }

    pub fn pid(&self) -> u64 {
        self.truth["pid"].as_u64().expect("truth pid")
    }

    pub fn tid(&self) -> u64 {
        self.truth["tid"].as_u64().expect("truth tid")
    }

    /// A handle from the ground truth (`functions.vector_add`, `streams.s1`, …).
    pub fn handle(&self, group: &str, key: &str) -> u64 {
        let v = &self.truth[group][key];
        v.as_str()
            .and_then(parse_hex)
            .unwrap_or_else(|| panic!("truth {group}.{key} is not a handle: {v}"))
    }
}

/// Files a session writes, removed on Drop.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn session_files(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = format!("cuda-{tag}-{n}");
    (
        temp_path(&format!("{base}.json")),
        temp_path(&format!("{base}.truth.json")),
        temp_path(&format!("{base}.trace.jsonl")),
    )
}

/// `--format json --output REPORT --quiet --no-http`, plus `--cuda-trace TRACE` when `extra`
/// asks for a trace with `--cuda-trace` alone (the path is filled in here).
fn profiler_args(report: &Path, trace: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--format",
        "json",
        "--output",
        report.to_str().expect("utf-8"),
        "--quiet",
        "--no-http",
    ]
    .map(String::from)
    .to_vec();
    for a in extra {
        args.push((*a).to_owned());
        if *a == "--cuda-trace" {
            args.push(trace.to_str().expect("utf-8").to_owned());
        }
    }
    args
}

fn read_truth(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("workload wrote no ground truth at {}: {e}", path.display()));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad ground truth {text:?}: {e}"))
}

fn finish(report: &Path, truth: &Path, trace: &Path, stderr: Vec<String>) -> CudaRun {
    let report = read_report(report);
    let truth = read_truth(truth);
    let trace = crate::http::read_jsonl(trace);
    if let Some(c) = report["cuda"].as_object() {
        println!(
            "cuda: libraries {} launch_latency {} events_lost {} calls_unfinished {}",
            c.get("libraries").unwrap_or(&Value::Null),
            c.get("launch_latency").unwrap_or(&Value::Null),
            c.get("events_lost").unwrap_or(&Value::Null),
            c.get("calls_unfinished").unwrap_or(&Value::Null),
        );
    }
    CudaRun {
        report,
        truth,
        trace,
        stderr,
    }
}

/// `profiler run [ARGS] -- cuda-workload --lib-dir LIB_DIR --truth FILE --wait-for-probes
/// PROBE_WAIT_MS WORKLOAD_ARGS` (later workload arguments override earlier ones). With a
/// `prefix` (e.g. `unshare …`), `prefix` is the whole command instead, with `{workload}`,
/// `{lib_dir}`, `{truth}` and `{probe_wait_ms}` replaced, and `workload_args` unused.
/// Panics, before looking at the report, when the profiler never put its uprobes on the
/// libraries.
pub fn run_profiled(
    stub: &StubCuda,
    extra: &[&str],
    prefix: &[&str],
    workload_args: &[&str],
) -> CudaRun {
    let (report, truth, trace) = session_files("run");
    let _files = Files(vec![report.clone(), truth.clone(), trace.clone()]);
    let mut args = vec!["run".to_owned()];
    args.extend(profiler_args(&report, &trace, extra));
    args.push("--".to_owned());
    let workload = stub.workload.to_str().expect("utf-8");
    let lib_dir = stub.lib_dir.to_str().expect("utf-8");
    let truth_s = truth.to_str().expect("utf-8");
    let probe_wait = PROBE_WAIT_MS.to_string();
    if prefix.is_empty() {
        args.extend(
            [
                workload,
                "--lib-dir",
                lib_dir,
                "--truth",
                truth_s,
                "--wait-for-probes",
                &probe_wait,
            ]
            .iter()
            .chain(workload_args)
            .map(|s| (*s).to_owned()),
        );
    } else {
        args.extend(prefix.iter().map(|a| {
            a.replace("{workload}", workload)
                .replace("{lib_dir}", lib_dir)
                .replace("{truth}", truth_s)
                .replace("{probe_wait_ms}", &probe_wait)
        }));
    }
    println!("profiler {}", args.join(" "));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let profiler = Profiler::start(&arg_refs);
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler failed: {status:?}: {stderr:?}");
    let run = finish(&report, &truth, &trace, stderr);
    assert_probes_were_there(&run);
    run
}

/// Panics when the workload gave up waiting for the profiler's uprobes (`--wait-for-probes`).
fn assert_probes_were_there(run: &CudaRun) {
    let waited = &run.truth["waited_for_probes_ms"];
    println!("the workload waited {waited} ms for the profiler's uprobes");
    assert!(
        waited.as_i64().is_some_and(|ms| ms >= 0),
        "the profiler did not put uprobes on every CUDA function the workload calls within \
         {PROBE_WAIT_MS} ms (waited_for_probes_ms {waited}); cuda.libraries: {}; stderr: {:?}",
        run.report["cuda"]["libraries"],
        run.stderr
    );
}

/// A `cuda-workload --wait-for-signal`, killed on Drop.
pub struct WaitingWorkload {
    child: Child,
}

impl WaitingWorkload {
    /// Starts it and waits (at most 30 s) for its `ready` line: libraries loaded, names looked
    /// up.
    pub fn start(stub: &StubCuda, truth: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(&stub.workload)
            .arg("--lib-dir")
            .arg(&stub.lib_dir)
            .arg("--truth")
            .arg(truth)
            .arg("--wait-for-signal")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start cuda-workload");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cuda-workload did not say ready in 30 s");
        assert_eq!(line.trim(), "ready", "cuda-workload said {line:?}");
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run the counted phase (SIGUSR1) and waits (at most 60 s) for it to exit.
    pub fn go_and_wait(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) },
            0
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "cuda-workload did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "cuda-workload failed: {status}");
    }
}

impl Drop for WaitingWorkload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cuda-workload --wait-for-signal --wait-for-probes PROBE_WAIT_MS WORKLOAD_ARGS`,
/// attaches the profiler once it is ready (`attach --pid PID [ARGS]`), lets it run (it first
/// waits for the uprobes), and returns what the session produced (it ends when the workload
/// exits).
pub fn attach_profiled(stub: &StubCuda, extra: &[&str], workload_args: &[&str]) -> CudaRun {
    let (report, truth, trace) = session_files("attach");
    let _files = Files(vec![report.clone(), truth.clone(), trace.clone()]);
    let probe_wait = PROBE_WAIT_MS.to_string();
    let mut args = vec!["--wait-for-probes", &probe_wait];
    args.extend(workload_args);
    let mut workload = WaitingWorkload::start(stub, &truth, &args);
    let pid = workload.pid().to_string();
    let mut args = vec!["attach".to_owned(), "--pid".to_owned(), pid];
    args.extend(profiler_args(&report, &trace, extra));
    println!("profiler {}", args.join(" "));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut profiler = Profiler::start(&arg_refs);
    profiler.wait_attached();
    workload.go_and_wait();
    let (status, _, stderr) = profiler.wait();
    assert!(status.success(), "profiler failed: {status:?}: {stderr:?}");
    let run = finish(&report, &truth, &trace, stderr);
    assert_probes_were_there(&run);
    run
}

/// Runs the workload without a profiler and returns its ground truth.
pub fn run_alone(stub: &StubCuda, args: &[&str]) -> Value {
    let out = Command::new(&stub.workload)
        .arg("--lib-dir")
        .arg(&stub.lib_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cuda-workload");
    assert!(
        out.status.success(),
        "cuda-workload {args:?} failed: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad ground truth {text:?}: {e}"))
}

// ---- reading the report ----

/// "0x1f" → 31.
pub fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// A count from a report field, panicking with the field's name.
pub fn count(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a count: {v}"))
}

/// A number from a report field, panicking with the field's name.
pub fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

pub fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {v}"))
}

/// `cuda.apis[]` entry of `api`, if listed.
pub fn api<'a>(cuda: &'a Value, api: &str) -> Option<&'a Value> {
    array(&cuda["apis"], "cuda.apis")
        .iter()
        .find(|a| a["api"] == api)
}

/// Calls of `api` (0 when not listed).
pub fn api_calls(cuda: &Value, name: &str) -> u64 {
    api(cuda, name).map_or(0, |a| count(&a["calls"], &format!("apis[{name}].calls")))
}

/// Calls per family as the stub libraries counted them in the counted phase.
pub fn truth_calls(truth: &Value) -> BTreeMap<&'static str, u64> {
    let mut calls = BTreeMap::new();
    for (symbol, n) in truth["stub_calls"].as_object().expect("truth stub_calls") {
        if let Some(family) = api_family(symbol) {
            *calls.entry(family).or_default() += n.as_u64().expect("count");
        }
    }
    calls
}

/// The harness itself: what the stub libraries counted and the calls the workload timed equal
/// the scenario's constants here.
pub fn assert_truth_matches_scenario(truth: &Value, seen: Seen) {
    let expected = expected_calls(seen);
    assert_eq!(
        truth_calls(truth),
        expected,
        "calls the stub libraries counted (left) vs the scenario's constants (right)"
    );
    for (api, n) in &expected {
        if api.starts_with("cuda") || api.starts_with("cuModule") || api.starts_with("cuLibrary") {
            continue;
        }
        let timed = truth["host_us"][api]["calls"].as_u64().unwrap_or(0);
        assert_eq!(timed, *n, "{api}: calls the workload timed vs the scenario");
    }
}

/// Per-API call and error counts are exactly the scenario's; no other API is listed with calls.
pub fn assert_api_counts(cuda: &Value, seen: Seen) {
    let apis = array(&cuda["apis"], "cuda.apis");
    assert!(
        !apis.is_empty(),
        "cuda.apis is empty: the profiler saw no CUDA call at all; cuda.libraries: {}",
        cuda["libraries"]
    );
    // (calls, errors) per API: every API reported with calls, and every API expected.
    let mut reported: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for a in apis {
        let name = a["api"].as_str().expect("api name").to_owned();
        let calls = count(&a["calls"], &format!("apis[{name}].calls"));
        let errs = count(&a["errors"], &format!("apis[{name}].errors"));
        println!("api {name}: calls {calls} errors {errs}");
        if calls > 0 {
            reported.insert(name, (calls, errs));
        }
    }
    let errors = expected_errors(seen);
    let expected: BTreeMap<String, (u64, u64)> = expected_calls(seen)
        .into_iter()
        .map(|(api, n)| (api.to_owned(), (n, errors.get(api).copied().unwrap_or(0))))
        .collect();
    let diff: Vec<String> = expected
        .keys()
        .chain(reported.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|api| reported.get(*api) != expected.get(*api))
        .map(|api| {
            format!(
                "{api}: profiler {:?}, expected {:?}",
                reported.get(api),
                expected.get(api)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "per-API (calls, errors) differ (None: not listed):\n  {}",
        diff.join("\n  ")
    );
}

/// `cuda.launches`: totals, graph and runtime launches.
pub fn assert_launch_totals(cuda: &Value, unnamed: u64) {
    let l = &cuda["launches"];
    println!(
        "launches: total {} per_s {} graph {} runtime {} runtime_without_driver {} unnamed {} \
         other {}",
        l["total"],
        l["per_s"],
        l["graph_launches"],
        l["runtime_launches"],
        l["runtime_launches_without_driver"],
        l["unnamed"],
        l["other"]
    );
    let expect = |field: &str, want: u64| {
        let got = count(&l[field], &format!("launches.{field}"));
        assert_eq!(
            got, want,
            "launches.{field}: profiler {got}, expected {want}"
        );
    };
    expect("total", total_launches());
    expect("graph_launches", N_GRAPH);
    expect("runtime_launches", N_SCALE + N_GELU);
    expect("runtime_launches_without_driver", 0);
    expect("unnamed", unnamed);
    assert!(
        num(&l["per_s"], "launches.per_s") > 0.0,
        "launches.per_s: {}",
        l["per_s"]
    );
}

/// The report name a kernel should have: its name, or `unresolved@0x…` for a driver kernel
/// whose lookup the profiler did not see.
#[derive(Debug, Clone, Copy)]
pub enum Naming {
    /// Every lookup seen (`run`).
    Named,
    /// Lookups made before attach: driver kernels are known by handle only; runtime kernels
    /// by their host stub's symbol.
    DriverUnresolved,
}

/// Whether report kernel entry `e` is kernel `k` under `naming`.
fn is_kernel(e: &Value, k: &Kernel, naming: Naming, run: &CudaRun) -> bool {
    let name = e["name"].as_str().unwrap_or("");
    match naming {
        Naming::DriverUnresolved if !k.runtime => name
            .strip_prefix("unresolved@")
            .and_then(parse_hex)
            .is_some_and(|h| h == run.handle("functions", k.key)),
        _ if k.truncated => name.starts_with(LONG_NAME_PREFIX),
        _ => name == k.name,
    }
}

/// `cuda.launches.kernels` (top `top` by launches) and `other` (the rest).
pub fn assert_kernels(run: &CudaRun, naming: Naming, top: usize) {
    let cuda = run.cuda();
    let kernels = array(&cuda["launches"]["kernels"], "launches.kernels");
    for e in kernels {
        println!(
            "kernel {:.80} (mangled {:.40}): launches {} grid {} block {} shared {} truncated {}",
            e["name"].as_str().unwrap_or("?"),
            e["mangled"].as_str().unwrap_or("-"),
            e["launches"],
            e["last_grid"],
            e["last_block"],
            e["shared_mem"],
            e["truncated_name"]
        );
    }
    let mut by_launches: Vec<&Kernel> = KERNELS.iter().collect();
    by_launches.sort_by_key(|k| std::cmp::Reverse(k.launches));
    let (listed, rest) = by_launches.split_at(top.min(by_launches.len()));
    assert_eq!(
        kernels.len(),
        listed.len(),
        "kernels listed: profiler {}, expected {} ({:?})",
        kernels.len(),
        listed.len(),
        listed.iter().map(|k| k.key).collect::<Vec<_>>()
    );
    for k in listed {
        let e = kernels
            .iter()
            .find(|e| is_kernel(e, k, naming, run))
            .unwrap_or_else(|| panic!("kernel {} ({:?}) not in the report", k.key, naming));
        let what = |f: &str| format!("kernel {}.{f}", k.key);
        let launches = count(&e["launches"], &what("launches"));
        assert_eq!(
            launches,
            k.launches,
            "{}: profiler {launches}, expected {}",
            what("launches"),
            k.launches
        );
        assert!(num(&e["per_s"], &what("per_s")) > 0.0, "{}", what("per_s"));
        let dims = |f: &str| -> Vec<u64> {
            array(&e[f], &what(f))
                .iter()
                .map(|d| count(d, &what(f)))
                .collect()
        };
        assert_eq!(dims("last_grid"), k.grid, "{}", what("last_grid"));
        assert_eq!(dims("last_block"), k.block, "{}", what("last_block"));
        assert_eq!(
            count(&e["shared_mem"], &what("shared_mem")),
            k.shared_mem,
            "{}",
            what("shared_mem")
        );
        let unresolved = matches!(naming, Naming::DriverUnresolved) && !k.runtime;
        if unresolved {
            continue;
        }
        if k.truncated {
            let name = e["name"].as_str().expect("name");
            assert!(
                name.len() < LONG_NAME_LEN && long_kernel_name().starts_with(name),
                "long kernel name should be a cut prefix of the real one: {name:?}"
            );
            assert_eq!(e["truncated_name"], true, "{}", what("truncated_name"));
        } else {
            assert_eq!(e["truncated_name"], false, "{}", what("truncated_name"));
        }
        if k.lookup.starts_with("_Z") {
            assert_eq!(e["mangled"], k.lookup, "{}", what("mangled"));
        }
    }
    let other = &cuda["launches"]["other"];
    let want_launches: u64 = rest.iter().map(|k| k.launches).sum();
    assert_eq!(
        count(&other["kernels"], "launches.other.kernels"),
        rest.len() as u64,
        "launches.other.kernels: {other}"
    );
    assert_eq!(
        count(&other["launches"], "launches.other.launches"),
        want_launches,
        "launches.other.launches: {other}"
    );
}

/// Launches whose kernel the profiler cannot name after attaching late: the driver kernels.
pub fn driver_kernel_launches() -> u64 {
    KERNELS
        .iter()
        .filter(|k| !k.runtime)
        .map(|k| k.launches)
        .sum()
}

/// `cuda.copies`: calls and bytes per direction, exactly.
pub fn assert_copies(cuda: &Value) {
    let expected = expected_copies();
    let mut reported = BTreeMap::new();
    for c in array(&cuda["copies"], "cuda.copies") {
        let dir = c["direction"].as_str().expect("direction").to_owned();
        let calls = count(&c["calls"], &format!("copies[{dir}].calls"));
        let bytes = count(&c["bytes"], &format!("copies[{dir}].bytes"));
        println!(
            "copies {dir}: calls {calls} bytes {bytes} bytes/s {}",
            c["bytes_per_s"]
        );
        if calls > 0 {
            reported.insert(dir, (calls, bytes));
        }
    }
    let expected: BTreeMap<String, (u64, u64)> = expected
        .into_iter()
        .map(|(d, v)| (d.to_owned(), v))
        .collect();
    assert_eq!(
        reported, expected,
        "copies per direction (calls, bytes): profiler (left) vs expected (right)"
    );
}

/// `cuda.memory`, exactly.
pub fn assert_memory(cuda: &Value, seen: Seen) {
    let m = &cuda["memory"];
    println!("memory: {m}");
    let field = |f: &str| count(&m[f], &format!("memory.{f}"));
    let got = Memory {
        allocations: field("allocations"),
        allocated_bytes: field("allocated_bytes"),
        frees: field("frees"),
        freed_bytes: field("freed_bytes"),
        frees_unknown: field("frees_unknown"),
        live_bytes: field("live_bytes"),
        peak_live_bytes: field("peak_live_bytes"),
    };
    assert_eq!(
        got,
        expected_memory(seen),
        "memory: profiler (left) vs expected (right)"
    );
}

/// `cuda.sync`: calls exactly; one thread (the workload's) made them all.
pub fn assert_sync_counts(run: &CudaRun) {
    let s = &run.cuda()["sync"];
    println!("sync: {s}");
    let want = N_SYNC_S1 + N_SYNC_S2 + N_CTX_SYNC + N_EVENT_SYNC;
    assert_eq!(count(&s["calls"], "sync.calls"), want, "sync.calls");
    let threads = array(&s["threads"], "sync.threads");
    assert_eq!(threads.len(), 1, "sync.threads: {threads:?}");
    let t = &threads[0];
    assert_eq!(count(&t["pid"], "sync.threads[0].pid"), run.pid());
    assert_eq!(count(&t["tid"], "sync.threads[0].tid"), run.tid());
    assert_eq!(count(&t["calls"], "sync.threads[0].calls"), want);
    assert_eq!(t["comm"], "cuda-workload", "sync.threads[0].comm");
}

/// `cuda.names`: the name events seen: successful `cuModuleGetFunction`s (the failed lookup
/// names nothing), the runtime's `cuLibraryGetKernel`s, one name cut. None after a late attach.
pub fn assert_names(cuda: &Value, seen: Seen) {
    let n = &cuda["names"];
    println!("names: {n}");
    let want = match seen {
        Seen::Everything => (
            N_MODULE_LOOKUPS - N_MODULE_LOOKUP_ERRORS,
            N_LIBRARY_LOOKUPS,
            1,
        ),
        Seen::AfterReady => (0, 0, 0),
    };
    let got = (
        count(&n["functions"], "names.functions"),
        count(&n["kernels"], "names.kernels"),
        count(&n["truncated"], "names.truncated"),
    );
    assert_eq!(
        got, want,
        "names (functions, kernels, truncated): profiler (left) vs expected (right)"
    );
}

/// `cuda.streams`: launches and syncs per stream of the workload.
pub fn assert_streams(run: &CudaRun) {
    let cuda = run.cuda();
    let streams = array(&cuda["streams"], "cuda.streams");
    for s in streams {
        println!(
            "stream {} (pid {}): launches {} syncs {} gpu_busy_estimate_ms {}",
            s["stream"], s["pid"], s["launches"], s["syncs"], s["gpu_busy_estimate_ms"]
        );
    }
    for (key, launches, syncs) in STREAMS {
        let handle = run.handle("streams", key);
        let s = streams
            .iter()
            .find(|s| {
                s["pid"].as_u64() == Some(run.pid())
                    && s["stream"].as_str().and_then(parse_hex) == Some(handle)
            })
            .unwrap_or_else(|| panic!("stream {key} ({handle:#x}) not in the report"));
        assert_eq!(
            count(&s["launches"], "launches"),
            *launches,
            "stream {key} launches"
        );
        assert_eq!(count(&s["syncs"], "syncs"), *syncs, "stream {key} syncs");
    }
    assert_eq!(cuda["gpu_busy_is_estimate"], true);
}

/// `cuda.libraries`: the stub driver and runtime, at `lib_dir` as the process maps them.
pub fn assert_libraries(run: &CudaRun, lib_dir: &Path) {
    let libs = array(&run.cuda()["libraries"], "cuda.libraries");
    let ours: Vec<&Value> = libs
        .iter()
        .filter(|l| l["pid"].as_u64() == Some(run.pid()))
        .collect();
    for (file, kind) in [("libcuda.so.1", "driver"), ("libcudart.so.12", "runtime")] {
        let path = lib_dir.join(file);
        let l = ours
            .iter()
            .find(|l| l["path"].as_str() == path.to_str())
            .unwrap_or_else(|| panic!("{} not in cuda.libraries: {libs:?}", path.display()));
        assert_eq!(l["kind"], kind, "kind of {file}");
        assert!(l["error"].is_null(), "{file}: {}", l["error"]);
        assert!(count(&l["probes"], "probes") > 0, "{file}: no probes");
    }
    assert_eq!(
        ours.len(),
        2,
        "libraries of the workload: exactly the driver and the runtime: {ours:?}"
    );
}

/// No event lost, no call left open, no malformed record.
pub fn assert_no_loss(cuda: &Value) {
    assert_eq!(count(&cuda["events_lost"], "events_lost"), 0, "events_lost");
    assert_eq!(
        count(&cuda["malformed_records"], "malformed_records"),
        0,
        "malformed_records"
    );
    assert_eq!(
        count(&cuda["calls_unfinished"], "calls_unfinished"),
        0,
        "calls_unfinished"
    );
}

/// Everything countable in a session over the main scenario.
pub fn assert_scenario_counts(run: &CudaRun, seen: Seen, naming: Naming, top: usize) {
    let cuda = run.cuda();
    assert_truth_matches_scenario(&run.truth, seen);
    assert_no_loss(cuda);
    assert_api_counts(cuda, seen);
    let unnamed = match naming {
        Naming::Named => 0,
        Naming::DriverUnresolved => driver_kernel_launches(),
    };
    assert_launch_totals(cuda, unnamed);
    assert_kernels(run, naming, top);
    assert_copies(cuda);
    assert_memory(cuda, seen);
    assert_sync_counts(run);
    assert_streams(run);
    assert_names(cuda, seen);
}

/// The relative tolerance of host times.
pub const TIME_TOLERANCE: f64 = 0.10;

/// Host-time fields of `api`: timed (within 10% of what the workload measured around its
/// calls, and for p50 of the stub's nominal time where it sets one and there are ≥ 5 calls),
/// or untimed (`timed: false`, fields null).
pub fn assert_api_timing(run: &CudaRun, name: &str, timed: bool, d: Durations) {
    let cuda = run.cuda();
    let a = api(cuda, name).unwrap_or_else(|| panic!("{name} not in cuda.apis"));
    println!(
        "{name}: timed {} total_ms {} mean {} p50 {} p90 {} p99 {} max {} µs; workload measured \
         {}",
        a["timed"],
        a["total_ms"],
        a["mean_us"],
        a["p50_us"],
        a["p90_us"],
        a["p99_us"],
        a["max_us"],
        run.truth["host_us"][name]
    );
    assert_eq!(a["timed"], timed, "{name}.timed");
    let fields = [
        "total_ms", "mean_us", "p50_us", "p90_us", "p99_us", "max_us",
    ];
    if !timed {
        for f in fields {
            assert!(
                a[f].is_null(),
                "{name}.{f} should be null untimed: {}",
                a[f]
            );
        }
        return;
    }
    for f in fields {
        num(&a[f], &format!("{name}.{f}"));
    }
    let (p50, p90, p99, max) = (
        num(&a["p50_us"], "p50"),
        num(&a["p90_us"], "p90"),
        num(&a["p99_us"], "p99"),
        num(&a["max_us"], "max"),
    );
    assert!(
        p50 <= p90 * 1.01 && p90 <= p99 * 1.01 && p99 <= max * 1.01,
        "{name}: percentiles out of order: {a}"
    );
    let Some(nominal) = nominal_us(name, d) else {
        return;
    };
    let truth = &run.truth["host_us"][name];
    let t = |f: &str| num(&truth[f], &format!("truth host_us.{name}.{f}"));
    assert_close(
        &format!("{name} mean vs the workload's"),
        num(&a["mean_us"], "mean"),
        t("mean_us"),
        TIME_TOLERANCE,
        0.0,
    );
    assert_close(
        &format!("{name} p50 vs the workload's"),
        p50,
        t("p50_us"),
        TIME_TOLERANCE,
        0.0,
    );
    assert_close(
        &format!("{name} total vs the workload's"),
        num(&a["total_ms"], "total_ms") * 1000.0,
        t("total_us"),
        TIME_TOLERANCE,
        0.0,
    );
    if count(&a["calls"], "calls") >= 5 {
        assert_close(
            &format!("{name} p50 vs the stub's {nominal} µs"),
            p50,
            nominal as f64,
            TIME_TOLERANCE,
            0.0,
        );
    }
}

/// `cuda.sync.wait_ms` (and the one thread's) within 10% of the sync time the workload
/// measured.
pub fn assert_sync_wait(run: &CudaRun) {
    let s = &run.cuda()["sync"];
    let truth_ms: f64 = SYNC_APIS
        .iter()
        .map(|a| num(&run.truth["host_us"][a]["total_us"], a) / 1000.0)
        .sum();
    assert_close(
        "sync.wait_ms (as µs) vs the workload's",
        num(&s["wait_ms"], "sync.wait_ms") * 1000.0,
        truth_ms * 1000.0,
        TIME_TOLERANCE,
        0.0,
    );
    assert_close(
        "sync.threads[0].wait_ms (as µs) vs the workload's",
        num(&s["threads"][0]["wait_ms"], "sync.threads[0].wait_ms") * 1000.0,
        truth_ms * 1000.0,
        TIME_TOLERANCE,
        0.0,
    );
}

/// Every API's timing fields, with launches timed or not.
pub fn assert_timing(run: &CudaRun, launch_latency: bool, d: Durations) {
    let cuda = run.cuda();
    let mode = if launch_latency {
        "timed"
    } else {
        "entry-only"
    };
    assert_eq!(cuda["launch_latency"], mode, "cuda.launch_latency");
    for name in LAUNCH_LATENCY_APIS {
        assert_api_timing(run, name, launch_latency, d);
    }
    for name in ALWAYS_TIMED_APIS {
        if api_calls(cuda, name) > 0 {
            assert_api_timing(run, name, true, d);
        }
    }
    assert_sync_wait(run);
}
