//! Building the stub libraries and the workloads, once per test binary, with the system C
//! compiler.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use crate::{record_skip, workload_bin};

/// The built stub libraries and workloads.
#[derive(Debug)]
pub struct StubCuda {
    /// Holds `libcuda.so.1` and `libcudart.so.12`.
    pub lib_dir: PathBuf,
    pub driver: PathBuf,
    pub runtime: PathBuf,
    /// `cuda-workload`: loads the driver and the runtime (dlopen).
    pub workload: PathBuf,
    /// `cuda-workload-static`: the runtime (stub_cudart.c) linked in and exported by the
    /// executable (`-rdynamic`), as with `libcudart_static.a`; loads the driver only.
    pub workload_static: PathBuf,
}

enum Build {
    Built(StubCuda),
    /// No C compiler: the tests skip.
    NoCompiler(String),
    /// The compiler failed: the tests fail.
    Failed(String),
}

static BUILD: OnceLock<Build> = OnceLock::new();

/// The stub libraries and the workloads, built once per test binary into
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
        workload_static: dir.join("cuda-workload-static"),
        lib_dir,
    };
    let shared = |soname: &str| {
        vec![
            "-shared".to_owned(),
            "-fPIC".to_owned(),
            format!("-Wl,-soname,{soname}"),
        ]
    };
    let exe = |defines: &[&str]| {
        let mut flags = vec!["-rdynamic".to_owned()];
        flags.extend(defines.iter().map(|d| format!("-D{d}")));
        flags
    };
    let jobs: [(&[&str], &Path, Vec<String>); 4] = [
        (&["stub_cuda.c"], &stub.driver, shared("libcuda.so.1")),
        (&["stub_cudart.c"], &stub.runtime, shared("libcudart.so.12")),
        (&["cuda_workload.c"], &stub.workload, exe(&[])),
        (
            &["cuda_workload.c", "stub_cudart.c"],
            &stub.workload_static,
            exe(&["STATIC_RUNTIME"]),
        ),
    ];
    for (sources, out, flags) in jobs {
        let sources: Vec<PathBuf> = sources.iter().map(|s| source(s)).collect();
        if let Err(e) = compile(&cc, &sources, out, &flags) {
            return Build::Failed(e);
        }
    }
    Build::Built(stub)
}

/// Compiles and links `sources` to `out` (through a temporary name, renamed into place: a
/// process that has the old file mapped keeps it).
fn compile(cc: &str, sources: &[PathBuf], out: &Path, flags: &[String]) -> Result<(), String> {
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let output = Command::new(cc)
        .args(["-O2", "-g", "-Wall", "-Wextra", "-fno-ipa-icf"])
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .args(sources)
        .arg("-ldl")
        .output()
        .map_err(|e| format!("{cc}: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let names: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
        return Err(format!(
            "{cc} {}: {}\n{}",
            names.join(" "),
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
