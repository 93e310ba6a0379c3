//! `profiler check`: one line per capability, each verified for real where that is possible
//! (programs are loaded and attached, a uprobe is hit, a counter is opened).

use std::{fmt, path::Path};

use anyhow::{Result, anyhow};
use aya::{
    Btf,
    programs::{FEntry, KProbe, UProbe, uprobe::UProbeScope},
};
use profiler_common::{CAPTURE_MAX, counter};

use crate::{
    bpf::probes::{Probes, attach_cookies_supported, describe_load_error, describe_program_error},
    cuda::probes::cookies_by_address,
    host::preflight,
    host::tracefs,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours the width the caller asks for, so columns line up.
        f.pad(match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
        })
    }
}

#[derive(Debug, Clone)]
pub struct CheckLine {
    pub name: &'static str,
    pub status: Status,
    /// What was found (version, path, error).
    pub detail: String,
    /// What the user loses when it is missing.
    pub impact: &'static str,
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} {:<22} {}", self.status, self.name, self.detail)?;
        if self.status == Status::Missing {
            write!(f, " — {}", self.impact)?;
        }
        Ok(())
    }
}

fn line(name: &'static str, result: Result<String>, impact: &'static str) -> CheckLine {
    match result {
        Ok(detail) => CheckLine {
            name,
            status: Status::Ok,
            detail,
            impact,
        },
        Err(e) => CheckLine {
            name,
            status: Status::Missing,
            detail: format!("{e:#}"),
            impact,
        },
    }
}

/// A function in this binary for the uprobe self-test to hit.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn profiler_uprobe_selftest_target(x: u64) -> u64 {
    std::hint::black_box(x.wrapping_mul(31))
}

/// Runs every check; the second value is whether the required ones passed.
pub fn run_checks() -> (Vec<CheckLine>, bool) {
    let mut lines = vec![line("kernel", kernel_release(), "")];
    let caps_ok = preflight::caps_allow_tracing(preflight::effective_caps());
    lines.push(line(
        "privileges",
        privileges(caps_ok),
        "cannot load eBPF programs: attach and run refuse to start (use sudo)",
    ));
    let btf = crate::host::btf::btf_path();
    lines.push(line(
        "btf",
        if btf.is_file() {
            Ok(btf.display().to_string())
        } else {
            Err(anyhow!("{} not found", btf.display()))
        },
        "attach and run refuse to start (needs CONFIG_DEBUG_INFO_BTF=y)",
    ));
    let tracefs_dir = tracefs::tracefs_dir();
    let tracefs_ok = tracefs::ensure_mounted(&tracefs_dir);
    let tracefs_is_ok = tracefs_ok.is_ok();
    lines.push(line(
        "tracefs",
        tracefs_ok.map(|state| {
            let how = match state {
                tracefs::TracefsState::AlreadyMounted => "mounted",
                tracefs::TracefsState::MountedNow => "was not mounted: mounted it now",
            };
            format!("{} ({how})", tracefs_dir.display())
        }),
        "tracepoints cannot be resolved: attach and run refuse to start",
    ));

    // Loaded with captures on, as `attach` loads them: the verifier knows read-only data, and
    // with `capture_bytes` 0 it skips the capture code (a verifier that refused that code
    // passed here while `attach` lost its socket probes).
    let mut probes = if caps_ok && tracefs_is_ok {
        tracefs::tracepoint_offsets(&tracefs_dir)
            .and_then(|o| Probes::load(&o, &tracefs::net_config(&tracefs_dir, CAPTURE_MAX as u32)))
    } else {
        Err(anyhow!("skipped: needs root and tracefs"))
    };
    let tracepoints = sched_switch_check(&mut probes);
    let required_ok = caps_ok && btf.is_file() && tracefs_is_ok && tracepoints.is_ok();
    lines.push(line("tracepoints", tracepoints, "no scheduler metrics"));
    let sockets = match &mut probes {
        Ok(p) => socket_probes(p, &tracefs_dir),
        Err(e) => Err(anyhow!("{e:#}")),
    };
    lines.push(line(
        "socket syscalls",
        sockets,
        "no HTTP request, latency or streaming (TTFT, tokens) metrics",
    ));
    let (uprobes, kprobes, fentry) = match &mut probes {
        Ok(p) => (uprobe_selftest(p), kprobe_selftest(p), fentry_selftest(p)),
        Err(e) => {
            let skipped = || Err(anyhow!("{e:#}"));
            (skipped(), skipped(), skipped())
        }
    };
    lines.push(line(
        "uprobes",
        uprobes,
        "no CUDA launch, sync and copy metrics",
    ));
    let cuda_programs = match &mut probes {
        Ok(p) => cuda_programs_check(p),
        Err(e) => Err(anyhow!("{e:#}")),
    };
    lines.push(line(
        "cuda programs",
        cuda_programs,
        "no CUDA launch, sync and copy metrics",
    ));
    lines.extend(driver_and_hardware_lines(kprobes, fentry));
    (lines, required_ok)
}

