#!/usr/bin/env python3
"""GPU check workload: a PyTorch run that torch.profiler and the eBPF profiler both watch.

Run under the profiler (tests/gpu/run_check.sh does this):

    profiler run --format json --output OUT/profiler.json --no-http --cuda-top 40 -- \\
        python3 tests/gpu/torch_workload.py --out OUT

Layout in time:
  1. `torch.cuda.init()`, tensors allocated with `torch.empty` (no kernel), ONE tiny kernel
     (`fill_`) and a sync: CUDA libraries are now mapped.
  2. `time.sleep(--pre-sleep)`: the profiler scans /proc/<pid>/maps every 250 ms and attaches
     its uprobes when libcuda/libcudart appear; calls before that are not seen. So the tiny
     kernel of step 1 may or may not be counted (`ground_truth.pre_region_launches_max`).
  3. One `torch.profiler.profile(activities=[CPU, CUDA])` region holding everything measured,
     one `record_function` per phase, each phase ending in a `torch.cuda.synchronize()`:
       warmup      inputs filled on the GPU, each op of phases A-D run once
       A           --iters x (matmul --size^2 [--dtype] + relu + add)
       B           one device-to-host copy of --copy-mib MiB (`x.cpu()`, pageable)
       C_warmup    the graph's ops, --graph-warmup times on a side stream (PyTorch's recipe)
       C_capture   `torch.cuda.graph(g, stream=side)` capture: launches, but nothing runs
       C_replay    `g.replay()` --graph-replays times
       D           --sync-iters x (matmul --sync-size^2 fp32 + `torch.cuda.synchronize()`),
                   the host blocks in cudaDeviceSynchronize -> cuCtxSynchronize each time
  4. After the region: OUT/torch.json (the compact summary `compare.py` reads) and
     OUT/torch_trace.json.gz (torch.profiler's Chrome trace, for a person).

torch.json is computed from the Chrome trace (event categories `kernel`, `cuda_runtime`,
`cuda_driver`, `gpu_memcpy`, `user_annotation`; kernels tied to the host call that launched
them by `args.correlation`), and again from `prof.events()` as a cross-check (no correlation
there: phases by time window). `summary` is the trace's when it parsed.

--wait-file/--pid-file make the same workload usable with `profiler attach --pid`: it writes
its pid, waits until the file exists, then sleeps --pre-sleep and runs the region.

Dependencies: torch only. Everything else is the standard library.
"""

import argparse
import collections
import gzip
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time

SCHEMA = "gpu-check.torch/v1"
PHASES = ["warmup", "A", "B", "C_warmup", "C_capture", "C_replay", "D"]
PHASE_LABEL = {p: f"gpucheck_{p}" for p in PHASES}
LABEL_PHASE = {v: k for k, v in PHASE_LABEL.items()}

# Host API names (after `base_api_name`) that launch one kernel each.
RUNTIME_LAUNCH_APIS = {"cudaLaunchKernel", "cudaLaunchKernelExC", "cudaLaunchCooperativeKernel",
                       "cudaLaunchCooperativeKernelMultiDevice", "cudaLaunch"}
DRIVER_LAUNCH_APIS = {"cuLaunchKernel", "cuLaunchKernelEx", "cuLaunchCooperativeKernel",
                      "cuLaunchCooperativeKernelMultiDevice", "cuLaunchGrid", "cuLaunchGridAsync"}
GRAPH_LAUNCH_APIS = {"cudaGraphLaunch", "cuGraphLaunch"}
SYNC_APIS = {"cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
             "cudaThreadSynchronize", "cuCtxSynchronize", "cuStreamSynchronize",
             "cuEventSynchronize"}


def base_api_name(name):
    """`cudaLaunchKernel_v7000` / `cudaLaunchKernel_ptsz` -> `cudaLaunchKernel`."""
    name = re.sub(r"_v\d+$", "", name)
    return re.sub(r"_(ptsz|ptds)$", "", name)


def host_api_kind(name):
    """'runtime', 'driver' or None, from the call's name (`cudaX` / `cuX`)."""
    if re.match(r"^cuda[A-Z]", name):
        return "runtime"
    if re.match(r"^cu[A-Z]", name):
        return "driver"
    return None


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_values[int(k)]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def memcpy_direction(name):
    """torch.profiler's copy names: `Memcpy DtoH (Device -> Pageable)` -> 'dtoh'."""
    m = re.match(r"^Memcpy (\w+)", name)
    if not m:
        return "unknown"
    kind = m.group(1).lower()
    return {"dtoh": "dtoh", "htod": "htod", "dtod": "dtod", "htoh": "htoh",
            "ptop": "peer"}.get(kind, kind)


