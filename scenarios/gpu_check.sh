#!/usr/bin/env bash
# The GPU check in one call, on a GPU machine as it comes: the `python3` on PATH (or $PYTHON) with
# the CUDA torch it already has, no network, no venv made and no torch installed. The project's
# missing dependencies come from gpu-wheels/ (scenarios/gpu_wheels.sh, run where there is network)
# and are installed with the project itself into a scratch folder put on PYTHONPATH. Every step's
# case and worker-process count and its time estimate on one H100/H200 are written beside it: the
# whole check is sized for 7 minutes, the headline figures first. Everything goes to OUTDIR, with a
# log; a step that fails is logged and the next one runs (the exit status says any failed).
# GPU_WHEELS names another folder of wheels; PYTHON another interpreter.
#
#   bash scenarios/gpu_check.sh [OUTDIR]            # default reports/gpu-check-<time>
#   bash scenarios/gpu_check.sh --dry-run [OUTDIR]  # the steps, their counts and estimates; runs nothing
#
# Read on in docs/gpu.md.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
case "${1:-}" in -*) echo "usage: bash scenarios/gpu_check.sh [--dry-run] [OUTDIR]" >&2; exit 2 ;; esac
out=${1:-$root/reports/gpu-check-$(date +%Y%m%d-%H%M%S)}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac  # OUTDIR is the caller's; the steps run from the root
cd "$root"
py=${PYTHON:-python3}
ab=("$py" -m attnbench)
SIZED_FOR_S=420  # 7 minutes on one H100/H200, start-up of the machine aside

# step NAME CASES WORKERS ESTIMATE_S -- COMMAND...: run (or, with --dry-run, list) one step.
steps=0 planned=0 failed=()
step() {
  local name=$1 cases=$2 workers=$3 estimate=$4
  shift 5
  steps=$((steps + 1)) planned=$((planned + estimate))
  local line="" word
  for word in "$@"; do  # a command line a shell (and shlex) reads back: quoted only where needed
    if [[ $word =~ ^[A-Za-z0-9_./,=:+@%-]+$ ]]; then line+="$word "; else line+="'${word//\'/\'\\\'\'}' "; fi
  done
  if [ "$dry_run" = 1 ]; then
    printf 'step %d %s: %s cases, %s worker processes, about %s s: %s\n' "$steps" "$name" "$cases" "$workers" \
      "$estimate" "${line% }"
    return 0
  fi
  echo "== step $steps $name: $cases cases, $workers worker processes, about $estimate s ($(date +%H:%M:%S))"
  echo "   ${line% }"
  local start=$SECONDS code=0
  "$@" || code=$?
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$steps" "$name" "$cases" "$estimate" "$((SECONDS - start))" "$code" \
    >>"$out/steps.tsv"
  echo "   step $steps $name: exit $code after $((SECONDS - start)) s (estimate $estimate s)"
  if [ "$code" != 0 ]; then failed+=("$name"); fi
}

setup() {
  # No pip call may reach a network: the carried wheels and the project only, no dependencies.
  export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  site=$(mktemp -d "${TMPDIR:-/tmp}/attnbench-gpu-site.XXXXXX") || return 1
  trap 'rm -rf "$site"' EXIT
  if ! "$py" -c "import torch" 2>/dev/null; then
    echo "gpu_check: $py has no torch: use the Python environment that holds your CUDA torch (PYTHON=...)"
    return 1
  fi
  local wheels=() carried=${GPU_WHEELS:-gpu-wheels}
  for wheel in "$carried"/*.whl; do
    case "$wheel" in */setuptools-*) ;; *) [ -e "$wheel" ] && wheels+=("$wheel") ;; esac
  done
  if [ "${#wheels[@]}" -gt 0 ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}" || return 1
  fi
  local build_path=$site builder="the environment's setuptools"
  # The project's build backend: setuptools 70.1 or newer builds a wheel alone (older ones need the
  # wheel package); else the carried one.
  if ! "$py" -c "import setuptools as s, sys; sys.exit(tuple(map(int, s.__version__.split('.')[:2])) < (70, 1))" \
    2>/dev/null; then
    build_path="$site/.build:$site" builder="the carried setuptools"
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site/.build" "$carried"/setuptools-*.whl \
      || { echo "gpu_check: no setuptools >= 70.1 here and none in $carried/ (scenarios/gpu_wheels.sh)"; return 1; }
  fi
  PYTHONPATH="$build_path${PYTHONPATH:+:$PYTHONPATH}" "$py" -m pip install -q --no-index --no-deps \
    --no-build-isolation --no-compile --upgrade --target "$site" "$root" || return 1
  echo "gpu_check: installed ${#wheels[@]} carried wheels and attnbench (built with $builder) into $site, offline"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  export PYTORCH_NVML_BASED_CUDA_CHECK=1  # is_available() through NVML: no CUDA context before a fork
  "$py" - <<'PY' || return 1
import importlib.util, sys
needed = {"torch": "a CUDA torch", "typer": "typer", "rich": "rich", "pandas": "pandas", "matplotlib": "matplotlib",
          "pynvml": "nvidia-ml-py", "fvcore": "fvcore", "ruptures": "ruptures", "attnbench": "attnbench"}
missing = [what for module, what in needed.items() if importlib.util.find_spec(module) is None]
if missing:
    sys.exit("gpu_check: missing " + ", ".join(missing) + ": run scenarios/gpu_wheels.sh on a machine with network "
             "and send gpu-wheels/ beside the tree")
