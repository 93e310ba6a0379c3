//! Kernel packages from Debian's archive through `apt-get` with a private sources list, state
//! and cache directory under `target/vm/apt` (the machine's own apt configuration is not
//! touched), kept unpacked in `target/vm/debs`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use super::Kernel;
use crate::shell;

/// Suites searched for the kernels (bullseye has 5.10, bookworm 6.1 and 6.12 updates).
const SOURCES: &str = "deb http://deb.debian.org/debian bullseye main
deb http://deb.debian.org/debian-security bullseye-security main
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian-security bookworm-security main
";

/// `apt-get` with its own sources list, lists and cache.
pub struct PrivateApt {
    options: Vec<String>,
}

impl PrivateApt {
    pub fn new(dir: &Path) -> Result<Self> {
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
    pub fn kernel(&self, k: &Kernel, debs: &Path) -> Result<PathBuf> {
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
