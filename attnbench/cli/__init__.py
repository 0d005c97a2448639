"""The command line: parse, call the library, render. Heavy imports happen inside commands so
that `attnbench --help` answers without loading torch. This module makes the app and registers
the commands of the modules beside it; `main` turns every user error into one line.

The command line may import every package of attnbench; nothing in attnbench imports it (but
attnbench.ab_side, which runs rounds of `sweep` in a side's own code)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

import attnbench
from attnbench.cli.ab import ab_command
from attnbench.cli.history import history_command, html_command
from attnbench.cli.measure import profile_command, run_command, scenarios_command, sweep_command, train_command
from attnbench.cli.model import capture_command, swap_command
from attnbench.cli.reports import (
    compare_command,
    info_command,
    list_command,
    plot_command,
    show_pattern_command,
    summary_command,
)
from attnbench.cli.shared import _flag
from attnbench.cli.spec import refresh
from attnbench.errors import AttnbenchError, OutputClosed

app = typer.Typer(
    help="Benchmark and profile attention implementations: FLOPs, peak memory, wall time, sparsity.",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attnbench {attnbench.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, _flag("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Benchmark and profile attention implementations: FLOPs, peak memory, wall time, sparsity.

    Example: [bold]attnbench run --method full,full-explicit --seq 1k,2k,4k[/bold]
    """


app.command("run")(run_command)
app.command("sweep")(sweep_command)
app.command("profile")(profile_command)
app.command("train")(train_command)
app.command("scenarios")(scenarios_command)
app.command("show-pattern")(show_pattern_command)
app.command("summary")(summary_command)
app.command("compare")(compare_command)
app.command("list")(list_command)
app.command("info")(info_command)
app.command("plot")(plot_command)
app.command("capture")(capture_command)
app.command("swap")(swap_command)
app.command("history")(history_command)
app.command("html")(html_command)
app.command("ab", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ab_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every user error is one line on stderr and a non-zero exit.
    `argv` (default: the command line) lets tests and scripts call the CLI in-process."""
    try:
        refresh()
        code = app(args=argv, prog_name="attnbench", standalone_mode=False)
    except TyperException as exc:  # usage errors: bad option value, unknown option or command
        if exc.format_message():  # empty when help was shown for a bare `attnbench`
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "attnbench"
            print(f"Error: {exc.format_message()} (see '{command} --help')", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OutputClosed as exc:
        sys.stdout = open(os.devnull, "w")  # nothing left to flush into the closed pipe at exit
        sys.exit(exc.exit_code)
    except AttnbenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ATTNBENCH_DEBUG"):
            raise
        print(f"Error: unexpected {type(exc).__name__}: {exc} (set ATTNBENCH_DEBUG=1 for the traceback)",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
