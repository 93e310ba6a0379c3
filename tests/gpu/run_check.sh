#!/usr/bin/env bash
# GPU check: the profiler's CUDA figures against torch.profiler on a PyTorch workload, and its
# GPU energy and utilization figures (NVML) on a bf16 matmul loop.
#
#   bash tests/gpu/run_check.sh [PROFILER_BINARY] [OUT]
#
# PROFILER_BINARY defaults to target/release/profiler (relative to the repo root); OUT to $OUT
# when set, else ./gpu-check-out. Needs root, an NVIDIA GPU and PyTorch with CUDA. See
# docs/gpu-check.md and, for the energy mode, docs/energy.md.
#
# For each mode it runs the profiler on tests/gpu/torch_workload.py and compares with
# tests/gpu/compare.py:
#   default  profiler run (entry probes on launches; syncs, blocking copies, allocations timed)
#   latency  profiler run --cuda-launch-latency (launches timed with return probes too)
#   attach   profiler attach --pid on the already-started workload (only with
#            GPU_CHECK_MODES="default latency attach")
# and the energy mode, on tests/gpu/energy_check.py (idle, a 10 s bf16 matmul loop, idle),
# compared with `energy_check.py compare`:
#   energy   profiler run --no-http --interval 200ms: GPU energy counter vs integrated power,
#            GPM SM occupancy / tensor activity in the loop and idle, per-process GPU memory vs
#            nvidia-smi
#
# Environment: GPU_CHECK_MODES (default "default latency energy"), PYTHON (python3),
# GPU_CHECK_PACK=0 to leave OUT/<mode>/ unpacked (default: packed into OUT/<mode>.tar.gz, so
# that OUT holds few files), GPU_CHECK_SELF_PROBE=0 to skip the workload's own counting uprobes,
# GPU_CHECK_TIMEOUT (seconds per profiler run, default 300), WORKLOAD_ARGS (extra arguments
# for torch_workload.py), ENERGY_ARGS (extra arguments for `energy_check.py workload`, e.g.
# "--loop 20 --idle 5"), ENERGY_COMPARE_ARGS (for `energy_check.py compare`, e.g.
# "--energy-tolerance 0.05").
#
# Writes OUT/table.md (all modes), OUT/check.log, OUT/<mode>.tar.gz (profiler.json,
# torch.json, table.md, run.log, torch_trace.json.gz, cuda-trace.jsonl; energy: profiler.json,
# energy.json, table.md, run.log). Exit status 0 when every mode passes, 1 when a check fails,
# 2 when the machine cannot run the check.

set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
profiler="${1:-$repo/target/release/profiler}"
out="${2:-${OUT:-./gpu-check-out}}"
python="${PYTHON:-python3}"
modes="${GPU_CHECK_MODES:-default latency energy}"
pack="${GPU_CHECK_PACK:-1}"
self_probe="${GPU_CHECK_SELF_PROBE:-1}"
limit="${GPU_CHECK_TIMEOUT:-300}"
read -r -a extra_wl <<<"${WORKLOAD_ARGS:-}"
read -r -a energy_args <<<"${ENERGY_ARGS:-}"
read -r -a energy_compare_args <<<"${ENERGY_COMPARE_ARGS:-}"
energy_interval_ms=200

die() {
    echo "gpu-check: $*" >&2
    exit 2
}

