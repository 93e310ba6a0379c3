//! `cargo xtask vm`: the kernel matrix. Boots Debian's cloud kernels (5.10, 6.1, 6.12: they
//! carry BTF) under QEMU software emulation with a busybox initramfs holding the profiler, runs
//! `profiler check` in each, and prints one table of what each kernel offers.
//!
//! Kernel packages come from Debian's archive through `apt-get download` with a private sources
//! list, state and cache directory under `target/vm/apt` (the machine's own apt configuration is
//! not touched), and are kept in `target/vm/debs`. Adding a kernel: one row in `KERNELS`
//! (docs/DEVELOPMENT.md, "Kernel matrix").

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::shell::{self, root};

/// One kernel of the matrix: its label and the package-name pattern that picks the newest
/// build in the archive (`N` stands for the ABI or upload number).
struct Kernel {
    label: &'static str,
    /// Package name with `{N}` where the number varies, e.g. `linux-image-5.10.0-{N}-cloud-amd64`.
    package: &'static str,
    /// Whether the accurate scheduler program (`sched_switch_raw`) must load here; where not,
    /// the perf-event fallback is expected.
    raw_sched: bool,
}

const KERNELS: &[Kernel] = &[
    Kernel {
        label: "5.10",
        package: "linux-image-5.10.0-{N}-cloud-amd64",
        raw_sched: false,
    },
    Kernel {
        label: "6.1",
        package: "linux-image-6.1.0-{N}-cloud-amd64",
        raw_sched: true,
    },
    Kernel {
        label: "6.12",
        package: "linux-image-6.12.{N}+deb12-cloud-amd64",
        raw_sched: true,
    },
];

/// Suites searched for the kernels (bullseye has 5.10, bookworm 6.1 and 6.12 updates).
const SOURCES: &str = "deb http://deb.debian.org/debian bullseye main
deb http://deb.debian.org/debian-security bullseye-security main
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian-security bookworm-security main
";

/// Lines printed in full under the table (how the capability runs differs by kernel).
const DETAILED: &[&str] = &["tracepoints", "socket syscalls", "cuda programs"];

/// The `check` lines every kernel must pass (the rest is reported, not required).
const REQUIRED: &[&str] = &[
    "btf",
    "tracefs",
    "tracepoints",
    "socket syscalls",
    "uprobes",
];

/// Boots every kernel with `profiler` (a binary built for this host) and checks it; prints the
/// matrix; fails when a kernel lacks a required line or its `check` failed.
pub fn run(profiler: &Path) -> Result<()> {
    let dir = root().join("target/vm");
    let apt = PrivateApt::new(&dir.join("apt"))?;
    let initrd = build_initramfs(&dir, profiler)?;
    let mut results = Vec::new();
    for k in KERNELS {
        let start = Instant::now();
        let vmlinuz = apt.kernel(k, &dir.join("debs"))?;
        let mut out = boot(&vmlinuz, &initrd)?;
        if let Some((_, hang)) = out.split_once("=== check-hung") {
            // Once, on 6.1 in CI, `check` never returned; the kernel stacks say where. Say so
            // and boot once more: a second hang fails the matrix.
            println!(
                "vm {}: profiler check hung; its threads:\n{}\nvm {}: booting again",
                k.label,
                hang.split("=== check-begin").next().unwrap_or(hang).trim(),
                k.label
            );
            out = boot(&vmlinuz, &initrd)?;
        }
        let mut result = CheckRun::parse(k.label, &out)?;
        result.raw_sched_expected = k.raw_sched;
        println!(
            "vm {}: {} booted and checked in {:.1} s",
            k.label,
            result.release,
            start.elapsed().as_secs_f64()
        );
        results.push(result);
    }
    print!("{}", table(&results));
    // The lines where kernels differ in how a capability runs, in full.
    for r in &results {
        for name in DETAILED {
            if let Some((_, status, detail)) = r.status(name) {
                println!("  {} {name}: {status}: {detail}", r.label);
            }
        }
    }
    let failures: Vec<String> = results.iter().flat_map(CheckRun::failures).collect();
    if !failures.is_empty() {
        bail!("kernel matrix: {}", failures.join("; "));
    }
    Ok(())
}

/// `apt-get` with its own sources list, lists and cache.
struct PrivateApt {
    options: Vec<String>,
}

