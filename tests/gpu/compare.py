#!/usr/bin/env python3
"""Compares the profiler's CUDA report with torch.profiler's view of the same workload.

    python3 tests/gpu/compare.py OUT [--label NAME] [--tolerance 0.01] [--top 5]

Reads OUT/profiler.json (`profiler run --format json`, its `cuda` section) and OUT/torch.json
(written by tests/gpu/torch_workload.py), prints a markdown table and writes it to
OUT/table.md. Exit status: 0 when every check passes, 1 when one fails (the reasons are
printed), 2 when an input is missing or unreadable.

Checks that fail the run (the issue's acceptance):
  - kernel launches: the profiler's `cuda.launches.total` within --tolerance (1%) of the
    device kernels torch.profiler saw outside CUDA graphs (+ launches the workload made where
    torch.profiler could not see them: 0 unless --capture-before-region);
  - graph launches: `cuda.launches.graph_launches` equals the replays the workload made;
  - top kernels: each of torch.profiler's --top most executed kernels has a profiler kernel
    of the same name (exact after whitespace normalisation, the same truncated prefix, or at
    least the same qualified name before the first '<' or '(');
  - sync wait: `cuda.sync.wait_ms` > 0 for the synchronizing loop of phase D;
  - DtoH copy: at least the bytes the workload copied device-to-host.
Everything else is shown for information. Dependency-free (standard library only).
"""

import argparse
import json
import os
import re
import sys

import check_output  # a sibling module: tests/gpu is on sys.path when run or tested

MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Kernel names
# --------------------------------------------------------------------------------------------

ANON = re.compile(r"\((?:anonymous namespace)\)|\{anonymous\}|_GLOBAL__N_1")


def strip_void(name):
    name = name.strip()
    return name[5:] if name.startswith("void ") else name


def norm_full(name):
    """Whole name, whitespace removed (`> >` vs `>>`), anonymous namespaces spelled alike."""
    return re.sub(r"\s+", "", ANON.sub("anon", strip_void(name)))


def base_name(name):
    """Qualified name before the first '<' or '(' (`void a::b<4>(int)` -> `a::b`)."""
    if name.startswith("_Z"):
        m = mangled_base(name)
        if m:
            return m
    s = ANON.sub("anon", strip_void(name))
    cut = len(s)
    for ch in "<(":
        i = s.find(ch)
        if i >= 0:
            cut = min(cut, i)
    return re.sub(r"\s+", "", s[:cut])


def mangled_base(m):
    """The qualified name of an Itanium mangled name, template arguments and parameters left
    out (`_ZN2at6native29vectorized_elementwise_kernelILi4E...` -> `at::native::
    vectorized_elementwise_kernel`); None when it does not parse. Enough for cut names."""
    if not m.startswith("_Z"):
        return None
    i = 2
    if m.startswith("L", i):
        i += 1
    nested = m.startswith("N", i)
    if nested:
        i += 1
        while i < len(m) and m[i] in "rVK":
            i += 1
    parts = []
    while i < len(m):
        if m.startswith("St", i):
            parts.append("std")
            i += 2
            continue
        j = i
        while j < len(m) and m[j].isdigit():
            j += 1
        if j == i:
            break
        n = int(m[i:j])
        ident = m[j:j + n]
        if len(ident) < n:
            break
        parts.append("anon" if ident == "_GLOBAL__N_1" else ident)
        i = j + n
        if not nested:
            break
    return "::".join(parts) or None


def match_kernel(torch_name, prof_kernels):
    """(level, profiler kernel) for the best match: exact > prefix (cut name) > base > none."""
    full = norm_full(torch_name)
    base = base_name(torch_name)
    best = ("none", None)
    for k in prof_kernels:
        pname = k.get("name") or ""
        if norm_full(pname) == full:
            return ("exact", k)
        if k.get("mangled") and norm_full(k["mangled"]) == full:  # torch left it mangled
            return ("exact", k)
        if k.get("truncated_name") and not pname.startswith("_Z") and full.startswith(
                norm_full(pname)):
            if best[0] not in ("prefix",):
                best = ("prefix", k)
            continue
        if best[0] == "none":
            pbase = base_name(k["mangled"]) if k.get("mangled") else base_name(pname)
            if pbase and pbase == base:
                best = ("base", k)
    return best


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def pct(a, b):
    if a is None or b is None or b == 0:
        return None
    return (a - b) / b * 100.0