[ "$(id -u)" = 0 ] || die "needs root (eBPF uprobes, tracefs)"
case "$profiler" in /*) ;; *) profiler="$PWD/$profiler" ;; esac
[ -x "$profiler" ] || die "no profiler binary at $profiler (build: cargo build --release)"
mkdir -p "$out" || die "cannot create $out"
out="$(cd "$out" && pwd)"
exec > >(tee -a "$out/check.log") 2>&1

if ! mountpoint -q /sys/kernel/tracing; then
    mount -t tracefs nodev /sys/kernel/tracing || die "cannot mount tracefs at /sys/kernel/tracing"
fi

export PATH="$PATH:/usr/local/nvidia/bin"
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
if [ -z "$gpu" ]; then
    if command -v nvidia-smi >/dev/null; then
        die "nvidia-smi sees no GPU"
    fi
    gpu="(no nvidia-smi on PATH)"
fi
torch_info="$("$python" -c 'import sys, torch
ok = torch.cuda.is_available()
print(f"torch {torch.__version__} CUDA {torch.version.cuda}" + (f" on {torch.cuda.get_device_name(0)}" if ok else ""))
sys.exit(0 if ok else 1)' 2>&1 | tail -1)" || die "PyTorch cannot use a GPU here: $torch_info"

echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) kernel $(uname -r); GPU: $gpu; $torch_info"
echo "gpu-check: $("$profiler" --version 2>&1 | head -1) ($profiler); OUT=$out"

export PYTHONUNBUFFERED=1
common=(--format json --no-http --cuda-top 40 --quiet)
wl=("$here/torch_workload.py")
[ "$self_probe" = 1 ] && wl+=(--self-probe)
wl+=("${extra_wl[@]}")

# run_mode MODE DIR [workload args...]: one profiler run; 0 when torch.json and profiler.json
# were both written.
run_mode() {
    local mode="$1" dir="$2"
    shift 2
    local flags=("${common[@]}" --output "$dir/profiler.json")
    case "$mode" in
        default) flags+=(--cuda-trace "$dir/cuda-trace.jsonl" --cuda-trace-limit 200000) ;;
        latency) flags+=(--cuda-launch-latency) ;;
    esac
    rm -f "$dir/profiler.json" "$dir/torch.json"
    if [ "$mode" = attach ]; then
        rm -f "$dir/pid" "$dir/go"
        "$python" "${wl[@]}" --out "$dir" --pid-file "$dir/pid" --wait-file "$dir/go" "$@" \
            >"$dir/workload.log" 2>&1 &
        local wpid=$! i
        for ((i = 0; i < 1200; i++)); do
            [ -s "$dir/pid" ] && break
            kill -0 "$wpid" 2>/dev/null || break
            sleep 0.1
        done
        if [ ! -s "$dir/pid" ]; then
            echo "gpu-check[$mode]: the workload did not start (see workload.log)"
            wait "$wpid"
            return 1
        fi
        timeout -k 10 "$limit" "$profiler" attach --pid "$(cat "$dir/pid")" "${flags[@]}" \
            >"$dir/run.log" 2>&1 &
        local ppid=$!
        for ((i = 0; i < 300; i++)); do
            grep -qi attached "$dir/run.log" 2>/dev/null && break
            kill -0 "$ppid" 2>/dev/null || break
            sleep 0.1
        done
        touch "$dir/go"
        wait "$wpid"
        echo "gpu-check[$mode]: workload exit $?"
        wait "$ppid"
        echo "gpu-check[$mode]: profiler exit $?"
    else
        timeout -k 10 "$limit" "$profiler" run "${flags[@]}" -- "$python" "${wl[@]}" \
            --out "$dir" "$@" >"$dir/run.log" 2>&1
        echo "gpu-check[$mode]: profiler exit $?"
    fi
    tail -n 5 "$dir/run.log" | sed "s/^/gpu-check[$mode]:   /"
    [ -s "$dir/torch.json" ] && [ -s "$dir/profiler.json" ]
}

# energy_mode DIR: the energy workload under `profiler run`, then its comparison; appends the
# table to OUT/table.md.tmp. 0 when every check passed.
energy_mode() {
    local dir="$1" rc missing=""
    rm -f "$dir/profiler.json" "$dir/energy.json"
    timeout -k 10 "$limit" "$profiler" run --no-http --format json \
        --interval "${energy_interval_ms}ms" --carbon-intensity 400 \
        --output "$dir/profiler.json" -- \
        "$python" "$here/energy_check.py" workload --out "$dir" "${energy_args[@]}" \
        >"$dir/run.log" 2>&1
    echo "gpu-check[energy]: profiler exit $?"
    grep -E "^profiler: (note|error)|^energy_check:" "$dir/run.log" | sed "s/^/gpu-check[energy]:   /"
    if [ -s "$dir/profiler.json" ] && [ -s "$dir/energy.json" ]; then
        "$python" "$here/energy_check.py" compare "$dir" --label energy \
            --interval-ms "$energy_interval_ms" "${energy_compare_args[@]}"
        rc=$?
        [ -s "$dir/table.md" ] && cat "$dir/table.md" >>"$out/table.md.tmp"
        return "$rc"
    fi
    [ -s "$dir/energy.json" ] || missing="energy.json"
    [ -s "$dir/profiler.json" ] || missing="${missing:+$missing and }profiler.json"
    echo "gpu-check[energy]: FAIL: the run wrote no $missing (see energy/run.log)"
    printf '### GPU check: energy\n\nFAIL: the run wrote no %s (see energy/run.log).\n\n' \
        "$missing" >>"$out/table.md.tmp"
    return 1
}

status=0
{
    echo "## GPU check $(date -u +%Y-%m-%d)"
    echo
    echo "GPU: $gpu; $torch_info; kernel $(uname -r); $("$profiler" --version 2>&1 | head -1)."
    echo
} >"$out/table.md.tmp"

for mode in $modes; do
    dir="$out/$mode"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "gpu-check[$mode]: running"
    if [ "$mode" = energy ]; then
        energy_mode "$dir" || status=1
        echo >>"$out/table.md.tmp"
        if [ "$pack" = 1 ]; then
            tar -czf "$out/$mode.tar.gz" -C "$out" "$mode" && rm -rf "${dir:?}"
        fi
        continue
    fi
    wargs=()
    if ! run_mode "$mode" "$dir"; then
        if [ ! -s "$dir/torch.json" ] && grep -qiE "captur|graph" "$dir/run.log" "$dir/workload.log" 2>/dev/null; then
            echo "gpu-check[$mode]: no torch.json and the log mentions graph capture: again with --capture-before-region"
            wargs=(--capture-before-region)
            mv "$dir/run.log" "$dir/run-first-try.log"
            run_mode "$mode" "$dir" "${wargs[@]}"
        fi
    fi
    if [ -s "$dir/torch.json" ] && [ -s "$dir/profiler.json" ]; then
        "$python" "$here/compare.py" "$dir" --label "$mode${wargs:+ (${wargs[*]})}"
        rc=$?
        [ "$rc" = 0 ] || status=1
        cat "$dir/table.md" >>"$out/table.md.tmp"
    else
        status=1
        missing=""
        [ -s "$dir/torch.json" ] || missing="torch.json"
        [ -s "$dir/profiler.json" ] || missing="${missing:+$missing and }profiler.json"
        echo "gpu-check[$mode]: FAIL: the run wrote no $missing (see $mode/run.log)"
        printf '### GPU check: %s\n\nFAIL: the run wrote no %s (see %s/run.log).\n\n' "$mode" \
            "$missing" "$mode" >>"$out/table.md.tmp"
    fi
    echo >>"$out/table.md.tmp"
    if [ "$pack" = 1 ]; then
        tar -czf "$out/$mode.tar.gz" -C "$out" "$mode" && rm -rf "${dir:?}"
    fi
done
mv "$out/table.md.tmp" "$out/table.md"
echo "gpu-check: $( [ "$status" = 0 ] && echo PASS || echo FAIL ); table: $out/table.md"
exit "$status"
