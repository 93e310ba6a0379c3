//! Loading and attaching the eBPF programs, driven by the declarative probe table
//! (`probe_table.rs`), and typed access to their maps. Dropping `Probes` detaches every program and closes every map.

use std::os::fd::AsFd as _;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
    programs::{
        ProgramError, RawTracePoint, TracePoint, UProbe,
        raw_trace_point::RawTracePointLink,
        trace_point::TracePointLink,
        uprobe::{UProbeAttachPoint, UProbeScope},
    },
};
use profiler_common::{NetConfig, ThreadStats, TracepointOffsets, counter, global_name, map_name};
use serde::Serialize;

use crate::bpf::{
    table::{ProbeSpec, RAW_TRACEPOINT},
    verifier,
};

/// The compiled eBPF object, built by `build.rs` through aya-build.
pub static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/profiler-probes"));

/// What happened to one probe at attach time (shown by the report).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProbeStatus {
    pub program: String,
    pub attach_point: String,
    pub feature: String,
    pub attached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The loaded programs and the maps every capability shares (the watched set, the per-thread
/// scheduler records, the health counters). A capability takes its own maps with `take_map`.
pub struct Probes {
    ebpf: Ebpf,
    watched: HashMap<MapData, u32, u8>,
    /// One bit per watched tgid: what the programs test first (see `is_watched` there).
    watched_bits: Array<MapData, u64>,
    threads: HashMap<MapData, u32, ThreadStats>,
    counters: PerCpuArray<MapData, u64>,
    /// `task_struct.pid` offset the programs were loaded with (0 = unknown).
    task_pid_offset: u32,
    /// Tracepoint links; dropping one detaches it.
    links: Vec<Box<dyn Send>>,
    /// Programs the verifier rejected, with the reason (not loaded a second time).
    load_failures: std::collections::BTreeMap<&'static str, String>,
    /// Uprobe links by the process they are scoped to.
    process_links: std::collections::BTreeMap<u32, Vec<Box<dyn Send>>>,
    pub status: Vec<ProbeStatus>,
}

impl Drop for Probes {
    /// Detaching a tracepoint waits for an RCU grace period (~70 ms each on our VM, 2.4 s for
    /// all 34 one after the other): detach them from several threads so the waits overlap
    /// (measured: 2.4 s → 1.3 s from SIGINT to exit; the report is written before this).
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.links);
        let per_thread = links.len().div_ceil(8).max(1);
        let mut chunks: Vec<Vec<Box<dyn Send>>> = Vec::new();
        let mut it = links.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(per_thread).collect());
        }
        std::thread::scope(|scope| {
            for chunk in chunks {
                scope.spawn(move || drop(chunk));
            }
        });
    }
}

/// Whether this kernel gives probes an attach cookie (`bpf_get_attach_cookie` and BPF links for
/// perf events: 5.15+).
pub fn attach_cookies_supported() -> bool {
    let helper = aya::sys::is_helper_supported(
        aya::programs::ProgramType::KProbe,
        aya::sys::BpfHelper::BPF_FUNC_get_attach_cookie,
    );
    matches!(helper, Ok(true)) && aya::features().bpf_perf_link()
}

