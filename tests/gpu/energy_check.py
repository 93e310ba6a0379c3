#!/usr/bin/env python3
"""GPU energy check (issue 5): the profiler's NVML figures against a known bf16 matmul loop.

Two subcommands.

    energy_check.py workload --out DIR [--idle 3] [--loop 10] [--size 8192] [--dtype bf16]

Run under the profiler (tests/gpu/run_check.sh, mode `energy`, does this):

    profiler run --no-http --format json --interval 200ms --output DIR/profiler.json -- \\
        python3 tests/gpu/energy_check.py workload --out DIR

Layout in time:
  setup        torch.cuda.init(), three --size^2 --dtype tensors, three warm-up matmuls and a
               sync (cuBLAS and its workspace are set up here, so device memory stays constant
               from now on)
  idle_before  time.sleep(--idle): the GPU is idle (the process keeps its context)
  loop         `torch.matmul(a, b, out=c)` for --loop seconds; an event after every
               --group matmuls, and the host waits for the event before the previous one, so
               the GPU always has work queued and the host never runs far ahead; ends with
               torch.cuda.synchronize()
  idle_after   time.sleep(--idle), then exit (the profiler's session ends with the target)
During the loop a thread runs
`nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` every
--smi-interval seconds and keeps its own pid's row (every row when its pid is not listed, as in
a container whose pid namespace differs from the driver's). Each nvidia-smi is a child of the
workload, so the profiler follows it too: the report lists them as `child` processes (only
during the loop, to keep them few). Everything goes to DIR/energy.json:
each phase's start and end as CLOCK_MONOTONIC (time.monotonic()) and Unix time, the loop's
matmuls and TFLOP/s, the nvidia-smi samples tagged by phase, torch's own memory figures.

    energy_check.py compare DIR [--profiler F] [--phases F] [--table F] [--label L]
                               [--interval-ms 200] [threshold options]

Reads DIR/profiler.json (the report) and DIR/energy.json, prints a markdown table and writes
it to DIR/table.md. Exit status 0 when every check passes, 1 when one fails, 2 when an input
is missing or unreadable. Checks that fail the run (the issue's acceptance):
  - GPU energy: `gpu.gpus[].energy.counter_j` (NVML total-energy counter) against
    `power_integral_j` (power samples integrated), as mean power over the span each covers,
    within --energy-tolerance (10%); both must cover the loop;
  - SM occupancy and tensor activity (GPM): high during the loop, near zero when idle. The
    report has session aggregates only (mean/min/max over the samples, no per-interval
    values), so this is a partial check: with f the loop's share of the session and the idle
    level taken as the minimum, the loop level is estimated as (mean - (1 - f) * min) / f and
    must reach --occupancy-high / --tensor-high; the minimum must be at most --idle-max;
  - per-process GPU memory: `gpu.processes[pid].memory_peak_bytes` against nvidia-smi's
    `used_memory` for the pid during the loop, within --mem-tolerance (5%) or --mem-slack-mib
    (64 MiB), whichever is larger.
Everything else is shown for information (WARN where it looks wrong). Standard library only;
torch is imported by `workload` alone, so the comparison is unit-tested without it
(tests/gpu/test_energy_check.py).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import check_output  # a sibling module: tests/gpu is on sys.path when run or tested

SCHEMA = "gpu-check.energy/v1"
MIB = 1024 * 1024
SMI_QUERY = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
PHASES = ["setup", "idle_before", "loop", "idle_after"]

DEFAULTS = {
    "energy_tolerance": 0.10,
    "mem_tolerance": 0.05,
    "mem_slack_mib": 64.0,
    # An 8192^3 bf16 GEMM keeps the tensor pipes busy most of the time (time-based metric).
    "tensor_high": 40.0,
    # Warps resident / maximum. Hopper's cuBLAS GEMM kernels run one CTA of 8-12 warps per SM
    # (shared memory bound) out of 64 warp slots: 12-19% is as high as this kernel gets.
    "occupancy_high": 10.0,
    # SM activity (informational): at least one warp on the SM; close to 100% for the loop.
    "sm_activity_high": 80.0,
    "idle_max": 5.0,
}


# --------------------------------------------------------------------------------------------
# The workload (needs torch and a GPU)
# --------------------------------------------------------------------------------------------

def now():
    """CLOCK_MONOTONIC and Unix time, read together."""
    return time.monotonic(), time.time()


def find_smi():
    return shutil.which("nvidia-smi") or next(
        (p for p in ("/usr/local/nvidia/bin/nvidia-smi", "/usr/bin/nvidia-smi")
         if os.access(p, os.X_OK)), None)


def parse_smi(text):
    """`pid, used_memory` lines (MiB, `nounits`) -> [(pid, mib or None)]; `[N/A]` -> None."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        try:
            mib = float(parts[1])
        except ValueError:
            mib = None
        rows.append((int(parts[0]), mib))
    return rows


