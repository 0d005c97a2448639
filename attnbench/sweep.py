"""Sweeps: run many cases through a launcher, every row on disk the moment it exists.

Resuming reads the report already on disk and runs only the cases it lacks (a failed case is a
result too, so it is not rerun). `find_max_seq` doubles a case's length until it stops fitting,
then bisects, and ends with one 'max_seq' row per method and parameter set.
"""

from __future__ import annotations

import csv
import dataclasses
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from attnbench.case import Case
from attnbench.errors import AttnbenchError
from attnbench.report import CsvReport, row_key
from attnbench.runner import Settings, case_columns, columns_for
from attnbench.workers import Launcher, WorkerLauncher, failure_row

NOT_FITTING = ("oom", "timeout", "crashed")


def finished_keys(path: str | Path) -> set[tuple]:
    """Keys of the cases a report on disk already holds (empty if there is none)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    with path.open(newline="") as f:
        return {row_key(row) for row in csv.DictReader(f) if row.get("status") not in (None, "", "max_seq")}


def pending(cases: Iterable[Case], done: set[tuple]) -> list[Case]:
    return [c for c in cases if row_key(case_columns(c)) not in done]


def run_sweep(cases: list[Case], settings: Settings, launcher: Launcher,
              on_row: Callable[[dict], None]) -> list[dict]:
    """Run cases in order; `on_row` (write it, show it) sees each row as soon as it exists."""
    rows = []
    for case in cases:
        row = launcher.run(case, settings)
        on_row(row)
        rows.append(row)
    return rows


def _probe_lengths(start: int, fits: Callable[[int], bool], limit: int = 2**20) -> tuple[int | None, int | None]:
    """Doubling, then bisection on multiples of 128: (longest that fits, shortest that failed)."""
    step = 128
    good, bad, n = None, None, max(step, start // step * step)
    while n <= limit:
        if fits(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    if good is None or bad is None:
        return good, bad
    while bad - good > max(step, good // 16):  # to within 1/16 of the boundary
        middle = (good + bad) // 2 // step * step
        if middle in (good, bad):
            break
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good, bad


def find_max_seq_rows(cases: list[Case], settings: Settings, launcher: Launcher,
                 on_row: Callable[[dict], None]) -> list[dict]:
    """For each method/parameter/shape group: the longest sequence that runs under the limits."""
    groups: dict[tuple, tuple[Case, int]] = {}  # every length of a group starts it at its shortest
    for case in cases:
        template = dataclasses.replace(case, seq_len=0)
        key = row_key(case_columns(template))
        groups[key] = (template, min(case.seq_len, groups.get(key, (None, case.seq_len))[1]))
    boundaries = []
    for template, start in groups.values():
        failures = {}

        def fits(n: int) -> bool:
            row = launcher.run(dataclasses.replace(template, seq_len=n), settings)
            on_row(row)
            if row["status"] != "ok":
                failures[n] = f"{row['status']}: {row['error']}"
            return row["status"] == "ok"

        good, bad = _probe_lengths(start, fits)
        detail = f"first failure at n={bad} ({failures.get(bad, '')})" if bad else "no failure up to the probe limit"
        boundary = failure_row(dataclasses.replace(template, seq_len=good or 0), "max_seq",
                               f"longest n that ran: {good}; {detail}" if good else f"nothing ran; {detail}")
        on_row(boundary)
        boundaries.append(boundary)
    return boundaries


def _label(row: dict) -> str:
    params = " ".join(f"{k[6:]}={v}" for k, v in row.items() if k.startswith("param_") and v not in (None, ""))
    return f"{row['method']} {params}".strip()


def summary_lines(rows: list[dict]) -> list[str]:
    """Counts by status, and where each method stopped fitting."""
    counts = Counter(r["status"] for r in rows)
    lines = ["rows: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(_label(row), []).append(row)
    for label, group in by_method.items():
        ok = [int(r["seq_len"]) for r in group if r["status"] == "ok"]
        failed = sorted((int(r["seq_len"]), r["status"]) for r in group if r["status"] in NOT_FITTING)
        if failed:
            n, status = failed[0]
            fit = f"largest n that ran: {max(ok)}" if ok else "nothing ran"
            lines.append(f"{label}: {fit}; {status} from n={n}")
    return lines


@dataclasses.dataclass
class Outcome:
    path: Path
    rows: list[dict]
    interrupted: bool


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_scenario(plan, cases: list[Case], *, output: str | None = None, append: bool = False,
                 resume: bool = False, find_max_seq: bool = False, launcher: Launcher | None = None,
                 on_start: Callable[[int], None] = lambda total: None,
                 on_row: Callable[[dict], None] = lambda row: None) -> Outcome:
    """Run a scenario's cases into a CSV report, isolated by `launcher` (default: worker processes).

    Ctrl-C or SIGTERM stops after closing the report: every finished row stays on disk.
    """
    path = Path(output or Path("reports") / f"{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    if resume:
        if not path.is_file():
            raise AttnbenchError(f"--resume needs the report to complete, and {path} does not exist; "
                                 "give it with -o")
        cases = pending(cases, finished_keys(path))
    settings = Settings(metrics=tuple(plan.metrics), min_time_s=plan.min_time, max_time_s=plan.max_time,
                        reference=plan.reference, repeats=plan.repeats)
    launcher = launcher or WorkerLauncher(plan.max_memory_bytes, plan.timeout_s)
    rows: list[dict] = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with CsvReport(path, columns_for(cases) if cases else ["method"], append=append or resume) as report:
            def keep(row: dict) -> None:
                report.write(row)
                rows.append(row)
                on_row(row)

            on_start(0 if find_max_seq else len(cases))  # probes: their number is not known ahead
            try:
                (find_max_seq_rows if find_max_seq else run_sweep)(cases, settings, launcher, keep)
            except KeyboardInterrupt:
                interrupted = True
    finally:
        launcher.close()
        signal.signal(signal.SIGTERM, previous)
    return Outcome(path, rows, interrupted)
