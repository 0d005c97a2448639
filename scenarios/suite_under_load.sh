#!/usr/bin/env bash
# The test suite with a busy loop pinned beside it (CPU 0): no test may need a quiet machine.
#   bash scenarios/suite_under_load.sh [REPORT]   (default reports/measured/test-suite-under-load.txt)
# Runs what `make test` runs, with the project's .venv; the report holds pytest's summary, its
# slowest tests and the loop's CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:-reports/measured/test-suite-under-load.txt}
python=${PYTHON:-.venv/bin/python}
taskset -c 0 "$python" -c "while True: pass" &
loop=$!
trap 'kill $loop 2>/dev/null || true' EXIT
started=$(date +%s)
set +e
"$python" -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider > "$report.partial" 2>&1
status=$?
set -e
{
  echo "# bash scenarios/suite_under_load.sh: the suite beside a busy loop pinned to CPU 0"
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, the loop used $(ps -o times= -p $loop | tr -d ' ') s of CPU"
  echo "# exit $status after $(( $(date +%s) - started )) s"
  # pytest's failures (if any), its slowest tests and its summary; not its progress dots or warnings
  sed -n '/^=* FAILURES =*$/,/^=* warnings summary\|^=* slowest/p' "$report.partial" | { grep -v "warnings summary" || true; } | head -80
  sed -n '/^=* slowest/,$p' "$report.partial"
} > "$report"
rm -f "$report.partial"
tail -3 "$report"
exit $status
