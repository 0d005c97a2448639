"""Does "% measured GEMM" hold still where the time does not? The same cases, measured in three
separate `attnbench run` processes, each beside a different load on this machine (none, a busy
loop, a second benchmark's GEMMs), as a shared box has. For each case: its time and its fraction
of the GEMM yardstick in every run, and how far each moved (largest / smallest).

    python scenarios/yardstick_check.py [--out reports/measured/yardstick-35.md] [--summarise]

Writes the report (Markdown) and the three runs' CSVs beside it (yardstick-35-run{1,2,3}.csv);
--summarise writes the report again from those CSVs without measuring. Run it alone: it makes
its own load.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CASES = ["--method", "full,skyformer,sbm", "--seq", "1024,2048", "-p", "density=0.01", "--heads", "4",
         "--head-dim", "64"]
BUSY_LOOP = "while True: pass"
# a second benchmark: 2 threads of GEMMs, as another attnbench or training job would run
GEMM_JOB = "import torch\ntorch.set_num_threads(2)\na = torch.ones(1024, 1024)\nwhile True: a @ a"
# a neighbour that comes and goes (a CI job's steps, an editor's builds): busy 1.5 s, idle 1.5 s
INTERMITTENT = ("import time\nwhile True:\n    end = time.time() + 1.5\n    while time.time() < end: pass\n"
                "    time.sleep(1.5)")
LOADS = [("none", None), ("a busy loop (one core)", BUSY_LOOP), ("a second job's GEMMs (two threads)", GEMM_JOB)]
SWITCHING = [(f"a busy loop on one core, 1.5 s on and 1.5 s off (run {i})", INTERMITTENT) for i in (1, 2, 3)]


def run(index: int, load: str | None, out: Path, env: dict | None) -> Path:
    csv = out.with_name(f"{out.stem}-run{index}.csv")
    csv.unlink(missing_ok=True)
    loader = subprocess.Popen([sys.executable, "-c", load]) if load else None
    try:
        time.sleep(1.0 if load else 0.0)  # the load is running before the first case
        # another revision's code runs outside this checkout: `-m` puts the working folder first on the path
        subprocess.run([sys.executable, "-m", "attnbench", "run", *CASES, "-o", str(csv.resolve()), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, env=env, cwd=env and env["PYTHONPATH"].split(":")[0])
    finally:
        if loader:
            loader.kill()
            loader.wait()
    return csv


def code_env(folder: str) -> dict:
    """The environment that makes `python -m attnbench` import the code in `folder`: an editable
    install's finder comes before sys.path, so a sitecustomize drops it."""
    import os
    import tempfile

    site = Path(tempfile.mkdtemp())
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__name__.lower() "
        "and 'editable' not in getattr(f, '__name__', '').lower()]\n")
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{Path(folder).resolve()}"}


def _median_move(runs: list[list[dict]], fraction: bool) -> float:
    """The median over cases of largest / smallest, over the runs whose row carries no flag."""
    moves = []
    for rows in zip(*runs):
        plain = [r for r in rows if not r.get("machine_peak_flag")]
        values = [r["machine_peak_fraction"] if fraction else r["time_ms_median"] for r in plain]
        if len(values) > 1:
            moves.append(max(values) / min(values))
    return sorted(moves)[len(moves) // 2] if moves else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/measured/yardstick-35.md")
    parser.add_argument("--summarise", action="store_true", help="report the runs already on disk")
    parser.add_argument("--switching", action="store_true",
                        help="every run beside a neighbour that comes and goes, instead of none / steady / GEMMs")
    parser.add_argument("--code", help="run attnbench from this folder (another revision's checkout)")
    args = parser.parse_args()
    out = Path(args.out)
    loads = SWITCHING if args.switching else LOADS
    env = code_env(args.code) if args.code else None
    from attnbench.results.report import load
    from attnbench.results.schema import Labeller

    paths = ([out.with_name(f"{out.stem}-run{i}.csv") for i in range(1, len(LOADS) + 1)] if args.summarise else
             [run(i, code, out, env) for i, (_, code) in enumerate(loads, 1)])
    runs = [load(path).rows for path in paths]
    label = Labeller(runs[0])
    lines = [f"# The GEMM yardstick beside a changing load: `python {' '.join(sys.argv)}`", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; cases: `attnbench run {' '.join(CASES)}`, "
             "each run a separate process. Loads: " + "; ".join(f"run {i}: {name}" for i, (name, _) in
                                                                enumerate(loads, 1)) + "."
             + (f" Code: {args.code}, timed as that revision times." if args.code else ""), "",
             "| case | time ms, runs 1/2/3 | time moved | % measured GEMM, runs 1/2/3 | fraction moved | flags |",
             "|---|---|---|---|---|---|"]
    moved_time, moved_fraction = [], []
    for rows in zip(*runs):
        times = [r["time_ms_median"] for r in rows]
        fractions = [r["machine_peak_fraction"] for r in rows]
        t, f = max(times) / min(times), max(fractions) / min(fractions)
        moved_time.append(t)
        moved_fraction.append(f)
        flags = "; ".join(f"run {i}: {r['machine_peak_flag']}" for i, r in enumerate(rows, 1)
                          if r.get("machine_peak_flag"))
        lines.append(f"| {label(rows[0])} | {' / '.join(f'{x:.2f}' for x in times)} | x{t:.2f} | "
                     f"{' / '.join(f'{100 * x:.1f}' for x in fractions)} | x{f:.2f} | {flags or '-'} |")
    for other in range(1, len(loads) if not args.switching else 1):
        pairs = [(r[0], r[other]) for r in zip(*runs)]
        t = [max(a["time_ms_median"], b["time_ms_median"]) / min(a["time_ms_median"], b["time_ms_median"])
             for a, b in pairs]
        f = [max(a["machine_peak_fraction"], b["machine_peak_fraction"]) /
             min(a["machine_peak_fraction"], b["machine_peak_fraction"]) for a, b in pairs]
        lines += ["", f"Run 1 against run {other + 1} ({loads[other][0]}): the fraction moved less than the time in "
                  f"{sum(x < y for x, y in zip(f, t))} of {len(t)} cases; time moved x{min(t):.2f} to x{max(t):.2f}, "
                  f"the fraction x{min(f):.2f} to x{max(f):.2f}."]
    steadier = sum(f < t for f, t in zip(moved_fraction, moved_time))
    lines += ["", f"Over all three runs, the fraction moved less than the time in {steadier} of {len(moved_time)} "
              "cases "
              f"(median move: time x{sorted(moved_time)[len(moved_time) // 2]:.2f}, "
              f"fraction x{sorted(moved_fraction)[len(moved_fraction) // 2]:.2f}); over the runs each row shows as a "
              f"plain number (no flag): fraction x{_median_move(runs, True):.2f}, "
              f"time x{_median_move(runs, False):.2f}."]
    started = min(str(r.get("timestamp") or "") for rows in runs for r in rows)
    lines[2] = lines[2].replace(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), f"measured {started[:16]}Z")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
