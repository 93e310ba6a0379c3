//! `profiler check` inside each VM: its lines as parsed from the console, what every kernel
//! must pass, and the table of what each kernel offers.

use anyhow::{Context as _, Result};

/// Lines whose detail says how the capability runs, which differs by kernel (the README lists
/// where a kernel's differs from the newest one's).
pub const DETAILED: &[&str] = &["tracepoints", "socket syscalls", "cuda programs"];

/// The `check` lines every kernel must pass (the rest is reported, not required).
const REQUIRED: &[&str] = &[
    "btf",
    "tracefs",
    "tracepoints",
    "socket syscalls",
    "uprobes",
];

/// One kernel's `profiler check`, as parsed from the console.
pub struct CheckRun {
    pub label: &'static str,
    pub release: String,
    pub exit: Option<i32>,
    /// (capability, status word, detail).
    pub lines: Vec<(String, String, String)>,
    /// The kernel must run the raw-tracepoint scheduler program.
    pub raw_sched_expected: bool,
}

impl CheckRun {
    pub fn parse(label: &'static str, console: &str) -> Result<Self> {
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

    pub fn status(&self, name: &str) -> Option<&(String, String, String)> {
        self.lines.iter().find(|(n, _, _)| n == name)
    }

    pub fn failures(&self) -> Vec<String> {
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
pub fn table(results: &[&CheckRun]) -> String {
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

pub fn tail(text: &str, n: usize) -> String {
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
        let table = table(&[&r]);
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