class SmiSampler(threading.Thread):
    """nvidia-smi's compute-app list every `interval` s, tagged with the phase at the time."""

    def __init__(self, smi, pid, interval, phase_of):
        super().__init__(daemon=True)
        self.smi, self.pid, self.interval, self.phase_of = smi, pid, interval, phase_of
        self.samples, self.errors = [], []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            mono, unix = now()
            phase = self.phase_of()
            try:
                r = subprocess.run([self.smi] + SMI_QUERY, capture_output=True, text=True,
                                   timeout=10)
                rows = parse_smi(r.stdout)
                if r.returncode != 0 and len(self.errors) < 5:
                    self.errors.append(f"exit {r.returncode}: {r.stderr.strip()[:200]}")
            except (OSError, subprocess.SubprocessError) as e:
                rows = []
                if len(self.errors) < 5:
                    self.errors.append(f"{type(e).__name__}: {e}")
            own = [m for p, m in rows if p == self.pid]
            self.samples.append({
                "mono": mono, "unix": unix, "phase": phase,
                "own_mib": own[0] if own else None,
                # Every row when our pid is not listed (another pid namespace): the compare
                # step can then fall back to a single listed process.
                "rows": [] if own else [[p, m] for p, m in rows],
            })
            self.stop.wait(self.interval)


def parse_workload_args(argv):
    ap = argparse.ArgumentParser(prog="energy_check.py workload",
                                 description="idle, a matmul loop, idle (run under the profiler)")
    ap.add_argument("--out", required=True, help="directory for energy.json")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds idle before and after")
    ap.add_argument("--loop", type=float, default=10.0, help="seconds of matmul loop")
    ap.add_argument("--size", type=int, default=8192, help="matmul size (n x n times n x n)")
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    ap.add_argument("--group", type=int, default=4, help="matmuls between two events")
    ap.add_argument("--smi-interval", type=float, default=0.5,
                    help="seconds between nvidia-smi samples")
    return ap.parse_args(argv)


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