impl PrivateApt {
    fn new(dir: &Path) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {sub}"))?;
        }
        let sources = dir.join("sources.list");
        fs::write(&sources, SOURCES).context("writing the private sources list")?;
        let options = vec![
            format!("-oDir::Etc::SourceList={}", sources.display()),
            "-oDir::Etc::SourceParts=/dev/null".into(),
            format!("-oDir::State::Lists={}", dir.join("lists").display()),
            format!("-oDir::Cache={}", dir.join("cache").display()),
            "-oDebug::NoLocking=1".into(),
            // Our directories belong to root, not to apt's sandbox user.
            "-oAPT::Sandbox::User=root".into(),
        ];
        let apt = Self { options };
        // The lists are kept; they are refreshed once a day (kernel updates replace builds).
        let stamp = dir.join("lists/.updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 86_400));
        if !fresh {
            shell::run(apt.command("apt-get").args(["update", "-qq"]))
                .context("apt-get update with the private sources list")?;
            fs::write(&stamp, "").ok();
        }
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.options);
        cmd
    }

    /// The newest package matching `k.package`, downloaded (once) and unpacked: its vmlinuz.
    fn kernel(&self, k: &Kernel, debs: &Path) -> Result<PathBuf> {
        let (prefix, suffix) = k.package.split_once("{N}").expect("{N} in the pattern");
        let names = shell::output(self.command("apt-cache").args(["pkgnames", prefix]))?;
        let newest = names
            .lines()
            .filter_map(|n| {
                let number = n.strip_prefix(prefix)?.strip_suffix(suffix)?;
                Some((number.parse::<u32>().ok()?, n.to_string()))
            })
            .max()
            .map(|(_, n)| n)
            .with_context(|| format!("no package {} in the archive", k.package))?;
        let unpacked = debs.join(&newest);
        let boot = unpacked.join("boot");
        if !boot.is_dir() {
            fs::create_dir_all(debs)?;
            shell::run(
                self.command("apt-get")
                    .args(["download", "-qq", &newest])
                    .current_dir(debs),
            )?;
            let deb = fs::read_dir(debs)?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&format!("{newest}_")) && n.ends_with(".deb")
                    })
                })
                .with_context(|| format!("{newest}: downloaded .deb not found"))?;
            shell::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        }
        fs::read_dir(&boot)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-"))
            })
            .with_context(|| format!("no vmlinuz in {}", boot.display()))
    }
}