def fmt_pct(p):
    return "n/a" if p is None else f"{p:+.2f}%"


def fmt_num(v):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.3f}"
    return f"{v:,}"


def short(name, width=110):
    name = name.replace("|", "\\|")
    return name if len(name) <= width else name[:width - 1] + "…"


class Table:
    def __init__(self):
        self.rows = []
        self.failures = []
        self.warnings = []

    def add(self, check, profiler, reference, diff, status, why=None):
        self.rows.append((check, profiler, reference, diff, status))
        if status == "FAIL":
            self.failures.append(f"{check}: {why or 'see the table'}")
        elif status == "WARN" and why:
            self.warnings.append(f"{check}: {why}")


def compare(prof, torch, tolerance=0.01, top=5, label=None):
    """(markdown text, failures, warnings) for one run."""
    t = Table()
    s = torch.get("summary") or {}
    gt = torch.get("ground_truth") or {}
    cuda = prof.get("cuda")
    header = (f"### GPU check{': ' + label if label else ''}\n\n"
              f"torch {torch.get('torch_version')} (CUDA {torch.get('cuda_version')}) on "
              f"{torch.get('device')}; torch.profiler figures from `{torch.get('summary_source')}`; "
              f"profiler {prof.get('profiler_version', '?')}, "
              f"launch latency `{(cuda or {}).get('launch_latency')}`, "
              f"attached {prof.get('duration_s') or 0:.1f} s ({prof.get('end_reason')}).\n")
    if "error" in s or not s:
        t.add("torch.profiler summary", "", s.get("error", "missing"), "", "FAIL",
              f"torch.json has no usable summary: {s.get('error', 'missing')}")
        return render(header, t, []), t.failures, t.warnings
    if not cuda:
        t.add("profiler `cuda` section", "missing", "", "", "FAIL",
              "the report has no cuda section (CUDA probes off or not implemented)")
        return render(header, t, []), t.failures, t.warnings

    launches = cuda.get("launches") or {}
    total = launches.get("total")
    graph = s.get("graph") or {}
    k_graph = graph.get("kernels_per_graph") or 0
    outside = s.get("device_kernels_outside_graphs")
    unseen = gt.get("launches_outside_region", 0) or 0
    pre_max = gt.get("pre_region_launches_max", 0) or 0

    libs = cuda.get("libraries") or []
    lib_text = ", ".join(f"{l.get('kind')}: {os.path.basename(l.get('path', '?'))} "
                         f"({l.get('probes')} probes)" for l in libs) or "none"
    has_driver = any(l.get("kind") == "driver" for l in libs)
    t.add("CUDA libraries probed", lib_text, "libcuda + libcudart mapped", "",
          "INFO" if has_driver else "FAIL",
          None if has_driver else "no libcuda was probed: launches cannot be counted")

    # 1. Kernel launches vs device kernels outside graphs (the acceptance check).
    expected = None if outside is None else outside + unseen
    d = pct(total, expected)
    ok = d is not None and abs(d) <= tolerance * 100
    ref = f"{fmt_num(outside)} device kernels outside graphs"
    ref += f" (= {fmt_num(s.get('device_kernels_total'))} − {graph.get('replays')} replays × " \
           f"{k_graph} kernels/graph)"
    if unseen:
        ref += f" + {unseen} launched outside the torch.profiler region"
    t.add("kernel launches (`cuda.launches.total`)", fmt_num(total), ref, fmt_pct(d),
          "PASS" if ok else "FAIL",
          None if ok else f"profiler {total} vs expected {expected} ({fmt_pct(d)}, "
                          f"tolerance ±{tolerance * 100:.1f}%)")

    # 1b. Exact accounting: graph capture launches and the tiny pre-region kernel.
    captured = k_graph if gt.get("graph_captured_in_region", True) else 0
    if expected is not None and total is not None:
        exact = expected + captured
        resid = total - exact
        explained = 0 <= resid <= pre_max
        t.add("kernel launches, exact accounting", fmt_num(total),
              f"{fmt_num(exact)} (+ {captured} captured into the graph; "
              f"+ 0…{pre_max} before the region)", f"{resid:+d}",
              "INFO" if explained else "WARN",
              None if explained else f"{resid:+d} launches not explained by capture or the "
                                     f"pre-region kernel")

    # 1c. Host launch calls torch.profiler recorded (runtime + driver API events).
    hl = s.get("host_launch_calls")
    t.add("kernel launches vs torch host launch calls", fmt_num(total),
          f"{fmt_num(hl)} (runtime {fmt_num(s.get('host_runtime_launch_calls'))}, "
          f"driver {fmt_num(s.get('host_driver_launch_calls'))})", fmt_pct(pct(total, hl)),
          "INFO")
    t.add("runtime launches (`cuda.launches.runtime_launches`)",
          fmt_num(launches.get("runtime_launches")),
          f"{fmt_num(s.get('host_runtime_launch_calls'))} cudaLaunchKernel* calls",
          fmt_pct(pct(launches.get("runtime_launches"), s.get("host_runtime_launch_calls"))),
          "INFO")

    # 1d. Our own uprobes (optional third opinion).
    sp = torch.get("self_probe")
    if sp:
        counts = sp.get("counts") or {}
        drv = counts.get("libcuda.so") or {}
        rt = counts.get("libcudart.so") or {}
        if drv:
            sp_launch = sum(v or 0 for k, v in drv.items() if k.startswith(
                ("cuLaunchKernel", "cuLaunchCooperativeKernel")))
            resid = None if total is None else total - sp_launch
            ok_sp = resid is not None and 0 <= resid <= pre_max
            t.add("kernel launches vs self-probe (cuLaunchKernel* uprobes)", fmt_num(total),
                  f"{fmt_num(sp_launch)} (+ 0…{pre_max} before the region)",
                  f"{resid:+d}" if resid is not None else "n/a", "PASS" if ok_sp else "WARN",
                  None if ok_sp else f"profiler {total} vs {sp_launch} counted by the "
                                     f"workload's own uprobes: events lost or double-counted?")
            sp_graph = sum(v or 0 for k, v in drv.items() if k.startswith("cuGraphLaunch"))
            t.add("graph launches vs self-probe (cuGraphLaunch uprobes)",
                  fmt_num(launches.get("graph_launches")), fmt_num(sp_graph),
                  fmt_pct(pct(launches.get("graph_launches"), sp_graph)), "INFO")
        if rt:
            sp_rt = sum(v or 0 for k, v in rt.items() if k.startswith("cudaLaunchKernel"))
            t.add("runtime launches vs self-probe (cudaLaunchKernel* uprobes)",
                  fmt_num(launches.get("runtime_launches")), fmt_num(sp_rt),
                  fmt_pct(pct(launches.get("runtime_launches"), sp_rt)), "INFO")
        if sp.get("error"):
            t.add("self-probe errors", "", short(sp["error"], 120), "", "INFO")

    # 2. Graph launches.
    gl = launches.get("graph_launches")
    replays = gt.get("graph_replays")
    tg = s.get("host_graph_launch_calls")
    ok = gl is not None and gl == replays
    t.add("graph launches (`cuda.launches.graph_launches`)", fmt_num(gl),
          f"{fmt_num(replays)} replays; torch.profiler {fmt_num(tg)} cudaGraphLaunch",
          fmt_pct(pct(gl, replays)), "PASS" if ok else "FAIL",
          None if ok else f"profiler {gl} graph launches vs {replays} replays")
    t.add("kernels per graph (torch.profiler)", "", f"{k_graph} ({graph.get('kernels_per_graph_source')}; "
          f"window {graph.get('kernels_per_graph_by_window')})", "", "INFO")

    # 3. Device-to-host copy bytes.
    copies = {c.get("direction"): c for c in cuda.get("copies") or []}
    dtoh = copies.get("dtoh", {})
    truth = gt.get("copy_bytes")
    tb = ((s.get("copies") or {}).get("dtoh") or {})
    got = dtoh.get("bytes", 0)
    if truth is None:
        status, why = "INFO", None
    elif truth <= got <= truth + MIB:
        status, why = "PASS", None
    elif got < truth and (copies.get("unknown", {}).get("bytes", 0) + got) >= truth:
        status, why = "WARN", "the copy was seen with direction `unknown`"
    elif got < truth:
        status, why = "FAIL", f"{got} DtoH bytes < the {truth} copied"
    else:
        status, why = "WARN", f"{got - truth} DtoH bytes more than the phase-B copy"
    t.add("DtoH copy bytes (`cuda.copies[dtoh].bytes`)",
          f"{fmt_num(got)} in {fmt_num(dtoh.get('calls', 0))} calls",
          f"{fmt_num(truth)} copied ({(truth or 0) / MIB:.0f} MiB); torch.profiler "
          f"{fmt_num(tb.get('bytes')) if tb.get('bytes_known', False) else 'n/a'} in "
          f"{fmt_num(tb.get('calls'))} copies", fmt_pct(pct(got, truth)), status, why)

    # 4. Sync wait.
    sync = cuda.get("sync") or {}
    wait = sync.get("wait_ms")
    d_ms = gt.get("sync_wait_ms_phase_d")
    stats = s.get("host_api_stats") or {}
    torch_sync_ms = sum((stats.get(a) or {}).get("total_ms", 0) for a in
                        ("cudaDeviceSynchronize", "cudaStreamSynchronize"))
    if not wait or wait <= 0:
        status, why = "FAIL", f"sync wait is {wait}: the blocking loop of phase D was not seen"
    elif d_ms and wait < 0.5 * d_ms:
        status, why = "WARN", f"{wait:.1f} ms is under half of the {d_ms:.1f} ms phase D blocked"
    else:
        status, why = "PASS", None
    t.add("sync wait (`cuda.sync.wait_ms`)",
          f"{fmt_num(wait)} ms in {fmt_num(sync.get('calls'))} calls",
          f"phase D blocked {fmt_num(d_ms)} ms in {gt.get('sync_calls_phase_d')} syncs "
          f"(host clock); torch.profiler sync calls {torch_sync_ms:,.3f} ms in "
          f"{fmt_num(s.get('host_sync_calls'))}", fmt_pct(pct(wait, d_ms)), status, why)

    # 5. Launch latency (with --cuda-launch-latency).
    apis = {a.get("api"): a for a in cuda.get("apis") or []}
    if cuda.get("launch_latency") == "timed":
        for api in ("cuLaunchKernel", "cuLaunchKernelEx"):
            a = apis.get(api)
            if not a or not a.get("calls"):
                continue
            rt = stats.get("cudaLaunchKernel") or {}
            t.add(f"launch latency {api} p50 / p99",
                  f"{fmt_num(a.get('p50_us'))} / {fmt_num(a.get('p99_us'))} µs "
                  f"({fmt_num(a.get('calls'))} calls)",
                  f"torch.profiler cudaLaunchKernel {fmt_num(rt.get('p50_us'))} / "
                  f"{fmt_num(rt.get('p99_us'))} µs (runtime call, CUPTI on)", "", "INFO")

    # 6. Health.
    lost = (cuda.get("events_lost") or 0) + (cuda.get("calls_unfinished") or 0)
    t.add("events lost / calls unfinished",
          f"{cuda.get('events_lost')} / {cuda.get('calls_unfinished')}", "0 / 0", "",
          "PASS" if lost == 0 else "WARN",
          None if lost == 0 else "lost CUDA events: counts may read low")
    unnamed = launches.get("unnamed") or 0
    t.add("unnamed launches", fmt_num(unnamed), "0",
          f"{unnamed / total * 100:.2f}% of launches" if total else "n/a",
          "INFO" if not total or unnamed <= 0.01 * total else "WARN",
          f"{unnamed} of {total} launches have no kernel name")

    # 7. Top kernels.
    kern = launches.get("kernels") or []
    other = launches.get("other") or {}
    top_rows = []
    for i, tk in enumerate((s.get("kernels") or [])[:top], 1):
        level, pk = match_kernel(tk["name"], kern)
        top_rows.append((i, tk, level, pk))
        if level == "none":
            t.failures.append(
                f"top kernel #{i} `{short(tk['name'], 80)}` ({tk['count']} runs) has no profiler "
                f"kernel of that name among the {len(kern)} listed (other: "
                f"{other.get('kernels', 0)} kernels, {other.get('launches', 0)} launches)")
        elif level == "base":
            t.warnings.append(f"top kernel #{i} matched only by qualified name "
                              f"`{base_name(tk['name'])}`")
    rev_rows = []
    for i, pk in enumerate(sorted(kern, key=lambda k: -k.get("launches", 0))[:top], 1):
        best = ("none", None)
        for tk in s.get("kernels") or []:
            level, _ = match_kernel(tk["name"], [pk])
            if level == "exact":
                best = (level, tk)
                break
            if level != "none" and best[0] == "none":
                best = (level, tk)
        rev_rows.append((i, pk, best[0], best[1]))
    return render(header, t, top_rows, rev_rows, top), t.failures, t.warnings


