"""How a metric is judged when two reports are compared (attnbench.judge.compare): each metric
declares one of these policies. `Exact` (deterministic for a fixed seed: any change counts, more
= slower), `Tolerance` (a relative band with an absolute floor), `Bootstrap` (timing: an interval
of the ratio from the raw samples each row carries). Each judges two rows and returns (state,
detail), or None when it cannot judge.

Imports numpy (lazily) and attnbench.measure.bootstrap only: declaring a metric stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def numeric(row: dict, column: str) -> float | None:
    """A cell that holds a number, as one; None for a blank, a missing column, text or NaN."""
    value = row.get(column)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return value


def random_source(seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Judgement:
    """What a policy may need beyond the two rows: a random source (a numpy Generator)."""

    rng: Any = field(default_factory=random_source)


@dataclass(frozen=True)
class Exact:
    column: str
    tunable: bool = False  # nothing to tune: --tolerance does not apply

    def judge(self, base: dict, new: dict, context: Judgement) -> tuple[str, str] | None:
        b, n = numeric(base, self.column), numeric(new, self.column)
        if b is None or n is None:
            return None
        state = "same" if n == b else ("slower" if n > b else "faster")
        return state, "" if state == "same" else f"{b:.6g} -> {n:.6g}"

    def notes(self, reports: list[tuple[str, list]]) -> list[str]:
        return []


@dataclass(frozen=True)
class Tolerance:
    column: str
    rel: float
    absolute: float = 0.0
    tunable: bool = True
    higher_is_better: bool = False  # a quality (accuracy): a drop is the regression ('slower' in compare's words)

    def judge(self, base: dict, new: dict, context: Judgement) -> tuple[str, str] | None:
        b, n = numeric(base, self.column), numeric(new, self.column)
        if b is None or n is None:
            return None
        allowed = max(self.rel * abs(b), self.absolute)
        worse = n < b if self.higher_is_better else n > b
        state = "same" if abs(n - b) <= allowed else ("slower" if worse else "faster")
        return state, "" if state == "same" else f"{b:.4g} -> {n:.4g}"

    def notes(self, reports: list[tuple[str, list]]) -> list[str]:
        return []


def processes_of(row: dict) -> int:
    """How many processes a row's time came from (its samples, else its column; else one)."""
    if getattr(row, "samples", None):
        return len(row.samples)
    return int(numeric(row, "time_processes") or 1)


@dataclass(frozen=True)
class Bootstrap:
    """Ratio new/base of the case's time (the geometric mean of its per-process medians) with a
    bootstrap interval that resamples processes, then samples within them (attnbench.measure.bootstrap).
    A change must clear `rel` and `absolute` (in the column's unit) to count; an interval that
    straddles the threshold is 'ambiguous'.

    When a side was timed in one process its interval cannot hold the variance between
    processes, so a change counts only beyond `one_process_rel` (a ratio beyond 1 + that, or
    below 1 / (1 + that)); in between it is 'ambiguous'. Without raw samples the interval comes
    from the per-process extremes (several processes) or the IQRs (one). `measured_on` says where
    `one_process_rel` was measured."""

    column: str
    spread_column: str
    rel: float = 0.05
    absolute: float = 0.01
    one_process_rel: float = 0.5
    measured_on: str = ""
    confidence: float = 0.95
    resamples: int = 2000
    tunable: bool = True

    def _from_rows(self, base: dict, new: dict) -> tuple[float, float, float]:
        mb, mn = numeric(base, self.column), numeric(new, self.column)
        lows = [numeric(r, "time_ms_process_min") for r in (base, new)]
        highs = [numeric(r, "time_ms_process_max") for r in (base, new)]
        if min(processes_of(base), processes_of(new)) > 1 and None not in lows + highs:
            return mn / mb, lows[1] / highs[0], highs[1] / max(lows[0], 1e-12)
        ib, inew = numeric(base, self.spread_column) or 0, numeric(new, self.spread_column) or 0
        return mn / mb, (mn - inew / 2) / (mb + ib / 2), (mn + inew / 2) / max(mb - ib / 2, 1e-12)

    def judge(self, base: dict, new: dict, context: Judgement) -> tuple[str, str] | None:
        mb, mn = numeric(base, self.column), numeric(new, self.column)
        if mb is None or mn is None or mb <= 0:
            return None
        if abs(mn - mb) <= self.absolute:
            return "same", f"{mn / mb:.2f}x (within {self.absolute:g})"
        bs, ns = getattr(base, "samples", None), getattr(new, "samples", None)
        if bs and ns:
            from attnbench.measure.bootstrap import ratio_interval

            ratio, low, high = ratio_interval(bs, ns, context.rng, self.confidence, self.resamples)
        else:
            ratio, low, high = self._from_rows(base, new)
        one_process = min(processes_of(base), processes_of(new)) < 2
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

    def notes(self, reports: list[tuple[str, list]]) -> list[str]:
        """What the reader of a verdict must know: reports whose times carry no raw samples, and
        reports with a case timed in one process."""
        timed = {name: [r for r in rows if r.get("status") == "ok" and numeric(r, self.column) is not None]
                 for name, rows in reports}
        out = [f"Note: {name} has no raw timing samples beside it ({name}.samples.jsonl); its time intervals come "
               "from the IQRs instead of a bootstrap" for name, rows in timed.items()
               if rows and not any(getattr(r, "samples", None) for r in rows)]
        single = [name for name, rows in timed.items() if any(processes_of(r) < 2 for r in rows)]
        if single:
            out.append(f"Note: {' and '.join(single)} timed cases in one process each, so the intervals lack the "
                       f"variance between processes: a time change counts only beyond {1 + self.one_process_rel:.2f}x "
                       f"(a threshold measured {self.measured_on}); measure with --processes 3 or more to judge "
                       "smaller ones")
        return out