# --------------------------------------------------------------------------------------------
# Summaries (pure: records in, dict out; unit-checkable without torch)
# --------------------------------------------------------------------------------------------

def records_from_chrome_trace(trace):
    """Chrome-trace JSON (dict with traceEvents, or a list) -> normalised records."""
    events = trace.get("traceEvents", []) if isinstance(trace, dict) else trace
    out = []
    for ev in events:
        if not isinstance(ev, dict) or ev.get("ph") != "X":
            continue
        args = ev.get("args") or {}
        corr = args.get("correlation")
        if corr is None:
            corr = args.get("correlation id")
        out.append({
            "cat": ev.get("cat", ""),
            "name": ev.get("name", ""),
            "ts": float(ev.get("ts", 0.0)),
            "dur": float(ev.get("dur", 0.0)),
            "corr": corr if isinstance(corr, int) and corr > 0 else None,
            "bytes": args.get("bytes") if isinstance(args.get("bytes"), (int, float)) else None,
        })
    return out


def records_from_function_events(events, device_type_cuda):
    """`prof.events()` -> normalised records (no correlation, no bytes)."""
    out = []
    for fe in events:
        name = fe.name
        ts = float(fe.time_range.start)
        dur = float(fe.time_range.end - fe.time_range.start)
        if fe.device_type == device_type_cuda:
            if name in LABEL_PHASE:
                cat = "gpu_user_annotation"  # a record_function range on the GPU timeline
            elif name.startswith("Memcpy"):
                cat = "gpu_memcpy"
            elif name.startswith("Memset"):
                cat = "gpu_memset"
            else:
                cat = "kernel"
        elif name in LABEL_PHASE or getattr(fe, "is_user_annotation", False):
            cat = "user_annotation"
        elif host_api_kind(name) == "runtime":
            cat = "cuda_runtime"
        elif host_api_kind(name) == "driver":
            cat = "cuda_driver"
        else:
            cat = "cpu_op"
        out.append({"cat": cat, "name": name, "ts": ts, "dur": dur, "corr": None, "bytes": None})
    return out


