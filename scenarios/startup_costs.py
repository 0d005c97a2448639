"""What attnbench costs before it measures anything, measured as a user meets it (subprocesses):

- `attnbench --help` and a bad input (`run -m nosuch -n 512`): wall time, median of 5;
- the per-case price of isolation: the same tiny grid (`--metrics flops`) through `run` (one
  process) and through `sweep` (a fresh worker per case), (sweep - run) / cases.

Usage: python scenarios/startup_costs.py [--cases 12]   (from the project root; with
PYTHONPATH=<another checkout> it measures that checkout instead, e.g. for before/after)
Writes reports/startup-costs-<time>.md.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12, help="tiny cases in the run/sweep grid")
    args = parser.parse_args()
    lengths = ",".join(str(64 * (i + 1)) for i in range(args.cases // 2))
    grid = ["-m", "full,linear", "-n", lengths, "--heads", "1", "--head-dim", "16", "--metrics", "flops",
            "--threads", "1"]
    with tempfile.TemporaryDirectory() as folder:
        run_s = wall(["run", *grid, "-o", str(Path(folder) / "run.csv")])
        sweep_s = wall(["sweep", *grid, "-o", str(Path(folder) / "sweep.csv")])
    cases = 2 * len(lengths.split(","))
    lines = [f"# Start-up costs ({time.strftime('%Y-%m-%d %H:%M')}, {sys.platform}, Python {sys.version.split()[0]})",
             "", "| what | seconds |", "|---|---|",
             f"| `attnbench --help` (median of 5) | {wall(['--help'], 5):.2f} |",
             f"| `attnbench run -m nosuch -n 512` (median of 5) | {wall(['run', '-m', 'nosuch', '-n', '512'], 5):.2f} "
             "|",
             f"| `run` of {cases} tiny cases, `--metrics flops` | {run_s:.2f} |",
             f"| `sweep` of the same {cases} cases (a worker per case) | {sweep_s:.2f} |",
             f"| isolation per case: (sweep - run) / cases | {(sweep_s - run_s) / cases:.2f} |"]
    out = Path("reports") / f"startup-costs-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
