"""Unit tests of the GPU check's pure parts, on synthetic inputs (no torch, no GPU, no root).

    python3 -m unittest discover -s tests/gpu -p 'test_*.py'

A synthetic torch.profiler Chrome trace shaped like torch_workload.py's (phases, runtime and
driver launch calls, graph replays sharing their launch's correlation id, a DtoH copy, syncs)
goes through `torch_workload.summarize`; a synthetic profiler report shaped like
docs/report-schema.md's `cuda` section goes with it through `compare.compare`.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
import torch_workload as tw  # noqa: E402

GEMM = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas"
GEMM_SMALL = "nvjet_tst_64x8_64x16_4x1_v_bz_TNT"
GEMM_BIG = "ampere_sgemm_128x64_tn"
RELU = ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::"
        "launch_clamp_scalar(at::TensorIteratorBase&, c10::Scalar, c10::Scalar, "
        "at::native::detail::ClampLimits)::{lambda()#1}::operator()() const::{lambda()#14}::"
        "operator()() const::{lambda(c10::BFloat16)#1}, std::array<char*, 2ul> >"
        "(int, at::native::(anonymous namespace)::launch_clamp_scalar(at::TensorIteratorBase&, "
        "c10::Scalar, c10::Scalar, at::native::detail::ClampLimits)::{lambda()#1}::operator()() "
        "const::{lambda()#14}::operator()() const::{lambda(c10::BFloat16)#1}, "
        "std::array<char*, 2ul>)")
ADD = ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>, "
       "std::array<char*, 3ul> >(int, at::native::CUDAFunctor_add<c10::BFloat16>, "
       "std::array<char*, 3ul>)")
MUL = ("void at::native::vectorized_elementwise_kernel<4, at::native::AUnaryFunctor<float, float, "
       "float, at::native::binary_internal::MulFunctor<float> >, std::array<char*, 2ul> >(int, "
       "at::native::AUnaryFunctor<float, float, float, at::native::binary_internal::MulFunctor<float> >, "
       "std::array<char*, 2ul>)")
NORMAL = ("void at::native::(anonymous namespace)::distribution_elementwise_grid_stride_kernel<float, 4, "
          "at::native::templates::cuda::normal_and_transform<float, float>(at::TensorIteratorBase&, "
          "at::CUDAGeneratorImpl*, at::native::templates::cuda::normal_kernel<at::CUDAGeneratorImpl*>"
          "(at::TensorBase const&, double, double, at::CUDAGeneratorImpl*)::{lambda(float)#1})::"
          "{lambda(curandStatePhilox4_32_10*)#2}>(long, at::PhiloxCudaState, float)")
FILL = ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, "
        "std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)")

N, R, M, COPY = 500, 100, 40, 64 * 1024 * 1024


class TraceBuilder:
    def __init__(self):
        self.events = []
        self.ts = 1000.0
        self.corr = 0

    def x(self, cat, name, ts, dur, **args):
        self.events.append({"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur,
                            "pid": 1, "tid": 1, "args": args})

    def launch(self, api, kernels, execute=True):
        """One host call (runtime or driver) and the kernels it ran (same correlation)."""
        self.corr += 1
        cat = "cuda_runtime" if api.startswith("cuda") else "cuda_driver"
        self.x(cat, api, self.ts, 4.0, correlation=self.corr)
        if execute:
            for i, k in enumerate(kernels):
                self.x("kernel", k, self.ts + 10 + i * 5, 3.0, correlation=self.corr)
        self.ts += 20

    def phase(self, name, body):
        start = self.ts
        body()
        self.x("user_annotation", tw.PHASE_LABEL[name], start - 1, self.ts - start + 2)
        self.ts += 100


def workload_trace(graph_kernels=True):
    b = TraceBuilder()

    def warmup():
        for _ in range(7):
            b.launch("cudaLaunchKernel", [NORMAL])
        b.launch("cudaLaunchKernel", [FILL])
        b.launch("cuLaunchKernelEx", [GEMM])
        b.launch("cudaLaunchKernel", [RELU])
        b.launch("cudaLaunchKernel", [ADD])
        b.launch("cudaDeviceSynchronize", [])

    def phase_a():
        for _ in range(N):
            b.launch("cuLaunchKernelEx", [GEMM])
            b.launch("cudaLaunchKernel", [RELU])
            b.launch("cudaLaunchKernel", [ADD])
        b.launch("cudaDeviceSynchronize", [])

    def phase_b():
        b.corr += 1
        b.x("cuda_runtime", "cudaMemcpyAsync", b.ts, 5.0, correlation=b.corr)
        b.x("gpu_memcpy", "Memcpy DtoH (Device -> Pageable)", b.ts + 10, 3000.0,
            correlation=b.corr, bytes=COPY)
        b.ts += 3100
        b.launch("cudaStreamSynchronize", [])

    def c_warmup():
        for _ in range(3):
            b.launch("cuLaunchKernel", [GEMM_SMALL])
            b.launch("cudaLaunchKernel", [RELU])
            b.launch("cudaLaunchKernel", [MUL])

    def c_capture():
        b.launch("cuLaunchKernel", [GEMM_SMALL], execute=False)
        b.launch("cudaLaunchKernel", [RELU], execute=False)
        b.launch("cudaLaunchKernel", [MUL], execute=False)

    def c_replay():
        for _ in range(R):
            b.launch("cudaGraphLaunch", [GEMM_SMALL, RELU, MUL] if graph_kernels else [])

    def phase_d():
        for _ in range(M):
            b.launch("cuLaunchKernel", [GEMM_BIG])
            b.corr += 1
            b.x("cuda_runtime", "cudaDeviceSynchronize", b.ts, 2700.0, correlation=b.corr)
            b.ts += 2800

    for name, body in [("warmup", warmup), ("A", phase_a), ("B", phase_b),
                       ("C_warmup", c_warmup), ("C_capture", c_capture),
                       ("C_replay", c_replay), ("D", phase_d)]:
        b.phase(name, body)
    return {"traceEvents": b.events}


TOTAL_KERNELS = 11 + 3 * N + 9 + 3 * R + M
OUTSIDE = TOTAL_KERNELS - 3 * R


def torch_json(summary, **gt):
    truth = {"iters": N, "copy_bytes": COPY, "graph_replays": R, "graph_warmup": 3,
             "graph_captured_in_region": True, "sync_iters": M, "sync_calls_phase_d": M,
             "sync_wait_ms_phase_d": 108.0, "pre_region_launches_max": 1,
             "launches_outside_region": 0}
    truth.update(gt)
    return {"schema": tw.SCHEMA, "torch_version": "2.9.0", "cuda_version": "13.0",
            "device": "NVIDIA H100 80GB HBM3", "summary_source": "chrome_trace",
            "summary": summary, "ground_truth": truth, "self_probe": None}


def kernel(name, launches, mangled=None, truncated=False):
    return {"name": name, "mangled": mangled, "launches": launches, "per_s": 1.0,
            "last_grid": [1, 1, 1], "last_block": [128, 1, 1], "shared_mem": 0,
            "truncated_name": truncated}


def profiler_json(total=None, graph_launches=R, wait_ms=110.5, dtoh=COPY, kernels=None):
    if total is None:
        total = OUTSIDE + 3 + 1  # + captured launches + the pre-region fill
    if kernels is None:
        # The profiler's demangler writes `>>`, torch's `> >`: equal after normalisation.
        kernels = [kernel(GEMM, N + 1), kernel(RELU.replace("> >", ">>"), N + 1 + 3 + 1),
                   kernel(ADD.replace("> >", ">>"), N + 1), kernel(NORMAL, 7),
                   kernel(GEMM_SMALL, 4), kernel(MUL.replace("> >", ">>"), 4),
                   kernel(GEMM_BIG, M), kernel(FILL.replace("> >", ">>"), 2)]
    return {
        "schema": "profiler.report/v1", "profiler_version": "0.1.0", "duration_s": 12.0,
        "end_reason": "target-exited",
        "cuda": {
            "libraries": [{"pid": 1, "path": "/usr/local/nvidia/lib64/libcuda.so.580.95.05",
                           "kind": "driver", "probes": 51},
                          {"pid": 1, "path": "/x/nvidia/cu13/lib/libcudart.so.13",
                           "kind": "runtime", "probes": 12}],
            "launch_latency": "entry-only", "events_lost": 0, "calls_unfinished": 0,
            "apis": [{"api": "cuLaunchKernel", "calls": 100, "errors": 0, "timed": False,
                      "total_ms": None, "mean_us": None, "p50_us": None, "p90_us": None,
                      "p99_us": None, "max_us": None}],
            "launches": {"total": total, "per_s": 100.0, "graph_launches": graph_launches,
                         "runtime_launches": 2 * N + 20, "runtime_launches_without_driver": 0,
                         "unnamed": 0, "kernels": kernels,
                         "other": {"kernels": 0, "launches": 0}},
            "sync": {"calls": M + 5, "wait_ms": wait_ms, "threads": []},
            "copies": [{"direction": "dtoh", "calls": 1, "bytes": dtoh, "bytes_per_s": 1.0}],
            "memory": {}, "streams": [], "gpu_busy_is_estimate": True,
        },
    }


class Summarize(unittest.TestCase):
    def test_chrome_trace_counts(self):
        s = tw.summarize(tw.records_from_chrome_trace(workload_trace()), R)
        self.assertEqual(s["device_kernels_total"], TOTAL_KERNELS)
        self.assertEqual(s["device_kernels_in_graphs"], 3 * R)
        self.assertEqual(s["device_kernels_outside_graphs"], OUTSIDE)
        self.assertEqual(s["device_kernels_outside_graphs_by_window"], OUTSIDE)
        self.assertEqual(s["graph"]["kernels_per_graph"], 3)
        self.assertEqual(s["graph"]["kernels_per_graph_source"], "correlation")
        self.assertEqual(s["host_graph_launch_calls"], R)
        self.assertEqual(s["copies"]["dtoh"], {"calls": 1, "bytes": COPY, "bytes_known": True})
        self.assertEqual(s["phases"]["A"]["device_kernels"], 3 * N)
        self.assertEqual(s["phases"]["C_capture"].get("device_kernels", 0), 0)
        self.assertEqual(s["phases"]["C_capture"]["runtime_launch_calls"], 2)
        self.assertEqual(s["phases"]["C_replay"]["device_kernels"], 3 * R)
        self.assertEqual(s["phases"]["D"]["sync_calls"], M)
        self.assertEqual(s["kernels"][0]["name"], RELU)  # warmup + A + C_warmup + replays
        self.assertEqual(s["kernels"][0]["count"], 1 + N + 3 + R)
        self.assertEqual(s["kernels"][0]["outside_graphs"], 1 + N + 3)
        self.assertEqual(set(s["phase_windows_found"]), set(tw.PHASES))
        self.assertAlmostEqual(s["host_api_stats"]["cudaDeviceSynchronize"]["p50_us"], 2700.0)

    def test_without_correlation_uses_the_replay_window(self):
        recs = tw.records_from_chrome_trace(workload_trace())
        for r in recs:
            r["corr"] = None
        s = tw.summarize(recs, R)
        self.assertEqual(s["graph"]["kernels_per_graph_source"], "replay-window")
        self.assertEqual(s["graph"]["kernels_per_graph"], 3)
        self.assertEqual(s["device_kernels_outside_graphs"], OUTSIDE)

    def test_no_graph_kernels_reported(self):
        s = tw.summarize(tw.records_from_chrome_trace(workload_trace(graph_kernels=False)), R)
        self.assertEqual(s["graph"]["kernels_per_graph"], 0)
        self.assertEqual(s["device_kernels_outside_graphs"], OUTSIDE)

    def test_api_names(self):
        self.assertEqual(tw.base_api_name("cudaLaunchKernel_v7000"), "cudaLaunchKernel")
        self.assertEqual(tw.base_api_name("cudaGraphLaunch_ptsz"), "cudaGraphLaunch")
        self.assertEqual(tw.host_api_kind("cuLaunchKernelEx"), "driver")
        self.assertEqual(tw.host_api_kind("cudaMemcpyAsync"), "runtime")
        self.assertIsNone(tw.host_api_kind("aten::mm"))
        self.assertEqual(tw.memcpy_direction("Memcpy DtoH (Device -> Pinned)"), "dtoh")
        self.assertEqual(tw.memcpy_direction("Memcpy PtoP (Device -> Device)"), "peer")


class Names(unittest.TestCase):
    def test_normalisation(self):
        self.assertEqual(compare.norm_full("void a::b<c<int> >(int)"),
                         compare.norm_full("a::b<c<int>>(int)"))
        self.assertEqual(compare.base_name(RELU), "at::native::vectorized_elementwise_kernel")
        self.assertEqual(compare.base_name(GEMM), GEMM)
        self.assertEqual(compare.base_name(NORMAL),
                         "at::native::anon::distribution_elementwise_grid_stride_kernel")

    def test_mangled_base(self):
        m = "_ZN2at6native29vectorized_elementwise_kernelILi4ENS0_11FillFunctorIfEESt5arrayIPcLm1EEEEviT0_T1_"
        self.assertEqual(compare.mangled_base(m), "at::native::vectorized_elementwise_kernel")
        self.assertEqual(compare.mangled_base("_ZN2at6native12_GLOBAL__N_16kernelEv"),
                         "at::native::anon::kernel")
        self.assertEqual(compare.mangled_base("_Z9my_kernelPf"), "my_kernel")
        self.assertIsNone(compare.mangled_base("nvjet_x"))
        self.assertIsNone(compare.mangled_base("_ZN"))

    def test_match_levels(self):
        ks = [kernel(ADD.replace("> >", ">>"), 5)]
        self.assertEqual(compare.match_kernel(ADD, ks)[0], "exact")
        self.assertEqual(compare.match_kernel(RELU, ks)[0], "base")
        cut = kernel(RELU[:200], 5, truncated=True)
        self.assertEqual(compare.match_kernel(RELU, [cut])[0], "prefix")
        mangled_cut = kernel("_ZN2at6native29vectorized_elementwise_kernelILi4EN", 5,
                             truncated=True)
        self.assertEqual(compare.match_kernel(RELU, [mangled_cut])[0], "base")
        self.assertEqual(compare.match_kernel(GEMM_BIG, ks)[0], "none")


class Compare(unittest.TestCase):
    def summary(self):
        return tw.summarize(tw.records_from_chrome_trace(workload_trace()), R)

    def run_compare(self, prof, **gt):
        return compare.compare(prof, torch_json(self.summary(), **gt), label="synthetic")

    def test_pass(self):
        text, failures, warnings = self.run_compare(profiler_json())
        self.assertEqual(failures, [], text)
        self.assertEqual(warnings, [], text)
        self.assertIn("**Result: PASS**", text)
        self.assertIn("| kernel launches (`cuda.launches.total`) |", text)

    def test_launch_count_off_by_two_percent_fails(self):
        text, failures, _ = self.run_compare(profiler_json(total=int(OUTSIDE * 0.98)))
        self.assertTrue(any(f.startswith("kernel launches") for f in failures), failures)
        self.assertIn("**Result: FAIL**", text)

    def test_within_one_percent_passes_but_exact_accounting_warns(self):
        _, failures, warnings = self.run_compare(profiler_json(total=OUTSIDE - 1))
        self.assertEqual(failures, [])
        self.assertTrue(any("exact accounting" in w for w in warnings), warnings)

    def test_missing_top_kernel_fails(self):
        prof = profiler_json()
        prof["cuda"]["launches"]["kernels"] = [k for k in prof["cuda"]["launches"]["kernels"]
                                               if k["name"] != GEMM]
        prof["cuda"]["launches"]["other"] = {"kernels": 1, "launches": N + 1}
        _, failures, _ = self.run_compare(prof)
        self.assertTrue(any("top kernel" in f and "other: 1 kernels" in f for f in failures),
                        failures)

    def test_sync_wait_zero_fails(self):
        _, failures, _ = self.run_compare(profiler_json(wait_ms=0.0))
        self.assertTrue(any(f.startswith("sync wait") for f in failures), failures)

    def test_graph_launch_mismatch_fails(self):
        _, failures, _ = self.run_compare(profiler_json(graph_launches=R - 1))
        self.assertTrue(any(f.startswith("graph launches") for f in failures), failures)

    def test_dtoh_missing_fails(self):
        _, failures, _ = self.run_compare(profiler_json(dtoh=0))
        self.assertTrue(any(f.startswith("DtoH") for f in failures), failures)

    def test_no_cuda_section_fails(self):
        prof = profiler_json()
        prof["cuda"] = None
        _, failures, _ = self.run_compare(prof)
        self.assertEqual(len(failures), 1)

    def test_capture_before_region_counts_unseen_launches(self):
        extra = 3 * 4
        _, failures, _ = self.run_compare(profiler_json(total=OUTSIDE + extra + 1),
                                          graph_captured_in_region=False,
                                          launches_outside_region=extra)
        self.assertEqual(failures, [])

    def test_self_probe_rows(self):
        tj = torch_json(self.summary())
        tj["self_probe"] = {"counts": {"libcuda.so": {"cuLaunchKernel": OUTSIDE + 3 - 200,
                                                      "cuLaunchKernelEx": 200,
                                                      "cuGraphLaunch": R},
                                       "libcudart.so": {"cudaLaunchKernel": 2 * N + 20}},
                            "error": None}
        text, failures, warnings = compare.compare(profiler_json(), tj)
        self.assertEqual((failures, warnings), ([], []), text)
        self.assertIn("self-probe (cuLaunchKernel* uprobes)", text)

    def test_latency_rows(self):
        prof = profiler_json()
        prof["cuda"]["launch_latency"] = "timed"
        prof["cuda"]["apis"][0].update({"timed": True, "p50_us": 4.1, "p99_us": 9.0})
        text, failures, _ = self.run_compare(prof)
        self.assertEqual(failures, [])
        self.assertIn("launch latency cuLaunchKernel p50 / p99", text)

    def test_cli_writes_the_table_and_exit_codes(self):
        quiet = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(quiet), \
                contextlib.redirect_stderr(quiet):
            with open(os.path.join(d, "torch.json"), "w") as f:
                json.dump(torch_json(self.summary()), f)
            with open(os.path.join(d, "profiler.json"), "w") as f:
                json.dump(profiler_json(), f)
            self.assertEqual(compare.main([d, "--label", "t"]), 0)
            with open(os.path.join(d, "table.md")) as f:
                self.assertIn("**Result: PASS**", f.read())
            with open(os.path.join(d, "profiler.json"), "w") as f:
                json.dump(profiler_json(wait_ms=0), f)
            self.assertEqual(compare.main([d]), 1)
            os.remove(os.path.join(d, "torch.json"))
            self.assertEqual(compare.main([d]), 2)


if __name__ == "__main__":
    unittest.main()
