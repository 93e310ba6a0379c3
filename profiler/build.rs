//! Builds the eBPF programs (`profiler-ebpf`) with the nightly toolchain and bpf-linker, so the
//! profiler binary can embed the object with `include_bytes_aligned!`.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // AYA_BUILD_SKIP=1 (the fuzz build, pure-logic builds): aya-build skips the eBPF crate, so
    // leave an empty object for `include_bytes_aligned!`; loading it would fail, nothing does.
    if std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true") {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
        let object = out.join("profiler-probes");
        if !object.exists() {
            std::fs::write(&object, b"").context("writing the placeholder eBPF object")?;
        }
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("profiler crate has no parent directory"))?
        .join("profiler-ebpf");
    let root_dir = root_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", root_dir.display()))?;
    aya_build::build_ebpf(
        [Package {
            name: "profiler-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
