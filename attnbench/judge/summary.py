"""Small fits and summaries over measured rows (pure Python: no torch)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Sequence

from attnbench.metrics.policies import numeric, processes_of
from attnbench.plan.case import Case
from attnbench.results.schema import Labeller

NOT_FITTING = ("oom", "timeout", "crashed")


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Scaling exponent: the slope of log y against log x (2 for y ~ x^2)."""
    return loglog_slope_se(xs, ys)[0]


def loglog_slope_se(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float | None]:
    """The scaling exponent and its standard error from the least-squares fit (None from two points)."""
    import numpy as np

    lx, ly = np.log(np.asarray(xs, dtype=float)), np.log(np.asarray(ys, dtype=float))
    if len(lx) < 3:
        return float(np.polyfit(lx, ly, 1)[0]), None
    coefficients, covariance = np.polyfit(lx, ly, 1, cov=True)
    return float(coefficients[0]), float(np.sqrt(covariance[0, 0]))


def _exponent(what: str, xs: list[float], ys: list[float]) -> str:
    slope, se = loglog_slope_se(xs, ys)
    return f"{what} ~ n^{slope:.2f}" + ("" if se is None else f" +/- {se:.2f}")


def _noisy(row: dict) -> bool:
    return row.get("time_noisy") is True


IQR_TO_SIGMA = 1.349  # IQR of a normal distribution, in standard deviations


def _series(rows: list[dict]) -> dict[tuple, dict[int, dict]]:
    """ok rows grouped by method, parameters and set-up (everything but n), then by n."""
    groups: dict[tuple, dict[int, dict]] = {}
    for row in rows:
        if row.get("status") != "ok" or numeric(row, "time_ms_median") is None:
            continue
        series = dataclasses.replace(Case.of(row), seq_len=0)
        setup = tuple(row.get(k) for k in ("batch", "heads", "head_dim", "dtype", "device", "mode"))
        groups.setdefault((row["method"], series, setup), {})[row["seq_len"]] = row
    return groups


def _crossover(times: dict[int, float], reference: dict[int, float]) -> str:
    common = sorted(set(times) & set(reference))
    if len(common) < 2:
        return ""
    ratios = [(n, times[n] / reference[n]) for n in common]
    if ratios[0][1] < 1:
        return f"cheaper than the reference from n={ratios[0][0]} on" if all(r < 1 for _, r in ratios) else ""
    for (n0, r0), (n1, r1) in zip(ratios, ratios[1:]):
        if r0 >= 1 > r1:  # interpolate log(ratio) against log(n)
            t = math.log(r0) / (math.log(r0) - math.log(r1))
            crossing = round(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))
            return f"cheaper than the reference from n~{crossing}"
    return f"not cheaper than the reference up to n={common[-1]}"


def _ratio_spread(row: dict, base: dict, ratio: float) -> tuple[float, bool]:
    """(standard deviation of `ratio`, whether it holds the variance between processes). From a
    two-stage bootstrap over both rows' raw samples when each was timed in several processes;
    otherwise from their IQRs (one process's own spread)."""
    mine, theirs = getattr(row, "samples", None), getattr(base, "samples", None)
    if mine and theirs and len(mine) > 1 and len(theirs) > 1:
        from attnbench.measure.bootstrap import ratio_spread
        from attnbench.metrics.policies import random_source

        faster = float(row["time_ms_median"]) <= float(base["time_ms_median"])
        numerator, denominator = (theirs, mine) if faster else (mine, theirs)
        return ratio_spread(numerator, denominator, random_source(0)), True
    t, tb = float(row["time_ms_median"]), float(base["time_ms_median"])
    relative = math.hypot((numeric(row, "time_ms_iqr") or 0) / IQR_TO_SIGMA / t,
                          (numeric(base, "time_ms_iqr") or 0) / IQR_TO_SIGMA / tb)
    return ratio * relative, False


