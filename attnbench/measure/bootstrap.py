"""Bootstrap intervals for timings measured in one or several processes (numpy only).

A timing is a list of groups, one per process, each the samples that process measured.
Processes differ by more than their own samples show (address-space layout, thread placement,
allocator state: on the 2-core CI machine the slowest of five processes of a case ran 1.29x
longer than the fastest in the median run), so the resampling is two-stage: draw processes
with replacement, then samples with replacement within each drawn process. With one process
only the second stage is left, and the interval says nothing about the variance between
processes.

The statistic compared is the geometric mean of the per-process medians (the mean of their
logs): with 3 to 5 processes it is a steadier estimate than their median, and it makes a ratio
a difference of logs. With k processes the bootstrap understates the spread between them by a
factor (k - 1) / k in variance, so the replicates' deviations are scaled back up by
sqrt(k / (k - 1)). On the CI machine's A/A data (scenarios/timing_aa.py, 5 processes, 80 rows)
the median of medians missed 7 of 80 slowdowns of 1.5x; this statistic caught all 80, at one
false alarm in the 80 rows against none.
"""

from __future__ import annotations

import math

import numpy as np

Groups = list[list[float]]


def log_level(groups: Groups) -> float:
    """The mean of the logs of the per-process medians (log of their geometric mean)."""
    return float(np.mean([math.log(np.median(g)) for g in groups]))


def replicates(groups: Groups, rng: np.random.Generator, resamples: int = 2000) -> np.ndarray:
    """`resamples` two-stage bootstrap replicates of log_level(groups)."""
    k = len(groups)
    picks = rng.integers(0, k, size=(k, resamples))  # which process fills slot j of replicate r
    chosen = np.empty((k, resamples))
    for g, samples in enumerate(groups):
        slots = picks == g
        values = np.asarray(samples, dtype=float)
        draws = values[rng.integers(0, len(values), size=(int(slots.sum()), len(values)))]
        chosen[slots] = np.log(np.median(draws, axis=1))  # a fresh resample of g for every slot that drew it
    return chosen.mean(axis=0)


def _log_ratios(base: Groups, new: Groups, rng: np.random.Generator, resamples: int) -> tuple[float, np.ndarray]:
    """(log of the ratio new/base, its bootstrap replicates, their spread restored for few processes)."""
    point = log_level(new) - log_level(base)
    spread = replicates(new, rng, resamples) - replicates(base, rng, resamples)
    k = min(len(base), len(new))
    scale = math.sqrt(k / (k - 1)) if k > 1 else 1.0
    return point, point + (spread - spread.mean()) * scale


def ratio_interval(base: Groups, new: Groups, rng: np.random.Generator, confidence: float = 0.95,
                   resamples: int = 2000) -> tuple[float, float, float]:
    """(ratio new/base of the geometric means of the per-process medians, low, high): a
    percentile interval."""
    point, logs = _log_ratios(base, new, rng, resamples)
    tail = (1 - confidence) / 2
    low, high = np.quantile(logs, [tail, 1 - tail])
    return math.exp(point), math.exp(low), math.exp(high)


def ratio_spread(numerator: Groups, denominator: Groups, rng: np.random.Generator, resamples: int = 2000) -> float:
    """Standard deviation of the ratio numerator/denominator over the bootstrap replicates."""
    _, logs = _log_ratios(denominator, numerator, rng, resamples)
    return float(np.std(np.exp(logs)))
