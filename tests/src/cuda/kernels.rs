//! Assertions on `cuda.launches`: per-kernel launches, names and configurations.

use serde_json::Value;

use super::{
    report::{array, count, num, parse_hex},
    run::CudaRun,
    scenario::{KERNELS, Kernel, LONG_NAME_LEN, LONG_NAME_PREFIX, long_kernel_name},
};

/// The report name a kernel should have: its name, or `unresolved@0x…` for a driver kernel
/// whose lookup the profiler did not see.
#[derive(Debug, Clone, Copy)]
pub enum Naming {
    /// Every lookup seen (`run`).
    Named,
    /// Lookups made before attach: driver kernels are known by handle only; runtime kernels
    /// by their host stub's symbol.
    DriverUnresolved,
}

/// Whether report kernel entry `e` is kernel `k` under `naming`.
fn is_kernel(e: &Value, k: &Kernel, naming: Naming, run: &CudaRun) -> bool {
    let name = e["name"].as_str().unwrap_or("");
    match naming {
        Naming::DriverUnresolved if !k.runtime => name
            .strip_prefix("unresolved@")
            .and_then(parse_hex)
            .is_some_and(|h| h == run.handle("functions", k.key)),
        _ if k.truncated => name.starts_with(LONG_NAME_PREFIX),
        _ => name == k.name,
    }
}

/// `cuda.launches.kernels` (top `top` by launches) and `other` (the rest).
pub fn assert_kernels(run: &CudaRun, naming: Naming, top: usize) {
    let cuda = run.cuda();
    let kernels = array(&cuda["launches"]["kernels"], "launches.kernels");
    for e in kernels {
        println!(
            "kernel {:.80} (mangled {:.40}): launches {} grid {} block {} shared {} truncated {}",
            e["name"].as_str().unwrap_or("?"),
            e["mangled"].as_str().unwrap_or("-"),
            e["launches"],
            e["last_grid"],
            e["last_block"],
            e["shared_mem"],
            e["truncated_name"]
        );
    }
    let mut by_launches: Vec<&Kernel> = KERNELS.iter().collect();
    by_launches.sort_by_key(|k| std::cmp::Reverse(k.launches));
    let (listed, rest) = by_launches.split_at(top.min(by_launches.len()));
    assert_eq!(
        kernels.len(),
        listed.len(),
        "kernels listed: profiler {}, expected {} ({:?})",
        kernels.len(),
        listed.len(),
        listed.iter().map(|k| k.key).collect::<Vec<_>>()
    );
    for k in listed {
        let e = kernels
            .iter()
            .find(|e| is_kernel(e, k, naming, run))
            .unwrap_or_else(|| panic!("kernel {} ({:?}) not in the report", k.key, naming));
        let what = |f: &str| format!("kernel {}.{f}", k.key);
        let launches = count(&e["launches"], &what("launches"));
        assert_eq!(
            launches,
            k.launches,
            "{}: profiler {launches}, expected {}",
            what("launches"),
            k.launches
        );
        assert!(num(&e["per_s"], &what("per_s")) > 0.0, "{}", what("per_s"));
        let dims = |f: &str| -> Vec<u64> {
            array(&e[f], &what(f))
                .iter()
                .map(|d| count(d, &what(f)))
                .collect()
        };
        assert_eq!(dims("last_grid"), k.grid, "{}", what("last_grid"));
        assert_eq!(dims("last_block"), k.block, "{}", what("last_block"));
        assert_eq!(
            count(&e["shared_mem"], &what("shared_mem")),
            k.shared_mem,
            "{}",
            what("shared_mem")
        );
        let unresolved = matches!(naming, Naming::DriverUnresolved) && !k.runtime;
        if unresolved {
            continue;
        }
        if k.truncated {
            let name = e["name"].as_str().expect("name");
            assert!(
                name.len() < LONG_NAME_LEN && long_kernel_name().starts_with(name),
                "long kernel name should be a cut prefix of the real one: {name:?}"
            );
            assert_eq!(e["truncated_name"], true, "{}", what("truncated_name"));
        } else {
            assert_eq!(e["truncated_name"], false, "{}", what("truncated_name"));
        }
        if k.lookup.starts_with("_Z") {
            assert_eq!(e["mangled"], k.lookup, "{}", what("mangled"));
        }
    }
    let other = &cuda["launches"]["other"];
    let want_launches: u64 = rest.iter().map(|k| k.launches).sum();
    assert_eq!(
        count(&other["kernels"], "launches.other.kernels"),
        rest.len() as u64,
        "launches.other.kernels: {other}"
    );
    assert_eq!(
        count(&other["launches"], "launches.other.launches"),
        want_launches,
        "launches.other.launches: {other}"
    );
}

/// Launches whose kernel the profiler cannot name after attaching late: the driver kernels.
pub fn driver_kernel_launches() -> u64 {
    KERNELS
        .iter()
        .filter(|k| !k.runtime)
        .map(|k| k.launches)
        .sum()
}