/// What runs inside each VM: mounts, then `profiler check` between markers the host parses.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo "=== release $(uname -r)"
/bin/profiler check > /tmp/check.txt 2>&1 &
P=$!
i=0
while [ -d /proc/$P ] && [ $i -lt 90 ]; do sleep 1; i=$((i+1)); done
if [ -d /proc/$P ]; then
  # Hung (seen once on 6.1 under software emulation): where each thread waits, for the log.
  echo "=== check-hung after $i s"
  for t in /proc/$P/task/*; do echo "--- $(cat $t/comm) wchan $(cat $t/wchan)"; cat $t/stack; done
else
  wait $P
  echo "=== check-exit $?"
fi
echo "=== check-begin"
cat /tmp/check.txt
echo "=== check-end"
poweroff -f
"#;

/// A gzip'd cpio with busybox, the profiler (without debug info) and the libraries it links.
fn build_initramfs(dir: &Path, profiler: &Path) -> Result<PathBuf> {
    let tree = dir.join("initramfs");
    let _ = fs::remove_dir_all(&tree);
    for sub in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "lib64",
        "lib/x86_64-linux-gnu",
    ] {
        fs::create_dir_all(tree.join(sub))?;
    }
    fs::copy("/bin/busybox", tree.join("bin/busybox"))
        .context("copying /bin/busybox (cargo xtask setup installs busybox-static)")?;
    shell::run(
        // Debug info only: `profiler check`'s uprobe self-test finds its target by symbol.
        Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(tree.join("bin/profiler"))
            .arg(profiler),
    )?;
    let ldd = shell::output(Command::new("ldd").arg(profiler))?;
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = tree.join(lib.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().expect("a library path has a parent"))?;
        fs::copy(lib, &dest).with_context(|| format!("copying {lib}"))?;
    }
    let init = tree.join("init");
    fs::write(&init, INIT)?;
    shell::run(Command::new("chmod").arg("+x").arg(&init))?;
    let image = dir.join("initramfs.cpio.gz");
    let script = format!(
        "cd {} && find . | cpio -o -H newc --quiet | gzip -1 > {}",
        tree.display(),
        image.display()
    );
    shell::run(Command::new("sh").args(["-c", &script]))?;
    Ok(image)
}

/// Boots `vmlinuz` with `initrd` under software emulation (no KVM here) and returns what the
/// serial console printed.
fn boot(vmlinuz: &Path, initrd: &Path) -> Result<String> {
    let out = Command::new("timeout")
        .arg("180")
        .arg("qemu-system-x86_64")
        .args(["-m", "1024", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .output()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs qemu-system-x86)")?;
    Ok(String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

/// One kernel's `profiler check`, as parsed from the console.
struct CheckRun {
    label: &'static str,
    release: String,
    exit: Option<i32>,
    /// (capability, status word, detail).
    lines: Vec<(String, String, String)>,
    /// The kernel must run the raw-tracepoint scheduler program.
    raw_sched_expected: bool,
}

impl CheckRun {
    fn parse(label: &'static str, console: &str) -> Result<Self> {
        let release = console
            .lines()
            .find_map(|l| {
                l.split_once("=== release ")
                    .map(|(_, r)| r.trim().to_string())
            })
            .with_context(|| {
                format!(
                    "kernel {label} did not reach the init script; console tail:\n{}",
                    tail(console, 20)
                )
            })?;
        let exit = console
            .lines()
            .find_map(|l| l.split_once("=== check-exit ")?.1.trim().parse().ok());
        let body = console
            .split_once("=== check-begin\n")
            .and_then(|(_, rest)| rest.split_once("=== check-end"))
            .map_or("", |(b, _)| b);
        let lines = body.lines().filter_map(parse_check_line).collect();
        Ok(Self {
            label,
            release,
            exit,
            lines,
            raw_sched_expected: false,
        })
    }

    fn status(&self, name: &str) -> Option<&(String, String, String)> {
        self.lines.iter().find(|(n, _, _)| n == name)
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.exit != Some(0) {
            out.push(format!(
                "{}: profiler check exited {:?}",
                self.label, self.exit
            ));
        }
        if self.raw_sched_expected
            && self
                .status("tracepoints")
                .is_some_and(|(_, _, d)| !d.contains("(raw tracepoint)"))
        {
            out.push(format!(
                "{}: the raw-tracepoint scheduler program did not load",
                self.label
            ));
        }
        for name in REQUIRED {
            match self.status(name) {
                Some((_, status, _)) if status == "ok" => {}
                Some((_, status, detail)) => {
                    out.push(format!("{}: {name} {status}: {detail}", self.label))
                }
                None => out.push(format!(
                    "{}: no `{name}` line from profiler check",
                    self.label
                )),
            }
        }
        out
    }
}

/// `ok       tracepoints            detail…` → (name, status, detail). Names are the column
/// `profiler check` pads to 22 characters.
fn parse_check_line(line: &str) -> Option<(String, String, String)> {
    let (status, rest) = line.split_once(char::is_whitespace)?;
    if !matches!(status, "ok" | "missing" | "failed" | "skipped") {
        return None;
    }
    let rest = rest.trim_start();
    let name: String = rest.chars().take(22).collect();
    let detail: String = rest.chars().skip(22).collect();
    Some((
        name.trim().to_string(),
        status.to_string(),
        detail.trim().to_string(),
    ))
}

/// One row per check line, one column per kernel: the status word, and the first words of the
/// detail where it is not `ok`.
fn table(results: &[CheckRun]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        for (n, _, _) in &r.lines {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let mut out = format!("\n{:<22}", "kernel matrix");
    for r in results {
        out.push_str(&format!(" | {:<34}", r.release));
    }
    out.push('\n');
    for name in names {
        out.push_str(&format!("{name:<22}"));
        for r in results {
            let cell = r.status(name).map_or("-".to_string(), |(_, s, d)| {
                if s == "ok" {
                    "ok".to_string()
                } else {
                    let short: String = d.chars().take(34 - s.len() - 1).collect();
                    format!("{s} {short}")
                }
            });
            out.push_str(&format!(" | {cell:<34}"));
        }
        out.push('\n');
    }
    out
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_is_parsed_into_check_lines() {
        let console = "SeaBIOS\n=== release 5.10.0-46-cloud-amd64\n=== check-exit 0\n\
                       === check-begin\nok       kernel                 5.10.0-46-cloud-amd64\n\
                       missing  cuda programs          the kernel rejected cuda_enter: invalid \
                       func unknown#174\nok       tracepoints            sched:sched_switch \
                       attached\n=== check-end\n";
        let r = CheckRun::parse("5.10", console).unwrap();
        assert_eq!(r.release, "5.10.0-46-cloud-amd64");
        assert_eq!(r.exit, Some(0));
        assert_eq!(
            r.status("cuda programs").unwrap().2,
            "the kernel rejected cuda_enter: invalid func unknown#174"
        );
        let failures = r.failures();
        assert!(
            failures.iter().any(|f| f.contains("no `uprobes` line")),
            "{failures:?}"
        );
        assert!(
            !failures.iter().any(|f| f.contains("tracepoints")),
            "{failures:?}"
        );
        let table = table(&[r]);
        assert!(
            table.contains("cuda programs          | missing the kernel rejected"),
            "{table}"
        );
    }

    #[test]
    fn a_kernel_that_never_reached_init_is_an_error_with_the_console_tail() {
        let err = CheckRun::parse("6.1", "Kernel panic - not syncing: VFS\n")
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("Kernel panic"), "{err:#}");
    }
}
