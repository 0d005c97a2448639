#!/usr/bin/env bash
# What a newcomer trips on, re-tried: each point of issue 35 as a user would meet it, in this
# checkout, after `make run` and `make test` (the .venv with the test set: the capture needs the
# MiniLM weights). Writes what each command printed (trimmed) to the report.
#   bash scenarios/newcomer_walkthrough.sh [REPORT]   (default reports/measured/newcomer-35.txt)
# About 6 minutes on 2 cores. Run it alone: it times cases.
set -uo pipefail
cd "$(dirname "$0")/.."
report=${1:-reports/measured/newcomer-35.txt}
ab=${ATTNBENCH:-.venv/bin/attnbench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '\n## %s\n$ %s\n' "$1" "$2"; }
{
  echo "# bash scenarios/newcomer_walkthrough.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"

  say "3. the table explains itself (two lengths of the main job's methods)" \
      "attnbench run -m full,flex,sbm,smartbird -n 512,1024 -p density=0.01 -o $work/table.csv"
  "$ab" run -m full,flex,sbm,smartbird -n 512,1024 -p density=0.01 -o "$work/table.csv" --quiet 2>&1 \
    | sed -n '/^attnbench *$/,/^rows:/p' | sed 's/ *$//'

  say "4a. history of two runs of one commit" "attnbench history a.csv b.csv -o h.csv --plot"
  "$ab" run -m full,linear -n 256,512 --metrics time,flops -o "$work/a.csv" --quiet >/dev/null 2>&1
  "$ab" run -m full,linear -n 256,512 --metrics time,flops -o "$work/b.csv" --quiet >/dev/null 2>&1
  "$ab" history "$work/a.csv" "$work/b.csv" -o "$work/h.csv" --plot 2>&1 | sed "s|$work/||g"
  head -3 "$work/h.csv"

  say "4b. an error-only report of a capture: plot and summary" \
      "attnbench capture minilm -o minilm.safetensors; attnbench run -m '*' --inputs capture:minilm.safetensors --metrics error -o err.csv; attnbench plot err.csv; attnbench summary err.csv"
  umask 022
  "$ab" capture minilm -o "$work/minilm.safetensors" 2>&1 | tail -1 | sed "s|$work/||g"
  echo "capture file mode: $(stat -c %a "$work/minilm.safetensors") (umask $(umask))"
  "$ab" run -m '*' --inputs "capture:$work/minilm.safetensors" --metrics error -o "$work/err.csv" --quiet \
    > "$work/err.out" 2>&1
  echo "run exited $?, $(grep -c . "$work/err.csv") lines in its CSV; lines of its output mentioning 'UserWarning' or" \
       "'Flash attention': $(grep -c 'UserWarning\|Flash attention' "$work/err.out")"
  "$ab" plot "$work/err.csv" -o "$work" 2>&1 | sed "s|$work/||g"
  "$ab" summary "$work/err.csv" 2>&1 | grep -A30 "error and conditioning per method"

  say "5. SBM's default density" "attnbench list sbm; attnbench run -m sbm -n 4096"
  "$ab" list sbm 2>&1 | grep -A2 "density (float"
  "$ab" run -m sbm -n 4096 -o "$work/sbm.csv" --quiet 2>&1 | grep "ok\|^sbm: density\|^│ sbm"

  say "7. the dry run's limits, list's long choices, the summary's numbers" \
      "attnbench run -m full -n 512 --dry-run; attnbench sweep -m full -n 512 --dry-run; attnbench list smartbird; attnbench summary table.csv"
  "$ab" run -m full -n 512 --dry-run 2>&1 | tail -1
  "$ab" sweep -m full -n 512 --dry-run 2>&1 | tail -1
  "$ab" list smartbird 2>&1 | grep -A2 "^│ *│ rule\|rule ("
  "$ab" summary "$work/table.csv" 2>&1 | grep "took"
} > "$report" 2>&1
sed -i "s|$work/||g" "$report"  # the scratch folder's name says nothing
echo "wrote $report"
