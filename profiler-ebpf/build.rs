use which::which;

/// Rebuild the eBPF object when bpf-linker changes (e.g. after `cargo xtask setup` reinstalled it
/// for a new LLVM); fail early with a pointer to the set-up command when it is missing.
fn main() {
    let bpf_linker = which("bpf-linker")
        .expect("bpf-linker not found on PATH: run `cargo xtask setup` to install it");
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
    // `bpf_target_arch` tells the uprobes where stack arguments live (x86-64 vs aarch64).
    println!(
        "cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\", \"arm\", \"loongarch64\", \"mips\", \"powerpc64\", \"riscv64\", \"s390x\"))"
    );
    aya_build::emit_bpf_target_arch_cfg().expect("setting bpf_target_arch");
}
