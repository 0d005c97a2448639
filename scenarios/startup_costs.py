"""What attnbench costs before it measures anything, measured as a user meets it:

- `attnbench --help` and a bad input (`run -m nosuch -n 512`): wall time of a subprocess,
  median of 5;
- the per-case price of isolation on a timed sweep, as a user meets it: `run` and `sweep` of 20
  lengths of `linear` (`-n 64,80,...,368 -p normalize=paper --metrics time --processes 1`):
  (sweep - run) / cases; a worker that measured the machine's GEMM rate itself paid it here;
- the per-case price of isolation, two ways on the same tiny grid (`--metrics flops`):
  (a) `sweep` against `run` as subprocesses: (sweep - run) / cases;
  (b) sweep overhead per case as issue 12 defines it: (wall time of the sweep - the sum of the
      cases' own time inside their workers, `case_seconds`) / cases, for the `sweep` command as a
      subprocess (its start-up included) and for the engine alone (attnbench.run_cases with
      worker processes, in this process, the template started as `sweep` starts it, before the
      cases are built: what is left of its start is included, the CLI's own start-up is not).

Usage: python scenarios/startup_costs.py [--cases 20]   (from the project root; with
PYTHONPATH=<another checkout> it measures that checkout instead, e.g. for before/after)
Writes reports/startup-costs-<time>.md.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ATTNBENCH = [sys.executable, "-m", "attnbench"]


def wall(args: list[str], repeats: int = 1) -> float:
    """Median wall-clock seconds of `attnbench ARGS` (exit status ignored: bad input is measured too)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(ATTNBENCH + args, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def case_seconds(report: Path) -> float | None:
    """Sum of the rows' case_seconds (None for a report from before that column)."""
    with report.open(newline="") as f:
        values = [row.get("case_seconds") for row in csv.DictReader(f)]
    return sum(map(float, values)) if values and all(values) else None


def engine_overhead(lengths: list[int]) -> tuple[float, float, int]:
    """(engine wall, sum of case_seconds, cases) for run_cases with worker processes, in this process."""
    from attnbench import make_cases, run_cases
    from attnbench.execute.workers import WorkerLauncher, start_template
    from attnbench.plan.case import MeasureOptions

    start_template()  # as `attnbench sweep` does, before it builds its cases
    cases = make_cases(["full", "linear"], lengths, heads=1, head_dim=16, threads=1)
    start = time.perf_counter()
    rows = run_cases(cases, MeasureOptions(metrics=("flops",)), launcher=WorkerLauncher()).rows
    return time.perf_counter() - start, sum(r["case_seconds"] for r in rows), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20, help="tiny cases in the run/sweep grid")
    args = parser.parse_args()
    lengths = [64 * (i + 1) for i in range(args.cases // 2)]
    grid = ["-m", "full,linear", "-n", ",".join(map(str, lengths)), "--heads", "1", "--head-dim", "16",
            "--metrics", "flops", "--threads", "1"]
    cases = 2 * len(lengths)
    timed = ["-m", "linear", "-n", ",".join(str(64 + 16 * i) for i in range(args.cases)), "-p", "normalize=paper",
             "--metrics", "time", "--processes", "1"]
    with tempfile.TemporaryDirectory() as folder:
        timed_run_s = wall(["run", *timed, "-o", str(Path(folder) / "timed-run.csv")])
        timed_sweep_s = wall(["sweep", *timed, "-o", str(Path(folder) / "timed-sweep.csv")])
        run_s = wall(["run", *grid, "-o", str(Path(folder) / "run.csv")])
        sweep_s = wall(["sweep", *grid, "-o", str(Path(folder) / "sweep.csv")])
        inside = case_seconds(Path(folder) / "sweep.csv")
    lines = [f"# Start-up costs ({time.strftime('%Y-%m-%d %H:%M')}, {sys.platform}, Python {sys.version.split()[0]})",
             "", "| what | seconds |", "|---|---|",
             f"| `attnbench --help` (median of 5) | {wall(['--help'], 5):.2f} |",
             f"| `attnbench run -m nosuch -n 512` (median of 5) | {wall(['run', '-m', 'nosuch', '-n', '512'], 5):.2f} "
             "|",
             f"| `run` of {args.cases} lengths of linear, `--metrics time --processes 1` | {timed_run_s:.2f} |",
             f"| `sweep` of the same {args.cases} timed cases | {timed_sweep_s:.2f} |",
             f"| isolation per timed case: (sweep - run) / cases | {(timed_sweep_s - timed_run_s) / args.cases:.2f} |",
             f"| `run` of {cases} tiny cases, `--metrics flops` | {run_s:.2f} |",
             f"| `sweep` of the same {cases} cases (a worker per case) | {sweep_s:.2f} |",
             f"| isolation per case: (sweep - run) / cases | {(sweep_s - run_s) / cases:.2f} |"]
    if inside is not None:
        engine_s, engine_inside, engine_cases = engine_overhead(lengths)
        lines += [f"| sum of the sweep's case_seconds (inside the workers) | {inside:.2f} |",
                  f"| sweep overhead per case, the command: (sweep - case_seconds) / cases | "
                  f"{(sweep_s - inside) / cases:.2f} |",
                  f"| sweep overhead per case, the engine: (run_cases - case_seconds) / cases | "
                  f"{(engine_s - engine_inside) / engine_cases:.2f} |"]
    out = Path("reports") / f"startup-costs-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