def summary_lines(rows: list[dict], reference: str = "full") -> list[str]:
    """Scaling exponents, crossover against `reference`, and 'X ran r +/- s times faster' lines.
    The rows' samples (Row.samples, one list of ms per process) put the variance between
    processes into the +/- of rows timed in several processes."""
    groups = _series(rows)
    label = Labeller([row for series in groups.values() for row in series.values()], with_length=False)

    def _name(key: tuple) -> str:
        return label(next(iter(groups[key].values())))

    refs = {key[2]: series for key, series in groups.items() if key[0] == reference}
    lines = []
    for key, series in groups.items():
        ns = sorted(series)
        parts = []
        noisy = [n for n in ns if _noisy(series[n])]
        if len(ns) >= 2:
            parts.append(_exponent("time", ns, [float(series[n]["time_ms_median"]) for n in ns])
                         + (f" (noisy at n={','.join(map(str, noisy))})" if noisy else ""))
            memory = [numeric(series[n], "peak_mem_bytes") for n in ns]
            if all(m and m > 0 for m in memory):
                parts.append(_exponent("memory", ns, memory))
        ref = refs.get(key[2])
        if ref and key[0] != reference:
            crossing = _crossover({n: float(series[n]["time_ms_median"]) for n in ns},
                                  {n: float(r["time_ms_median"]) for n, r in ref.items()})
            if crossing:
                shaky = noisy or [n for n in ref if _noisy(ref[n])]
                parts.append(crossing + (" (from noisy points)" if shaky else ""))
        if parts:
            lines.append(f"{_name(key)}: " + ", ".join(parts))
    for setup, ref in refs.items():
        largest = max(ref)
        others = [(k, s[largest]) for k, s in groups.items() if k[2] == setup and k[0] != reference and largest in s]
        if not others:
            continue
        base = ref[largest]
        lines.append(f"at n={largest}, {reference} took {milliseconds(float(base['time_ms_median']))}; relative to it:")
        for key, row in sorted(others, key=lambda item: float(item[1]["time_ms_median"])):
            t, tb = float(row["time_ms_median"]), float(base["time_ms_median"])
            ratio = tb / t if t <= tb else t / tb
            word = "faster" if t <= tb else "slower"
            spread, between = _ratio_spread(row, base, ratio)
            within = "" if between else " (one process's spread)"
            lines.append(f"  {_name(key)} ran {ratio:.2f} +/- {spread:.2f} times {word} than {reference}{within}")
    timed = [row for series in groups.values() for row in series.values()]
    if timed and all(processes_of(row) < 2 for row in timed):
        lines.append("times come from one process per case: on a CPU, separate processes of one case can differ by "
                     "1.3x or more, each with a quiet IQR, and no +/- here can show it; --processes 3 or more "
                     "measures it")
    return lines


def milliseconds(value: float) -> str:
    """'4620 ms', '26.1 ms', '0.0812 ms': three significant figures, never in powers of ten."""
    return f"{value:.0f} ms" if value >= 100 else f"{value:.3g} ms"


QUALITY = (("error_spectral", "spectral error"), ("error_target_spectral", "error against its exact target"),
           ("error_model_spectral", "error against the model's output"), ("cond_score_max", "max |score|"),
           ("cond_landmark_condition", "cond(M)"))


def quality_lines(rows: list[dict]) -> list[str]:
    """Per method (and parameter set): the median of each error and conditioning column over its
    ok rows, with its range and over how many rows (layers, lengths, draws) it was taken."""
    ok = [row for row in rows if row.get("status") == "ok"]
    present = [(column, text) for column, text in QUALITY if any(numeric(row, column) is not None for row in ok)]
    if not present:
        return []
    label = Labeller([{**row, "layer": None} for row in ok], with_length=False)  # layers are the range, not series
    series: dict[str, list[dict]] = {}
    for row in ok:
        series.setdefault(label({**row, "layer": None}), []).append(row)
    layers = {row.get("layer") for row in ok if row.get("layer") not in (None, "")}
    over = "layers and lengths" if len(layers) > 1 else "lengths"
    lines = [f"error and conditioning per method: median (range over {over}, rows)"]
    for name, group in series.items():
        parts = []
        for column, text in present:
            values = sorted(v for row in group if (v := numeric(row, column)) is not None)
            if values:
                middle = values[len(values) // 2] if len(values) % 2 else sum(values[len(values) // 2 - 1:
                                                                               len(values) // 2 + 1]) / 2
                parts.append(f"{text} {middle:.3g} ({values[0]:.3g}-{values[-1]:.3g}, {len(values)})")
        if parts:
            lines.append(f"  {name}: " + "; ".join(parts))
    return lines


def status_lines(rows: list[dict]) -> list[str]:
    """Counts by status, and where each method stopped fitting."""
    if not rows:
        return ["rows: none"]
    counts = Counter(r["status"] for r in rows)
    lines = ["rows: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    label = Labeller(rows, with_length=False)
    by_series: dict[str, list[dict]] = {}
    for row in rows:
        by_series.setdefault(label(row), []).append(row)
    for name, group in by_series.items():
        ok = [r["seq_len"] for r in group if r["status"] == "ok"]
        failed = sorted((r["seq_len"], r["status"]) for r in group if r["status"] in NOT_FITTING)
        if failed:
            n, status = failed[0]
            fit = f"largest n that ran: {max(ok)}" if ok else "nothing ran"
            lines.append(f"{name}: {fit}; {status} from n={n}")
    return lines + capture_mismatches(rows)


CAPTURE_AGREEMENT = 1e-4  # float32 attention of the captured q, k, v against the model's own output


def capture_mismatches(rows: list[dict]) -> list[str]:
    """One warning per captured layer where exact attention on the captured q, k, v does not
    reproduce the output the model recorded: the hook did not see what the model attends with."""
    worst: dict[tuple, float] = {}
    for row in rows:
        check = row.get("error_capture_check")
        if isinstance(check, float) and check > CAPTURE_AGREEMENT:
            key = (row.get("model"), row.get("layer"))
            worst[key] = max(worst.get(key, 0.0), check)
    return [f"warning: at layer {layer} of the capture of {model}, exact attention on the captured q, k, v is "
            f"{check:.2g} from the model's own output (above {CAPTURE_AGREEMENT:g}): the capture did not see what "
            "the model attends with" for (model, layer), check in worst.items()]
