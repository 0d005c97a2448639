"""How a metric is shown, declared as data beside its pass: the columns of the on-screen table
(a header and how a row's cell reads, with the number formats below) and the panels of the
efficiency figure it feeds. attnbench.views (the table, the plot, the html page) read these
declarations; a metric names no view.

Imports nothing beyond the standard library: importing a metric loads neither rich nor matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def fmt_bytes(n: object) -> str:
    if isinstance(n, bool) or not isinstance(n, int | float) or n != n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def fmt_count(n: object) -> str:
    """1.23e9 -> '1.23 G'."""
    if isinstance(n, bool) or not isinstance(n, int | float) or n != n:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def fmt_number(n: object, spec: str = ".4g") -> str:
    return "-" if isinstance(n, bool) or not isinstance(n, int | float) or n != n else format(n, spec)


@dataclass(frozen=True)
class Column:
    """One column of the on-screen table: a header (or a function of the rows shown that gives it),
    how a row's cell reads, and the legend line that explains its marks or its basis."""

    header: str | Callable[[list[dict]], str]
    cell: Callable[[dict], str]
    # shown only when a row has a value in this column (e.g. a backward's time), or when this is true of the rows
    needs: str | Callable[[list[dict]], bool] | None = None
    sort: str | None = None  # the column whose raw value orders the cells (the html page sorts by it)
    # what the header cannot say (a mark, a basis), under the table; a function of the rows gives
    # None where the rows show nothing to explain
    legend: str | Callable[[list[dict]], str | None] | None = None

    def title(self, rows: list[dict]) -> str:
        return self.header(rows) if callable(self.header) else self.header

    def shown(self, rows: list[dict], has_values: Callable[[list[dict], list[str]], bool]) -> bool:
        if self.needs is None:
            return True
        return self.needs(rows) if callable(self.needs) else has_values(rows, [self.needs])

    def explain(self, rows: list[dict]) -> str | None:
        return self.legend(rows) if callable(self.legend) else self.legend


@dataclass(frozen=True)
class Panel:
    """One panel of the efficiency figure: `column` against n, log-log; `band` (optional) is a
    spread column drawn as +/- band/2 around the line."""

    column: str
    label: str
    band: str | None = None