import attnbench.cli  # noqa: F401  (an import error here is the project's, said before any CUDA step)
from importlib.metadata import version
print("gpu_check: imports " + ", ".join(f"{what} {version(what)}" for what in
      ("torch", "attnbench", "fvcore", "ruptures", "pandas", "typer", "nvidia-ml-py")))
PY
  # the CUDA tests must import here too (a missing optional package skips them, never breaks collection)
  local cuda_files
  cuda_files=$(grep -rl --include='test_*.py' "pytest.mark.cuda" tests)  # the files that hold CUDA tests
  "$py" -m pytest --collect-only -q -m cuda -p no:cacheprovider $cuda_files >"$out/collect.txt" 2>&1 \
    || { tail -n 5 "$out/collect.txt"; echo "gpu_check: the CUDA tests do not import here"; return 1; }
}

if [ "$dry_run" = 0 ]; then
  if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
    echo "gpu_check: $out already holds files: name a new folder" >&2
    exit 2
  fi
  mkdir -p "$out"
  exec > >(tee -a "$out/log") 2>&1
  echo "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) into $out with $py"
  setup || { echo "gpu_check: set-up failed: nothing was measured"; exit 1; }
  "$py" -c "import sys, torch; torch.cuda.is_available() or sys.exit(
    f'gpu_check: torch {torch.__version__} here sees no CUDA device')" || {
    echo "gpu_check: this check needs a CUDA GPU: nothing was measured"
    exit 3
  }
  "$py" -m attnbench info
fi

# The steps, headline figures first. Estimates: one H100/H200, each case a fresh worker (CUDA
# context, warm-up, the passes), FlexAttention compiled in torch.compile's default mode.
# 1. SDPA's own choice vs sdpa-flash vs FlexAttention vs Skyformer at 16k, bf16: forward, and
#    backward (the backward pass timed alone beside forward + backward). 4 methods x 2 modes.
step headline 8 8 90 -- "${ab[@]}" sweep scenarios/gpu_check.toml -m full,sdpa-flash,flex,skyformer -n 16k \
  --mode forward,backward -o "$out/headline.csv" --quiet
# 2. Peak device memory at 8k: the materialized n x n (full-explicit) against SDPA, float32 and bf16.
step memory-8k 4 4 20 -- "${ab[@]}" sweep scenarios/gpu_check.toml -m full,full-explicit -n 8k \
  --dtype float32,bfloat16 --mode forward --metrics memory,time -o "$out/memory.csv" --quiet
# 3. Under a 256 MB device-memory cap the n x n methods at 16k must be 'oom' rows, and the sweep goes on.
step oom 2 2 15 -- "${ab[@]}" sweep scenarios/gpu_check.toml -m full-explicit,sdpa-math -n 16k --dtype float32 \
  --mode forward --metrics memory --max-memory 256MB -o "$out/oom.csv" --quiet
step oom-rows 0 0 2 -- "$py" -c "import csv, sys; rows = list(csv.DictReader(open(sys.argv[1]))); \
sys.exit(0 if rows and all(r['status'] == 'oom' for r in rows) else 'not every row is oom under --max-memory 256MB')" \
  "$out/oom.csv"
# 4. A decoder's prefill (causal, 32 query heads over 8 kv heads of 128) at 4k and 16k.
step prefill 8 8 40 -- "${ab[@]}" sweep llm_prefill_gpu -m full,sdpa-flash,full-explicit,linear -n 4k,16k \
  --min-time 0.1 --max-time 0.5 -o "$out/prefill.csv" --quiet
# 5. One decode step against 8k and 128k cached keys: microsecond calls, timed as a batch of calls.
step decode 6 6 30 -- "${ab[@]}" sweep llm_decode_gpu -m full,sdpa-flash,linear -n 8k,128k --q-seq 1 \
  --min-time 0.1 --max-time 0.5 -o "$out/decode.csv" --quiet
# 6. Every built-in method runs on CUDA at 4k (FLOPs, memory, sparsity; four cases at a time, no timing).
step every-method 20 20 40 -- "${ab[@]}" sweep scenarios/gpu_check.toml -n 4k --mode forward \
  --metrics flops,memory,sparsity --jobs 4 -o "$out/every-method.csv" --quiet
# 7. The GPU's timing A/A: 2 repetitions x 2 sides x 4 cases x 2 processes, judged by compare.
step timing-aa 4 32 80 -- "$py" scenarios/timing_aa.py --device cuda --reps 2 --processes 2 --min-time 0.1 \
  --max-time 0.5 --methods full,skyformer --seq 4k,16k --out "$out/timing-aa"
# 8. The CUDA tests (pytest -m cuda).
step cuda-tests 0 0 60 -- "$py" -m pytest -m cuda -q -p no:cacheprovider --junitxml "$out/cuda-tests.xml" tests
# 9. The figures and the summary of the headline figures.
step plots 0 0 15 -- "${ab[@]}" plot "$out/prefill.csv" -o "$out" --format png
step summary 0 0 3 -- "$py" scenarios/gpu_check_summary.py "$out"

if [ "$dry_run" = 1 ]; then
  echo "$steps steps, about $planned s in all (sized for $SIZED_FOR_S s on one H100/H200)"
  exit 0
fi
echo "gpu_check: $steps steps in $SECONDS s (estimated $planned s); failed: ${failed[*]:-none}"
[ "${#failed[@]}" = 0 ]
