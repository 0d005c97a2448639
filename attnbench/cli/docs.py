"""The reference pages generated from the code: docs/columns.md (from the schema, the metrics and
the methods) and docs/options.md (from the option spec). `python -m attnbench.cli.docs` writes them;
a test fails when the committed pages are stale."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"



def _cell(text: str) -> str:
    """Text for a markdown table cell: a '|' in it (as in |q.k|) would end the cell."""
    return str(text).replace("|", "\\|")

def _type_name(kind: type | None) -> str:
    return "by value" if kind is None else kind.__name__


def columns_page() -> str:
    from attnbench.methods.registry import get_method, list_methods
    from attnbench.metrics import all_metrics
    from attnbench.results.schema import ANALYTIC, COLUMN_HELP, CORE, ENVIRONMENT, IDENTITY, PROVENANCE, column_type

    lines = ["# Report columns", "",
             "Generated from the schema by `python -m attnbench.cli.docs`; do not edit by hand. Every row has every",
             "column, measured or failed, whichever metrics ran, in this order. Values are in the base unit the",
             "name says (bytes, ms, s, FLOPs); `type` is what `attnbench.results.report.load` reads a cell as",
             "(a blank is None; a method's parameter and own columns are typed by their value).", ""]

    def table(title: str, rows: list[tuple[str, str, str]]) -> None:
        lines.extend([f"## {title}", "", "| column | type | what it holds |", "|---|---|---|"])
        lines.extend(f"| `{name}` | {kind} | {_cell(text)} |" for name, kind, text in rows)
        lines.append("")

    identity = [("method", "str", COLUMN_HELP["method"]), ("param_<name>", "by value", COLUMN_HELP["param_<name>"])]
    identity += [(n, _type_name(column_type(n)), COLUMN_HELP[n]) for n in IDENTITY if n != "method"]
    table("Identity: what makes two rows one case", identity)
    table("Outcome and the method's formulas", [(n, _type_name(column_type(n)), COLUMN_HELP[n])
                                                for n in (*CORE, *ANALYTIC)])
    for metric in all_metrics():
        table(f"Metric `{metric.name}`", [(c, _type_name(metric.column_type(c)), metric.column_help.get(c, ""))
                                          for c in metric.columns])
    method_rows = []
    for name in list_methods():
        cls = get_method(name)
        method_rows += [(c, "by value", f"{name}: {cls.column_help.get(c, '')}") for c in cls.extra_columns]
    table("Columns a method adds", method_rows)
    table("Provenance and environment", [(n, _type_name(column_type(n)), COLUMN_HELP[n])
                                         for n in ("timestamp", *PROVENANCE, *ENVIRONMENT)])
    return "\n".join(lines)


def options_page() -> str:
    from attnbench.cli.spec import option_help
    from attnbench.plan.options import all_options

    lines = ["# run and sweep options", "",
             "Generated from the option spec (`attnbench/plan/options.py`) by `python -m attnbench.cli.docs`; do",
             "not edit by hand. `key` is the scenario file's key (TOML); options given on the command line override",
             "the file's.",
             "", "| option | scenario key | commands | what it does | a scenario value is |", "|---|---|---|---|---|"]
    for option in all_options():
        flags = ", ".join(f"`{n}`" for n in option.names) if option.cli else "-"
        key = f"`{option.key}`" if option.scenario else "-"
        text = option_help(option).replace("|", "\\|")
        kind = option.value.kind.replace("|", "\\|") if option.scenario else "-"
        lines.append(f"| {flags} | {key} | {', '.join(option.commands)} | {_cell(text)} | {_cell(kind)} |")
    return "\n".join(lines) + "\n"


PAGES = {"columns.md": columns_page, "options.md": options_page}


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    for name, render in PAGES.items():
        (DOCS / name).write_text(render())
        print(f"wrote {DOCS / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
