//! The shipped Kubernetes manifests (deploy/kubernetes): they parse, the kustomization lists
//! them, and the DaemonSet keeps its settings (host PID, no privileged mode, the named
//! capabilities, BTF and tracefs mounts, resource limits); the Service and the monitors select
//! its pods. No root, no cluster.

use std::collections::{BTreeMap, BTreeSet};

use profiler_tests::deploy::{read, repo};
use serde_norway::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests

/// Every document of every manifest in deploy/kubernetes, by file.
fn manifests() -> BTreeMap<String, Vec<Yaml>> {
    let dir = repo().join("deploy/kubernetes");
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let docs: Vec<Yaml> = serde_norway::Deserializer::from_str(&text)
            .map(|d| {
                serde::Deserialize::deserialize(d)
                    .unwrap_or_else(|e| panic!("{name} does not parse as YAML: {e}"))
            })
            .filter(|d: &Yaml| !d.is_null())
            .collect();
        assert!(!docs.is_empty(), "{name} holds no document");
        out.insert(name, docs);
    }
    out
}

fn find_kind<'a>(all: &'a BTreeMap<String, Vec<Yaml>>, kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = all
        .values()
        .flatten()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes");
    found[0]
}

fn strings(v: &Yaml) -> Vec<&str> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect()
}

#[test]
fn kubernetes_manifests_parse_and_kustomization_lists_them() {
    let all = manifests();
    let kustomization = &all
        .get("kustomization.yaml")
        .expect("deploy/kubernetes/kustomization.yaml")[0];
    let resources = strings(&kustomization["resources"]);
    let text = read("deploy/kubernetes/kustomization.yaml");
    for (file, docs) in &all {
        if file == "kustomization.yaml" {
            continue;
        }
        // Listed, or offered as a commented-out alternative (servicemonitor.yaml).
        assert!(
            resources.contains(&file.as_str()) || text.contains(&format!("# - {file}")),
            "kustomization.yaml does not mention {file}"
        );
        for d in docs {
            for key in ["apiVersion", "kind"] {
                assert!(d[key].as_str().is_some(), "{file}: no {key}");
            }
            assert!(d["metadata"]["name"].as_str().is_some(), "{file}: no name");
            if d["kind"] != "Namespace" {
                assert_eq!(
                    d["metadata"]["namespace"].as_str(),
                    Some("profiler"),
                    "{file}: {} not in namespace profiler",
                    d["kind"].as_str().unwrap_or("?")
                );
            }
        }
    }
    for r in &resources {
        assert!(all.contains_key(*r), "kustomization lists missing {r}");
    }
    assert_eq!(
        find_kind(&all, "Namespace")["metadata"]["name"].as_str(),
        Some("profiler")
    );
    find_kind(&all, "ServiceAccount");
}

