"""The metric contract and registry: what a measurement pass is, and where each one is found.

A metric is one module of this package (or an entry point of the group `attnbench.metrics`)
holding `METRIC = Metric(...)`: its name, the CSV columns it fills and their types, its pass
(`measure(ctx) -> {column: value}`, run once per case in `order`), what the engine must know
about it (`deterministic`, `per_process`, `combine`), how `compare` judges it (a policy of
attnbench.metrics.policies) and how it is shown (attnbench.metrics.display: table columns and
figure panels), and options of its own (a plan.options.Option with target "metric").
`run --metrics`, scenario files and `compare --metrics` all take these names. Neither this
package nor its modules import torch at import time, so the command line can check names before
torch loads; a pass imports what it needs.

The contract (this module, display, policies) may import attnbench.errors and attnbench.measure
only. The passes (every other module here) may import everything up to attnbench.execute, never
judge or views: a metric declares how it is shown and judged, as data.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from attnbench.errors import AttnbenchError

ENTRY_POINT_GROUP = "attnbench.metrics"


@dataclass(frozen=True)
class Metric:
    """A measurement pass and everything the tool needs to know about it.

    measure: ctx -> {column: value}; ctx (attnbench.execute.runner.PassContext) has case, options,
    method, fn, call (one call in the case's mode), q, k, v, device, itemsize, row (what earlier
    passes and the method's formulas filled) and samples (where a pass leaves raw samples, one
    list per process, on `row.samples`, for the report's sidecar). A pass must not print.
    deterministic: the same for a fixed seed whatever else runs on the machine, so cases may run
        at once (--jobs); a metric that is not (time) refuses --jobs.
    per_process: measured again in every process of a case (--processes N); `combine(first,
        later)` then merges the first process's row with the later ones' into the case's row.
    types: the Python type of each column (float unless said), which the report reader applies.
    scopes: the scopes it measures at (empty: every scope); `scope_error` says why, for a grid
        that asks for it elsewhere.
    template_imports: modules its pass imports on first use that cost seconds: the template of a
        sweep's workers imports them once for all workers, and only when a chosen metric needs them.
    """

    name: str
    help: str
    columns: tuple[str, ...]
    measure: Callable[[Any], dict]
    order: int = 50  # passes run in ascending order (time last: the others must not disturb it)
    default: bool = True  # measured when --metrics is not given
    deterministic: bool = True
    per_process: bool = False
    combine: Callable[[Any, list], Any] | None = None
    types: dict[str, type] = field(default_factory=dict)
    column_help: dict[str, str] = field(default_factory=dict)  # what each column holds (docs/columns.md)
    scopes: tuple[str, ...] = ()
    scope_error: str = ""
    template_imports: tuple[str, ...] = ()
    compare: Any = None  # a policy of attnbench.judge.compare (Exact, Tolerance, Bootstrap), or None
    table: tuple = ()  # attnbench.metrics.display.Column, in table order
    panels: tuple = ()  # attnbench.metrics.display.Panel, one per efficiency-figure panel
    options: tuple = ()  # attnbench.plan.options.Option (target "metric"): settings of its own, which
    #                      run, sweep and scenario files take and its pass reads as ctx.options.setting(key)
    # check(cases, options): before anything runs, refuses what its pass could not do (AttnbenchError,
    # one line) and readies what it writes to (a folder)
    check: Callable[[list, Any], None] | None = None

    def column_type(self, column: str) -> type:
        return self.types.get(column, float)


_METRICS: dict[str, Metric] = {}
_loaded = False


def register_metric(metric: Metric) -> Metric:
    """Add a metric (its name must be new); returns it."""
    if metric.name in _METRICS:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    _METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    _METRICS.pop(name, None)


def _load() -> None:
    """The built-in metrics (every module of this package), then those of entry points."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "METRIC", None), Metric):
            register_metric(module.METRIC)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found = point.load()
        except Exception as exc:  # a broken plugin must say so in one line
            raise AttnbenchError(f"cannot load metric plugin {point.name!r} ({point.value}): "
                                 f"{type(exc).__name__}: {exc}; uninstall it or fix its import") from None
        found = getattr(found, "METRIC", found)
        if isinstance(found, Metric) and found.name not in _METRICS:
            register_metric(found)


def all_metrics() -> list[Metric]:
    """Every registered metric, in pass order."""
    _load()
    return sorted(_METRICS.values(), key=lambda m: (m.order, m.name))


def metric_names(comparable: bool = False) -> list[str]:
    return [m.name for m in all_metrics() if m.compare is not None or not comparable]


def default_metrics() -> tuple[str, ...]:
    return tuple(m.name for m in all_metrics() if m.default)


def get_metric(name: str) -> Metric:
    _load()
    return _METRICS[name]


def chosen(names) -> list[Metric]:
    """The metrics of these names, in pass order."""
    return sorted((get_metric(name) for name in names), key=lambda m: (m.order, m.name))


def parse_metrics(names: list[str], what: str = "--metrics", comparable: bool = False) -> tuple[str, ...]:
    """Validated metric names, in the order given, each once."""
    valid = metric_names(comparable)
    unknown = [m for m in names if m not in valid]
    if unknown or not names:
        raise AttnbenchError(f"{what} takes names from {','.join(valid)}, not {','.join(names) or 'nothing'}")
    return tuple(dict.fromkeys(names))


def combine_processes(first, later: list, names=None):
    """The one merge of a case measured in several processes: `first` (every pass ran in it)
    merged with the later processes' rows by the `combine` of each per-process metric (of
    `names`, default all) that `first` has a value for."""
    for metric in all_metrics():
        if metric.per_process and (names is None or metric.name in names) and first.get(metric.columns[0]) is not None:
            first = metric.combine(first, later)
    return first


def result_columns() -> list[str]:
    """Every registered metric's columns, in pass order."""
    return [c for m in all_metrics() for c in m.columns]


def column_types() -> dict[str, type]:
    """Every registered metric's columns with their types."""
    return {c: m.column_type(c) for m in all_metrics() for c in m.columns}
