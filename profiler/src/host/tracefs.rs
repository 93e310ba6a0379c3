//! tracefs: finding (or mounting) it, and reading tracepoint field offsets from `format` files.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow};
use profiler_common::{CAPTURE_MAX, NetConfig, TracepointOffsets};

/// Where tracefs lives; `PROFILER_TRACEFS` overrides it (for unusual layouts and for tests).
pub fn tracefs_dir() -> PathBuf {
    std::env::var_os("PROFILER_TRACEFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/tracing"))
}

/// What `ensure_mounted` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TracefsState {
    AlreadyMounted,
    MountedNow,
}

/// Makes sure tracefs is mounted at `dir` (aya needs it to resolve tracepoint ids), mounting it
/// when it is not. Many fresh machines boot without it.
pub fn ensure_mounted(dir: &Path) -> Result<TracefsState> {
    if dir.join("events").is_dir() {
        return Ok(TracefsState::AlreadyMounted);
    }
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call; the
    // data argument may be null for tracefs.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(anyhow!(
            "tracefs is not mounted at {} and mounting it failed ({err}); mount it with \
             `mount -t tracefs nodev {}`",
            dir.display(),
            dir.display()
        ));
    }
    if !dir.join("events").is_dir() {
        return Err(anyhow!(
            "mounted tracefs at {} but it has no events/ directory",
            dir.display()
        ));
    }
    Ok(TracefsState::MountedNow)
}

/// Offset of field `name` in a tracefs `format` file, e.g. `field:pid_t pid;\toffset:24;...`.
pub fn field_offset(format: &str, name: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        // The field name is the last word of the declaration, minus any array suffix.
        let field = decl.split_whitespace().last()?;
        let field = field.split('[').next()?;
        if field != name {
            return None;
        }
        let offset = rest
            .split(';')
            .find_map(|p| p.trim().strip_prefix("offset:"))?;
        offset.trim().parse().ok()
    })
}

fn read_format(tracefs: &Path, event: &str) -> Result<String> {
    let path = tracefs.join("events").join(event).join("format");
    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn offset_of(tracefs: &Path, event: &str, field: &str) -> Result<u32> {
    let format = read_format(tracefs, event)?;
    field_offset(&format, field)
        .ok_or_else(|| anyhow!("tracepoint {event} has no field `{field}` on this kernel"))
}

/// Reads every offset the eBPF programs need from this kernel's format files, and
/// `task_struct` offsets (pid, tgid, se.sum_exec_runtime) from its BTF (0 when BTF does not
/// say: the perf-event `sched_switch` is used then).
pub fn tracepoint_offsets(tracefs: &Path) -> Result<TracepointOffsets> {
    let task = crate::host::btf::task_offsets(&crate::host::btf::btf_path()).ok();
    Ok(TracepointOffsets {
        switch_prev_comm: offset_of(tracefs, "sched/sched_switch", "prev_comm")?,
        switch_prev_pid: offset_of(tracefs, "sched/sched_switch", "prev_pid")?,
        switch_prev_state: offset_of(tracefs, "sched/sched_switch", "prev_state")?,
        switch_next_pid: offset_of(tracefs, "sched/sched_switch", "next_pid")?,
        wakeup_pid: offset_of(tracefs, "sched/sched_wakeup", "pid")?,
        migrate_pid: offset_of(tracefs, "sched/sched_migrate_task", "pid")?,
        newtask_pid: offset_of(tracefs, "task/task_newtask", "pid")?,
        newtask_clone_flags: offset_of(tracefs, "task/task_newtask", "clone_flags")?,
        task_pid: task.map_or(0, |t| t.pid),
        task_tgid: task.map_or(0, |t| t.tgid),
        task_sum_exec_runtime: task.map_or(0, |t| t.sum_exec_runtime),
    })
}

/// Environment variable that forces the socket recognition of kernels without
/// `sock:sock_recv_length` (each syscall's fd resolved in the kernel), so that path is testable
/// on any kernel.
pub const FD_TABLE_ENV: &str = "PROFILER_SOCKETS_FROM_FD_TABLE";

/// The socket probes' configuration for this kernel: where `sock_{recv,send}_length` keep their
/// fields, or fd resolution in the kernel where those tracepoints do not exist; the BTF offsets
/// of the fd → socket walk and of connection addresses either way.
pub fn net_config(tracefs: &Path, capture_bytes: u32) -> NetConfig {
    let forced = std::env::var_os(FD_TABLE_ENV).is_some_and(|v| v != "0");
    let offsets = (!forced)
        .then(|| read_format(tracefs, "sock/sock_recv_length").ok())
        .flatten()
        .and_then(|f| {
            Some([
                field_offset(&f, "sk")?,
                field_offset(&f, "family")?,
                field_offset(&f, "protocol")?,
                field_offset(&f, "ret")?,
                field_offset(&f, "flags")?,
            ])
        });
    let mut cfg = NetConfig {
        capture_bytes: capture_bytes.min(CAPTURE_MAX as u32),
        // Without BTF (`profiler check` says so) `valid` stays 0: sockets are then known only
        // from accept/connect on kernels without the socket tracepoints, and connections older
        // than the session have no addresses.
        sockets: crate::host::btf::socket_offsets(&crate::host::btf::btf_path())
            .unwrap_or_default(),
        ..NetConfig::default()
    };
    match offsets {
        Some([sk, family, protocol, ret, flags]) => {
            cfg.sock_len_sk = sk;
            cfg.sock_len_family = family;
            cfg.sock_len_protocol = protocol;
            cfg.sock_len_ret = ret;
            cfg.sock_len_flags = flags;
        }
        None => cfg.resolve_fds = 1,
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "name: sched_switch
ID: 316
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
";

    const MIGRATE_6_18: &str = "\tfield:__data_loc char[] comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;";

    #[test]
    fn finds_fields_by_name() {
        assert_eq!(field_offset(SWITCH, "prev_comm"), Some(8));
        assert_eq!(field_offset(SWITCH, "prev_pid"), Some(24));
        assert_eq!(field_offset(SWITCH, "prev_state"), Some(32));
        assert_eq!(field_offset(SWITCH, "next_pid"), Some(56));
        assert_eq!(field_offset(SWITCH, "common_pid"), Some(4));
    }

    #[test]
    fn does_not_match_prefixes_or_missing_fields() {
        assert_eq!(field_offset(SWITCH, "pid"), None);
        assert_eq!(field_offset(SWITCH, "next_comm"), None);
        assert_eq!(field_offset("garbage\nfield:;", "x"), None);
    }

    #[test]
    fn handles_data_loc_strings() {
        assert_eq!(field_offset(MIGRATE_6_18, "pid"), Some(12));
        assert_eq!(field_offset(MIGRATE_6_18, "comm"), Some(8));
    }
}