impl Probes {
    /// Loads the object with this kernel's tracepoint offsets. Nothing is attached yet, so the
    /// caller can seed the maps first.
    pub fn load(offsets: &TracepointOffsets, net: &NetConfig) -> Result<Self> {
        // No target BTF: the programs carry no CO-RE relocations (kernel offsets come from
        // `host::btf`). aya parses the kernel's BTF in `EbpfLoader::new` all the same (9 MiB of
        // small allocations, freed here): `release_freed_heap` below gives them back before the
        // ring buffers are mapped, so they do not add up in the agent's peak RSS.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .override_global(global_name::TP_OFFSETS, offsets, true)
            .override_global(global_name::NET_CONFIG, net, true)
            .load(PROBES_OBJECT)
            .context("loading the eBPF object")?;
        crate::util::mem::release_freed_heap();
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("eBPF object has no map {name}"))
        };
        let watched = HashMap::try_from(take(map_name::WATCHED)?)?;
        let watched_bits = Array::try_from(take(map_name::WATCHED_BITS)?)?;
        let threads = HashMap::try_from(take(map_name::THREAD_STATS)?)?;
        let counters = PerCpuArray::try_from(take(map_name::COUNTERS)?)?;
        Ok(Self {
            ebpf,
            watched,
            watched_bits,
            threads,
            counters,
            task_pid_offset: offsets.task_pid.min(offsets.task_tgid),
            links: Vec::new(),
            load_failures: std::collections::BTreeMap::new(),
            process_links: std::collections::BTreeMap::new(),
            status: Vec::new(),
        })
    }

    /// Loads and attaches every probe of `table`. A required probe that fails is an error; an
    /// optional one is recorded with the reason and what it costs. A probe with a fallback
    /// (`sched_switch_raw`) that fails is recorded as not attached, and the fallback attached.
    pub fn attach(&mut self, table: &[ProbeSpec]) -> Result<()> {
        // Verify the table's tracepoint programs before attaching any: verifying one can take
        // 100+ ms, and while `sock_layer_send` was verified after `sock_layer_recv` was attached,
        // a request read in between had its response written unseen (an exchange without a
        // status at the start of a session). Errors are reported by the attach below.
        for spec in table {
            let loaded = if spec.category != RAW_TRACEPOINT {
                load_tracepoint(&mut self.ebpf, spec).map(|_| ())
            } else if self.raw_usable(spec) {
                load_raw_tracepoint(&mut self.ebpf, spec).map(|_| ())
            } else {
                Ok(())
            };
            if let Err(e) = loaded {
                self.load_failures.insert(spec.program, e.to_string());
            }
        }
        for spec in table {
            let (result, attach_point) = self.attach_one(spec);
            if let (Err(e), Some(fallback)) = (&result, spec.fallback) {
                self.status.push(ProbeStatus {
                    program: spec.program.into(),
                    attach_point,
                    feature: spec.feature.into(),
                    attached: false,
                    error: Some(format!(
                        "{e}; using the perf-event tracepoint {} instead",
                        fallback.program
                    )),
                });
                self.attach(std::slice::from_ref(fallback))?;
                continue;
            }
            if let Err(e) = &result
                && spec.required
            {
                return Err(anyhow!("attaching required probe {attach_point}: {e}"));
            }
            self.status.push(ProbeStatus {
                program: spec.program.into(),
                attach_point,
                feature: spec.feature.into(),
                attached: result.is_ok(),
                error: result.err().map(|e| format!("{e}; {}", spec.if_missing)),
            });
        }
        Ok(())
    }

    fn attach_one(&mut self, spec: &ProbeSpec) -> (Result<()>, String) {
        let raw = spec.category == RAW_TRACEPOINT;
        let point = if raw {
            format!("raw_tracepoint:{}", spec.tracepoint)
        } else {
            format!("tracepoint:{}:{}", spec.category, spec.tracepoint)
        };
        if let Some(why) = self.load_failures.get(spec.program) {
            return (Err(anyhow!(why.clone())), point);
        }
        if !raw {
            let result =
                attach_tracepoint(&mut self.ebpf, spec).map(|link| self.links.push(Box::new(link)));
            return (result, point);
        }
        if let Some(why) = self.raw_unusable(spec) {
            return (Err(why), point);
        }
        let result =
            attach_raw_tracepoint(&mut self.ebpf, spec).map(|link| self.links.push(Box::new(link)));
        (result, point)
    }

    /// Whether raw tracepoint `spec` is to be loaded here (see `raw_unusable`).
    fn raw_usable(&self, spec: &ProbeSpec) -> bool {
        !off_switched(spec) && (!spec.needs_task_offsets || self.task_pid_offset != 0)
    }

    /// Why raw tracepoint `spec` is not to be loaded here: switched off by its environment
    /// variable, or reading `task_struct` at offsets this kernel's BTF did not give.
    fn raw_unusable(&self, spec: &ProbeSpec) -> Option<anyhow::Error> {
        if self.raw_usable(spec) {
            return None;
        }
        if let Some(env) = spec.off_switch.filter(|_| off_switched(spec)) {
            return Some(anyhow!("disabled by {env}"));
        }
        // Not switched off, so the task offsets are missing. Only this failure path parses
        // BTF a second time, for the reason.
        let why = crate::host::btf::task_offsets(&crate::host::btf::btf_path())
            .err()
            .map_or_else(|| "unknown".into(), |e| format!("{e:#}"));
        Some(anyhow!(
            "no task_struct.pid/tgid offsets from kernel BTF ({why})"
        ))
    }

    /// Loads uprobe program `program` without attaching it (a verifier check).
    pub fn load_uprobe(&mut self, program: &str) -> Result<()> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("eBPF object has no program {program}"))?
            .try_into()?;
        match prog.load() {
            Ok(()) | Err(ProgramError::AlreadyLoaded) => Ok(()),
            Err(e) => Err(describe_load_error(program, e)),
        }
    }

    /// Attaches uprobe (or uretprobe) program `program` at `file_offset` of the ELF file `target`
    /// with `cookie` (see [`attach_cookies_supported`]), for process `pid` only: the kernel then
    /// puts breakpoints in that process's memory alone, so other processes using the same
    /// library pay nothing.
    pub fn attach_uprobe(
        &mut self,
        program: &str,
        target: &std::path::Path,
        file_offset: u64,
        cookie: Option<u64>,
        pid: u32,
    ) -> Result<()> {
        let pid = std::num::NonZeroU32::new(pid).ok_or_else(|| anyhow!("pid 0"))?;
        self.load_uprobe(program)?;
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("eBPF object has no program {program}"))?
            .try_into()?;
        let point = UProbeAttachPoint {
            location: file_offset.into(),
            cookie,
        };
        let id = prog
            .attach(point, target, UProbeScope::OneProcess(pid))
            .map_err(describe_program_error)?;
        let link = prog.take_link(id).map_err(describe_program_error)?;
        self.process_links
            .entry(pid.get())
            .or_default()
            .push(Box::new(link));
        Ok(())
    }

    /// Detaches the uprobes scoped to `pid` (it exited).
    pub fn detach_process(&mut self, pid: u32) {
        self.process_links.remove(&pid);
    }

    /// Takes map `name` out of the object, for the capability that reads it (the map stays
    /// alive as long as the capability holds it).
    pub fn take_map(&mut self, name: &str) -> Result<Map> {
        self.ebpf
            .take_map(name)
            .ok_or_else(|| anyhow!("eBPF object has no map {name} (or it was taken already)"))
    }

    /// Per program, how many times the kernel skipped it because another BPF program was
    /// running on that CPU (`recursion_misses`); only programs with misses are listed. A missed
    /// `sched_switch` loses an on-CPU interval, a missed `sock_exit` a socket event.
    pub fn recursion_misses(&self) -> Vec<(String, u64)> {
        self.ebpf
            .programs()
            .filter_map(|(name, program)| {
                let fd = program.fd().ok()?;
                let misses = prog_recursion_misses(fd.as_fd())?;
                (misses > 0).then(|| (name.to_string(), misses))
            })
            .collect()
    }

    /// Per loaded program: (name, run time ns, runs), counted by the kernel while
    /// `kernel.bpf_stats_enabled` is 1 (zeros otherwise).
    pub fn program_stats(&self) -> Vec<(String, u64, u64)> {
        self.ebpf
            .programs()
            .filter_map(|(name, program)| {
                let fd = program.fd().ok()?;
                let info = prog_info(fd.as_fd())?;
                Some((name.to_string(), info.run_time_ns, info.run_cnt))
            })
            .collect()
    }

    pub fn watch(&mut self, tgid: u32) -> Result<()> {
        self.watched
            .insert(tgid, 1, 0)
            .with_context(|| format!("adding pid {tgid} to the watch map"))?;
        self.set_watched_bit(tgid, true)
            .with_context(|| format!("adding pid {tgid} to the watch bitmap"))
    }

    /// Makes a child the kernel side added to the watched set as cheap to recognise as a
    /// process userspace watches (and repairs a bit lost to concurrent forks).
    pub fn adopt(&mut self, tgid: u32) {
        let _ = self.set_watched_bit(tgid, true);
    }

    pub fn unwatch(&mut self, tgid: u32) {
        // Already gone is fine: the kernel side never removes entries, but be lenient.
        let _ = self.set_watched_bit(tgid, false);
        let _ = self.watched.remove(&tgid);
    }

    /// Sets or clears `tgid`'s bit in the watched bitmap (userspace is its only writer).
    fn set_watched_bit(&mut self, tgid: u32, on: bool) -> Result<()> {
        let (index, bit) = (tgid / 64, 1u64 << (tgid % 64));
        let word = self.watched_bits.get(&index, 0)?;
        let word = if on { word | bit } else { word & !bit };
        self.watched_bits.set(index, word, 0)?;
        Ok(())
    }

    pub fn watched(&self) -> Vec<u32> {
        self.watched.keys().flatten().collect()
    }

    pub fn seed_thread(&mut self, tid: u32, stats: &ThreadStats) -> Result<()> {
        const BPF_NOEXIST: u64 = 1;
        match self.threads.insert(tid, stats, BPF_NOEXIST) {
            Ok(()) => Ok(()),
            // The kernel registered it first (it switched out already): keep the kernel's.
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("seeding thread {tid}")),
        }
    }

    pub fn threads(&self) -> Vec<(u32, ThreadStats)> {
        self.threads.iter().flatten().collect()
    }

    pub fn forget_thread(&mut self, tid: u32) {
        let _ = self.threads.remove(&tid);
    }

    /// Health counter `index`, summed over CPUs.
    pub fn counter(&self, index: u32) -> u64 {
        self.counters
            .get(&index, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }

    /// Switch-outs whose switch-in was not seen (see `counter::SWITCH_INS_MISSED`).
    pub fn switch_ins_missed(&self) -> u64 {
        self.counter(counter::SWITCH_INS_MISSED)
    }

    pub fn thread_map_full(&self) -> u64 {
        self.counter(counter::THREAD_MAP_FULL)
    }

    pub fn watched_map_full(&self) -> u64 {
        self.counter(counter::WATCHED_MAP_FULL)
    }

    /// The object itself, for `profiler check`'s self-test programs.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// Whether `spec`'s environment variable is set to anything but "0".
fn off_switched(spec: &ProbeSpec) -> bool {
    spec.off_switch
        .and_then(std::env::var_os)
        .is_some_and(|v| v != "0")
}

/// Loads (verifies) the tracepoint program of `spec`, unless it is loaded already (one program
/// may serve several tracepoints).
fn load_tracepoint<'a>(ebpf: &'a mut Ebpf, spec: &ProbeSpec) -> Result<&'a mut TracePoint> {
    let program: &mut TracePoint = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| anyhow!("eBPF object has no program {}", spec.program))?
        .try_into()?;
    match program.load() {
        Ok(()) | Err(ProgramError::AlreadyLoaded) => Ok(program),
        Err(e) => Err(describe_load_error(spec.program, e)),
    }
}

