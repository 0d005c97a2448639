"""The statistics of a timing, in one place (pure Python): the timer's stopping rule, the row's
columns, the summary and compare all use these.

A case's time is the geometric mean of its per-process medians (`level`): each process's median
is robust to the odd slow call, and across processes the geometric mean is a steadier estimate
than their median with 3 to 5 processes, and makes a ratio of two cases' times a difference of
logs, which is what compare's bootstrap (attnbench.measure.bootstrap) resamples. With one process it is
that process's median.
"""

from __future__ import annotations

import math
import statistics

NOISY_IQR_FRACTION = 0.10  # torch.utils.benchmark's own threshold for a noisy measurement
MIN_QUIET_SAMPLES = 5  # fewer samples than this cannot show a spread: the timing counts as noisy


def iqr(values: list[float]) -> float:
    """Interquartile range (inclusive quartiles); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q3 - q1


def quiet(samples: list[float]) -> bool:
    """Enough samples to show a spread, and IQR/median within 10%."""
    return len(samples) >= MIN_QUIET_SAMPLES and iqr(samples) <= NOISY_IQR_FRACTION * statistics.median(samples)


def level(groups: list[list[float]]) -> float:
    """A case's time from its samples, one list per process: the geometric mean of the medians."""
    return math.exp(sum(math.log(statistics.median(g)) for g in groups) / len(groups))
