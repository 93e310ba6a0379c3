//! The pure arithmetic and parsing behind `rapl`: counter deltas across wraps, `/proc` CPU
//! time, perf PMU event descriptions, and the CPU-time share used for attribution.

/// Counter delta across a wrap: a powercap counter runs from 0 to `max_range` and restarts.
/// None when it went backwards and the range is unknown, or the previous value was out of
/// range (a reset rather than a wrap).
pub fn wrap_delta(prev: u64, cur: u64, max_range: u64) -> Option<u64> {
    if cur >= prev {
        Some(cur - prev)
    } else if max_range >= prev {
        Some(max_range - prev + cur)
    } else {
        None
    }
}

/// Machine-wide CPU time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    pub busy: u64,
    pub total: u64,
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal (guest time
/// is already inside user). Busy = total − idle − iowait.
pub fn parse_proc_stat(s: &str) -> Option<CpuTicks> {
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTicks {
        busy: total - idle,
        total,
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, clock ticks. The command
/// name may hold spaces and parentheses: fields are counted after its last `)`.
pub fn parse_pid_ticks(s: &str) -> Option<u64> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The `event=0x..` value of a PMU event description (`event=0x02`); other terms ignored.
pub fn parse_event_config(s: &str) -> Option<u64> {
    s.trim().split(',').find_map(|term| {
        let v = term.trim().strip_prefix("event=")?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

/// A CPU list like `0`, `0,48` or `0-3,8`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// The process's share of the machine's busy CPU time, clamped to [0, 1] (tick rounding can
/// put a process above the machine total in a short interval).
pub fn cpu_share(process_ticks: u64, busy_ticks: u64) -> f64 {
    match busy_ticks {
        0 if process_ticks > 0 => 1.0,
        0 => 0.0,
        b => (process_ticks as f64 / b as f64).min(1.0),
    }
}

#[cfg(test)]
#[path = "arith_tests.rs"]
mod tests;
