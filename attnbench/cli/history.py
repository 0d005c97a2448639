"""Performance over time: `history` (series over commits with their change points) and `html`
(one self-contained report page). Thin: attnbench.judge.history and attnbench.views.html do the work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnbench.cli.shared import _flag
from attnbench.errors import AttnbenchError
from attnbench.plan.values import parse_names

ReportsArg = Annotated[list[Path], typer.Argument(help="CSV reports written by run, sweep or swap.")]


def history_command(
    reports: ReportsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The history CSV to write.")],
    metrics: Annotated[Optional[str], typer.Option(
        "--metrics", help="Metrics, comma separated (the comparable ones). [default: all of them]")] = None,
    plot: Annotated[bool, _flag("--plot", help="Also draw each series with a step, its change points marked "
                                               "(OUTPUT with .png).")] = False,
) -> None:
    """Each case's series over the reports' commits, per metric, and where a step change begins.

    Reports are joined on case identity; commits come from the rows' git_sha, in the order their
    rows ran. Reports that all come from one commit (runs of a working tree) are points of their
    own, in the order they ran. Exact metrics (FLOPs, sparsity) step at any change; the others by PELT change-point
    detection (ruptures) on the log series, against the series' own noise. Each step has its
    size (after / before) and a 95% bootstrap interval.

    Example: [bold]attnbench history reports/nightly-*.csv -o history.csv --plot[/bold]
    """
    from attnbench.judge.history import history, history_rows
    from attnbench.results.report import refuse_to_replace, write_table
    from attnbench.views.plot import plot_history

    targets = [output] + ([output.with_suffix(".png")] if plot else [])
    refuse_to_replace(targets, "choose another -o")
    series = history(reports, parse_names(metrics) if metrics else None, say=lambda line: print(line, file=sys.stderr))
    rows = history_rows(series)
    if not rows:
        raise AttnbenchError("no case has ok rows in two or more commits (or reports): nothing to follow")
    write_table(output, rows)
    for s in series:
        for step in s.steps:
            point = "report" if s.by == "report" else "commit"
            typer.echo(f"{s.label}: {s.column} steps x{step.ratio:.3g} [{step.low:.3g}, {step.high:.3g}] from {point} "
                       f"{s.commits[step.index][:12 if point == 'commit' else None]} "
                       f"({point} {step.index + 1} of {len(s.commits)})")
    stepped = sum(bool(s.steps) for s in series)
    typer.echo(f"{len(series)} series, {stepped} with a change point; wrote {output}")
    if plot:
        typer.echo(f"wrote {plot_history(series, targets[1])}")


def html_command(
    reports: ReportsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder to write index.html into.")],
    force: Annotated[bool, _flag("--force", help="Replace an existing index.html.")] = False,
) -> None:
    """One self-contained page of the reports: no server, no network, prints to PDF.

    The environment of each report, a sortable and filterable table of every row (failed rows
    with their reasons), the figures of the last report, the compare verdicts of the first report
    against the last, and the history view when the reports come from several commits.

    Example: [bold]attnbench html reports/measured/skyformer-table2.csv -o site/[/bold]
    """
    from attnbench.views.html import write_site

    typer.echo(f"wrote {write_site(reports, output, force)}")
