"""Where cases run: the launcher contract, the one that measures in this process, and the choice
of launcher for a run or sweep (checked without importing torch, so bad input fails fast).

A launcher needs `run(case, options) -> row`, `close()` and `concurrency` (how many `run` calls
may be in flight at once; each returns one row). `InProcess` is here; `WorkerLauncher`
(attnbench.execute.workers) gives every case a fresh worker process with limits, and `RayLauncher`
(attnbench.execute.ray_launcher) a Ray task.
"""

from __future__ import annotations

from typing import Protocol

from attnbench.errors import AttnbenchError
from attnbench.plan.case import Case, Limits, MeasureOptions
from attnbench.plan.values import EXECUTORS
from attnbench.results.schema import Row


class Launcher(Protocol):
    concurrency: int

    def run(self, case: Case, options: MeasureOptions) -> Row: ...

    def close(self) -> None: ...


class InProcess:
    """Measure each case in this process."""

    concurrency = 1

    def run(self, case: Case, options: MeasureOptions) -> Row:
        from attnbench.execute.runner import run_case

        return run_case(case, options)

    def close(self) -> None:
        pass


def check_launch(executor: str, jobs: int = 1, address: str | None = None) -> None:
    """The executor, --jobs and --address fit together (one-line errors otherwise)."""
    if executor not in ("in-process", *EXECUTORS):
        raise AttnbenchError(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if address and executor != "ray":
        raise AttnbenchError("--address names a Ray cluster: add --executor ray")
    if jobs > 1 and executor != "local":
        raise AttnbenchError("--jobs is for local sweeps of a grid: on Ray the cluster's resources decide how many "
                             "cases run at once")


def make_launcher(executor: str = "in-process", *, limits: Limits | None = None, jobs: int = 1,
                  address: str | None = None, processes: int = 1) -> Launcher:
    """The launcher of a run or sweep: `in-process` (attnbench run: this process, or worker
    processes without limits when each case is measured in several), `local` (a fresh worker per
    case with `limits`, `jobs` at once) or `ray` (each case a Ray task at `address`)."""
    check_launch(executor, jobs, address)
    if executor == "ray":
        from attnbench.execute.ray_launcher import RayLauncher

        return RayLauncher(limits, address)
    if executor == "in-process" and processes == 1:
        return InProcess()
    from attnbench.execute.workers import WorkerLauncher

    if executor == "in-process":  # several processes per case: workers, without a sweep's limits
        return WorkerLauncher(Limits(max_memory_bytes=None, timeout_s=None))
    return WorkerLauncher(limits, jobs=jobs)


def check_plan(plan, executor: str, *, jobs: int = 1, address: str | None = None, find_max_seq: bool = False,
               append: bool = False) -> int:
    """Every check of a run or sweep that needs no torch, in the order a user meets them (methods,
    the reference, where it runs, concurrency, the report), so bad input fails before torch loads
    and before the allocator restart; returns how many processes time each case."""
    from attnbench.methods.registry import check_names
    from attnbench.metrics import chosen
    from attnbench.plan.case import expand_methods
    from attnbench.results.report import check_target

    expand_methods(plan.methods)
    check_names([plan.options.reference])
    check_launch(executor, jobs, address)
    plan.options.check_concurrency(jobs, find_max_seq)
    check_target(plan.output, append)
    again = [m for m in chosen(plan.options.metrics) if m.per_process]
    return plan.options.processes if again and not find_max_seq else 1


def check_cases(cases: list[Case], options: MeasureOptions) -> None:
    """The chosen metrics' own checks of the cases (attnbench.metrics.Metric.check), after a setting
    of a metric that is not chosen is refused: it would change nothing."""
    from attnbench.metrics import all_metrics, chosen

    given = dict(options.settings)
    for metric in all_metrics():
        unused = [o for o in metric.options if o.key in given and metric.name not in options.metrics]
        if unused:
            raise AttnbenchError(f"{unused[0].flag} is a setting of the {metric.name} metric, which is not measured: "
                                 f"add {metric.name} to --metrics")
    for metric in chosen(options.metrics):
        if metric.check is not None:
            metric.check(cases, options)


def prepare_here(plan, executor: str, processes: int, allocator: str) -> None:
    """This process made ready to measure: the allocator policy (which may restart it once), then
    the workers' template, which imports torch while this process does too."""
    from attnbench.measure.machine import allocator as allocator_policy

    allocator_policy.apply(allocator)
    if executor == "local" or processes > 1:
        from attnbench.execute.workers import start_template

        start_template(plan.options.metrics)
