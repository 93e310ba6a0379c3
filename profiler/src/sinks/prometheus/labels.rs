//! Who a process is, as metric labels: pid and comm, and where it runs (container id,
//! Kubernetes pod uid from the cgroup path; pod name and namespace from inside the container).
//! The parsing is pure; `ProcIdentity::read` does the /proc reads.

use std::fs;

/// The process label values (`catalogue::PROC`: pid, comm, container_id, pod_uid, pod,
/// namespace). Empty means absent
/// (Prometheus treats an empty label as no label).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcIdentity {
    pub pid: String,
    pub comm: String,
    pub container_id: String,
    pub pod_uid: String,
    pub pod: String,
    pub namespace: String,
}

/// Series of processes beyond the cardinality cap are summed under this identity.
pub const OTHER: &str = "other";

impl ProcIdentity {
    pub fn other() -> Self {
        Self {
            pid: OTHER.into(),
            comm: OTHER.into(),
            ..Self::default()
        }
    }

    /// Reads comm, cgroup and (inside a Kubernetes pod) pod name and namespace of `pid`.
    /// Whatever cannot be read stays empty.
    pub fn read(pid: u32) -> Self {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default();
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let place = parse_cgroup(&cgroup);
        let (mut pod, mut namespace) = (String::new(), String::new());
        if !place.pod_uid.is_empty() {
            // Kubernetes sets HOSTNAME to the pod name (unless the pod overrides its hostname)
            // and mounts the service account's namespace, unless automount is off.
            pod = fs::read(format!("/proc/{pid}/environ"))
                .ok()
                .and_then(|env| env_value(&env, "HOSTNAME"))
                .unwrap_or_default();
            // /var/run is usually a symlink to /run, and an absolute symlink under
            // /proc/<pid>/root resolves against *our* root: try both spellings.
            namespace = ["var/run", "run"]
                .iter()
                .find_map(|dir| {
                    fs::read_to_string(format!(
                        "/proc/{pid}/root/{dir}/secrets/kubernetes.io/serviceaccount/namespace"
                    ))
                    .ok()
                })
                .map(|n| n.trim().to_string())
                .unwrap_or_default();
        }
        Self {
            pid: pid.to_string(),
            comm,
            container_id: place.container_id,
            pod_uid: place.pod_uid,
            pod,
            namespace,
        }
    }

    /// (name, value) pairs in catalogue order.
    pub fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("pid", &self.pid),
            ("comm", &self.comm),
            ("container_id", &self.container_id),
            ("pod_uid", &self.pod_uid),
            ("pod", &self.pod),
            ("namespace", &self.namespace),
        ]
    }
}

/// Container and pod a cgroup path points at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupPlace {
    pub container_id: String,
    pub pod_uid: String,
}

/// Reads a `/proc/<pid>/cgroup` file. Recognises the layouts of the systemd and cgroupfs
/// drivers of containerd, CRI-O, Docker and Podman, e.g.
/// `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c.slice/cri-containerd-<64 hex>.scope`
/// or `0::/kubepods/besteffort/pod1a2b-3c/<64 hex>` or `0::/system.slice/docker-<64 hex>.scope`.
pub fn parse_cgroup(content: &str) -> CgroupPlace {
    let mut place = CgroupPlace::default();
    // cgroup v2's unified line ("0::") first; v1 files list one line per controller.
    let mut lines: Vec<&str> = content.lines().collect();
    lines.sort_by_key(|l| !l.starts_with("0::"));
    for line in lines {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for segment in path.split('/') {
            let name = segment.strip_suffix(".scope").unwrap_or(segment);
            let name = name.strip_suffix(".slice").unwrap_or(name);
            if let Some(uid) = pod_uid_of(name) {
                place.pod_uid = uid;
            }
            let id = name.rsplit(['-', ':']).next().unwrap_or(name);
            if is_container_id(id) {
                place.container_id = id.to_string();
            }
        }
        if !place.container_id.is_empty() || !place.pod_uid.is_empty() {
            break;
        }
    }
    place
}

/// `kubepods-burstable-pod1a2b…_…` or `pod1a2b…-…` → the pod uid (a UUID) with dashes.
fn pod_uid_of(segment: &str) -> Option<String> {
    let at = segment.rfind("pod")?;
    if at > 0 && !segment[..at].ends_with('-') {
        return None; // e.g. `libpod-…`
    }
    let uid = segment[at + 3..].replace('_', "-");
    let is_uuid = uid.len() == 36
        && uid.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    is_uuid.then_some(uid)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The value of `key` in a NUL-separated environment block.
fn env_value(env: &[u8], key: &str) -> Option<String> {
    env.split(|&b| b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c3b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";

    #[test]
    fn systemd_driver_containerd() {
        let c = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/cri-containerd-{ID}.scope\n"
        );
        let p = parse_cgroup(&c);
        assert_eq!(p.container_id, ID);
        assert_eq!(p.pod_uid, "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d");
    }

    #[test]
    fn cgroupfs_driver_and_v1_lines() {
        let c = format!(
            "12:memory:/kubepods/besteffort/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/{ID}\n\
             11:cpu,cpuacct:/kubepods/besteffort/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/{ID}\n"
        );
        let p = parse_cgroup(&c);
        assert_eq!(p.container_id, ID);
        assert_eq!(p.pod_uid, "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d");
    }

    #[test]
    fn docker_and_podman_without_pod() {
        for path in [
            format!("0::/system.slice/docker-{ID}.scope"),
            format!("0::/docker/{ID}"),
            format!("0::/machine.slice/libpod-{ID}.scope/container"),
            format!("0::/system.slice/crio-{ID}.scope"),
        ] {
            let p = parse_cgroup(&path);
            assert_eq!(p.container_id, ID, "{path}");
            assert_eq!(p.pod_uid, "", "{path}");
        }
    }

    #[test]
    fn host_processes_have_no_place() {
        for c in [
            "0::/user.slice/user-0.slice/session-1.scope\n",
            "0::/\n",
            "",
            "garbage",
            "0::/kubepods.slice/podshort.slice\n",
        ] {
            assert_eq!(parse_cgroup(c), CgroupPlace::default(), "{c:?}");
        }
    }

    #[test]
    fn environment_lookup() {
        let env = b"PATH=/bin\0HOSTNAME=vllm-7d9f-abcde\0HOSTNAMEX=no\0";
        assert_eq!(
            env_value(env, "HOSTNAME").as_deref(),
            Some("vllm-7d9f-abcde")
        );
        assert_eq!(env_value(env, "HOME"), None);
        assert_eq!(env_value(b"", "HOSTNAME"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = ProcIdentity::read(std::process::id());
        assert_eq!(me.pid, std::process::id().to_string());
        assert!(!me.comm.is_empty());
    }
}
