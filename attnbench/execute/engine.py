"""The one case loop: `run` and `sweep` (and the Python API, and the benchmark scripts) all run
cases through `run_cases`, with a launcher that decides where a case runs.

The launchers are attnbench.execute.launchers':
- `InProcess` measures in this process (`attnbench run`): no isolation, no start-up cost.
- `attnbench.execute.workers.WorkerLauncher` gives every case a fresh worker process with a memory cap
  and a time limit (`attnbench sweep`); with `jobs` > 1 it runs that many at once.
- `attnbench.execute.ray_launcher.RayLauncher` runs each case as a Ray task on a cluster, under the
  same isolation, as many at once as the cluster's resources allow.
Another launcher (Slurm, say) only needs `run(case, options) -> row`, `close()` and
`concurrency` (how many `run` calls may be in flight at once; each returns one row).

With `MeasureOptions.processes` > 1 the chosen metrics that are `per_process` (time) are
measured in that many separate processes, interleaved (every case once, then every case again,
...), and a case's row is written when its last process ends (each such metric's `combine`
merges them). Running cases at once (a launcher's `concurrency` > 1) is refused when a chosen
metric is not `deterministic`: they would disturb each other's measurement.

Every row is written (and flushed) the moment it exists; a profiled case's stage rows follow it.
Resuming reads the report already on disk and runs only the cases it lacks (a failed case is a
result too, so it is not rerun).
`find_max_seq` doubles a case's length until it stops fitting, then bisects, and ends with one
'max_seq' row per method and parameter set. Ctrl-C or SIGTERM stops after closing the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterable, Iterator

from attnbench.errors import AttnbenchError
from attnbench.execute.launchers import InProcess, Launcher, make_launcher
from attnbench.execute.rows import failure_row
from attnbench.metrics import chosen, combine_processes
from attnbench.plan.case import Case, MeasureOptions
from attnbench.results.report import CsvReport
from attnbench.results.schema import Row, columns_for, stage_rows


@dataclasses.dataclass
class Outcome:
    rows: list[Row]  # one per case
    interrupted: bool
    stage_rows: list[Row] = dataclasses.field(default_factory=list)  # profiled cases' stages, as written


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


def _find_max_seq(cases: list[Case], options: MeasureOptions, launcher: Launcher,
                  keep: Callable[[dict], None]) -> None:
    """For each method/parameter/shape group: the longest sequence that runs under the limits."""
    groups: dict[Case, tuple[Case, int]] = {}  # every length of a group starts it at its shortest
    for case in cases:
        template = dataclasses.replace(case, seq_len=0)
        groups[template] = (template, min(case.seq_len, groups.get(template, (None, case.seq_len))[1]))
    for template, start in groups.values():
        failures: dict[int, str] = {}

        def fits(n: int, template: Case = template, failures: dict = failures) -> bool:
            row = launcher.run(dataclasses.replace(template, seq_len=n), options)
            keep(row)
            if row["status"] != "ok":
                failures[n] = f"{row['status']}: {row['status_detail']}"
            return row["status"] == "ok"

        good, bad = _probe_lengths(start, fits)
        detail = f"first failure at n={bad} ({failures.get(bad, '')})" if bad else "no failure up to the probe limit"
        keep(failure_row(dataclasses.replace(template, seq_len=good or 0), "max_seq",
                         f"longest n that ran: {good}; {detail}" if good else f"nothing ran; {detail}"))


def _each(cases: list[Case], options: MeasureOptions, launcher: Launcher) -> Iterator[tuple[int, Row]]:
    """(index, row) for every case: in order, or as they end when the launcher runs several at once
    (up to `launcher.concurrency` in flight). When the caller stops early (Ctrl-C), the cases not
    started are dropped and the launcher's close() stops those running."""
    if launcher.concurrency <= 1 or len(cases) <= 1:
        for index, case in enumerate(cases):
            yield index, launcher.run(case, options)
        return
    pool = ThreadPoolExecutor(max_workers=min(launcher.concurrency, len(cases)))
    try:
        futures = {pool.submit(launcher.run, case, options): index for index, case in enumerate(cases)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _interleaved(cases: list[Case], options: MeasureOptions, launcher: Launcher, keep: Callable[[Row], None],
                 step: Callable[[Row], None]) -> None:
    """Measure the per-process metrics of every case in `options.processes` separate processes,
    interleaved: every case once (every pass), then every case again (per-process metrics only),
    and so on, so that a slow period of the machine falls on all cases alike. A case's row is kept
    when its last process ends (merged by each such metric's `combine`); a case that fails in its
    first process is kept at once. `step(row)` sees each process's row before that."""
    again = [m for m in chosen(options.metrics) if m.per_process]

    first: dict[int, Row] = {}
    for index, row in _each(cases, options, launcher):
        if row["status"] == "ok":
            first[index] = row
            step(row)
        else:
            keep(row)
    later: dict[int, list[Row]] = {index: [] for index in first}
    for process in range(1, options.processes):
        only_again = dataclasses.replace(options, metrics=tuple(m.name for m in again), process_index=process)
        todo = sorted(first)
        for position, row in _each([cases[i] for i in todo], only_again, launcher):
            index = todo[position]
            later[index].append(row)
            if process < options.processes - 1:
                step(row)
            else:
                keep(combine_processes(first[index], later[index], options.metrics))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_cases(cases: Iterable[Case], options: MeasureOptions | None = None, *, launcher: Launcher | None = None,
              output: str | Path | None = None, append: bool = False, resume: bool = False,
              find_max_seq: bool = False, wait: bool = False, fsync: bool = False,
              on_start: Callable[[int], None] | None = None,
              on_row: Callable[[Row], None] | None = None, on_step: Callable[[Row], None] | None = None) -> Outcome:
    """Run cases through `launcher` into `output` (a CSV path, '-' for stdout, or None to only
    return the rows), in order, or in the order they end when the launcher runs several at once.
    The default launcher measures in this process, or, when `options.processes` > 1, in worker
    processes without limits. `on_start(total)` is called once (0 when the number is not known
    ahead: find_max_seq), `on_row(row)` as each row exists, and `on_step(row)` for each process of
    a case timed in several but its last (find_max_seq probes each length in one process)."""
    cases, options = list(cases), options or MeasureOptions()
    interleave = options.processes > 1 and any(m.per_process for m in chosen(options.metrics)) and not find_max_seq
    launcher = launcher or make_launcher(processes=options.processes)
    options.check_concurrency(launcher.concurrency, find_max_seq)
    if interleave and isinstance(launcher, InProcess):
        raise AttnbenchError("timing in several processes needs a launcher that starts them: use "
                             "attnbench.execute.workers.WorkerLauncher, or leave the launcher to run_cases")
    if resume:
        if output is None or not Path(output).is_file():
            where = f"{output} does not exist" if output else "no report was named"
            raise AttnbenchError(f"--resume needs the report to complete, and {where}; give it with -o")
        from attnbench.results.report import load

        done = load(output, say=lambda line: None).cases() if Path(output).stat().st_size else set()
        cases = [c for c in cases if c not in done]
    rows: list[Row] = []
    stages: list[Row] = []
    interrupted = False
    with contextlib.ExitStack() as cleanup:
        report = cleanup.enter_context(CsvReport(output, columns_for(cases) if cases else ["method"],
                                                 append=append or resume, wait=wait, fsync=fsync)) if output else None
        cleanup.callback(launcher.close)
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            cleanup.callback(signal.signal, signal.SIGTERM, signal.signal(signal.SIGTERM, _interrupt))

        def keep(row: Row) -> None:
            own = stage_rows(row)
            for written in (row, *own):
                if report:
                    report.write(written)
            rows.append(row)
            stages.extend(own)
            if on_row:
                on_row(row)

        if on_start:
            on_start(0 if find_max_seq else len(cases))
        try:
            if find_max_seq:
                _find_max_seq(cases, options, launcher, keep)
            elif interleave:
                _interleaved(cases, options, launcher, keep, on_step or (lambda row: None))
            else:
                for _, row in _each(cases, options, launcher):
                    keep(row)
        except KeyboardInterrupt:
            interrupted = True
    return Outcome(rows, interrupted, stages)


def run(cases: Iterable[Case], options: MeasureOptions | None = None, **kwargs):
    """Measure every case in this process and return a pandas DataFrame, one row per case and then
    the profiled cases' stage rows, as the report holds them (keyword arguments as for run_cases:
    output=..., on_row=...)."""
    import pandas as pd

    outcome = run_cases(cases, options, **kwargs)
    return pd.DataFrame([dict(row) for row in [*outcome.rows, *outcome.stage_rows]])
