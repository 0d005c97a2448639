"""Small fits over measured rows (pure Python: no torch)."""

from __future__ import annotations

import math
from typing import Sequence


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares y = a + b x: (a, b, R^2)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    residual = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    total = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - residual / total if total else 1.0


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Scaling exponent: the slope of log y against log x (2 for y ~ x^2)."""
    return linear_fit([math.log(x) for x in xs], [math.log(y) for y in ys])[1]
