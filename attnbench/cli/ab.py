"""`attnbench ab`: interleaved A/B of two revisions in one job (attnbench.ab does the work)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def ab_command(
    ctx: typer.Context,
    arguments: Annotated[Optional[list[str]], typer.Argument(
        help="BASE [HEAD] [SCENARIO], then the grid as run's options (-m, -n, -p, --heads, ...). BASE and HEAD are "
             "git revisions; HEAD defaults to the working tree as it is.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="The report of both sides (a revision column). [default: reports/ab-<time>.csv]")]
    = None,
    processes: Annotated[int, typer.Option("--processes", min=1, help="Rounds: each times every case once per "
                                                                      "side, in alternating order.")] = 5,
    base_python: Annotated[Optional[str], typer.Option(
        "--base-python", help="Instead of revisions: the Python of an environment with BASE installed.")] = None,
    head_python: Annotated[Optional[str], typer.Option(
        "--head-python", help="... and the Python of the environment with HEAD installed.")] = None,
) -> None:
    """Interleaved A/B of two revisions in one job; exit 1 on a confirmed regression.

    Each revision is checked out once into its own worktree (cached by commit) and run with this
    environment's packages. The cases run interleaved: round 1 times every case in BASE, then in
    HEAD; round 2 in the opposite order; and so on, each case in a fresh worker, so drift of the
    machine falls on both sides alike; a side's rounds run in one process of its own code, which
    pays the imports and the GEMM rate once. compare then judges HEAD's time against BASE's,
    with its states and exit codes.

    Example: [bold]attnbench ab HEAD~1 HEAD -m full,linear -n 512,1k --processes 3[/bold]
    """
    from attnbench.ab.interleave import ab, split_arguments
    from attnbench.results.report import default_output
    from attnbench.views.render import comparison_lines

    revisions, grid = split_arguments([*(arguments or []), *ctx.args], revisions=not (base_python or head_python))
    target = output or default_output("ab")
    result, folder = ab(*(revisions + [None, None])[:2], grid, target, processes=processes,
                       base_python=base_python, head_python=head_python,
                       on_round=lambda index, side: print(f"round {index + 1}/{processes}: {side}", file=sys.stderr),
                       say=lambda line: print(line, file=sys.stderr))
    for line in comparison_lines(result, ("time",), markdown=False):
        typer.echo(line)
    typer.echo(f"wrote {target} (both sides) and {folder}/ (each side's rounds, verdicts.md)")
    if result.regressions:
        raise typer.Exit(1)