def summarize(records, graph_replays, top=40):
    """Counts torch.profiler saw, by what `compare.py` needs. See docs/gpu-check.md."""
    windows = {}
    for r in records:
        if r["cat"] == "user_annotation" and r["name"] in LABEL_PHASE:
            p = LABEL_PHASE[r["name"]]
            if p not in windows:
                windows[p] = (r["ts"], r["ts"] + r["dur"])

    def phase_of(ts):
        for p, (a, b) in windows.items():
            if a <= ts <= b:
                return p
        return "outside"

    host = [r for r in records if r["cat"] in ("cuda_runtime", "cuda_driver")]
    kernels = [r for r in records if r["cat"] == "kernel"]
    memcpys = [r for r in records if r["cat"] == "gpu_memcpy"]

    host_by_corr = {}
    api_calls = collections.Counter()
    api_durs = collections.defaultdict(list)
    per_phase = {p: collections.Counter() for p in PHASES + ["outside"]}
    for r in host:
        base = base_api_name(r["name"])
        api_calls[r["name"]] += 1
        api_durs[base].append(r["dur"])
        ph = phase_of(r["ts"])
        r["phase"] = ph
        if r["corr"] is not None:
            host_by_corr[r["corr"]] = r
        if base in RUNTIME_LAUNCH_APIS:
            per_phase[ph]["runtime_launch_calls"] += 1
        elif base in DRIVER_LAUNCH_APIS:
            per_phase[ph]["driver_launch_calls"] += 1
        elif base in GRAPH_LAUNCH_APIS:
            per_phase[ph]["graph_launch_calls"] += 1
        elif base in SYNC_APIS:
            per_phase[ph]["sync_calls"] += 1
            per_phase[ph]["sync_host_us"] += r["dur"]

    # Kernels: phase of the launching host call when it is known, else of the kernel itself;
    # in a graph when the launching host call is a graph launch.
    by_name = collections.Counter()
    by_name_outside = collections.Counter()
    graph_groups = collections.Counter()  # graph launch correlation -> kernels
    correlated = 0
    for k in kernels:
        launcher = host_by_corr.get(k["corr"]) if k["corr"] is not None else None
        correlated += launcher is not None
        ph = launcher["phase"] if launcher is not None else phase_of(k["ts"])
        per_phase[ph]["device_kernels"] += 1
        by_name[k["name"]] += 1
        in_graph = launcher is not None and base_api_name(launcher["name"]) in GRAPH_LAUNCH_APIS
        if in_graph:
            graph_groups[k["corr"]] += 1
        else:
            by_name_outside[k["name"]] += 1

    # Kernels per graph replay, two ways: grouped by the graph launch's correlation id, and
    # kernels in the replay phase / replays.
    replay_kernels = per_phase["C_replay"]["device_kernels"]
    per_graph_window = replay_kernels / graph_replays if graph_replays else None
    sizes = collections.Counter(graph_groups.values())
    per_graph_corr = sizes.most_common(1)[0][0] if sizes else None
    total = len(kernels)
    if graph_groups:
        graph_kernels = sum(graph_groups.values())
        k_source = "correlation"
        k = per_graph_corr
    else:
        k = round(per_graph_window) if per_graph_window is not None else 0
        graph_kernels = k * graph_replays
        k_source = "replay-window"
    outside = total - graph_kernels

    copies = collections.defaultdict(lambda: {"calls": 0, "bytes": 0, "bytes_known": True})
    for m in memcpys:
        c = copies[memcpy_direction(m["name"])]
        c["calls"] += 1
        if m["bytes"] is None:
            c["bytes_known"] = False
        else:
            c["bytes"] += int(m["bytes"])

    def counts(names):
        return sum(n for a, n in api_calls.items() if base_api_name(a) in names)

    api_stats = {}
    for base, durs in sorted(api_durs.items()):
        durs.sort()
        api_stats[base] = {
            "calls": len(durs),
            "total_ms": round(sum(durs) / 1e3, 3),
            "p50_us": round(percentile(durs, 0.5), 3),
            "p99_us": round(percentile(durs, 0.99), 3),
        }

    return {
        "phase_windows_found": sorted(windows),
        "host_api_calls": dict(sorted(api_calls.items(), key=lambda kv: (-kv[1], kv[0]))),
        "host_api_stats": api_stats,
        "host_runtime_launch_calls": counts(RUNTIME_LAUNCH_APIS),
        "host_driver_launch_calls": counts(DRIVER_LAUNCH_APIS),
        "host_launch_calls": counts(RUNTIME_LAUNCH_APIS) + counts(DRIVER_LAUNCH_APIS),
        "host_graph_launch_calls": counts(GRAPH_LAUNCH_APIS),
        "host_sync_calls": counts(SYNC_APIS),
        "device_kernels_total": total,
        "device_kernels_correlated": correlated,
        "device_kernels_in_graphs": graph_kernels,
        "device_kernels_outside_graphs": outside,
        "device_kernels_outside_graphs_by_window": (
            total - round(per_graph_window) * graph_replays if per_graph_window is not None
            else None),
        "graph": {
            "replays": graph_replays,
            "graph_launches_seen": len(graph_groups) or None,
            "kernels_per_graph": k,
            "kernels_per_graph_source": k_source,
            "kernels_per_graph_by_correlation": per_graph_corr,
            "kernels_per_graph_by_window": per_graph_window,
            "graph_launch_group_sizes": {str(s): n for s, n in sorted(sizes.items())},
        },
        "kernels": [
            {"name": n, "count": c, "outside_graphs": by_name_outside.get(n, 0)}
            for n, c in sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ],
        "distinct_kernels": len(by_name),
        "copies": dict(sorted(copies.items())),
        "phases": {p: dict(c) for p, c in per_phase.items() if c},
    }