def render(header, t, top_rows, rev_rows=(), top=5):
    out = [header, "| check | profiler | torch.profiler / ground truth | diff | status |",
           "| --- | --- | --- | --- | --- |"]
    for r in t.rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    if top_rows:
        out += ["", f"torch.profiler's {top} most executed device kernels, and the profiler's "
                    "kernel of the same name:", "",
                "| # | kernel (torch.profiler) | runs (outside graphs) | profiler launches | "
                "match |", "| --- | --- | --- | --- | --- |"]
        for i, tk, level, pk in top_rows:
            out.append(f"| {i} | `{short(tk['name'])}` | {tk['count']:,} "
                       f"({tk.get('outside_graphs', 0):,}) | "
                       f"{fmt_num(pk.get('launches')) if pk else '—'} | "
                       f"{'**' + level + '**' if level == 'none' else level} |")
    if rev_rows:
        out += ["", f"The profiler's {top} most launched kernels, and torch.profiler's kernel "
                    "of the same name:", "",
                "| # | kernel (profiler) | launches | torch.profiler runs outside graphs | match |",
                "| --- | --- | --- | --- | --- |"]
        for i, pk, level, tk in rev_rows:
            out.append(f"| {i} | `{short(pk.get('name') or '')}` | {fmt_num(pk.get('launches'))} | "
                       f"{fmt_num(tk.get('outside_graphs')) if tk else '—'} | {level} |")
    failures = t.failures
    out.append("")
    out.append("**Result: " + ("PASS" if not failures else "FAIL") + "**")
    for f in failures:
        out.append(f"- FAIL {f}")
    for w in t.warnings:
        out.append(f"- WARN {w}")
    return "\n".join(out) + "\n"


def load(path):
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="directory holding profiler.json and torch.json")
    ap.add_argument("--profiler", help="profiler report (default OUT/profiler.json)")
    ap.add_argument("--torch", help="torch summary (default OUT/torch.json)")
    ap.add_argument("--table", help="where to write the markdown (default OUT/table.md)")
    ap.add_argument("--label", help="heading for this run (e.g. default, latency)")
    ap.add_argument("--tolerance", type=float, default=0.01, help="launch-count tolerance")
    ap.add_argument("--top", type=int, default=5, help="top kernels whose names must match")
    a = ap.parse_args(argv)
    ppath = a.profiler or os.path.join(a.out, "profiler.json")
    tpath = a.torch or os.path.join(a.out, "torch.json")
    try:
        prof, torch = load(ppath), load(tpath)
    except (OSError, ValueError) as e:
        print(f"compare: cannot read inputs: {e}", file=sys.stderr)
        return 2
    text, failures, _ = compare(prof, torch, a.tolerance, a.top, a.label)
    return check_output.emit("compare", text, failures,
                             a.table or os.path.join(a.out, "table.md"))


if __name__ == "__main__":
    sys.exit(main())
