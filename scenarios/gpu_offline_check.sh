#!/usr/bin/env bash
# The GPU check's set-up, tried on a CPU machine as the GPU machine comes: a copy of the working
# tree without .git, gpu-wheels/ for this machine's Python beside it, and a `python3` on PATH from
# a venv that holds what the GPU machine's environment does (torch, numpy, pandas, matplotlib, rich,
# typer, nvidia-ml-py, scipy, pytest, safetensors, transformers) and nothing else. Then
# scenarios/gpu_check.sh runs with PIP_NO_INDEX=1, PIP_CONFIG_FILE=/dev/null and (where `unshare`
# can) no network at all: it must install the carried wheels and the project, and stop at its first
# CUDA step saying it needs a CUDA GPU, with no pip, network or import error before it.
#
#   bash scenarios/gpu_offline_check.sh [REPORT]   # default reports/measured/gpu-offline-check.txt
#
# Needs network for the venv and the wheels (about 2 minutes the first time; pip's cache after).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
report=${1:-$root/reports/measured/gpu-offline-check.txt}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

# The GPU machine's environment: a venv of its own, its packages and nothing of attnbench's.
"$python" -m venv "$work/gpu-env"
"$work/gpu-env/bin/pip" install -q "torch==${TORCH_VERSION:-2.13.0}" numpy pandas matplotlib rich typer nvidia-ml-py \
  scipy pytest safetensors transformers
# The working tree as it travels: tracked files (uncommitted edits included), no .git.
mkdir "$work/tree"
rev=$(cd "$root" && git stash create)
(cd "$root" && git archive "${rev:-HEAD}") | tar -x -C "$work/tree"
(cd "$work/tree" && bash scenarios/gpu_wheels.sh "$version" | grep '^gpu_wheels:')

isolate=()
if command -v unshare >/dev/null && unshare -rn true 2>/dev/null; then isolate=(unshare -rn); fi
set +e
(cd "$work/tree" && env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_NO_INDEX=1 \
  PIP_CONFIG_FILE=/dev/null PATH="$work/gpu-env/bin:$PATH" "${isolate[@]}" bash scenarios/gpu_check.sh "$work/out") \
  >"$work/output" 2>&1
code=$?
set -e
last=$(tail -n 1 "$work/output")
{
  echo "# bash scenarios/gpu_offline_check.sh ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo "# python $version venv: $("$work/gpu-env/bin/python" -c 'import torch; print("torch", torch.__version__)');" \
    "network: ${isolate[*]:-not isolated (no unshare)}; gpu_check.sh exit $code"
  cat "$work/output"
} >"$report"
pkgs=$("$work/gpu-env/bin/pip" list --format=freeze 2>/dev/null | grep -ciE '^(fvcore|ruptures|iopath|yacs|attnbench)=' || true)
if [ "$code" != 3 ] || [[ $last != *"needs a CUDA GPU"* ]] || grep -qiE "traceback|error:|no matching distribution" \
  "$work/output" || [ "$pkgs" != 0 ]; then
  echo "gpu_offline_check: FAILED (exit $code, last line: $last); see $report" >&2
  exit 1
fi
echo "gpu_offline_check: set-up passed offline and stopped at the first CUDA step; $report"
