"""How often `attnbench compare` raises a false alarm on time, and how often it sees a real change.

An A/A experiment, as a user gates CI on time: the same grid is run twice with `attnbench run`
(BASE, then NEW; same code, same machine), and `compare` judges NEW against BASE. Repeated
`--reps` times, it gives per row the rate of confirmed regressions that are not there (false
alarms), and the rate at which a run exits 1. The power check reuses the same pairs with NEW's
samples scaled by 1.2 and 1.5: the fraction of rows confirmed slower.

Each run times every case in `--processes` processes; the same data is also judged as if fewer
processes had been run (the first k of each side), down to one, which shows what one process
cannot see. The spread between processes (slowest/fastest process median of a case, over every
run) is printed too: it is where the one-process threshold of `compare` comes from.

With `--mode ab` each pair is one `attnbench ab HEAD HEAD` job instead: the same code on both
sides, its rounds interleaved (BASE then NEW, then NEW then BASE, ...), judged the same way.

Usage: python scenarios/timing_aa.py [--mode ab] [--reps 10] [--processes 5] [--min-time 0.2] [--device cuda]
                                     [--methods full,skyformer] [--seq 4k,16k] [--out DIR]
       python scenarios/timing_aa.py --from reports/measured/timing-aa-<time>   (judge again)
Writes reports/measured/timing-aa-<time>/ (every run's report and samples) and
reports/measured/timing-aa-<time>.md. Run it on a quiet machine: nothing else measuring.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from attnbench.judge.compare import compare_reports
from attnbench.metrics.time import time_columns
from attnbench.results.report import PROCESS_COLUMN, SAMPLES_COLUMN, load, read_samples, sidecar_path
from attnbench.results.schema import Labeller

GRID = ["-m", "full,full-explicit,linear,skyformer", "-n", "1k,2k", "--metrics", "time"]  # --methods, --seq change it
SCALES = (1.2, 1.5)


def measure(folder: Path, reps: int, processes: int, min_time: float, max_time: float, device: str) -> None:
    folder.mkdir(parents=True)
    settings = f"{' '.join(GRID)} --processes {processes} --min-time {min_time} --max-time {max_time} --device {device}"
    (folder / "settings.txt").write_text(settings + "\n")
    for rep in range(reps):
        for side in ("base", "new"):
            path = folder / f"{rep:02d}-{side}.csv"
            args = [sys.executable, "-m", "attnbench", "run", *GRID, "--processes", str(processes),
                    "--min-time", str(min_time), "--max-time", str(max_time), "--device", device, "--quiet",
                    "-o", str(path)]
            started = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            print(f"rep {rep + 1}/{reps} {side}: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def measure_ab(folder: Path, reps: int, processes: int, min_time: float, max_time: float, device: str) -> None:
    """The same A/A with `attnbench ab HEAD HEAD`: the two sides' rounds interleaved in one job;
    each pair's sides are kept as NN-base.csv and NN-new.csv for the judge."""
    from attnbench.ab.interleave import write_rows
    from attnbench.results.schema import Row

    folder.mkdir(parents=True)
    (folder / "settings.txt").write_text(f"ab --processes {processes} --min-time {min_time} --max-time {max_time} "
                                         f"--device {device}\n")
    for rep in range(reps):
        target = folder / f"{rep:02d}-ab.csv"
        args = [sys.executable, "-m", "attnbench", "ab", "HEAD", "HEAD", *GRID, "--processes", str(processes),
                "--min-time", str(min_time), "--max-time", str(max_time), "--device", device, "-o", str(target)]
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode not in (0, 1) or "wrote" not in done.stdout:  # 1: a (false) regression; else an error
            raise SystemExit(done.stderr)
        both = load(target)  # the two sides, told apart by their revision column
        revisions = list(dict.fromkeys(row["revision"] for row in both.rows))
        for revision, name in zip(revisions, ("base", "new")):
            rows = [Row({**r, "revision": None}, samples=r.samples) for r in both.rows if r["revision"] == revision]
            write_rows(folder / f"{rep:02d}-{name}.csv", rows, both.columns)
        print(f"rep {rep + 1}/{reps} ab: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def derived(source: Path, target: Path, keep: int, scale: float = 1.0) -> Path:
    """A copy of a report as if only its first `keep` processes had run, times scaled by `scale`."""
    rows = load(source).rows  # typed, each with its samples
    entries = [json.loads(line) for line in sidecar_path(source).read_text().splitlines()]
    for row in rows:
        groups = [[x * scale for x in g] for g in row.samples[:keep]]
        columns = time_columns(groups, int(row["time_calls_per_sample"]), {})
        row.update({k: v for k, v in columns.items() if k in row and "flops" not in k and "peak" not in k
                    and "bandwidth" not in k})
    for entry in entries:
        pairs = [(x * scale, p) for x, p in zip(entry[SAMPLES_COLUMN], entry[PROCESS_COLUMN]) if p < keep]
        entry[SAMPLES_COLUMN], entry[PROCESS_COLUMN] = [x for x, _ in pairs], [p for _, p in pairs]
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    sidecar_path(target).write_text("".join(json.dumps(e) + "\n" for e in entries))
    return target


def judge(folder: Path, scratch: Path) -> tuple[list[str], list[dict]]:
    """Markdown lines and the verdict rows, for every process count k and scale."""
    bases = sorted(folder.glob("*-base.csv"))
    pairs = [(b, b.with_name(b.name.replace("-base", "-new"))) for b in bases]
    processes = min(len(g) for b, _ in pairs for g in read_samples(b).values())
    verdicts = []
    for k in sorted({1, min(3, processes), processes}):
        for scale in (1.0, *SCALES):
            for rep, (base, new) in enumerate(pairs):
                b = derived(base, scratch / f"b{rep}-{k}.csv", k)
                n = derived(new, scratch / f"n{rep}-{k}-{scale}.csv", k, scale)
                result = compare_reports(b, n, ["time"])
                for row in result.rows:
                    verdicts.append({"processes": k, "scale": scale, "rep": rep, "case": row.label,
                                     "state": row.states.get("time", ""), "detail": row.details.get("time", "")})
    # spread between processes: slowest / fastest process median of each case in each run, and the
    # ratio between one process of BASE and one of NEW (what a one-process compare sees)
    spreads, crossed, label = {}, [], None
    for base, new in pairs:
        medians = {}
        for path in (base, new):
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            label = label or Labeller(rows)
            for row in rows:
                spreads.setdefault(label(row), []).append(float(row["time_process_spread"]))
            medians[path] = {key: [statistics.median(g) for g in groups] for key, groups in read_samples(path).items()}
        for key, before in medians[base].items():
            crossed += [max(b / a, a / b) for a in before for b in medians[new][key]]
    return _markdown(verdicts, spreads, crossed, len(pairs), processes), verdicts


def _markdown(verdicts: list[dict], spreads: dict[str, list[float]], crossed: list[float], reps: int,
              processes: int) -> list[str]:
    lines = [f"{reps} A/A pairs, {processes} processes per case per run; grid: `attnbench run {' '.join(GRID)}`", ""]
    for k in sorted({v["processes"] for v in verdicts}):
        aa = [v for v in verdicts if v["processes"] == k and v["scale"] == 1.0]
        alarms = {rep for rep in range(reps) if any(v["state"] == "slower" for v in aa if v["rep"] == rep)}
        lines += [f"## judged with {k} process(es) per side", "",
                  f"A/A: compare exited 1 in {len(alarms)} of {reps} pairs "
                  f"({100 * (1 - len(alarms) / reps):.0f}% exit 0)", "",
                  "| case | false alarms (slower) | confirmed faster | ambiguous | "
                  + " | ".join(f"detected at {s}x" for s in SCALES) + " |",
                  "|---|---|---|---|" + "---|" * len(SCALES)]
        for case in dict.fromkeys(v["case"] for v in aa):
            mine = [v for v in aa if v["case"] == case]
            count = {s: sum(v["state"] == s for v in mine) for s in ("slower", "faster", "ambiguous")}
            power = []
            for scale in SCALES:
                scaled = [v for v in verdicts if v["processes"] == k and v["scale"] == scale and v["case"] == case]
                power.append(f"{sum(v['state'] == 'slower' for v in scaled)}/{len(scaled)}")
            lines.append(f"| {case} | {count['slower']}/{len(mine)} | {count['faster']}/{len(mine)} | "
                         f"{count['ambiguous']}/{len(mine)} | " + " | ".join(power) + " |")
        for scale in SCALES:
            scaled = [v for v in verdicts if v["processes"] == k and v["scale"] == scale]
            lines.append(f"\npower at {scale}x: {sum(v['state'] == 'slower' for v in scaled)}/{len(scaled)} rows "
                         "confirmed slower")
        lines.append("")
    every = sorted(s for values in spreads.values() for s in values)
    lines += ["## spread between processes (slowest / fastest process median, per case and run)", "",
              "| case | median | max |", "|---|---|---|"]
    lines += [f"| {case} | {statistics.median(v):.3f} | {max(v):.3f} |" for case, v in spreads.items()]
    lines += ["", f"all: median {statistics.median(every):.3f}, 90th percentile "
              f"{every[int(0.9 * (len(every) - 1))]:.3f}, max {every[-1]:.3f} over {len(every)} case-runs"]
    crossed.sort()
    lines += ["", "## one process of BASE against one process of NEW (same case, same pair of runs)", "",
              f"ratio of their medians, the larger way: median {statistics.median(crossed):.3f}, 99th percentile "
              f"{crossed[int(0.99 * (len(crossed) - 1))]:.3f}, max {crossed[-1]:.3f} over {len(crossed)} pairs; "
              "compare's one-process threshold must lie above what these show"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--max-time", type=float, default=2.0)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU's threshold (make gpu-check)")
    parser.add_argument("--mode", choices=("sequential", "ab"), default="sequential",
                        help="sequential: BASE's run, then NEW's (as a CI job of two runs); ab: attnbench ab HEAD "
                             "HEAD, the two sides' processes interleaved in one job")
    parser.add_argument("--from", dest="source", type=Path, help="judge the runs already in this folder again")
    parser.add_argument("--methods", default=GRID[1], help=f"the grid's methods (default {GRID[1]})")
    parser.add_argument("--seq", default=GRID[3], help=f"the grid's lengths (default {GRID[3]})")
    parser.add_argument("--out", type=Path, help="the folder for the runs (and OUT.md beside it); default "
                        "reports/measured/timing-aa[-ab]-<time>")
    args = parser.parse_args()
    GRID[1], GRID[3] = args.methods, args.seq
    stem = "timing-aa" if args.mode == "sequential" else "timing-aa-ab"
    folder = args.source or args.out or Path("reports/measured") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.source is None:
        (measure if args.mode == "sequential" else measure_ab)(folder, args.reps, args.processes, args.min_time,
                                                               args.max_time, args.device)
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        lines, _ = judge(folder, Path(scratch))
    settings = (folder / "settings.txt").read_text().strip()
    text = (f"# Timing A/A: false alarms and power of `attnbench compare`\n\nsettings: `{settings}`\n\n"
            + "\n".join(lines) + "\n")
    folder.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