/// Loads the CUDA programs this kernel runs: the entry program reads its attach cookie from
/// 5.15 on, and looks it up by the probed address before.
fn cuda_programs_check(p: &mut Probes) -> Result<String> {
    let (entry, how) = if !cookies_by_address() {
        ("cuda_enter", "attach cookies")
    } else if attach_cookies_supported() {
        (
            "cuda_enter_by_address",
            "probes told apart by address, as asked",
        )
    } else {
        (
            "cuda_enter_by_address",
            "no attach cookies on this kernel: probes told apart by address",
        )
    };
    [entry, "cuda_exit"]
        .iter()
        .try_for_each(|name| p.load_uprobe(name))
        .map(|()| format!("{entry} and cuda_exit pass the verifier ({how})"))
}

/// Attaches the scheduler's switch program and says which variant runs.
fn sched_switch_check(probes: &mut Result<Probes>) -> Result<String> {
    let p = probes.as_mut().map_err(|e| anyhow!("{e:#}"))?;
    let start = p.status.len();
    p.attach(crate::sched::probes::SCHED_PROBES)?;
    let status = &p.status[start..];
    let fell_back = |program: &str| status.iter().find(|s| s.program == program && !s.attached);
    let reason = |s: &crate::bpf::probes::ProbeStatus| {
        s.error
            .as_deref()
            .and_then(|e| e.split("; using the perf-event").next())
            .unwrap_or("unknown")
            .to_string()
    };
    let mut text = match fell_back(crate::sched::probes::SCHED_SWITCH_RAW) {
        Some(s) => format!(
            "sched:sched_switch attached as a perf-event tracepoint (fallback: switches can be \
             missed while syscall tracepoints run); raw tracepoint unavailable: {}",
            reason(s)
        ),
        None => "sched_switch loaded and attached (raw tracepoint)".to_string(),
    };
    let others = &crate::sched::probes::SCHED_PROBES[1..];
    let perf: Vec<String> = others
        .iter()
        .filter_map(|spec| {
            fell_back(spec.program).map(|s| format!("{} ({})", spec.tracepoint, reason(s)))
        })
        .collect();
    if perf.is_empty() {
        text.push_str(&format!("; the other {} as raw tracepoints", others.len()));
    } else {
        text.push_str(&format!(
            "; as perf-event tracepoints (runs can be skipped while syscall programs run): {}",
            perf.join(", ")
        ));
    }
    Ok(text)
}

/// The CUDA driver, the kprobe and fentry self-tests' results, perf counters, NVML and RAPL, in
/// the order `check` prints them.
fn driver_and_hardware_lines(kprobes: Result<String>, fentry: Result<String>) -> Vec<CheckLine> {
    vec![
        line(
            "cuda driver",
            cuda_driver(),
            "CUDA calls are seen only in processes that bring their own libcuda (containers)",
        ),
        line(
            "kprobes",
            kprobes,
            "none today: every probe uses tracepoints or uprobes",
        ),
        line(
            "fentry",
            fentry,
            "none today: every probe uses tracepoints or uprobes",
        ),
        line(
            "hardware perf events",
            hardware_counters(),
            "no cycles, instructions, cache or vectorization counters (software events still work)",
        ),
        line(
            "nvml",
            nvml(),
            "no GPU utilization, memory, power or energy metrics",
        ),
        line("rapl", rapl(), "no CPU energy metrics"),
    ]
}

/// Whether this host's loader knows a `libcuda.so` (the NVIDIA driver's user-space library).
/// Processes are probed on whatever libcuda they map; this only tells what to expect.
fn cuda_driver() -> Result<String> {
    let out = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map_err(|e| anyhow!("cannot run ldconfig -p: {e}"))?;
    let listing = String::from_utf8_lossy(&out.stdout);
    listing
        .lines()
        .filter(|l| l.trim_start().starts_with("libcuda.so"))
        .find_map(|l| l.rsplit("=> ").next().map(str::trim).map(str::to_string))
        .map(|path| format!("{path} (probed wherever a watched process maps it)"))
        .ok_or_else(|| anyhow!("no libcuda.so known to the loader (no NVIDIA driver here)"))
}

fn kernel_release() -> Result<String> {
    // SAFETY: utsname is plain old data; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

fn privileges(caps_ok: bool) -> Result<String> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    match (euid, caps_ok) {
        (0, true) => Ok("root".into()),
        (_, true) => Ok(format!("uid {euid} with CAP_BPF+CAP_PERFMON")),
        _ => Err(anyhow!(
            "uid {euid} without CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON"
        )),
    }
}

