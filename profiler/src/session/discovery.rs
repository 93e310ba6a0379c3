//! `profiler daemon`'s discovery: which processes on the node to profile. A process qualifies
//! when it maps a CUDA library (libcuda / libcudart), when its comm matches a `--match` regex,
//! or when it listens on a `--port`. Children of a profiled process are followed by the kernel
//! side already, so only processes nobody watches are examined.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use regex::Regex;

use crate::cuda::discover::library_kind;

/// What makes a process an inference process.
#[derive(Debug, Clone, Default)]
pub struct DiscoverySpec {
    /// Processes mapping libcuda / libcudart.
    pub cuda: bool,
    pub comm: Vec<Regex>,
    pub ports: Vec<u16>,
}

/// A `--match` value: `comm=REGEX` (the regex must match somewhere in the 15-byte comm; anchor
/// it with ^…$ for an exact name).
pub fn parse_match(s: &str) -> Result<Regex, String> {
    let pattern = s
        .strip_prefix("comm=")
        .ok_or_else(|| format!("{s:?}: expected comm=REGEX (e.g. comm=^python|^vllm)"))?;
    Regex::new(pattern).map_err(|e| format!("comm regex {pattern:?}: {e}"))
}

/// A non-matching process is looked at again after this long (a Python server maps libcuda
/// only once it initialises CUDA), or at once when its comm changes (exec).
const RECHECK: Duration = Duration::from_secs(5);

struct Rejected {
    starttime: u64,
    comm: String,
    checked: Instant,
}

pub struct Discovery {
    spec: DiscoverySpec,
    me: u32,
    rejected: HashMap<u32, Rejected>,
    interval: Duration,
    last_scan: Option<Instant>,
}

impl Discovery {
    /// `interval`: how often `due` says a scan is needed.
    pub fn new(spec: DiscoverySpec, interval: Duration) -> Self {
        Self {
            spec,
            me: std::process::id(),
            rejected: HashMap::new(),
            interval,
            last_scan: None,
        }
    }

    /// Whether the next scan is due.
    pub fn due(&self) -> bool {
        self.last_scan.is_none_or(|t| t.elapsed() >= self.interval)
    }

    /// What it looks for, in words (for the start-up line).
    pub fn describe(&self) -> String {
        let mut what = Vec::new();
        if self.spec.cuda {
            what.push("processes mapping libcuda/libcudart".to_string());
        }
        what.extend(self.spec.comm.iter().map(|re| format!("comm ~ /{re}/")));
        what.extend(
            self.spec
                .ports
                .iter()
                .map(|p| format!("listeners on port {p}")),
        );
        what.join(", ")
    }

    /// Processes that qualify now and are not in `watched`.
    pub fn scan(&mut self, watched: &HashSet<u32>) -> Vec<u32> {
        self.last_scan = Some(Instant::now());
        let listening = listening_inodes(&self.spec.ports);
        let now = Instant::now();
        let mut found = Vec::new();
        let mut alive = HashSet::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            alive.insert(pid);
            if pid == self.me || watched.contains(&pid) {
                continue;
            }
            let Some((comm, starttime, kernel_thread)) = stat_of(pid) else {
                continue;
            };
            if kernel_thread {
                continue;
            }
            if let Some(r) = self.rejected.get(&pid)
                && r.starttime == starttime
                && r.comm == comm
                && now.duration_since(r.checked) < RECHECK
            {
                continue;
            }
            if self.qualifies(pid, &comm, &listening) {
                self.rejected.remove(&pid);
                found.push(pid);
            } else {
                self.rejected.insert(
                    pid,
                    Rejected {
                        starttime,
                        comm,
                        checked: now,
                    },
                );
            }
        }
        self.rejected.retain(|pid, _| alive.contains(pid));
        found
    }

    fn qualifies(&self, pid: u32, comm: &str, listening: &HashSet<u64>) -> bool {
        if self.spec.comm.iter().any(|re| re.is_match(comm)) {
            return true;
        }
        if !listening.is_empty() && owns_socket(pid, listening) {
            return true;
        }
        self.spec.cuda && maps_cuda(pid)
    }
}

/// comm, start time and whether it is a kernel thread (PF_KTHREAD), from /proc/<pid>/stat.
fn stat_of(pid: u32) -> Option<(String, u64, bool)> {
    let stat = procfs::process::Process::new(pid as i32)
        .ok()?
        .stat()
        .ok()?;
    const PF_KTHREAD: u32 = 0x0020_0000;
    Some((stat.comm, stat.starttime, stat.flags & PF_KTHREAD != 0))
}

fn maps_cuda(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|maps| maps_name_cuda(&maps))
}

/// Whether a maps text maps a CUDA library (by file name).
pub fn maps_name_cuda(maps: &str) -> bool {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|path| library_kind(path).is_some())
}

/// Socket inodes listening (TCP, v4 and v6) on one of `ports`.
fn listening_inodes(ports: &[u16]) -> HashSet<u64> {
    if ports.is_empty() {
        return HashSet::new();
    }
    let v4 = procfs::net::tcp().unwrap_or_default();
    let v6 = procfs::net::tcp6().unwrap_or_default();
    v4.iter()
        .chain(v6.iter())
        .filter(|e| e.state == procfs::net::TcpState::Listen)
        .filter(|e| ports.contains(&e.local_address.port()))
        .map(|e| e.inode)
        .collect()
}

fn owns_socket(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_values() {
        assert!(parse_match("comm=^vllm").unwrap().is_match("vllm_worker"));
        assert!(parse_match("vllm").unwrap_err().contains("comm=REGEX"));
        assert!(parse_match("comm=(").unwrap_err().contains("regex"));
    }

    #[test]
    fn cuda_maps_by_file_name() {
        let maps = "7f00-7f10 r-xp 00000000 08:01 42 /usr/lib/x86_64-linux-gnu/libcuda.so.550.54\n\
                    7f10-7f20 r-xp 00000000 08:01 43 /usr/lib/libc.so.6\n";
        assert!(maps_name_cuda(maps));
        assert!(!maps_name_cuda(
            "7f10-7f20 r-xp 00000000 08:01 43 /usr/lib/libc.so.6\n"
        ));
        assert!(!maps_name_cuda("garbage\n\n"));
    }

    #[test]
    fn finds_a_process_by_comm_and_by_port_but_not_ourselves() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut by_comm = Discovery::new(
            DiscoverySpec {
                comm: vec![parse_match("comm=^sleep$").unwrap()],
                ..DiscoverySpec::default()
            },
            Duration::from_millis(500),
        );
        let found = by_comm.scan(&HashSet::new());
        assert!(found.contains(&pid), "{found:?}");
        assert!(!by_comm.scan(&HashSet::from([pid])).contains(&pid));
        let mut by_port = Discovery::new(
            DiscoverySpec {
                ports: vec![port],
                ..DiscoverySpec::default()
            },
            Duration::from_millis(500),
        );
        // The listener is ours, and we never profile ourselves. A child another test forked and
        // holds before its exec (`run`'s gated command) shares our descriptors, the listener's
        // among them: it may be found, but nothing else.
        let me = std::process::id();
        for pid in by_port.scan(&HashSet::new()) {
            assert_ne!(pid, me);
            let ppid = crate::host::procfs::sample(pid).map(|s| s.ppid);
            assert_eq!(ppid, Some(me), "pid {pid} is not a child of the test");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
