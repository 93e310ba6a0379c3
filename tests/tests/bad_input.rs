//! (d) Bad input: exit code 2, exactly one line on stderr, nothing attached.

use std::process::Command;

use profiler_tests::*;

fn free_pid() -> String {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (2..max)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
        .to_string()
}

fn expect_usage_error(cmd: &mut Command, what: &str, needle: &str) {
    let before: Vec<u64> = loaded_programs().into_iter().map(|(id, _)| id).collect();
    let out = cmd.output().expect("run profiler");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    println!("{what}: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit {:?}, stderr {stderr}",
        out.status
    );
    assert_eq!(lines.len(), 1, "{what}: expected one line, got {lines:?}");
    assert!(
        lines[0].starts_with("profiler: error: "),
        "{what}: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(needle),
        "{what}: {:?} lacks {needle:?}",
        lines[0]
    );
    let new: Vec<u64> = loaded_programs()
        .into_iter()
        .filter(|(id, name)| !before.contains(id) && is_ours(name))
        .map(|(id, _)| id)
        .collect();
    let left = still_loaded_after(&new, std::time::Duration::from_secs(5));
    assert!(left.is_empty(), "{what}: programs left loaded: {left:?}");
}

fn profiler() -> Command {
    Command::new(profiler_bin())
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    if !privileged("bad_input_is_one_line_and_exit_code_2") {
        return;
    }
    let me = std::process::id().to_string();
    let pid = free_pid();
    expect_usage_error(
        profiler().args(["attach", "--pid", &pid]),
        "unknown pid",
        "no process",
    );
    expect_usage_error(
        profiler().args(["attach", "--pid", "0"]),
        "pid 0",
        "invalid pid",
    );
    expect_usage_error(
        profiler().args(["attach", "--pid", "2"]),
        "kernel thread",
        "kernel thread",
    );
    expect_usage_error(
        profiler().args(["attach", "--pid", "abc"]),
        "non-numeric pid",
        "abc",
    );
    expect_usage_error(
        profiler().args([
            "attach",
            "--pid",
            &me,
            "--duration",
            "1s",
            "--interval",
            "2s",
        ]),
        "conflicting options",
        "--interval",
    );
    expect_usage_error(
        profiler().args(["attach", "--pid", &me, "--bogus"]),
        "unknown flag",
        "--bogus",
    );
    expect_usage_error(
        profiler()
            .args(["attach", "--pid", &me])
            .env("PROFILER_BTF", "/nonexistent/vmlinux"),
        "missing BTF",
        "BTF",
    );
    expect_usage_error(
        profiler()
            .args(["attach", "--pid", &me])
            .env("PROFILER_TRACEFS", "/nonexistent/tracing"),
        "tracefs not mountable",
        "tracefs",
    );
    expect_usage_error(
        profiler().args([
            "attach",
            "--pid",
            &me,
            "--output",
            "/nonexistent/dir/report.txt",
        ]),
        "unwritable output",
        "cannot write report",
    );
    expect_usage_error(
        profiler().args(["run", "--", "/nonexistent/program"]),
        "missing command",
        "cannot start",
    );
}

#[test]
fn unprivileged_user_is_refused() {
    if !privileged("unprivileged_user_is_refused") {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("SKIPPED unprivileged_user_is_refused: setpriv (util-linux) not installed");
        return;
    }
    let me = std::process::id().to_string();
    // A copy the unprivileged user can reach (the checkout may be under /root).
    let dir = temp_path("unprivileged");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("profiler");
    std::fs::copy(profiler_bin(), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    expect_usage_error(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&bin)
            .args(["attach", "--pid", &me]),
        "not root",
        "root",
    );
    let _ = std::fs::remove_dir_all(dir);
}
