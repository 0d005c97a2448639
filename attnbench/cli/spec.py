"""The option spec (attnbench.plan.options) as Typer parameters: each option's flag, type, bounds
and help (its default included), and the given values split back into scenario keys and the
command's own behaviour."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from typing import Annotated, Optional

import typer
from rich.markup import escape

from attnbench.plan.case import Case, Limits, MeasureOptions
from attnbench.plan.options import Option, all_options, by_key
from attnbench.plan.values import Choice, Flag, Grids


def _default(text: object) -> str:
    """' [default: X]' for help text (escaped: rich would eat the brackets)."""
    return f" \\[default: {text}]"


# ---- run and sweep: their options come from the option spec (attnbench.plan.options.OPTIONS) ----

SWEEP_PROCESSES = 3  # sweep's default: reports meant for compare (run's is MeasureOptions' 1, a quick look)

def _default_text(option: Option) -> str | None:
    """The default the help shows: the spec's words, else the field's default where it lives."""
    if option.default is not None:
        return option.default
    name = option.field or option.key
    where = {"grid": Case, "setup": Case, "options": MeasureOptions, "limits": Limits}.get(option.target)
    fields = {f.name: f.default for f in dataclasses.fields(where)} if where else {}
    value = fields.get(name, dataclasses.MISSING)
    return None if value in (dataclasses.MISSING, None) or isinstance(option.value, Flag) else str(value)


def _metrics_help() -> str:
    from attnbench.metrics import all_metrics

    listed = "; ".join(f"{m.name}: {m.help}" for m in all_metrics())
    defaults = ",".join(m.name for m in all_metrics() if m.default)
    return f"Passes to run, comma separated: {listed}. [default: {defaults}]"


def option_help(option: Option) -> str:
    """An option's help as --help and docs/options.md show it, its default included."""
    if option.key == "metrics":
        return _metrics_help()
    default = _default_text(option)
    return option.help + (f" [default: {default}]" if default else "")


def _parameter(option: Option) -> inspect.Parameter:
    """The Typer parameter of an option: every value defaults to None (False for a flag), so that
    only what the user gave reaches the scenario."""
    value, help_text = option.value, escape(option_help(option))
    if isinstance(value, Flag):
        annotation, default = Annotated[bool, typer.Option(*option.names, metavar="", help=help_text)], False
    elif isinstance(value, Grids):
        annotation, default = Annotated[Optional[list[str]], typer.Option(*option.names, help=help_text)], None
    else:
        kind = value.cli_type
        if isinstance(value, Choice) and not value.grid:  # a closed choice: Typer refuses anything else
            kind = enum.Enum(option.key, {c: c for c in value.choices}, type=str)
        bound = {"min": getattr(value, "low", 1)} if kind is int else {"min": 0.0} if kind is float else {}
        annotation = Annotated[Optional[kind], typer.Option(*option.names, help=help_text, **bound)]
        default = None
    return inspect.Parameter(option.key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_COMMANDS: list = []  # (function, command, leading parameters) of every command made from the spec


def _apply(fn, command: str, leading) -> None:
    params = [*leading, *(_parameter(o) for o in all_options() if o.cli and command in o.commands)]
    fn.__signature__ = inspect.Signature(params)
    fn.__annotations__ = {p.name: p.annotation for p in params}


def _with_options(command: str, leading: list[inspect.Parameter] = ()):
    """Give a command the options of the spec (the metrics' own included) as its Typer parameters."""
    def decorate(fn):
        _apply(fn, command, leading)
        _COMMANDS.append((fn, command, leading))
        return fn
    return decorate


def refresh() -> None:
    """Make the commands' options again from the spec as it is now: metrics registered from Python
    after this import (their names in --metrics' help, their own options) show too."""
    for fn, command, leading in _COMMANDS:
        _apply(fn, command, leading)


def _split(given: dict) -> tuple[dict, dict]:
    """(scenario keys, command behaviour) from the parsed parameters: values parsed by their grammar,
    each under its spec key; what was not given is left out."""
    scenario, control, spec = {}, {}, by_key()
    for key, value in given.items():
        option = spec[key]
        if value is None or value is False:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        if option.sets and option.sets[0] not in {k for k, v in given.items() if v not in (None, False)}:
            scenario[option.sets[0]] = option.sets[1]
        if option.target == "command":
            control[key] = value
        else:
            scenario[key] = option.value.parse(value, option.flag)
    return scenario, control