#[test]
fn daemonset_is_confined_and_complete() {
    let all = manifests();
    let ds = find_kind(&all, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        &ds["spec"]["selector"]["matchLabels"], pod_labels,
        "DaemonSet selector must match its pod labels"
    );
    assert_eq!(pod["hostPID"].as_bool(), Some(true), "hostPID: true");
    assert_eq!(pod["serviceAccountName"].as_str(), Some("profiler"));
    assert!(
        pod["tolerations"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|t| t["key"] == "nvidia.com/gpu" && t["effect"] == "NoSchedule"),
        "no toleration for nvidia.com/gpu NoSchedule"
    );

    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    assert_eq!(
        strings(&c["args"]),
        ["daemon", "--listen", "0.0.0.0:9464"],
        "container args"
    );
    assert!(
        c["image"].as_str().is_some_and(|i| !i.is_empty()),
        "no image"
    );

    let sc = &c["securityContext"];
    for where_ in [&sc["privileged"], &pod["securityContext"]["privileged"]] {
        assert_ne!(
            where_.as_bool(),
            Some(true),
            "the profiler must not run privileged"
        );
    }
    let added: BTreeSet<&str> = strings(&sc["capabilities"]["add"])
        .into_iter()
        .map(|c| c.trim_start_matches("CAP_"))
        .collect();
    let wanted: BTreeSet<&str> = [
        "BPF",
        "PERFMON",
        "SYS_ADMIN",
        "SYS_PTRACE",
        "SYS_RESOURCE",
        "DAC_READ_SEARCH",
    ]
    .into();
    assert_eq!(added, wanted, "added capabilities");
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        ["ALL"],
        "drop ALL first"
    );

    // Volume name → host path, and mount path → (volume, read-only).
    let host_paths: BTreeMap<&str, &str> = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(|v| Some((v["name"].as_str()?, v["hostPath"]["path"].as_str()?)))
        .collect();
    let mounts: BTreeMap<&str, (&str, bool)> = c["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .filter_map(|m| {
            Some((
                m["mountPath"].as_str()?,
                (m["name"].as_str()?, m["readOnly"].as_bool() == Some(true)),
            ))
        })
        .collect();
    for (path, read_only) in [
        ("/sys/kernel/btf", true),
        ("/sys/kernel/tracing", false),
        ("/sys/kernel/debug", false),
        ("/sys/fs/cgroup", true),
    ] {
        let (volume, ro) = mounts
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not mounted"));
        assert_eq!(
            host_paths.get(volume),
            Some(&path),
            "{path} must be the node's {path} (hostPath)"
        );
        if read_only {
            assert!(ro, "{path} must be mounted read-only");
        }
    }

    let env = c["env"].as_sequence().expect("env");
    assert!(
        env.iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "NODE_NAME must come from spec.nodeName"
    );
    for (name, value) in [
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "utility"),
    ] {
        assert!(
            env.iter().any(|e| e["name"] == name && e["value"] == value),
            "env {name}={value} (NVML for GPU metrics)"
        );
    }

    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                !c["resources"][kind][resource].is_null(),
                "resources.{kind}.{resource} is not set"
            );
        }
    }

    let ports = c["ports"].as_sequence().expect("ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"].as_u64() == Some(9464)),
        "container port 9464 named metrics"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some("/healthz"), "{probe} path");
        assert!(
            get["port"] == "metrics" || get["port"].as_u64() == Some(9464),
            "{probe} port"
        );
    }
}

#[test]
fn service_and_monitors_select_the_daemonset_pods() {
    let all = manifests();
    let pod_labels = find_kind(&all, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels")
        .clone();
    let selects = |selector: &Yaml, what: &str| {
        let selector = selector
            .as_mapping()
            .unwrap_or_else(|| panic!("{what}: no selector"));
        assert!(!selector.is_empty(), "{what}: empty selector");
        for (k, v) in selector {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{what} selects {k:?}={v:?}, which the DaemonSet's pods lack"
            );
        }
    };

    let svc = find_kind(&all, "Service");
    assert_eq!(svc["spec"]["clusterIP"].as_str(), Some("None"), "headless");
    selects(&svc["spec"]["selector"], "Service");
    let ports = svc["spec"]["ports"].as_sequence().expect("service ports");
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["port"].as_u64() == Some(9464)),
        "Service port 9464 named metrics"
    );

    let pm = find_kind(&all, "PodMonitor");
    assert_eq!(pm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    selects(&pm["spec"]["selector"]["matchLabels"], "PodMonitor");
    let sm = find_kind(&all, "ServiceMonitor");
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    let svc_labels = svc["metadata"]["labels"].as_mapping().expect("svc labels");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("ServiceMonitor selector")
    {
        assert_eq!(svc_labels.get(k), Some(v), "ServiceMonitor selects {k:?}");
    }
    for (what, endpoints) in [
        ("PodMonitor", &pm["spec"]["podMetricsEndpoints"]),
        ("ServiceMonitor", &sm["spec"]["endpoints"]),
    ] {
        let endpoints = endpoints.as_sequence().expect("endpoints");
        assert!(
            endpoints
                .iter()
                .all(|e| e["port"] == "metrics" && e["path"] == "/metrics"),
            "{what} must scrape port metrics, /metrics"
        );
        // The profiled pods' pod/namespace labels must survive the scrape.
        assert!(
            endpoints
                .iter()
                .all(|e| e["honorLabels"].as_bool() == Some(true)),
            "{what} must set honorLabels: true"
        );
    }
}
