#!/usr/bin/env bash
# The test suite under another torch release, in a venv of its own: torch==VERSION from PyPI (on
# Linux x86-64 a CUDA build, several GB, which imports on a CPU machine: its CUDA tests skip), the
# project with its test extras, then pytest. pytest's summary (failures, skips and their reasons,
# the last line) goes to reports/measured/torch-MAJOR.MINOR-suite.txt.
#
#   bash scenarios/torch_suite.sh 2.6.0 [VENV]    # the declared floor (pyproject.toml)
#   bash scenarios/torch_suite.sh 2.11.0 [VENV]   # the GPU machine's torch
#
# VENV defaults to ${TMPDIR:-/tmp}/attnbench-torch-VERSION and is kept: a second run reuses it.
# Run it alone on the machine: the suite's timing tests share its cores with nothing else.
set -euo pipefail
version=${1:?usage: bash scenarios/torch_suite.sh VERSION [VENV]}
venv=${2:-${TMPDIR:-/tmp}/attnbench-torch-$version}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q "torch==$version"
"$venv/bin/pip" install -q -e "$root[dev]"
found=$("$venv/bin/python" -c "import torch; print(torch.__version__)")
minor=$(echo "$version" | cut -d. -f1,2)
report="$root/reports/measured/torch-$minor-suite.txt"
# the tree as tested (a report being rewritten under reports/ is no change to the code)
changes=$(cd "$root" && git diff --quiet HEAD -- . ':!reports' 2>/dev/null || echo '(with uncommitted changes)')
log=$(mktemp)
start=$SECONDS
set +e
(cd "$root" && "$venv/bin/python" -m pytest -q -rfEs -p no:cacheprovider) >"$log" 2>&1
code=$?
set -e
{
  echo "# bash scenarios/torch_suite.sh $version ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores)"
  echo "# torch $found, Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'),"\
    "$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo 'no git')"\
    "$changes;"\
    "pytest exit $code after $((SECONDS - start)) s"
  sed -n '/short test summary info/,$p' "$log"
  grep -q "short test summary info" "$log" || tail -n 3 "$log"
} >"$report"
rm -f "$log"
tail -n 1 "$report"
