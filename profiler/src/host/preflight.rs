//! Checks that must pass before anything is loaded: privileges, kernel BTF, tracefs.
//! Each failure is a one-line usage error (exit code 2).

use anyhow::Result;

use crate::{
    host::{btf::btf_path, tracefs},
    usage,
};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability set of this process, from `/proc/self/status`.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_cap_eff(&s))
        .unwrap_or(0)
}

pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether the capability set allows loading tracing programs: CAP_SYS_ADMIN, or CAP_BPF with
/// CAP_PERFMON (kernel ≥ 5.8).
pub fn caps_allow_tracing(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Everything `attach`/`run` need before loading programs.
pub fn require_tracing_host() -> Result<()> {
    if !caps_allow_tracing(effective_caps()) {
        return Err(usage!(
            "loading eBPF programs needs root or CAP_BPF+CAP_PERFMON; run with sudo"
        ));
    }
    let btf = btf_path();
    if !btf.is_file() {
        return Err(usage!(
            "kernel BTF not found at {} (needs CONFIG_DEBUG_INFO_BTF=y, kernel ≥ 5.4)",
            btf.display()
        ));
    }
    tracefs::ensure_mounted(&tracefs::tracefs_dir()).map_err(|e| usage!("{e}"))?;
    Ok(())
}

/// Raises the open-file limit to its hard maximum: every uprobe and every perf counter is a
/// descriptor (~100 uprobes per CUDA process, a few counters per thread; the usual soft limit
/// is 1024). Failing to raise it is not fatal: attaches and counters report their errors.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur >= lim.rlim_max
    {
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }

    #[test]
    fn tracing_needs_sys_admin_or_bpf_plus_perfmon() {
        assert!(caps_allow_tracing(1 << CAP_SYS_ADMIN));
        assert!(caps_allow_tracing((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_allow_tracing(1 << CAP_BPF));
        assert!(!caps_allow_tracing(0));
    }
}