def workload(argv):
    a = parse_workload_args(argv)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "energy.json")
    pid = os.getpid()
    doc = {"schema": SCHEMA, "pid": pid, "config": vars(a).copy(), "phases": [],
           "smi": {"command": None, "interval_s": a.smi_interval, "samples": [], "errors": []}}
    t0 = now()
    current = {"phase": "setup", "start": t0}

    def begin(name):
        end = now()
        p = current["start"]
        doc["phases"].append({
            "name": current["phase"], "start_mono": p[0], "start_unix": p[1],
            "end_mono": end[0], "end_unix": end[1], "duration_s": end[0] - p[0]})
        print(f"energy_check: {current['phase']} ended at mono {end[0]:.3f} unix {end[1]:.3f} "
              f"({end[0] - p[0]:.3f} s); next: {name}", flush=True)
        current["phase"], current["start"] = name, end

    try:
        import torch
    except ImportError as e:
        print(f"energy_check: PyTorch is not importable here: {e}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("energy_check: torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    torch.cuda.init()
    dev = torch.device("cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    props = torch.cuda.get_device_properties(dev)
    doc["device"] = {"name": props.name, "uuid": str(getattr(props, "uuid", "") or ""),
                     "torch": torch.__version__, "cuda": torch.version.cuda,
                     "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    n = a.size
    x = torch.randn(n, n, device=dev, dtype=dtype)
    y = torch.randn(n, n, device=dev, dtype=dtype)
    z = torch.empty(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        torch.matmul(x, y, out=z)
    torch.cuda.synchronize()

    smi = find_smi()
    doc["smi"]["command"] = " ".join([smi or "nvidia-smi"] + SMI_QUERY)
    sampler = None
    if smi:
        sampler = SmiSampler(smi, pid, a.smi_interval, lambda: current["phase"])
    else:
        doc["smi"]["errors"].append("nvidia-smi not found (PATH, /usr/local/nvidia/bin)")

    iters = 0
    try:
        begin("idle_before")
        time.sleep(a.idle)
        begin("loop")
        if sampler:
            sampler.start()
        end = time.monotonic() + a.loop
        pending = []
        while time.monotonic() < end:
            for _ in range(a.group):
                torch.matmul(x, y, out=z)
            iters += a.group
            ev = torch.cuda.Event()
            ev.record()
            pending.append(ev)
            if len(pending) > 2:
                pending.pop(0).synchronize()
        torch.cuda.synchronize()
        begin("idle_after")
        if sampler:
            sampler.stop.set()
            sampler.join(timeout=15)
        doc["torch_memory"] = {"allocated_bytes": torch.cuda.memory_allocated(dev),
                               "reserved_bytes": torch.cuda.memory_reserved(dev)}
        try:
            free, total = torch.cuda.mem_get_info(dev)
            doc["torch_memory"].update(device_free_bytes=free, device_total_bytes=total)
        except Exception as e:  # informational only
            doc["torch_memory"]["mem_get_info_error"] = str(e)
        time.sleep(a.idle)
        begin("exit")
    finally:
        if sampler:
            sampler.stop.set()
            if sampler.is_alive():
                sampler.join(timeout=15)
            doc["smi"]["samples"] = sampler.samples
            doc["smi"]["errors"] += sampler.errors
        loop = next((p for p in doc["phases"] if p["name"] == "loop"), None)
        if loop:
            flop = 2.0 * n ** 3 * iters
            loop.update(matmuls=iters, tflops=flop / loop["duration_s"] / 1e12
                        if loop["duration_s"] > 0 else None)
        write_json(path, doc)
    print(f"energy_check: {iters} matmuls of {n}^3 {a.dtype} in {fmt(loop['duration_s'], 2)} s "
          f"({fmt(loop.get('tflops'))} TFLOP/s); wrote {path}", flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The comparison (standard library only)
# --------------------------------------------------------------------------------------------

class Table:
    def __init__(self):
        self.rows = []
        self.failures = []
        self.warnings = []
        # GPM judged from session aggregates (no per-sample timeline in the report).
        self.partial_gpm = False

    def add(self, check, profiler, reference, diff, status, why=None):
        self.rows.append((check, profiler, reference, diff, status))
        if status == "FAIL":
            self.failures.append(f"{check}: {why or 'see the table'}")
        elif status == "WARN" and why:
            self.warnings.append(f"{check}: {why}")


def phase(phases, name):
    return next((p for p in phases.get("phases", []) if p.get("name") == name), None)


def fmt(v, digits=1, unit=""):
    return "n/a" if v is None else f"{v:,.{digits}f}{unit}"


def fmt_stat(s, unit="%"):
    if not s:
        return "n/a"
    return (f"mean {s['mean']:.1f}{unit}, min {s['min']:.1f}{unit}, max {s['max']:.1f}{unit} "
            f"({s.get('samples', 0)} samples)")


def loop_window(report, phases):
    """(loop_s, start offset, end offset, f): the loop relative to the session's start (Unix
    time) and its share f of the session; None when the loop phase is missing."""
    loop = phase(phases, "loop")
    if not loop:
        return None
    loop_s = loop["end_mono"] - loop["start_mono"]
    t0 = report.get("started_at_unix_s") or 0.0
    dur = report.get("duration_s") or 0.0
    f = min(1.0, loop_s / dur) if dur > 0 else None
    return loop_s, loop["start_unix"] - t0, loop["end_unix"] - t0, f


def loop_level(stat, f):
    """The loop's level of a metric from session aggregates: mean = f * L + (1 - f) * idle,
    with the idle level taken as the minimum."""
    if not stat or not f:
        return None
    return (stat["mean"] - (1.0 - f) * stat["min"]) / f


def norm_uuid(u):
    u = (u or "").strip().lower()
    return u[4:] if u.startswith("gpu-") else u


def select_gpu(gpu, pid, uuid=None):
    """The GPU the workload used: the one listing its pid (most memory), else the same UUID,
    else the only one used by a watched process, else the only one. (summary, note)"""
    gpus = gpu.get("gpus") or []
    by_index = {g["index"]: g for g in gpus}
    mine = [p for p in gpu.get("processes") or [] if p.get("pid") == pid]
    if mine:
        best = max(mine, key=lambda p: p.get("memory_peak_bytes") or 0)
        if best["gpu"] in by_index:
            return by_index[best["gpu"]], None
    if uuid:
        same = [g for g in gpus if norm_uuid(g.get("uuid")) == norm_uuid(uuid)]
        if same:
            return same[0], "the workload's pid is not in gpu.processes: GPU chosen by UUID"
    used = [g for g in gpus if g.get("used_by_watched")]
    if len(used) == 1:
        return used[0], None
    if len(gpus) == 1:
        return gpus[0], "no GPU is marked used_by_watched: the only GPU taken"
    return None, f"cannot tell which of {len(gpus)} GPU(s) the workload used"


def smi_memory(phases, name="loop"):
    """(max MiB, samples, note) of nvidia-smi's used_memory for the workload's pid during a
    phase; falls back to the only listed process when the pid is never listed."""
    samples = [s for s in (phases.get("smi") or {}).get("samples", []) if s.get("phase") == name]
    own = [s["own_mib"] for s in samples if s.get("own_mib") is not None]
    if own:
        return max(own), len(own), None
    single = [s["rows"][0][1] for s in samples
              if len(s.get("rows") or []) == 1 and s["rows"][0][1] is not None]
    if single:
        return max(single), len(single), ("nvidia-smi never listed the workload's pid (another "
                                          "pid namespace?): the only process it listed taken")
    errors = (phases.get("smi") or {}).get("errors") or []
    why = f"no nvidia-smi row for the pid in {len(samples)} {name} sample(s)"
    if errors:
        why += f" ({errors[0]})"
    return None, len(samples), why


def check_energy(t, g, loop_s, tol):
    e = g.get("energy") or {}
    cj, cs = e.get("counter_j"), e.get("counter_covered_s") or 0.0
    pj, ps = e.get("power_integral_j"), e.get("power_covered_s") or 0.0
    prof = f"{fmt(cj)} J over {cs:.2f} s (counter)"
    ref = f"{fmt(pj)} J over {ps:.2f} s (∫ power)"
    if cj is None or pj is None or cs <= 0 or ps <= 0 or pj <= 0:
        missing = "the energy counter" if cj is None else "power readings"
        t.add("GPU energy: counter vs ∫ power", prof, ref, "n/a", "FAIL",
              f"no {missing} over the session (NVML: Volta or later has the counter)")
        return
    cw, pw = cj / cs, pj / ps
    d = (cw - pw) / pw * 100.0
    ok = abs(d) <= tol * 100.0
    status, why = ("PASS", None) if ok else ("FAIL", f"mean power differs by {d:+.1f}% "
                                              f"(> {tol * 100:.0f}%)")
    if ok and min(cs, ps) < loop_s:
        status, why = "FAIL", (f"the energy figures cover {min(cs, ps):.2f} s, less than the "
                               f"{loop_s:.2f} s loop")
    t.add("GPU energy: counter vs ∫ power", prof, ref,
          f"{d:+.2f}% ({cw:.1f} W vs {pw:.1f} W)", status, why)
    if ok and abs(cs - ps) > 0.5:
        t.warnings.append(f"GPU energy: the counter covers {cs:.2f} s, the power integral "
                          f"{ps:.2f} s: compared as mean power")


def timeline_levels(points, key, off0, off1, edge=0.5):
    """(loop mean, idle mean, loop samples, idle samples) of `key` from the report's per-sample
    GPU timeline. A sample describes the interval it closes, so samples within `edge` seconds
    of a phase boundary are left out."""
    vals = [(p["t_s"], p.get(key)) for p in points if p.get(key) is not None]
    loop = [v for ts, v in vals if off0 + edge <= ts <= off1]
    idle = [v for ts, v in vals if ts <= off0 or ts >= off1 + edge]

    def mean(v):
        return sum(v) / len(v) if v else None

    return mean(loop), mean(idle), len(loop), len(idle)


def check_gpm_timeline(t, points, win, th):
    """The GPM checks from per-sample values; False when the timeline has no GPM values."""
    _, off0, off1, _ = win
    rows = [("sm_occupancy_pct", "SM occupancy (GPM)", th["occupancy_high"], True),
            ("tensor_activity_pct", "tensor activity (GPM)", th["tensor_high"], True),
            ("sm_activity_pct", "SM activity (GPM)", th["sm_activity_high"], False),
            ("dram_bw_util_pct", "DRAM bandwidth (GPM)", None, False)]
    if not any(p.get(k) is not None for p in points for k, *_ in rows):
        return False
    for key, label, high, acceptance in rows:
        lvl, idle, n_loop, n_idle = timeline_levels(points, key, off0, off1)
        problems = []
        if high is not None and (lvl is None or lvl < high):
            problems.append(f"loop mean {fmt(lvl)}% < {high:g}%")
        if idle is None or idle > th["idle_max"]:
            problems.append(f"idle mean {fmt(idle)}% > {th['idle_max']:g}% (or no idle samples)")
        status = ("FAIL" if acceptance else "WARN") if problems else (
            "PASS" if acceptance else "INFO")
        ref = ((f"high ≥ {high:g}%, " if high is not None else "")
               + f"idle ≤ {th['idle_max']:g}%")
        t.add(label, f"loop {fmt(lvl)}% ({n_loop} samples), idle {fmt(idle)}% ({n_idle})",
              ref, "—", status, "; ".join(problems) or None)
    return True


def check_gpm(t, g, notes, f, th):
    gpm = g.get("gpm")
    rows = [("sm_occupancy_pct", "SM occupancy (GPM)", th["occupancy_high"], True),
            ("tensor_activity_pct", "tensor activity (GPM)", th["tensor_high"], True),
            ("sm_activity_pct", "SM activity (GPM)", th["sm_activity_high"], False),
            ("dram_bw_util_pct", "DRAM bandwidth (GPM)", None, False)]
    for key, label, high, acceptance in rows:
        s = (gpm or {}).get(key)
        if not s:
            why = f"no {key} samples"
            if gpm is None:
                said = [n for n in notes if "GPM" in n]
                why = "the GPU has no GPM figures: " + (
                    "; ".join(said) if said else "needs Hopper or later")
            t.add(label, "n/a", "high in the loop, near 0 idle", "n/a",
                  "FAIL" if acceptance else "INFO", why)
            continue
        lvl = loop_level(s, f)
        ref = (f"loop ≈ {fmt(lvl)}% (loop {f * 100:.0f}% of the session); "
               + (f"high ≥ {high:g}%, " if high is not None else "")
               + f"idle ≤ {th['idle_max']:g}%")
        problems = []
        if high is not None and (lvl is None or lvl < high):
            problems.append(f"loop level ≈ {fmt(lvl)}% < {high:g}%")
        if s["min"] > th["idle_max"]:
            problems.append(f"minimum {s['min']:.1f}% > {th['idle_max']:g}%: not near zero idle")
        if problems:
            status = "FAIL" if acceptance else "WARN"
        else:
            status = "PASS" if acceptance else "INFO"
        t.add(label, fmt_stat(s), ref, "—", status, "; ".join(problems) or None)
        if lvl is not None and lvl > s["max"] * 1.1 + 1.0:
            t.warnings.append(f"{label}: the mean implies a loop level ({lvl:.1f}%) above the "
                              f"maximum ({s['max']:.1f}%): idle samples were not near the "
                              "minimum; per-interval values would tell")


def check_memory(t, gpu, g, pid, phases, th):
    smi_mib, n, note = smi_memory(phases)
    procs = [p for p in gpu.get("processes") or [] if p.get("pid") == pid]
    mine = next((p for p in procs if g and p.get("gpu") == g.get("index")), None)
    peak = mine.get("memory_peak_bytes") if mine else None
    prof = "not listed" if not mine else (f"{peak / MIB:,.0f} MiB peak" if peak is not None
                                          else "listed, memory unknown")
    ref = f"{fmt(smi_mib, 0)} MiB max over {n} nvidia-smi sample(s) in the loop"
    label = "per-process GPU memory vs nvidia-smi"
    if smi_mib is None:
        t.add(label, prof, ref, "n/a", "FAIL", note)
        return
    if peak is None:
        t.add(label, prof, ref, "n/a", "FAIL",
              f"pid {pid} has no GPU memory in gpu.processes (NVML's compute-process list; "
              "another pid namespace, or MIG without permission?)")
        return
    diff_mib = peak / MIB - smi_mib
    allowed = max(th["mem_tolerance"] * smi_mib, th["mem_slack_mib"])
    ok = abs(diff_mib) <= allowed
    pct = diff_mib / smi_mib * 100.0 if smi_mib else float("inf")
    t.add(label, prof, ref, f"{diff_mib:+,.0f} MiB ({pct:+.1f}%)", "PASS" if ok else "FAIL",
          None if ok else f"off by {diff_mib:+,.0f} MiB, more than {allowed:,.0f} MiB")
    if note:
        t.warnings.append(f"{label}: {note}")


def compare(report, phases, thresholds=None, label=None, interval_ms=200):
    """(markdown text, failures, warnings) for one run."""
    th = dict(DEFAULTS, **(thresholds or {}))
    t = Table()
    pid = phases.get("pid")
    dev = phases.get("device") or {}
    loop = phase(phases, "loop") or {}
    header = [f"### GPU check: {label or 'energy'}", ""]
    cfg = phases.get("config") or {}
    header.append(f"Workload: {dev.get('name', '?')}, idle {cfg.get('idle', '?')} s, "
                  f"{cfg.get('size', '?')}³ {cfg.get('dtype', '?')} matmul loop "
                  f"{fmt(loop.get('duration_s'), 2)} s ({loop.get('matmuls', '?')} matmuls, "
                  f"{fmt(loop.get('tflops'))} TFLOP/s), idle {cfg.get('idle', '?')} s; "
                  f"pid {pid}; profiler interval {interval_ms} ms.")
    header.append("")

    gpu = report.get("gpu")
    win = loop_window(report, phases)
    if not gpu or not gpu.get("available"):
        why = (gpu or {}).get("unavailable_reason") or "no gpu section in the report"
        t.add("GPU metrics", "unavailable", "NVML on a GPU machine", "n/a", "FAIL", why)
        return render(header, t), t.failures, t.warnings
    if win is None or win[3] is None:
        t.add("loop phase", "n/a", "energy.json phases", "n/a", "FAIL",
              "no loop phase in energy.json, or the report has no duration")
        return render(header, t), t.failures, t.warnings
    loop_s, off0, off1, f = win
    dur = report.get("duration_s") or 0.0
    inside = off0 >= -0.05 and off1 <= dur + 0.05
    t.add("session covers the loop", f"attached {dur:.2f} s",
          f"loop +{off0:.2f} s … +{off1:.2f} s ({loop_s:.2f} s, {f * 100:.0f}% of the session)",
          "—", "PASS" if inside else "FAIL",
          None if inside else "the loop is not inside the profiler's session")

    g, note = select_gpu(gpu, pid, dev.get("uuid"))
    if note:
        t.warnings.append(f"GPU selection: {note}")
    if g is None:
        t.add("GPU used by the workload", "n/a", f"pid {pid}", "n/a", "FAIL", note)
        return render(header, t), t.failures, t.warnings
    header[3:3] = ["", f"GPU {g.get('index')}: {g.get('name')} ({g.get('uuid')}), driver "
                       f"{gpu.get('driver_version')}; {gpu.get('samples')} samples over "
                       f"{fmt(gpu.get('span_s'), 2)} s."]

    check_energy(t, g, loop_s, th["energy_tolerance"])
    points = [p for p in gpu.get("timeline") or [] if p.get("gpu") == g.get("index")]
    if not check_gpm_timeline(t, points, win, th):
        t.partial_gpm = True
        check_gpm(t, g, gpu.get("notes") or [], f, th)
    check_memory(t, gpu, g, pid, phases, th)
    info_rows(t, report, gpu, g, pid, phases, loop_s, f, interval_ms)
    return render(header, t), t.failures, t.warnings


def info_rows(t, report, gpu, g, pid, phases, loop_s, f, interval_ms):
    # Loop energy, estimated: the counter minus the idle power (minimum power sample) outside
    # the loop.
    e = g.get("energy") or {}
    pw = g.get("power_w")
    loop = phase(phases, "loop") or {}
    if e.get("counter_j") is not None and pw:
        loop_j = e["counter_j"] - pw["min"] * max(0.0, (e.get("counter_covered_s") or 0) - loop_s)
        per = ""
        if loop.get("matmuls"):
            flop = 2.0 * (phases.get("config") or {}).get("size", 0) ** 3 * loop["matmuls"]
            per = f", {loop_j / (flop / 1e12):.2f} J/TFLOP" if flop else ""
        t.add("loop energy (estimate)", f"≈ {loop_j:,.0f} J, ≈ {loop_j / loop_s:,.0f} W{per}",
              f"power {fmt_stat(pw, ' W')}", "—", "INFO")
    mine = next((p for p in gpu.get("processes") or []
                 if p.get("pid") == pid and p.get("gpu") == g.get("index")), None)
    s = (mine or {}).get("sm_util_pct")
    t.add("per-process SM utilization (NVML)", fmt_stat(s),
          f"loop ≈ {fmt(loop_level(s, f))}%", "—", "INFO")
    busy = g.get("busy_s")
    status, why = "INFO", None
    if busy is None:
        status, why = "WARN", "no utilization readings"
    elif abs(busy - loop_s) > max(1.0, 0.15 * loop_s):
        status, why = "WARN", f"busy {busy:.2f} s vs a {loop_s:.2f} s loop"
    t.add("GPU busy (utilization × time)", f"{fmt(busy, 2)} s; utilization "
          f"{fmt_stat(g.get('utilization_pct'))}", f"loop {loop_s:.2f} s",
          "n/a" if busy is None else f"{busy - loop_s:+.2f} s", status, why)
    expected = (report.get("duration_s") or 0.0) / (interval_ms / 1000.0)
    n = gpu.get("samples") or 0
    status = "WARN" if n < 0.8 * int(expected) else "INFO"
    t.add("GPU samples", f"{n}", f"≈ {int(expected)} (one per {interval_ms} ms)", "—", status,
          f"{n} samples where ≈ {int(expected)} were due: the sampler fell behind"
          if status == "WARN" else None)
    eff = report.get("efficiency") or {}
    watched = [x.get("energy", {}).get("counter_j") for x in gpu.get("gpus") or []
               if x.get("used_by_watched")]
    ref = f"Σ counter_j of used GPUs {fmt(sum(w for w in watched if w is not None))} J"
    status, why = "INFO", None
    ej = eff.get("gpu_energy_j")
    if ej is None or any(w is None for w in watched) or abs(ej - sum(watched)) > 1e-6 * max(1, ej):
        status, why = "WARN", "efficiency.gpu_energy_j is not the used GPUs' counter energy"
    t.add("efficiency", f"GPU {fmt(ej)} J; busy {fmt(eff.get('gpu_busy_s'), 2)} s from "
          f"{eff.get('gpu_busy_source')}; {fmt(eff.get('gpu_joules_per_busy_s'))} J per busy s; "
          f"carbon {fmt(eff.get('carbon_g'), 3)} g", ref, "—", status, why)
    t0 = report.get("started_at_unix_s") or 0.0
    ivs = [iv for iv in gpu.get("throttled_intervals") or [] if iv.get("gpu") == g.get("index")]
    in_loop = [iv for iv in ivs
               if iv["end_s"] >= loop["start_unix"] - t0 and iv["start_s"] <= loop["end_unix"] - t0
               ] if loop else []
    reasons = sorted({r for iv in ivs for r in iv.get("reasons", [])})
    t.add("throttling", f"{fmt(g.get('throttled_s'), 2)} s throttled, {len(ivs)} interval(s)"
          f" ({len(in_loop)} in the loop){': ' + ', '.join(reasons) if reasons else ''}",
          "shown for information", "—", "INFO")
    ce = report.get("cpu_energy") or {}
    if ce.get("available"):
        attr = next((p for p in (ce.get("attribution") or {}).get("processes", [])
                     if p.get("pid") == pid), None)
        cpu = (f"{ce.get('source')}, {ce.get('machine_domain')} {fmt(ce.get('machine_j'))} J; "
               f"pid {fmt((attr or {}).get('joules'))} J estimated")
    else:
        cpu = f"unavailable: {ce.get('unavailable_reason')}"
    t.add("CPU energy (RAPL)", cpu, "shown for information", "—", "INFO")
    cuda = report.get("cuda") or {}
    est = [s.get("gpu_busy_estimate_ms") for s in cuda.get("streams") or []
           if s.get("pid") == pid and s.get("gpu_busy_estimate_ms") is not None]
    t.add("CUDA busy estimate (launch→sync)",
          f"{sum(est) / 1e3:.2f} s over {len(est)} stream(s)" if est else "n/a",
          f"loop {loop_s:.2f} s", "—", "INFO")


def render(header, t):
    out = list(header) + ["| check | profiler | reference | diff | status |",
                          "| --- | --- | --- | --- | --- |"]
    for r in t.rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    if t.partial_gpm:
        out += ["", "Partial check: the report holds session aggregates of the GPM metrics "
                    "(mean/min/max), not per-interval values, so the loop level is inferred "
                    "from the mean and the loop's share of the session, and idle from the "
                    "minimum (docs/energy.md).", ""]
    else:
        out.append("")
    out.append("**Result: " + ("PASS" if not t.failures else "FAIL") + "**")
    out += [f"- FAIL {x}" for x in t.failures]
    out += [f"- WARN {x}" for x in t.warnings]
    return "\n".join(out) + "\n"


def load(path):
    with open(path) as f:
        return json.load(f)


def compare_main(argv):
    ap = argparse.ArgumentParser(prog="energy_check.py compare",
                                 description="the profiler's GPU energy figures vs the workload")
    ap.add_argument("out", help="directory holding profiler.json and energy.json")
    ap.add_argument("--profiler", help="profiler report (default OUT/profiler.json)")
    ap.add_argument("--phases", help="the workload's record (default OUT/energy.json)")
    ap.add_argument("--table", help="where to write the markdown (default OUT/table.md)")
    ap.add_argument("--label", help="heading for this run")
    ap.add_argument("--interval-ms", type=int, default=200, help="the profiler's --interval")
    for key, value in DEFAULTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=float, default=value,
                        help=f"default {value:g}")
    a = ap.parse_args(argv)
    try:
        report = load(a.profiler or os.path.join(a.out, "profiler.json"))
        phases = load(a.phases or os.path.join(a.out, "energy.json"))
    except (OSError, ValueError) as e:
        print(f"energy_check: cannot read inputs: {e}", file=sys.stderr)
        return 2
    th = {k: getattr(a, k) for k in DEFAULTS}
    text, failures, _ = compare(report, phases, th, a.label, a.interval_ms)
    return check_output.emit("energy_check", text, failures,
                             a.table or os.path.join(a.out, "table.md"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "workload":
        return workload(argv[1:])
    if argv and argv[0] == "compare":
        return compare_main(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
