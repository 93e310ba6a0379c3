use which::which;

/// Rebuild the eBPF object when bpf-linker changes (e.g. after `cargo xtask setup` reinstalled it
/// for a new LLVM); fail early with a pointer to the set-up command when it is missing.
fn main() {
    let bpf_linker = which("bpf-linker")
        .expect("bpf-linker not found on PATH: run `cargo xtask setup` to install it");
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
