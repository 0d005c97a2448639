"""What the commands share: flag and option types, and measuring cases into a report with a
progress bar and a table (run, sweep and swap)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from attnbench.plan.case import MeasureOptions


def _flag(*names: str, **kwargs):
    """A boolean flag: no '<bool>' beside it in the help (it takes no value)."""
    return typer.Option(*names, metavar="", **kwargs)


ParamOpt = Annotated[Optional[list[str]], typer.Option(
    "--param", "-p", help="Method parameter NAME=VALUE (repeatable).")]


def measure_and_show(cases, options: MeasureOptions, launcher, output: str | None, name: str, control: dict,
                     processes: int = 1) -> None:
    """Run the cases into the report (a default name under reports/ when none is given) with a
    progress bar, then print the table, the status and summary lines and where the rows went."""
    from attnbench.execute.engine import run_cases
    from attnbench.judge.summary import status_lines, summary_lines
    from attnbench.results.report import default_output
    from attnbench.results.schema import identity
    from attnbench.views.profile import stages_table
    from attnbench.views.render import Progress, console, rows_table

    output = output or default_output(name)
    screen = console(stderr=output == "-")
    with Progress(screen, [identity(c) for c in cases], quiet=control.get("quiet", False),
                  processes=processes) as show:
        outcome = run_cases(cases, options, launcher=launcher, output=output,
                            append=control.get("append", False), resume=control.get("resume", False),
                            find_max_seq=control.get("find_max_seq", False),
                            wait=control.get("wait", False), fsync=control.get("fsync", False),
                            on_start=show.start, on_row=show.row, on_step=show.step)
    if outcome.rows:
        screen.print(rows_table(outcome.rows))
    if outcome.stage_rows:
        screen.print(stages_table(outcome.rows, outcome.stage_rows))
    for line in status_lines(outcome.rows) + summary_lines(outcome.rows):
        screen.print(line, markup=False, highlight=False)
    if outcome.interrupted:
        screen.print(f"interrupted: {len(outcome.rows)} row(s) kept in {output}; finish with --resume -o {output}")
        raise typer.Exit(130)
    if output != "-":
        stages = f" and {len(outcome.stage_rows)} stage row(s)" if outcome.stage_rows else ""
        screen.print(f"wrote {len(outcome.rows)} row(s){stages} to {output}")
