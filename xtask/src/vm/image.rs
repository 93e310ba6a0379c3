//! The VM's initramfs (busybox, the profiler, the workloads and the libraries they link; the
//! init script `init.sh`) and booting it under QEMU.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::shell::{self, root};

/// PID 1 of each VM.
const INIT: &str = include_str!("init.sh");

/// How long one VM may run (qemu is killed after it; what the console printed until then is
/// still parsed): boot and `check` take 8–10 s, the workloads 15–30 s under software
/// emulation. init.sh bounds each of its waits (`check` 90 s, the profiler's attach 90 s, …).
const VM_TIMEOUT_S: u32 = 300;

/// The binaries of this workspace that go into the image.
pub struct Binaries<'a> {
    pub profiler: &'a Path,
    /// `http-server` (tests/src/bin/http_server/main.rs).
    pub http_server: &'a Path,
}

/// A gzip'd cpio with busybox, the profiler and the hyper test server (without debug info),
/// the CUDA stand-in under /cuda, and every library they link.
pub fn build_initramfs(dir: &Path, bins: &Binaries) -> Result<PathBuf> {
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
        "cuda/lib",
    ] {
        fs::create_dir_all(tree.join(sub))?;
    }
    fs::copy("/bin/busybox", tree.join("bin/busybox"))
        .context("copying /bin/busybox (cargo xtask setup installs busybox-static)")?;
    // Debug info only: `profiler check`'s uprobe self-test finds its target by symbol.
    for (bin, name) in [
        (bins.profiler, "profiler"),
        (bins.http_server, "http-server"),
    ] {
        shell::run(
            Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(tree.join("bin").join(name))
                .arg(bin),
        )?;
        copy_libraries(&tree, bin)?;
    }
    for built in build_cuda_stand_in(&dir.join("cuda"))? {
        let rel = built.strip_prefix(dir)?;
        fs::copy(&built, tree.join(rel)).with_context(|| format!("copying {rel:?}"))?;
        copy_libraries(&tree, &built)?;
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

/// Copies the libraries `ldd` lists for `binary` to the same paths under `tree`.
fn copy_libraries(tree: &Path, binary: &Path) -> Result<()> {
    let ldd = shell::output(Command::new("ldd").arg(binary))?;
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = tree.join(lib.trim_start_matches('/'));
        if dest.exists() {
            continue;
        }
        fs::create_dir_all(dest.parent().expect("a library path has a parent"))?;
        fs::copy(lib, &dest).with_context(|| format!("copying {lib}"))?;
    }
    Ok(())
}

/// Builds the CUDA stand-in (tests/cuda: the stub `libcuda.so.1` and `libcudart.so.12` and
/// `cuda-workload`, with the flags tests/src/cuda/build.rs uses) into `out` (`out/lib` for the
/// libraries); returns the files built.
fn build_cuda_stand_in(out: &Path) -> Result<Vec<PathBuf>> {
    let src = root().join("tests/cuda");
    fs::create_dir_all(out.join("lib"))?;
    let shared = |soname: &str| -> Vec<String> {
        vec![
            "-shared".into(),
            "-fPIC".into(),
            format!("-Wl,-soname,{soname}"),
        ]
    };
    let jobs = [
        (
            "stub_cuda.c",
            out.join("lib/libcuda.so.1"),
            shared("libcuda.so.1"),
        ),
        (
            "stub_cudart.c",
            out.join("lib/libcudart.so.12"),
            shared("libcudart.so.12"),
        ),
        (
            "cuda_workload.c",
            out.join("cuda-workload"),
            vec!["-rdynamic".into()],
        ),
    ];
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut built = Vec::new();
    for (source, target, flags) in jobs {
        let status = Command::new(&cc)
            .args(["-O2", "-g", "-Wall", "-Wextra", "-fno-ipa-icf"])
            .args(&flags)
            .arg("-o")
            .arg(&target)
            .arg(src.join(source))
            .arg("-ldl")
            .status()
            .with_context(|| format!("starting {cc} (apt-get install gcc)"))?;
        if !status.success() {
            bail!("{cc} {source}: {status}");
        }
        built.push(target);
    }
    Ok(built)
}

/// What the kernel prints when it cannot go on (an oops, a panic, an RCU stall): the boot is
/// stopped a moment after, rather than left to the time limit.
pub const FATAL: &[&str] = &[
    "Oops:",
    "Kernel panic",
    "self-detected stall",
    "detected stalls",
];

/// Boots `vmlinuz` with `initrd` under software emulation (no KVM here) and returns what the
/// serial console printed. One host thread runs both vCPUs (`thread=single`): the kernel
/// patches its own code with breakpoints when tracepoints are enabled, and with one host
/// thread per vCPU that raced under emulation (a stray `int3` oops on 6.12, an RCU stall on
/// 5.10, once each). A fatal message stops the boot 2 s later.
pub fn boot(vmlinuz: &Path, initrd: &Path) -> Result<String> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg,thread=single"])
        .args(["-m", "1024", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting qemu-system-x86_64 (cargo xtask setup installs qemu-system-x86)")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let start = std::time::Instant::now();
    let mut deadline = start + std::time::Duration::from_secs(VM_TIMEOUT_S.into());
    let mut console = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let text = String::from_utf8_lossy(&line);
                if FATAL.iter().any(|m| text.contains(m)) {
                    deadline =
                        deadline.min(std::time::Instant::now() + std::time::Duration::from_secs(2));
                }
                console.extend_from_slice(&line);
            }
            // qemu exited (poweroff) or the time is up.
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(String::from_utf8_lossy(&console).replace('\r', ""))
}
