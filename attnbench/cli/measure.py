"""run, sweep, profile and scenarios: measure cases (in this process, or isolated in workers, here
or on Ray) into a report, with a progress bar and a table."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Annotated, Optional

import typer
from rich.markup import escape

from attnbench.cli.shared import measure_and_show
from attnbench.cli.spec import SWEEP_PROCESSES, _split, _with_options
from attnbench.errors import AttnbenchError
from attnbench.measure.machine.allocator import DEFAULT as DEFAULT_POLICY
from attnbench.plan.case import Case


def _execute(plan, command: str, control: dict) -> None:
    """Shared by run (in this process) and sweep (isolated workers, here or on Ray): check, measure
    through the engine, render (attnbench.execute.launchers orders the checks and readies this
    process)."""
    from attnbench.execute.launchers import check_cases, check_plan, make_launcher, prepare_here
    from attnbench.views.render import dry_run_lines

    executor = control.get("executor", "local") if command in ("sweep", "train") else "in-process"
    jobs, dry_run, resume = control.get("jobs", 1), control.get("dry_run", False), control.get("resume", False)
    processes = check_plan(plan, executor, jobs=jobs, address=control.get("address"),
                           find_max_seq=control.get("find_max_seq", False),
                           append=control.get("append", False) or resume)
    if not dry_run:
        prepare_here(plan, executor, processes, control.get("allocator", DEFAULT_POLICY))
    # A Ray task checks its device on its node; a dry run lists a GPU grid anywhere.
    cases = plan.cases(devices_here=executor != "ray" and not dry_run)
    if not dry_run:
        check_cases(cases, plan.options)
    if dry_run:
        # limits hold where a case runs in a worker (sweep); run measures in this process, uncapped
        limits = plan.limits if command in ("sweep", "train") else None
        for line in dry_run_lines(cases, plan.options.metrics, processes, limits):
            typer.echo(line)
        return
    # made after the grid is checked: a Ray launcher starts a cluster, which bad input should not
    launcher = make_launcher(executor, limits=plan.limits, jobs=jobs, address=control.get("address"),
                             processes=plan.options.processes)
    measure_and_show(cases, plan.options, launcher, plan.output, plan.name, control, processes)


@_with_options("run")
def run_command(**given) -> None:
    """Measure METHODs over sequence lengths in this process: one CSV row per case and a table.

    Each case is measured in separate passes (FLOPs, peak memory, time), so they do not disturb
    each other. A failing case (out of memory, NaN, unsupported) becomes a row with its status.
    `attnbench sweep` runs the same cases, each isolated in a worker with limits.
    Without --method and --seq: full at n=1024.

    Example: [bold]attnbench run -m full,full-explicit -n 1k..4k --mode backward -o base.csv[/bold]
    """
    from attnbench.plan.scenario import scenario_from_dict

    scenario, control = _split(given)
    captured = any(str(v).startswith("capture:") for v in scenario.get("inputs", []))
    defaults = {"methods": ["full"], **({} if captured else {"seq": [Case.seq_len]})}  # a capture has its length
    plan = scenario_from_dict({"name": "run", **defaults, **scenario})
    _execute(plan, "run", control)


PROFILED = ("flops", "profile")  # a profile's stage FLOPs come from the flops pass
PROFILE_METRICS = (*PROFILED, "time")  # time: the profiled total beside the timed median


def profile_command(scenario: Optional[str] = None, **given) -> None:
    """Profile METHODs stage by stage in this process: where each call's time, FLOPs and
    allocations go among the stages the method declares (Skyformer's landmarks, kernel blocks,
    pseudo-inverse and products; SBM's memberships, edge probabilities, fastRG sampling, sparse
    attention...), and what ran outside them ('other').

    Per case, after the warm-up, a few calls run under torch.profiler (--profile-calls), and the
    one of median wall time is kept: each stage gets its own time (CPU time, or its kernels'
    device time on CUDA), share of the call, FLOPs (they sum to the flops metric's count), bytes
    allocated and top ops with their input shapes.
    The report has the case's row (every metric, the time metric's median beside the profiled
    total) and a row per stage; --trace DIR writes one Chrome/Perfetto trace per case, and
    'attnbench plot' draws the stage shares against n. Takes run's options and grids, or a
    scenario file (its metrics, with flops and profile added).

    Example: [bold]attnbench profile -m skyformer,nystromformer -n 1k..16k --trace traces/[/bold]
    """
    from attnbench.plan.scenario import load_scenario, scenario_from_dict

    overrides, control = _split(given)
    if scenario:
        plan = load_scenario(scenario, overrides, {"metrics": list(PROFILE_METRICS)})
    else:
        plan = scenario_from_dict({"name": "profile", "methods": ["full"], "seq": [Case.seq_len],
                                   "metrics": list(PROFILE_METRICS), **overrides})
    plan.options = dataclasses.replace(plan.options, metrics=tuple(dict.fromkeys([*plan.options.metrics,
                                                                                   *PROFILED])))
    _execute(plan, "profile", control)


SCENARIO_ARGUMENT = inspect.Parameter(
    "scenario", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
    annotation=Annotated[Optional[str], typer.Argument(
        help="Scenario file (TOML), or the name of a bundled one (see 'attnbench scenarios'). Omit it to give the "
        "grid as options.")])


_with_options("profile", [SCENARIO_ARGUMENT])(profile_command)


@_with_options("sweep", [SCENARIO_ARGUMENT])
def sweep_command(scenario: Optional[str] = None, **given) -> None:
    """Run a grid of cases, each in a worker process with a memory cap and a time limit.

    Out of memory, timeouts, crashed workers, NaN outputs and errors become rows with their
    status, and the sweep goes on. Every row is written the moment its case ends, so an
    interrupted sweep keeps every finished case; --resume completes it. Options given here
    override the scenario file's.

    With --jobs N, N cases run at once (no timing); with --executor ray, each case is a task on a
    Ray cluster, isolated the same way.

    Example: [bold]attnbench sweep scenarios/smartbird_fig3.toml --max-memory 4GB[/bold]
    """
    from attnbench.plan.scenario import load_scenario, scenario_from_dict

    overrides, control = _split(given)
    if scenario is None and not overrides.get("methods"):
        raise AttnbenchError("give a scenario file (see scenarios/) or the grid itself with --method and --seq")
    defaults = {"processes": SWEEP_PROCESSES}
    plan = (load_scenario(scenario, overrides, defaults) if scenario
            else scenario_from_dict({"name": "sweep", **defaults, **overrides}))
    _execute(plan, "sweep", control)


TRAIN_METRICS = ("train", "flops", "memory")  # the held-out accuracy, and one step's FLOPs and peak memory


@_with_options("train", [SCENARIO_ARGUMENT])
def train_command(scenario: Optional[str] = None, **given) -> None:
    """Train a small model with each METHOD's attention on a generated task, and score it on
    held-out examples: quality at a cost.

    The model is the LRA encoder of the founding papers' code (2 layers, width 64, 2 heads of
    32, unless --layers/--heads/--head-dim say otherwise) with the task's head. Tasks: mqar
    (Zoology's multi-query associative recall, causal), mqar-bidirectional (the same for an
    encoder: the answers are masked positions) and listops (LRA's grammar, ten classes). Each case
    trains for a budget (--steps, --examples or --train-time) with AdamW, one seeded repetition per
    --seed, in a worker with the sweep's limits; its row holds the held-out accuracy, the loss at the
    end and along the way, the time per step, one step's FLOPs and peak memory, and the budget spent.
    A method that cannot train (no backward) is an 'unsupported' row, a diverged run a 'nan' row.
    'attnbench plot' draws accuracy against training time and memory, with the Pareto front.

    Example: [bold]attnbench train -m full,linear,performer --task mqar -n 64 --pairs 8 --vocab 128 --seeds 0,1[/bold]
    """
    from attnbench.plan.scenario import load_scenario, scenario_from_dict

    overrides, control = _split(given)
    defaults = {"scope": ["model"], "mode": ["train"], "metrics": list(TRAIN_METRICS), "processes": 1}
    if scenario:
        plan = load_scenario(scenario, overrides, defaults)
    else:
        if not overrides.get("train_task"):
            raise AttnbenchError("give the task to learn: --task mqar, mqar-bidirectional or listops (or a scenario "
                                 "file, e.g. attnbench train quality_cpu)")
        plan = scenario_from_dict({"name": "train", "methods": ["full"], "seq": [Case.seq_len], **defaults,
                                   **overrides})
    _execute(plan, "train", control)


def scenarios_command() -> None:
    """List the scenarios shipped with attnbench: the name to give 'attnbench sweep' (or 'attnbench
    train' for the trained ones), what each reproduces, and its grid.

    Example: [bold]attnbench sweep skyformer_table2 -o table2.csv[/bold]
    """
    from rich.table import Table

    from attnbench.plan.scenario import bundled_scenarios
    from attnbench.views.render import console

    table = Table(title="attnbench scenarios ('attnbench sweep NAME')", title_justify="left")
    for column in ("name", "reproduces", "grid"):
        table.add_column(column)
    for name, data in bundled_scenarios():
        seq = data.get("seq") or ", ".join(f"{t.get('name')} {t.get('seq')}" for t in data.get("tasks", []))
        trained = "train_task" in data or any("train_task" in t for t in data.get("tasks", []))
        scope = "trained at model scope (attnbench train)" if trained else f"{data.get('scope', 'attention')} scope"
        grid = f"{', '.join(data.get('methods', []))}; n = {seq}; {scope}"
        table.add_row(name, escape(data.get("reproduces", "") or data.get("description", "").strip().split("\n")[0]),
                      escape(grid))
    console().print(table)