fn attach_tracepoint(ebpf: &mut Ebpf, spec: &ProbeSpec) -> Result<TracePointLink> {
    let program = load_tracepoint(ebpf, spec)?;
    let id = program
        .attach(spec.category, spec.tracepoint)
        .map_err(describe_program_error)?;
    // Owned by `Probes`, so that dropping it can detach every link at once (see its Drop).
    program.take_link(id).map_err(describe_program_error)
}

/// Loads (verifies) the raw tracepoint program of `spec`, unless it is loaded already.
fn load_raw_tracepoint<'a>(ebpf: &'a mut Ebpf, spec: &ProbeSpec) -> Result<&'a mut RawTracePoint> {
    let program: &mut RawTracePoint = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| anyhow!("eBPF object has no program {}", spec.program))?
        .try_into()?;
    match program.load() {
        Ok(()) | Err(ProgramError::AlreadyLoaded) => Ok(program),
        Err(e) => Err(describe_load_error(spec.program, e)),
    }
}

fn attach_raw_tracepoint(ebpf: &mut Ebpf, spec: &ProbeSpec) -> Result<RawTracePointLink> {
    let program = load_raw_tracepoint(ebpf, spec)?;
    let id = program
        .attach(spec.tracepoint)
        .map_err(describe_program_error)?;
    program.take_link(id).map_err(describe_program_error)
}

