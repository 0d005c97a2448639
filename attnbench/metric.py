"""The metric contract and registry: what a measurement pass is, and where each one is found.

A metric is one module of `attnbench/metrics/` (or an entry point of the group
`attnbench.metrics`) holding `METRIC = Metric(...)`: its name, the CSV columns it fills, its pass
(`measure(ctx) -> {column: value}`, run once per case in `order`), how `compare` judges it, and
how it is shown (table columns, efficiency-plot panels). `run --metrics`, scenario files and
`compare --metrics` all take these names. This module and the metric modules import no torch at
import time, so the command line can check names before torch loads; a pass imports what it needs.

Compare policies: `Exact` (deterministic for a fixed seed: any change counts, more = slower),
`Tolerance` (a relative band with an absolute floor), `Bootstrap` (timing: a bootstrap interval
of the ratio of medians from the raw samples kept beside each report).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from attnbench.errors import AttnbenchError

ENTRY_POINT_GROUP = "attnbench.metrics"
# A pass may return raw samples under this key, one list per process that measured them (a flat
# list counts as one process): they go to the report's sidecar, where compare resamples them.
SAMPLES_KEY = "time_samples_ms"


def sample_groups(samples: object) -> list[list[float]]:
    """Raw samples as one list per process: [[...], [...]] as given, a flat list as one process."""
    if not samples:
        return []
    samples = list(samples)
    if all(isinstance(group, list | tuple) for group in samples):
        return [[float(x) for x in group] for group in samples if group]
    return [[float(x) for x in samples]]


def number(row: dict, column: str) -> float | None:
    """A cell as a float; None for a missing, blank or non-numeric cell (NaN included)."""
    try:
        value = float(row[column])
    except (KeyError, TypeError, ValueError):
        return None
    return None if value != value else value


def fmt_bytes(n: object) -> str:
    if not isinstance(n, int | float) or n != n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def fmt_count(n: object) -> str:
    """1.23e9 -> '1.23 G'."""
    if not isinstance(n, int | float) or n != n:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def fmt_number(n: object, spec: str = ".4g") -> str:
    return "-" if not isinstance(n, int | float) or n != n else format(n, spec)


# ---- how a metric is shown ----

@dataclass(frozen=True)
class Column:
    """One column of the on-screen table: a header (or a function of the rows shown that gives it)
    and how a row's cell reads."""

    header: str | Callable[[list[dict]], str]
    cell: Callable[[dict], str]

    def title(self, rows: list[dict]) -> str:
        return self.header(rows) if callable(self.header) else self.header


@dataclass(frozen=True)
class Panel:
    """One panel of the efficiency figure: `column` against n, log-log; `band` (optional) is a
    spread column drawn as +/- band/2 around the line."""

    column: str
    label: str
    band: str | None = None


# ---- how compare judges a metric: each returns (state, detail) or None when it cannot judge ----