/// Loads and attaches the socket probes as a session would; says which path runs.
fn socket_probes(p: &mut Probes, tracefs_dir: &Path) -> Result<String> {
    let net = tracefs::net_config(tracefs_dir, 0);
    let start = p.status.len();
    let path = crate::http::probes::attach_socket_probes(p, &net)?;
    let status = &p.status[start..];
    let core = [
        "sys_enter_read",
        "sys_enter_write",
        "sys_exit_read",
        "sys_exit_write",
        "sock_recv_length",
        "sock_send_length",
    ];
    let used: Vec<_> = status
        .iter()
        .filter(|s| {
            path != crate::http::probes::SocketPath::Syscalls
                || !s.program.starts_with("sock_layer")
        })
        .collect();
    if let Some(failed) = used
        .iter()
        .find(|s| !s.attached && core.iter().any(|c| s.attach_point.ends_with(c)))
    {
        return Err(anyhow!(
            "{}: {}",
            failed.attach_point,
            failed.error.as_deref().unwrap_or("not attached")
        ));
    }
    let attached = used.iter().filter(|s| s.attached).count();
    Ok(format!(
        "{attached}/{} attached; {}",
        used.len(),
        path.describe(&net)
    ))
}

fn uprobe_selftest(p: &mut Probes) -> Result<String> {
    let program: &mut UProbe = p
        .ebpf_mut()
        .program_mut("selftest_uprobe")
        .ok_or_else(|| anyhow!("no selftest_uprobe program"))?
        .try_into()?;
    program
        .load()
        .map_err(|e| describe_load_error("selftest_uprobe", e))?;
    let link = program
        .attach(
            "profiler_uprobe_selftest_target",
            Path::new("/proc/self/exe"),
            UProbeScope::CallingProcess,
        )
        .map_err(describe_program_error)?;
    const CALLS: u64 = 3;
    for i in 0..CALLS {
        std::hint::black_box(profiler_uprobe_selftest_target(i));
    }
    program.detach(link)?;
    let hits = p.counter(counter::UPROBE_SELFTEST_HITS);
    if hits == CALLS {
        Ok(format!("attached and hit {hits}/{CALLS} times"))
    } else {
        Err(anyhow!("attached but hit {hits}/{CALLS} times"))
    }
}

fn kprobe_selftest(p: &mut Probes) -> Result<String> {
    let program: &mut KProbe = p
        .ebpf_mut()
        .program_mut("selftest_kprobe")
        .ok_or_else(|| anyhow!("no selftest_kprobe program"))?
        .try_into()?;
    program
        .load()
        .map_err(|e| describe_load_error("selftest_kprobe", e))?;
    let link = program
        .attach("do_nanosleep", 0)
        .map_err(|e| anyhow!("{:#} (is CONFIG_KPROBES off?)", describe_program_error(e)))?;
    program.detach(link)?;
    Ok("attached to do_nanosleep".into())
}

fn fentry_selftest(p: &mut Probes) -> Result<String> {
    let btf = Btf::from_sys_fs()?;
    let program: &mut FEntry = p
        .ebpf_mut()
        .program_mut("selftest_fentry")
        .ok_or_else(|| anyhow!("no selftest_fentry program"))?
        .try_into()?;
    program
        .load("do_nanosleep", &btf)
        .map_err(|e| describe_load_error("selftest_fentry", e))?;
    let link = program.attach().map_err(describe_program_error)?;
    program.detach(link)?;
    Ok("attached to do_nanosleep".into())
}

fn hardware_counters() -> Result<String> {
    use perf_event::{Builder, events::Hardware};
    let mut counter = Builder::new()
        .kind(Hardware::INSTRUCTIONS)
        .build()
        .map_err(|e| anyhow!("cannot open an instructions counter ({e}): no hardware PMU"))?;
    counter.enable()?;
    std::hint::black_box((0..10_000u64).sum::<u64>());
    counter.disable()?;
    Ok(format!(
        "instructions counter works ({} counted)",
        counter.read()?
    ))
}

fn nvml() -> Result<String> {
    let nvml = nvml_wrapper::Nvml::init()
        .map_err(|e| anyhow!("NVML unavailable ({e}): no NVIDIA driver"))?;
    Ok(format!(
        "driver {}, {} GPU(s)",
        nvml.sys_driver_version()?,
        nvml.device_count()?
    ))
}

fn rapl() -> Result<String> {
    let powercap = Path::new("/sys/class/powercap/intel-rapl:0/energy_uj");
    if powercap.exists() {
        return Ok(format!("powercap {}", powercap.display()));
    }
    let events = Path::new("/sys/bus/event_source/devices/power/events");
    let names: Vec<String> = std::fs::read_dir(events)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("energy-") && !n.contains('.'))
                .collect()
        })
        .unwrap_or_default();
    if names
        .iter()
        .any(|n| n == "energy-pkg" || n == "energy-cores")
    {
        Ok(format!("perf power PMU: {}", names.join(", ")))
    } else if names.is_empty() {
        Err(anyhow!("no powercap and no perf power PMU"))
    } else {
        Err(anyhow!(
            "no package/core energy domain (power PMU offers only {})",
            names.join(", ")
        ))
    }
}