/// `recursion_misses` of a loaded program (aya does not expose this field).
fn prog_recursion_misses(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    prog_info(fd).map(|info| info.recursion_misses)
}

/// A loaded program's `BPF_OBJ_GET_INFO_BY_FD` record.
fn prog_info(fd: std::os::fd::BorrowedFd<'_>) -> Option<aya_obj::generated::bpf_prog_info> {
    use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};
    use std::os::fd::AsRawFd as _;
    // SAFETY: both are plain C structs for which all-zero is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = std::mem::size_of::<bpf_prog_info>() as u32;
    attr.info.info = &mut info as *mut bpf_prog_info as u64;
    // SAFETY: `attr` names a valid fd and a writable buffer of the size given; the kernel writes
    // at most `info_len` bytes into it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    (rc == 0).then_some(info)
}

/// Flattens aya's error chain (and the verifier log's last lines) into one readable line.
pub fn describe_program_error(e: ProgramError) -> anyhow::Error {
    describe_load_error("the program", e)
}

/// As `describe_program_error`, for loading `program`: a rejection names the verifier's error
/// line and the file with its whole log.
pub fn describe_load_error(program: &str, e: ProgramError) -> anyhow::Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => anyhow!(verifier::rejection_message(
            program,
            &io_error,
            &verifier_log.to_string()
        )),
        other => {
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            anyhow!(msg)
        }
    }
}