def random_source(seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Judgement:
    """What a policy may need beyond the two rows: raw samples (one list per process) and a
    random source (a numpy Generator)."""

    base_samples: list[list[float]] | None = None
    new_samples: list[list[float]] | None = None
    rng: Any = field(default_factory=random_source)


@dataclass(frozen=True)
class Exact:
    column: str
    tunable: bool = False  # nothing to tune: --tolerance does not apply

    def judge(self, base: dict, new: dict, context: Judgement) -> tuple[str, str] | None:
        b, n = number(base, self.column), number(new, self.column)
        if b is None or n is None:
            return None
        state = "same" if n == b else ("slower" if n > b else "faster")
        return state, "" if state == "same" else f"{b:.6g} -> {n:.6g}"


@dataclass(frozen=True)
class Tolerance:
    column: str
    rel: float
    absolute: float = 0.0
    tunable: bool = True

    def judge(self, base: dict, new: dict, context: Judgement) -> tuple[str, str] | None:
        b, n = number(base, self.column), number(new, self.column)
        if b is None or n is None:
            return None
        allowed = max(self.rel * abs(b), self.absolute)
        state = "same" if abs(n - b) <= allowed else ("slower" if n > b else "faster")
        return state, "" if state == "same" else f"{b:.4g} -> {n:.4g}"


def _processes(row: dict) -> int:
    """How many processes a row's time came from (reports from before the column: one)."""
    return int(number(row, "time_processes") or 1)


@dataclass(frozen=True)
class Bootstrap:
    """Ratio new/base of the medians (of the per-process medians) with a bootstrap interval that
    resamples processes, then samples within them (attnbench.bootstrap). A change must clear
    `rel` and `absolute` (in the column's unit) to count; an interval that straddles the
    threshold is 'ambiguous'.

    When a side was timed in one process its interval cannot hold the variance between
    processes, so a change counts only beyond `one_process_rel` (a ratio beyond 1 + that, or
    below 1 / (1 + that)); in between it is 'ambiguous'. Without raw samples the interval comes
    from the per-process extremes (several processes) or the IQRs (one)."""

    column: str
    spread_column: str
    rel: float = 0.05
    absolute: float = 0.01
    one_process_rel: float = 0.5
    confidence: float = 0.95
    resamples: int = 2000
    tunable: bool = True

    def _from_rows(self, base: dict, new: dict) -> tuple[float, float, float]:
        mb, mn = number(base, self.column), number(new, self.column)
        lows = [number(r, "time_ms_process_min") for r in (base, new)]
        highs = [number(r, "time_ms_process_max") for r in (base, new)]
        if min(_processes(base), _processes(new)) > 1 and None not in lows + highs:
            return mn / mb, lows[1] / highs[0], highs[1] / max(lows[0], 1e-12)
        ib, inew = number(base, self.spread_column) or 0, number(new, self.spread_column) or 0
        return mn / mb, (mn - inew / 2) / (mb + ib / 2), (mn + inew / 2) / max(mb - ib / 2, 1e-12)

    def judge(self, base: dict, new: dict, context: Judgement) -> tuple[str, str] | None:
        mb, mn = number(base, self.column), number(new, self.column)
        if mb is None or mn is None or mb <= 0:
            return None
        if abs(mn - mb) <= self.absolute:
            return "same", f"{mn / mb:.2f}x (within {self.absolute:g})"
        bs, ns = context.base_samples, context.new_samples
        if bs and ns:
            from attnbench.bootstrap import ratio_interval

            ratio, low, high = ratio_interval(bs, ns, context.rng, self.confidence, self.resamples)
            one_process = min(len(bs), len(ns)) < 2
        else:
            ratio, low, high = self._from_rows(base, new)
            one_process = min(_processes(base), _processes(new)) < 2
        detail = f"{ratio:.2f}x [{low:.2f}, {high:.2f}]"
        counts = max(self.rel, self.one_process_rel) if one_process else self.rel
        if one_process and (low > 1 + self.rel or high < 1 - self.rel):
            detail += f" one process: counts beyond {1 + counts:.2f}x"
        if low > 1 + counts:
            return "slower", detail
        if high < (1 / (1 + counts) if one_process else 1 - self.rel):
            return "faster", detail
        if 1 - self.rel <= low and high <= 1 + self.rel:
            return "same", detail
        return "ambiguous", detail


# ---- the metric ----

@dataclass(frozen=True)
class Metric:
    """A measurement pass and everything the tool needs to know about it.

    measure: ctx -> {column: value}; ctx has case, options, method, fn, call (one call in the
    case's mode), q, k, v, device, itemsize and row (what earlier passes and the method's
    formulas filled). A pass must not print.
    """

    name: str
    help: str
    columns: tuple[str, ...]
    measure: Callable[[Any], dict]
    order: int = 50  # passes run in ascending order (time last: the others must not disturb it)
    default: bool = True  # measured when --metrics is not given
    compare: Exact | Tolerance | Bootstrap | None = None
    table: tuple[Column, ...] = ()
    panels: tuple[Panel, ...] = ()


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
    """The built-in metrics (every module of attnbench.metrics), then those of entry points."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    import attnbench.metrics as package

    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
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


def parse_metrics(names: list[str], what: str = "--metrics", comparable: bool = False) -> tuple[str, ...]:
    """Validated metric names, in the order given, each once."""
    valid = metric_names(comparable)
    unknown = [m for m in names if m not in valid]
    if unknown or not names:
        raise AttnbenchError(f"{what} takes names from {','.join(valid)}, not {','.join(names) or 'nothing'}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class MeasureOptions:
    """How to measure: which metrics' passes run, and their budgets and references."""

    metrics: tuple[str, ...] = field(default_factory=default_metrics)
    min_time_s: float = 0.5  # timing runs at least this long, then stops once IQR/median < 10%
    max_time_s: float = 5.0  # ... or when this much time was spent measuring
    reference: str = "full"  # error metric: the exact attention outputs are compared with
    repeats: int = 1  # error metric: independent draws of a stochastic method
    l2: str = "cold"  # time on CUDA: flush the L2 cache before every timed call (cold) or not (warm)
    cuda_graphs: bool = False  # time on CUDA: capture the call in a CUDA graph and time its replays
    processes: int = 1  # time: each case is timed in this many separate processes, interleaved
    process_index: int = 0  # set by the engine: which of those processes this is (0 runs every pass)


def result_columns() -> list[str]:
    """Every registered metric's columns, in pass order."""
    return [c for m in all_metrics() for c in m.columns]
