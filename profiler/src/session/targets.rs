//! The processes to profile: validating `--pid`s, and starting `run`'s command gated so that it
//! executes its first instruction only after the probes are attached.

use std::{
    io::{Read as _, Write as _},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    process::{Child, Command},
    sync::mpsc,
    thread::JoinHandle,
};

use anyhow::{Context as _, Result, anyhow};

use crate::usage;

/// `PF_KTHREAD` in `/proc/<pid>/stat` flags.
const PF_KTHREAD: u32 = 0x0020_0000;

/// Checks that `pid` names a live user-space process other than ourselves.
pub fn validate_pid(pid: i32) -> Result<u32> {
    if pid <= 0 {
        return Err(usage!("invalid pid {pid}: pids are positive"));
    }
    if pid as u32 == std::process::id() {
        return Err(usage!("pid {pid} is the profiler itself"));
    }
    let proc = procfs::process::Process::new(pid)
        .map_err(|_| usage!("no process with pid {pid} (not running, or not visible here)"))?;
    let stat = proc
        .stat()
        .map_err(|e| usage!("cannot read /proc/{pid}/stat: {e}"))?;
    if stat.flags & PF_KTHREAD != 0 {
        return Err(usage!("pid {pid} ({}) is a kernel thread", stat.comm));
    }
    if matches!(stat.state, 'Z' | 'X') {
        return Err(usage!("pid {pid} ({}) has already exited", stat.comm));
    }
    Ok(pid as u32)
}

/// A command forked and waiting, before `exec`, for `release`.
pub struct GatedChild {
    pub pid: u32,
    go: std::io::PipeWriter,
    spawner: JoinHandle<std::io::Result<Child>>,
}

/// Forks `command` and stops it before exec. The child reports its pid through one pipe and
/// waits on another; `std::process::Command::spawn` returns only after exec, so it runs on a
/// helper thread while we attach.
pub fn spawn_gated(command: &[String]) -> Result<GatedChild> {
    let program = command
        .first()
        .ok_or_else(|| usage!("run needs a command after --"))?;
    which_program(program)?;
    let (mut pid_rx, pid_tx) = std::io::pipe().context("pipe")?;
    let (go_rx, go_tx) = std::io::pipe().context("pipe")?;
    let (pid_tx_fd, go_rx_fd, go_tx_fd) =
        (pid_tx.as_raw_fd(), go_rx.as_raw_fd(), go_tx.as_raw_fd());
    let mut cmd = Command::new(program);
    cmd.args(&command[1..]);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // calls (getpid, write, close, read) on file descriptors it owns a copy of.
    unsafe {
        cmd.pre_exec(move || {
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(pid_tx_fd, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
            // Drop our copy of the write end so a dying profiler shows up as EOF.
            libc::close(go_tx_fd);
            let mut byte = 0u8;
            loop {
                match libc::read(go_rx_fd, (&raw mut byte).cast(), 1) {
                    1 => return Ok(()),
                    0 => {
                        return Err(std::io::Error::other(
                            "profiler exited before attaching; not starting the command",
                        ));
                    }
                    _ if *libc::__errno_location() == libc::EINTR => continue,
                    _ => return Err(std::io::Error::last_os_error()),
                }
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    let spawner = std::thread::spawn(move || {
        let result = cmd.spawn();
        let _ = tx.send(());
        drop((pid_tx, go_rx));
        result
    });
    let mut buf = [0u8; 4];
    if pid_rx.read_exact(&mut buf).is_err() {
        // The child never reached pre_exec: spawn failed (fork error).
        let _ = rx.recv();
        let err = spawner
            .join()
            .map_err(|_| anyhow!("spawner thread panicked"))?
            .err()
            .map_or_else(|| "unknown error".to_string(), |e| e.to_string());
        return Err(usage!("cannot start {program}: {err}"));
    }
    Ok(GatedChild {
        pid: i32::from_ne_bytes(buf) as u32,
        go: go_tx,
        spawner,
    })
}

impl GatedChild {
    /// Lets the child exec; returns it once exec succeeded.
    pub fn release(mut self, program: &str) -> Result<Child> {
        self.go.write_all(&[1]).context("releasing the command")?;
        drop(self.go);
        let child = self
            .spawner
            .join()
            .map_err(|_| anyhow!("spawner thread panicked"))?
            .map_err(|e| usage!("cannot start {program}: {e}"))?;
        Ok(child)
    }
}

/// Resolves a program name like the shell would, for a clear error before anything starts.
fn which_program(program: &str) -> Result<()> {
    let path = std::path::Path::new(program);
    if program.contains('/') {
        if path.is_file() {
            return Ok(());
        }
        return Err(usage!("cannot start {program}: no such file"));
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    if found {
        Ok(())
    } else {
        Err(usage!("cannot start {program}: not found in PATH"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_impossible_pids() {
        assert!(validate_pid(0).is_err());
        assert!(validate_pid(-5).is_err());
        assert!(validate_pid(std::process::id() as i32).is_err());
        // pid_max is at most 2^22.
        assert!(validate_pid(1 << 23).is_err());
    }

    #[test]
    fn gated_child_runs_only_after_release() {
        let dir = std::env::temp_dir().join(format!("gate-{}", std::process::id()));
        let marker = dir.with_extension("marker");
        let _ = std::fs::remove_file(&marker);
        let cmd = vec![
            "sh".to_string(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ];
        let gated = spawn_gated(&cmd).unwrap();
        assert!(gated.pid > 0);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!marker.exists(), "command ran before release");
        let mut child = gated.release("sh").unwrap();
        assert!(child.wait().unwrap().success());
        assert!(marker.exists());
        let _ = std::fs::remove_file(&marker);
    }

    #[test]
    fn missing_programs_are_usage_errors() {
        let err = spawn_gated(&["/nonexistent/prog".into()]).err().unwrap();
        assert!(err.downcast_ref::<crate::error::UsageError>().is_some());
        let err = spawn_gated(&["no-such-program-xyz".into()]).err().unwrap();
        assert!(err.to_string().contains("not found"));
    }
}