# --------------------------------------------------------------------------------------------
# The workload (needs torch and a GPU)
# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for torch.json and the trace")
    ap.add_argument("--iters", type=int, default=500, help="phase A iterations")
    ap.add_argument("--size", type=int, default=1024, help="phase A matmul size")
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16",
                    help="phase A dtype")
    ap.add_argument("--copy-mib", type=int, default=64, help="phase B copy size (MiB)")
    ap.add_argument("--graph-size", type=int, default=256, help="phase C matmul size")
    ap.add_argument("--graph-warmup", type=int, default=3, help="phase C side-stream warmups")
    ap.add_argument("--graph-replays", type=int, default=100, help="phase C replays")
    ap.add_argument("--sync-iters", type=int, default=40, help="phase D iterations")
    ap.add_argument("--sync-size", type=int, default=4096, help="phase D matmul size (fp32)")
    ap.add_argument("--pre-sleep", type=float, default=1.5,
                    help="seconds between CUDA init and the measured region")
    ap.add_argument("--wait-file", help="wait (up to 300 s) for this file before --pre-sleep")
    ap.add_argument("--pid-file", help="write the pid here once CUDA is initialised")
    ap.add_argument("--self-probe", action="store_true",
                    help="also count CUDA entry points with our own uprobes (root)")
    ap.add_argument("--capture-before-region", action="store_true",
                    help="graph warmup + capture before torch.profiler starts (fallback for "
                         "stacks where capturing under the profiler fails)")
    ap.add_argument("--no-trace-copy", action="store_true",
                    help="do not keep torch_trace.json.gz")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()

    try:
        import torch
    except ImportError as e:
        print(f"torch_workload: PyTorch is not importable here: {e}", file=sys.stderr)
        return 2
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    if not torch.cuda.is_available():
        print("torch_workload: torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    torch.cuda.init()
    dev = torch.device("cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]

    # Allocations only: torch.empty launches no kernel.
    n = args.size
    a = torch.empty(n, n, device=dev, dtype=dtype)
    b = torch.empty(n, n, device=dev, dtype=dtype)
    bias = torch.empty(n, n, device=dev, dtype=dtype)
    copy_elems = args.copy_mib * 1024 * 1024 // 4
    xc = torch.empty(copy_elems, device=dev, dtype=torch.float32)
    gs = args.graph_size
    gx = torch.empty(gs, gs, device=dev)
    gw = torch.empty(gs, gs, device=dev)
    ss = args.sync_size
    sa = torch.empty(ss, ss, device=dev)
    sb = torch.empty(ss, ss, device=dev)

    # The one tiny op before the region: libcuda and libcudart are mapped after it.
    tiny = torch.empty(1, device=dev)
    tiny.fill_(1.0)
    torch.cuda.synchronize()

    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(args.pid_file + ".tmp", args.pid_file)
    if args.wait_file:
        deadline = time.time() + 300
        while not os.path.exists(args.wait_file):
            if time.time() > deadline:
                print(f"torch_workload: {args.wait_file} did not appear in 300 s", file=sys.stderr)
                return 2
            time.sleep(0.05)
    time.sleep(args.pre_sleep)

    probe = None
    probe_error = None
    if args.self_probe:
        try:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from uprobe_count import SelfProbe
            probe = SelfProbe()
            probe.attach()
        except Exception as e:  # the self-probe is optional: record why, carry on
            probe_error = f"{type(e).__name__}: {e}"
            probe = None

    side = torch.cuda.Stream()
    graph = torch.cuda.CUDAGraph()
    state = {}

    def graph_ops():
        return torch.relu(gx @ gw) * 2.0

    def graph_warmup_and_capture(label=True):
        # PyTorch's recipe: warm up on a side stream, then capture (on that stream, so the
        # cuBLAS workspace for it already exists).
        side.wait_stream(torch.cuda.current_stream())
        with record_function(PHASE_LABEL["C_warmup"]) if label else _null():
            with torch.cuda.stream(side):
                for _ in range(args.graph_warmup):
                    state["gy"] = graph_ops()
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
        time.sleep(0.005)
        with record_function(PHASE_LABEL["C_capture"]) if label else _null():
            with torch.cuda.graph(graph, stream=side):
                state["gy"] = graph_ops()
            torch.cuda.synchronize()
        time.sleep(0.005)

    if args.capture_before_region:
        gx.normal_()
        gw.normal_()
        torch.cuda.synchronize()
        graph_warmup_and_capture(label=False)

    sync_wait_s = 0.0
    sync_calls = 0
    t_region0 = time.time()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                 record_shapes=False, with_stack=False, profile_memory=False) as prof:
        with record_function(PHASE_LABEL["warmup"]):
            for t in (a, b, bias, gx, gw, sa, sb):
                t.normal_()
            xc.fill_(0.5)
            torch.add(torch.relu(a @ b), bias)
            torch.cuda.synchronize()
        time.sleep(0.005)

        with record_function(PHASE_LABEL["A"]):
            for _ in range(args.iters):
                c = a @ b
                c = torch.relu(c)
                c = c + bias
            torch.cuda.synchronize()
        time.sleep(0.005)

        with record_function(PHASE_LABEL["B"]):
            host_copy = xc.cpu()  # cudaMemcpyAsync DtoH (pageable) + stream sync
            torch.cuda.synchronize()
        time.sleep(0.005)

        if not args.capture_before_region:
            graph_warmup_and_capture()

        with record_function(PHASE_LABEL["C_replay"]):
            for _ in range(args.graph_replays):
                graph.replay()
            torch.cuda.synchronize()
        time.sleep(0.005)

        with record_function(PHASE_LABEL["D"]):
            for _ in range(args.sync_iters):
                _ = sa @ sb
                t0 = time.perf_counter()
                torch.cuda.synchronize()
                sync_wait_s += time.perf_counter() - t0
                sync_calls += 1
    t_region1 = time.time()

    probe_counts = None
    if probe is not None:
        probe_counts = probe.read()
        probe_error = "; ".join(probe.errors) or None
        probe.close()
    assert host_copy.numel() == copy_elems

    # Chrome trace first (categories, correlation ids, copy bytes), prof.events() second.
    sources = {}
    tmpdir = tempfile.mkdtemp(prefix="gpucheck-")
    trace_path = os.path.join(tmpdir, "trace.json")
    try:
        prof.export_chrome_trace(trace_path)
        with open(trace_path) as f:
            trace = json.load(f)
        sources["chrome_trace"] = summarize(records_from_chrome_trace(trace), args.graph_replays)
        if not args.no_trace_copy:
            with open(trace_path, "rb") as src, \
                    gzip.open(os.path.join(args.out, "torch_trace.json.gz"), "wb") as dst:
                shutil.copyfileobj(src, dst)
    except Exception as e:
        sources["chrome_trace"] = {"error": f"{type(e).__name__}: {e}"}
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    try:
        recs = records_from_function_events(prof.events(), DeviceType.CUDA)
        sources["events"] = summarize(recs, args.graph_replays)
    except Exception as e:
        sources["events"] = {"error": f"{type(e).__name__}: {e}"}

    chosen = "chrome_trace"
    if "error" in sources["chrome_trace"] or not sources["chrome_trace"]["device_kernels_total"]:
        chosen = "events"
    summary = sources[chosen]

    # Launches torch.profiler cannot see: with --capture-before-region, the graph's warmup and
    # capture (kernels per graph x (warmup + 1), assuming each warmup runs the graph's kernels).
    outside_region = 0
    if args.capture_before_region and "error" not in summary:
        outside_region = summary["graph"]["kernels_per_graph"] * (args.graph_warmup + 1)

    props = torch.cuda.get_device_properties(0)
    result = {
        "schema": SCHEMA,
        "pid": os.getpid(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "device": props.name,
        "cuda_module_loading": os.environ.get("CUDA_MODULE_LOADING"),
        "wall_s": round(time.time() - t_start, 3),
        "region_s": round(t_region1 - t_region0, 3),
        "ground_truth": {
            "iters": args.iters,
            "matmul_size": args.size,
            "dtype": args.dtype,
            "copy_bytes": copy_elems * 4,
            "graph_size": gs,
            "graph_warmup": args.graph_warmup,
            "graph_replays": args.graph_replays,
            "graph_captured_in_region": not args.capture_before_region,
            "sync_iters": args.sync_iters,
            "sync_size": ss,
            "sync_calls_phase_d": sync_calls,
            "sync_wait_ms_phase_d": round(sync_wait_s * 1e3, 3),
            "pre_region_launches_max": 1,
            "launches_outside_region": outside_region,
            "pre_sleep_s": args.pre_sleep,
        },
        "summary_source": chosen,
        "summary": summary,
        "sources": sources,
        "self_probe": None if not args.self_probe else {
            "counts": probe_counts, "error": probe_error,
            "note": "calls between the end of --pre-sleep and the end of the region",
        },
    }
    with open(os.path.join(args.out, "torch.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"torch_workload: region {result['region_s']} s; "
          f"{summary.get('device_kernels_total')} device kernels "
          f"({summary.get('device_kernels_outside_graphs')} outside graphs), "
          f"summary from {chosen}; wrote {os.path.join(args.out, 'torch.json')}")
    return 0


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    sys.exit(main())
