"""Unit tests of the GPU energy check's comparison logic on synthetic inputs (no torch, no GPU,
no root).

    python3 -m unittest discover -s tests/gpu -p 'test_*.py'

A synthetic profiler report shaped like docs/report-schema.md's `gpu`, `cpu_energy`,
`efficiency` and `cuda` sections, and a synthetic energy.json shaped like what
`energy_check.py workload` writes, go through `energy_check.compare`.
"""

import contextlib
import copy
import io
import json
import os
import stat
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import energy_check as ec  # noqa: E402

MIB = 1024 * 1024
PID = 4242
T0 = 1_800_000_000.0  # the session's start, Unix time
MONO0 = 5_000.0       # CLOCK_MONOTONIC at the session's start


def stat_(mean, lo, hi, n=90):
    return {"mean": mean, "min": lo, "max": hi, "samples": n}


def phases_doc(loop_start=5.0, loop_s=10.0, idle=3.0, own_mib=1_300.0, rows=None):
    """energy.json: setup from +0.5 s, idle, the loop at +loop_start, idle; times relative to
    the session's start."""
    marks = [("setup", 0.5, loop_start - idle), ("idle_before", loop_start - idle, loop_start),
             ("loop", loop_start, loop_start + loop_s),
             ("idle_after", loop_start + loop_s, loop_start + loop_s + idle)]
    phases = [{"name": n, "start_mono": MONO0 + a, "end_mono": MONO0 + b,
               "start_unix": T0 + a, "end_unix": T0 + b, "duration_s": b - a}
              for n, a, b in marks]
    phases[2].update(matmuls=4_000, tflops=4_000 * 2 * 8192 ** 3 / loop_s / 1e12)
    samples = []
    t = loop_start - idle
    while t < loop_start + loop_s + idle:
        ph = "idle_before" if t < loop_start else "loop" if t < loop_start + loop_s else "idle_after"
        samples.append({"mono": MONO0 + t, "unix": T0 + t, "phase": ph,
                        "own_mib": own_mib, "rows": [] if own_mib is not None else (rows or [])})
        t += 0.5
    return {"schema": ec.SCHEMA, "pid": PID,
            "config": {"idle": idle, "loop": loop_s, "size": 8192, "dtype": "bf16", "group": 4},
            "device": {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0000-aaaa"},
            "phases": phases,
            "smi": {"command": "nvidia-smi " + " ".join(ec.SMI_QUERY), "interval_s": 0.5,
                    "samples": samples, "errors": []}}


def report_doc(duration=18.0, loop_s=10.0, mem_mib=1_300.0):
    """A report whose GPU ran a 10 s loop at 650 W in an 18 s session idling at 70 W."""
    f = loop_s / duration
    idle_w, loop_w = 70.0, 650.0
    energy = idle_w * (duration - 0.2 - loop_s) + loop_w * loop_s
    covered = duration - 0.2

    def gpm(loop_level, idle_level=0.0):
        return stat_(f * loop_level + (1 - f) * idle_level, idle_level, loop_level * 1.02)

    return {
        "schema": "profiler.report/v1", "started_at_unix_s": T0, "duration_s": duration,
        "end_reason": "target-exited",
        "processes": [{"pid": PID, "role": "target", "comm": "python3", "counters": None}],
        "cuda": {"streams": [{"pid": PID, "stream": "0x0", "launches": 4_000, "syncs": 1_000,
                              "gpu_busy_estimate_ms": loop_s * 1e3 + 40}]},
        "gpu": {
            "available": True, "unavailable_reason": None, "driver_version": "550.54.15",
            "samples": int(duration / 0.2), "span_s": covered,
            "gpus": [{
                "index": 0, "uuid": "GPU-0000-aaaa", "name": "NVIDIA H100 80GB HBM3",
                "used_by_watched": True,
                "utilization_pct": stat_(f * 100, 0, 100), "memory_utilization_pct": None,
                "memory_used_peak_bytes": int(mem_mib * MIB) + 500 * MIB,
                "memory_total_bytes": 80 * 1024 * MIB,
                "power_w": stat_(idle_w + f * (loop_w - idle_w), idle_w, loop_w + 10),
                "temperature_c": stat_(45, 35, 60), "sm_clock_mhz": stat_(1900, 1700, 1980),
                "mem_clock_mhz": stat_(2619, 2619, 2619), "pcie_tx_kb_s": None,
                "pcie_rx_kb_s": None,
                "gpm": {"sm_activity_pct": gpm(99.0), "sm_occupancy_pct": gpm(18.5),
                        "tensor_activity_pct": gpm(85.0), "dram_bw_util_pct": gpm(30.0)},
                "energy": {"counter_j": energy * 1.02, "counter_covered_s": covered,
                           "counter_resets": 0, "power_integral_j": energy,
                           "power_covered_s": covered, "counter_vs_power_pct": 2.0},
                "busy_s": loop_s + 0.3, "throttled_s": 0.0, "clock_event_s": {"gpu-idle": 7.8},
            }],
            "processes": [{"pid": PID, "gpu": 0, "memory_peak_bytes": int(mem_mib * MIB),
                           "sm_util_pct": stat_(f * 100, 0, 100)}],
            "throttled_intervals": [], "throttled_intervals_dropped": 0, "notes": [],
        },
        "cpu_energy": {"available": False, "unavailable_reason": "no RAPL energy counters"},
        "efficiency": {"gpu_energy_j": energy * 1.02, "gpu_busy_s": loop_s + 0.3,
                       "gpu_busy_source": "nvml-utilization",
                       "gpu_joules_per_busy_s": energy * 1.02 / (loop_s + 0.3),
                       "carbon_g": 0.5},
    }


def run(report, phases, **th):
    text, failures, warnings = ec.compare(report, phases, th or None)
    return text, failures, warnings


def status(text, check):
    for line in text.splitlines():
        if line.startswith(f"| {check} |"):
            return line.rstrip(" |").rsplit("|", 1)[1].strip()
    raise AssertionError(f"no row {check!r} in\n{text}")


class Arithmetic(unittest.TestCase):
    def test_loop_level_from_aggregates(self):
        # 10 s at 80% in a 20 s session idling at 0: mean 40%.
        self.assertAlmostEqual(ec.loop_level(stat_(40.0, 0.0, 82.0), 0.5), 80.0)
        # An idle level of 2% is taken out first.
        self.assertAlmostEqual(ec.loop_level(stat_(41.0, 2.0, 82.0), 0.5), 80.0)
        self.assertIsNone(ec.loop_level(None, 0.5))
        self.assertIsNone(ec.loop_level(stat_(1, 0, 1), None))

    def test_loop_window(self):
        w = ec.loop_window(report_doc(duration=20.0), phases_doc(loop_start=5.0, loop_s=10.0))
        loop_s, off0, off1, f = w
        self.assertAlmostEqual(loop_s, 10.0)
        self.assertAlmostEqual(off0, 5.0)
        self.assertAlmostEqual(off1, 15.0)
        self.assertAlmostEqual(f, 0.5)
        self.assertIsNone(ec.loop_window(report_doc(), {"phases": []}))

    def test_parse_smi(self):
        text = "4242, 1300\n17, [N/A]\n\nNo running processes found\n 99 , 12\n"
        self.assertEqual(ec.parse_smi(text), [(4242, 1300.0), (17, None), (99, 12.0)])
        self.assertEqual(ec.parse_smi(""), [])

    def test_smi_memory_falls_back_to_the_only_process(self):
        p = phases_doc(own_mib=None, rows=[[777, 1_250.0]])
        mib, n, note = ec.smi_memory(p)
        self.assertEqual(mib, 1_250.0)
        self.assertEqual(n, 20)
        self.assertIn("pid namespace", note)
        p = phases_doc(own_mib=None, rows=[[777, 1.0], [778, 2.0]])
        mib, _, note = ec.smi_memory(p)
        self.assertIsNone(mib)
        self.assertIn("no nvidia-smi row", note)

    def test_select_gpu(self):
        gpu = report_doc()["gpu"]
        g, note = ec.select_gpu(gpu, PID)
        self.assertEqual((g["index"], note), (0, None))
        two = copy.deepcopy(gpu)
        two["gpus"].append(dict(two["gpus"][0], index=1, uuid="GPU-1111-bbbb",
                                used_by_watched=False))
        two["processes"] = []
        g, note = ec.select_gpu(two, PID, "1111-BBBB")
        self.assertEqual(g["index"], 1)
        self.assertIn("UUID", note)
        g, _ = ec.select_gpu(two, PID)
        self.assertEqual(g["index"], 0)  # the only one used by a watched process
        two["gpus"][0]["used_by_watched"] = False
        g, note = ec.select_gpu(two, PID)
        self.assertIsNone(g)
        self.assertIn("2 GPU(s)", note)


class Compare(unittest.TestCase):
    def test_a_good_run_passes(self):
        text, failures, warnings = run(report_doc(), phases_doc())
        self.assertEqual(failures, [], text)
        self.assertEqual(warnings, [], text)
        for check in ("session covers the loop", "GPU energy: counter vs ∫ power",
                      "SM occupancy (GPM)", "tensor activity (GPM)",
                      "per-process GPU memory vs nvidia-smi"):
            self.assertEqual(status(text, check), "PASS", check)
        self.assertEqual(status(text, "SM activity (GPM)"), "INFO")
        self.assertIn("**Result: PASS**", text)
        self.assertIn("Partial check", text)
        # 18 s session, loop 10 s: f = 0.556; the loop levels come back from the means.
        self.assertIn("loop ≈ 85.0%", text)
        self.assertIn("loop ≈ 18.5%", text)

    def test_the_timeline_decides_gpm_when_present(self):
        r = report_doc()
        # Samples every 0.2 s of an 18 s session; the loop runs from +5 s to +15 s.
        points = []
        for i in range(1, 90):
            ts = i * 0.2
            busy = 5.0 < ts <= 15.0
            points.append({"t_s": ts, "gpu": 0, "sm_occupancy_pct": 18.0 if busy else 0.0,
                           "tensor_activity_pct": 90.0 if busy else 0.0,
                           "sm_activity_pct": 99.0 if busy else 0.0,
                           "dram_bw_util_pct": 30.0 if busy else 0.0})
        r["gpu"]["timeline"] = points
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(failures, [], text)
        self.assertEqual(status(text, "tensor activity (GPM)"), "PASS")
        self.assertIn("loop 90.0%", text)
        self.assertNotIn("Partial check", text)
        # Busy while idle: the per-sample idle mean fails it.
        for p in points:
            if p["t_s"] < 4.0:
                p["tensor_activity_pct"] = 50.0
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(status(text, "tensor activity (GPM)"), "FAIL", text)

    def test_energy_counter_off_by_more_than_10_percent_fails(self):
        r = report_doc()
        e = r["gpu"]["gpus"][0]["energy"]
        e["counter_j"] = e["power_integral_j"] * 1.15
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(status(text, "GPU energy: counter vs ∫ power"), "FAIL")
        self.assertTrue(any("+15.0%" in f for f in failures), failures)
        # A looser tolerance lets it pass.
        text, failures, _ = run(r, phases_doc(), energy_tolerance=0.2)
        self.assertEqual(failures, [], text)

    def test_energy_compared_as_mean_power_over_different_spans(self):
        r = report_doc()
        e = r["gpu"]["gpus"][0]["energy"]
        # The counter missed one second (a failed reading) but its mean power agrees.
        e["counter_j"] = e["power_integral_j"] * (e["power_covered_s"] - 1) / e["power_covered_s"]
        e["counter_covered_s"] = e["power_covered_s"] - 1
        text, failures, warnings = run(r, phases_doc())
        self.assertEqual(failures, [], text)
        self.assertTrue(any("compared as mean power" in w for w in warnings), warnings)

    def test_no_energy_counter_fails(self):
        r = report_doc()
        r["gpu"]["gpus"][0]["energy"].update(counter_j=None, counter_covered_s=0.0)
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(status(text, "GPU energy: counter vs ∫ power"), "FAIL")
        self.assertTrue(any("energy counter" in f for f in failures), failures)

    def test_energy_not_covering_the_loop_fails(self):
        r = report_doc()
        r["gpu"]["gpus"][0]["energy"].update(counter_covered_s=6.0, power_covered_s=6.0)
        _, failures, _ = run(r, phases_doc())
        self.assertTrue(any("less than the 10.00 s loop" in f for f in failures), failures)

    def test_low_tensor_activity_in_the_loop_fails(self):
        r = report_doc()
        f = 10.0 / 18.0
        r["gpu"]["gpus"][0]["gpm"]["tensor_activity_pct"] = stat_(f * 20.0, 0.0, 21.0)
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(status(text, "tensor activity (GPM)"), "FAIL")
        self.assertTrue(any("< 40%" in x for x in failures), failures)

    def test_a_single_spike_is_not_a_high_loop(self):
        # Max 90% but the mean says the loop was mostly low: the inferred level decides.
        r = report_doc()
        r["gpu"]["gpus"][0]["gpm"]["tensor_activity_pct"] = stat_(3.0, 0.0, 90.0)
        text, _, _ = run(r, phases_doc())
        self.assertEqual(status(text, "tensor activity (GPM)"), "FAIL")

    def test_busy_idle_fails(self):
        r = report_doc()
        occ = r["gpu"]["gpus"][0]["gpm"]["sm_occupancy_pct"]
        occ.update(min=12.0, mean=occ["mean"] + 10.0)
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(status(text, "SM occupancy (GPM)"), "FAIL")
        self.assertTrue(any("not near zero idle" in x for x in failures), failures)

    def test_mean_above_what_the_loop_explains_warns(self):
        r = report_doc()
        occ = r["gpu"]["gpus"][0]["gpm"]["sm_occupancy_pct"]
        occ.update(mean=18.0, min=0.0, max=19.0)  # loop level would be 32% > max
        _, _, warnings = run(r, phases_doc())
        self.assertTrue(any("above the maximum" in w for w in warnings), warnings)

    def test_no_gpm_fails_with_the_reason(self):
        r = report_doc()
        r["gpu"]["gpus"][0]["gpm"] = None
        r["gpu"]["notes"] = ["GPU 0: no GPM (needs Hopper or later)"]
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(status(text, "SM occupancy (GPM)"), "FAIL")
        self.assertEqual(status(text, "tensor activity (GPM)"), "FAIL")
        self.assertEqual(status(text, "SM activity (GPM)"), "INFO")
        self.assertTrue(any("GPU 0: no GPM" in x for x in failures), failures)

    def test_memory_within_64_mib_passes_beyond_fails(self):
        text, failures, _ = run(report_doc(mem_mib=1_300.0 + 60), phases_doc(own_mib=1_300.0))
        self.assertEqual(status(text, "per-process GPU memory vs nvidia-smi"), "PASS")
        text, failures, _ = run(report_doc(mem_mib=1_300.0 + 70), phases_doc(own_mib=1_300.0))
        self.assertEqual(status(text, "per-process GPU memory vs nvidia-smi"), "FAIL")
        # 5% of a large figure is more than 64 MiB.
        text, failures, _ = run(report_doc(mem_mib=20_000.0 + 900), phases_doc(own_mib=20_000.0))
        self.assertEqual(status(text, "per-process GPU memory vs nvidia-smi"), "PASS", text)

    def test_memory_missing_from_the_report_fails(self):
        r = report_doc()
        r["gpu"]["processes"] = []
        text, failures, warnings = run(r, phases_doc())
        self.assertEqual(status(text, "per-process GPU memory vs nvidia-smi"), "FAIL")
        self.assertTrue(any("pid namespace" in x for x in failures), failures)
        # The GPU is still found: the only one used by a watched process.
        self.assertEqual(status(text, "GPU energy: counter vs ∫ power"), "PASS")

    def test_memory_from_the_only_listed_process_warns(self):
        text, failures, warnings = run(report_doc(), phases_doc(own_mib=None,
                                                                rows=[[777, 1_300.0]]))
        self.assertEqual(status(text, "per-process GPU memory vs nvidia-smi"), "PASS")
        self.assertTrue(any("never listed" in w for w in warnings), warnings)

    def test_no_gpu_fails_with_the_reason(self):
        r = report_doc()
        r["gpu"] = {"available": False,
                    "unavailable_reason": "no NVIDIA driver (libnvidia-ml.so.1 not found)"}
        text, failures, _ = run(r, phases_doc())
        self.assertEqual(failures, ["GPU metrics: no NVIDIA driver (libnvidia-ml.so.1 not found)"])
        self.assertIn("**Result: FAIL**", text)

    def test_loop_outside_the_session_fails(self):
        r = report_doc(duration=18.0)
        r["started_at_unix_s"] = T0 + 6.0  # attached after the loop began
        _, failures, _ = run(r, phases_doc())
        self.assertTrue(any("not inside" in f for f in failures), failures)

    def test_informational_rows(self):
        r = report_doc()
        r["gpu"]["gpus"][0]["busy_s"] = 4.0
        r["gpu"]["samples"] = 10
        r["gpu"]["throttled_intervals"] = [{"gpu": 0, "start_s": 7.0, "end_s": 8.0,
                                           "reasons": ["sw-power-cap"]}]
        r["gpu"]["gpus"][0]["throttled_s"] = 1.0
        text, failures, warnings = run(r, phases_doc())
        self.assertEqual(failures, [], text)
        self.assertEqual(status(text, "GPU busy (utilization × time)"), "WARN")
        self.assertEqual(status(text, "GPU samples"), "WARN")
        self.assertIn("1 interval(s) (1 in the loop): sw-power-cap", text)
        self.assertIn("loop energy (estimate)", text)
        self.assertEqual(len(warnings), 2, warnings)


class Main(unittest.TestCase):
    def test_main_writes_the_table_and_sets_the_status(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "profiler.json"), "w") as f:
                json.dump(report_doc(), f)
            with open(os.path.join(d, "energy.json"), "w") as f:
                json.dump(phases_doc(), f)
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(ec.main(["compare", d, "--label", "energy"]), 0)
            with open(os.path.join(d, "table.md")) as f:
                self.assertIn("### GPU check: energy", f.read())
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(ec.main(["compare", d, "--tensor-high", "99"]), 1)
                self.assertEqual(ec.main(["compare", os.path.join(d, "nothing")]), 2)
                self.assertEqual(ec.main([]), 2)

    def test_smi_sampler_keeps_its_own_row(self):
        with tempfile.TemporaryDirectory() as d:
            smi = os.path.join(d, "nvidia-smi")
            with open(smi, "w") as f:
                f.write("#!/bin/sh\nprintf '12, 100\\n%s, 1300\\n' \"$FAKE_PID\"\n")
            os.chmod(smi, os.stat(smi).st_mode | stat.S_IXUSR)
            os.environ["FAKE_PID"] = "4242"
            try:
                s = ec.SmiSampler(smi, 4242, 0.01, lambda: "loop")
                s.start()
                time.sleep(0.15)
                s.stop.set()
                s.join(5)
            finally:
                del os.environ["FAKE_PID"]
            self.assertGreaterEqual(len(s.samples), 2)
            self.assertEqual(s.errors, [])
            self.assertEqual({x["own_mib"] for x in s.samples}, {1300.0})
            self.assertEqual({x["phase"] for x in s.samples}, {"loop"})
            self.assertEqual(s.samples[0]["rows"], [])
            # Not listed: every row kept for the fallback.
            s = ec.SmiSampler(smi, 1, 0.01, lambda: "loop")
            os.environ["FAKE_PID"] = "99"
            try:
                s.start()
                time.sleep(0.05)
                s.stop.set()
                s.join(5)
            finally:
                del os.environ["FAKE_PID"]
            self.assertIsNone(s.samples[0]["own_mib"])
            self.assertEqual(s.samples[0]["rows"], [[12, 100.0], [99, 1300.0]])

    def test_workload_options(self):
        a = ec.parse_workload_args(["--out", "/tmp/x"])
        self.assertEqual((a.idle, a.loop, a.size, a.dtype), (3.0, 10.0, 8192, "bf16"))


if __name__ == "__main__":
    unittest.main()
